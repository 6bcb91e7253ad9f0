"""The daskhpo command line."""

from __future__ import annotations

import subprocess
import sys

from daskhpo.cli import DEMO_GRID, main


def test_help_documents_every_command():
    out = subprocess.run(
        [sys.executable, "-m", "daskhpo", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "demo" in out and "digits" in out
    for command in ("run", "status", "results"):
        assert command in out
    demo = subprocess.run(
        [sys.executable, "-m", "daskhpo", "demo", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--cluster" in demo and "--cv" in demo and "1,176" in demo
    assert "--client" in demo  # the older name of --cluster, still accepted


def test_no_command_prints_help_and_exits_2():
    proc = subprocess.run([sys.executable, "-m", "daskhpo"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "usage: daskhpo" in proc.stderr and "demo" in proc.stderr
    assert "give a command" in proc.stderr


def test_cluster_is_one_flag_everywhere_and_client_is_its_alias():
    from daskhpo.cli import build_parser

    parser = build_parser()
    for command in (["demo"], ["run", "spec.yaml"], ["resume", "s", "--storage", "sqlite:///x.db"]):
        for flag in ("--cluster", "--client"):
            args = parser.parse_args([*command, flag, "tcp://10.0.0.1:8786"])
            assert args.cluster == "tcp://10.0.0.1:8786", (command, flag)


def test_demo_grid_is_the_tutorial_grid():
    n = 1
    for values in DEMO_GRID.values():
        n *= len(values)
    assert n == 1176


def test_demo_runs_on_a_cluster_and_prints_the_result(client, capsys):
    assert main(["demo", "--client", client.scheduler.address, "--cv", "2"]) == 0
    out = capsys.readouterr().out
    assert "best score (mean CV accuracy): 0." in out
    assert "best params: {'criterion':" in out
    table = out.split("top 10 candidates:")[1].strip().splitlines()
    assert len(table) == 11  # header and ten rows
    assert "rank_test_score" in table[0]


def test_bad_cv_is_refused():
    proc = subprocess.run(
        [sys.executable, "-m", "daskhpo", "demo", "--cv", "1"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "--cv 1" in proc.stderr


def test_status_and_results_read_a_store_without_a_cluster(client, tmp_path):
    import csv
    import io
    import json

    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier

    from daskhpo import GridSearchCV

    X, y = load_iris(return_X_y=True)
    storage = f"sqlite:///{tmp_path / 'runs.db'}"
    search = GridSearchCV(
        DecisionTreeClassifier(random_state=0),
        {"max_depth": [1, 2, 3]},
        cv=3,
        storage=storage,
        name="trees",
        client=client,
    ).fit(X, y)

    def run(*args):
        proc = subprocess.run(
            [sys.executable, "-m", "daskhpo", *args], capture_output=True, text=True
        )
        return proc.returncode, proc.stdout, proc.stderr

    code, out, _ = run("status", "--storage", storage)
    assert code == 0 and out.startswith("trees\tfinished\t3 trials")
    code, out, _ = run("status", "trees", "--storage", storage)
    assert "status: finished" in out and f"best so far: {search.best_score_:.6g}" in out
    assert "space: {'max_depth': [1, 2, 3]}" in out
    code, out, _ = run("results", "trees", "--storage", storage, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [int(r["param_max_depth"]) for r in rows] == [1, 2, 3]
    assert [float(r["mean_test_score"]) for r in rows] == list(
        search.cv_results_["mean_test_score"]
    )
    code, out, _ = run("results", "trees", "--storage", storage, "--format", "json")
    assert len(json.loads(out)) == 3
    code, _, err = run("results", "bushes", "--storage", storage)
    assert code != 0 and "no search named 'bushes'" in err and "trees" in err
    code, _, err = run("status", "--storage", f"sqlite:///{tmp_path / 'none.db'}")
    assert code != 0 and "no store at" in err


def test_run_a_spec_file_detached_and_resume_it(client, tmp_path):
    from daskhpo.store import SQLiteStore

    spec = tmp_path / "trees.yaml"
    spec.write_text(
        "name: iris-trees\n"
        "estimator: {class: sklearn.tree.DecisionTreeClassifier, params: {random_state: 0}}\n"
        "search: {type: grid, param_grid: {max_depth: [1, 2, 3, 4]}}\n"
        "data: {loader: sklearn.datasets.load_iris}\n"
        "scoring: accuracy\n"
        "cv: 3\n"
    )
    db = tmp_path / "runs.db"
    command = [
        sys.executable,
        "-m",
        "daskhpo",
        "run",
        str(spec),
        "--cluster",
        client.scheduler.address,
    ]
    command += ["--storage", f"sqlite:///{db}"]
    proc = subprocess.run(command, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "search 'iris-trees': best score 0.9" in proc.stdout
    info = SQLiteStore(db, "iris-trees", create=False).info()
    assert info["status"] == "finished" and info["n_trials"] == 4
    assert info["spec"]["document"]["search"]["param_grid"] == {"max_depth": [1, 2, 3, 4]}
    assert info["spec"]["search"] == "GridSearchCV"

    again = subprocess.run(command, capture_output=True, text=True)
    assert again.returncode == 2 and "pass resume=True" in again.stderr
    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert SQLiteStore(db, "iris-trees", create=False).info()["n_trials"] == 4  # nothing recomputed

    spec.write_text(spec.read_text().replace("search:", "serach:"))
    bad = subprocess.run(command, capture_output=True, text=True)
    assert bad.returncode == 2 and "did you mean 'search'" in bad.stderr


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(client, tmp_path):
    import os
    import signal
    import sqlite3
    import time
    from pathlib import Path

    from daskhpo.store import SQLiteStore

    root = Path(__file__).resolve().parents[1]
    spec = tmp_path / "slow.yaml"
    spec.write_text(
        "name: slow\n"
        "estimator: {class: tests.helpers.SlowTree, params: {delay: 0.3}}\n"
        "search: {type: grid, param_grid: {max_depth: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}}\n"
        "data: {loader: sklearn.datasets.load_iris}\n"
        "cv: 2\n"
    )
    db = tmp_path / "runs.db"
    storage = f"sqlite:///{db}"
    command = [
        sys.executable,
        "-m",
        "daskhpo",
        "run",
        str(spec),
        "--cluster",
        client.scheduler.address,
    ]
    command += ["--storage", storage]
    proc = subprocess.Popen(
        command,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        stderr=subprocess.PIPE,
        text=True,
    )

    def stored() -> int:
        try:
            with sqlite3.connect(db) as conn:
                return conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
        except sqlite3.Error:
            return 0

    deadline = time.monotonic() + 60
    while stored() < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "search interrupted; in-flight work was cancelled" in err
    assert f"--storage {storage} --name slow --resume" in err
    info = SQLiteStore(db, "slow", create=False).info()
    assert info["status"] == "interrupted" and 2 <= info["n_trials"] < 10

    resumed = subprocess.run(
        [*command, "--resume"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert SQLiteStore(db, "slow", create=False).info()["n_trials"] == 10


def test_status_prints_spaces_as_text_and_numbers_as_numbers(client, tmp_path):
    import numpy as np
    import scipy.stats
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from daskhpo import RandomizedSearchCV

    X, y = load_iris(return_X_y=True)
    storage = f"sqlite:///{tmp_path / 'runs.db'}"
    RandomizedSearchCV(
        LogisticRegression(max_iter=200),
        {"C": scipy.stats.loguniform(1e-2, 1e2), "tol": [np.float64(1e-4), np.float64(1e-3)]},
        n_iter=3,
        cv=2,
        random_state=0,
        storage=storage,
        name="logit",
        client=client,
    ).fit(X, y)
    out = subprocess.run(
        [sys.executable, "-m", "daskhpo", "status", "logit", "--storage", storage],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "space: {'C': loguniform(0.01, 100.0), 'tol': [0.0001, 0.001]}" in out
    assert "object at 0x" not in out and "np.float64" not in out


def test_results_into_head_ends_without_a_traceback(tmp_path):
    """`daskhpo results ... | head` stops quietly when head has read enough."""
    from daskhpo.store import open_store
    from daskhpo.strategies.base import Job, Result, Status

    storage = f"sqlite:///{tmp_path / 'big.db'}"
    store = open_store(storage, "big")
    store.start({"search": "GridSearchCV"}, "f")
    for i in range(3000):  # well over a pipe's buffer of output
        store.append(
            Result(
                job=Job(trial_id=i, params={"alpha": i / 7, "name": f"candidate-{i}"}),
                status=Status.COMPLETE,
                score=0.5,
                test_scores={"score": (0.5, 0.5)},
                train_scores=None,
                fit_times=(0.01, 0.01),
                score_times=(0.0, 0.0),
                errors=(None, None),
            )
        )
    store.close()
    err = tmp_path / "err.txt"
    with open(err, "w") as errors:
        producer = subprocess.Popen(
            [sys.executable, "-m", "daskhpo", "results", "big", "--storage", storage],
            stdout=subprocess.PIPE,
            stderr=errors,
        )
        head = subprocess.run(["head", "-n", "3"], stdin=producer.stdout, capture_output=True)
        producer.stdout.close()
        code = producer.wait(timeout=60)
    assert len(head.stdout.decode().splitlines()) == 3
    assert "Traceback" not in err.read_text() and "BrokenPipeError" not in err.read_text()
    assert code == 0
