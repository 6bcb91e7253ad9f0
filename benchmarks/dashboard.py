"""Page load and live-update time of the search dashboard with up to 100,000 stored trials, in
headless Chromium, against optuna-dashboard on the same trials.

Run ``python benchmarks/dashboard.py [--trials 1000,10000,100000] [--peer-trials 1000,10000]
[--rounds 1] [--json FILE]``. For each size, a SQLite store gets that many realistic trials (5
parameters, 5 folds, about 2% failed with a traceback; ``tests/test_dashboard_data.py:fill_store``),
``daskhpo dashboard`` serves it (its own process, as a user starts it) and Chromium (Playwright)
measures:

- *first load*: the first page, opened as soon as the server prints its address, until the header
  shows every trial and every plot is drawn (the server reads the whole store once, from the moment
  it starts);
- *next load*: another page on the same server, from a fresh browser context (no cached JavaScript);
- *update*: 1,000 trials appended to the file by another writer, until the open page shows them;
- *trial view*: a click on a failed trial in the table until its traceback is shown;
- the bytes each page receives on its websocket, and the dashboard process's resident memory.

With ``--rounds R`` each daskhpo size is measured R times (a new store and server each time) and the
median is printed: single runs drift a lot on a shared 2-core machine.

The peer is optuna-dashboard (when installed: ``pip install optuna-dashboard``) on an Optuna RDB storage
(SQLite) holding the same trials: written into Optuna's schema in one transaction with Optuna's own
``to_internal_repr``/``distribution_to_json``, and checked by loading the study back (adding them with
``study.add_trials`` took 24 ms a trial here: 40 minutes for 100,000). Its load is the time until
its study page has received the study's trials (``/api/studies/1?after=0``, every trial as JSON) and
drawn the history plot's points. Its 100,000-trial page is not measured by default: at 10,000 trials
its study response was 19 MB and took 14-26 s here, so 100,000 would be minutes of both cores of this
machine (``--peer-trials 100000`` runs it). Its live update is not measured. Only what ran is printed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The browser test's launch settings, drawn-page checks and websocket byte counter: the benchmark
# measures the pages exactly as that test drives them.
from tests.test_dashboard_browser import CHROMIUM, FLAGS, Wire, loaded  # noqa: E402

UPDATE = 1000


def _page(browser: Any) -> Any:
    """A page in a fresh context: nothing cached from an earlier page."""
    return browser.new_context(viewport={"width": 1200, "height": 900}).new_page()


def measure_daskhpo(browser: Any, n: int, folder: Path) -> dict[str, Any]:
    from tests.test_dashboard_data import fill_store

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"daskhpo-{n}.db"
    start = time.perf_counter()
    fill_store(path, "big", n).close()
    out: dict[str, Any] = {"trials": n, "fill_s": time.perf_counter() - start}
    log = open(folder / f"server-{n}.err", "w")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(
        [sys.executable, "-m", "daskhpo", "dashboard", "--storage", f"sqlite:///{path}"]
        + ["--name", "big", "--port", "0", "--interval", "500"],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        cwd=ROOT,
    )
    try:
        line = server.stdout.readline()  # type: ignore[union-attr]
        found = re.search(r"(http://127\.0\.0\.1:\d+/daskhpo\?name=big)", line)
        assert found, line
        url = found.group(1)

        page = _page(browser)
        wire = Wire(page)
        start = time.perf_counter()
        page.goto(url)
        page.wait_for_function(loaded(n), timeout=600_000, polling=50)
        out["first_load_s"] = time.perf_counter() - start
        out["first_load_bytes"] = wire.bytes
        page.wait_for_function(
            "() => Bokeh.documents[0].get_model_by_name('daskhpo-importance').data.name.length > 0",
            timeout=120_000,
            polling=50,
        )
        out["importance_s"] = time.perf_counter() - start
        page.close()

        page = _page(browser)
        wire = Wire(page)
        start = time.perf_counter()
        page.goto(url)
        page.wait_for_function(loaded(n), timeout=600_000, polling=50)
        out["next_load_s"] = time.perf_counter() - start
        out["next_load_bytes"] = wire.bytes

        before = wire.bytes
        fill_store(path, "big", UPDATE, seed=1, start=n).close()
        start = time.perf_counter()
        page.wait_for_function(loaded(n + UPDATE), timeout=120_000, polling=20)
        out["update_s"] = time.perf_counter() - start
        out["update_bytes"] = wire.bytes - before

        page.locator("select").select_option(label="failed evaluations")
        page.get_by_text("rows 1–50 of").wait_for(timeout=60_000)
        first = page.locator(".slick-row").first
        first.get_by_text("failed").wait_for(timeout=60_000)
        start = time.perf_counter()
        first.locator(".slick-cell").nth(2).click()
        page.locator(".daskhpo-traceback").first.wait_for(timeout=60_000)
        out["trial_view_s"] = time.perf_counter() - start
        page.close()
        out["server_rss_mb"] = _rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(10)
        log.close()
    return out


def _rss_mb(pid: int) -> float:
    """Resident memory of a process (Linux), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- the peer ----------------------------------------------------------------------------------
def optuna_storage(path: Path, n: int) -> float:
    """An Optuna RDB (SQLite) study holding the same ``n`` trials; returns its best value."""
    import optuna
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
        distribution_to_json,
    )

    from tests.test_dashboard_data import DEPTHS, synthetic_results

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = {
        "learning_rate": FloatDistribution(1e-4, 1.0, log=True),
        "max_depth": CategoricalDistribution(DEPTHS),
        "n_estimators": IntDistribution(50, 1000),
        "subsample": FloatDistribution(0.5, 1.0),
        "loss": CategoricalDistribution(["log_loss", "exponential"]),
    }
    study = optuna.create_study(study_name="big", storage=f"sqlite:///{path}", direction="maximize")
    study_id = study._study_id
    as_json = {k: distribution_to_json(d) for k, d in dists.items()}
    now = datetime.datetime.now()
    trials, params, values = [], [], []
    best = -float("inf")
    for r in synthetic_results(n):
        tid = r.job.trial_id + 1
        ok = r.status.value == "complete"
        trials.append((tid, tid - 1, study_id, "COMPLETE" if ok else "FAIL", now, now))
        for k, v in r.job.params.items():
            params.append((tid, k, dists[k].to_internal_repr(v), as_json[k]))
        if ok:
            values.append((tid, 0, r.score, "FINITE"))
            best = max(best, r.score)
    conn = sqlite3.connect(str(path), isolation_level=None)
    try:
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO trials (trial_id, number, study_id, state, datetime_start, "
            "datetime_complete) VALUES (?, ?, ?, ?, ?, ?)",
            trials,
        )
        conn.executemany(
            "INSERT INTO trial_params (trial_id, param_name, param_value, distribution_json) "
            "VALUES (?, ?, ?, ?)",
            params,
        )
        conn.executemany(
            "INSERT INTO trial_values (trial_id, objective, value, value_type) VALUES (?, ?, ?, ?)",
            values,
        )
        conn.execute("COMMIT")
    finally:
        conn.close()
    loaded_back = optuna.load_study(study_name="big", storage=f"sqlite:///{path}")
    assert len(loaded_back.get_trials(deepcopy=False)) == n
    assert loaded_back.best_value == best
    return best


def measure_optuna_dashboard(browser: Any, n: int, folder: Path) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"optuna-{n}.db"
    start = time.perf_counter()
    optuna_storage(path, n)
    out: dict[str, Any] = {"trials": n, "fill_s": time.perf_counter() - start}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = Path(sys.executable).with_name("optuna-dashboard")
    log = open(folder / f"optuna-dashboard-{n}.log", "w")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(
        [str(command), f"sqlite:///{path}", "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        page = _page(browser)
        start = time.perf_counter()
        with page.expect_response(
            lambda r: "/api/studies/1?after=" in r.url and r.status == 200, timeout=900_000
        ) as info:
            page.goto(f"http://127.0.0.1:{port}/dashboard/studies/1")
        out["api_bytes"] = len(info.value.body())
        out["api_s"] = time.perf_counter() - start
        page.wait_for_selector(".js-plotly-plot .scatterlayer .point", timeout=900_000)
        out["first_load_s"] = time.perf_counter() - start
        page.close()
    finally:
        server.terminate()
        server.wait(10)
        log.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", default="1000,10000,100000")
    parser.add_argument("--peer-trials", default="1000,10000")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    sizes = [int(s) for s in args.trials.split(",") if s]
    peer_sizes = [int(s) for s in args.peer_trials.split(",") if s]
    have_peer = Path(sys.executable).with_name("optuna-dashboard").exists()
    ours: list[dict[str, Any]] = []
    theirs: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            for n in sizes:
                runs = []
                for k in range(args.rounds):
                    runs.append(measure_daskhpo(browser, n, Path(tmp) / f"{n}-{k}"))
                    print(json.dumps(runs[-1]), flush=True)
                ours.append({key: statistics.median(r[key] for r in runs) for key in runs[0]})
                ours[-1]["trials"] = n
            if have_peer:
                for n in peer_sizes:
                    theirs[n] = measure_optuna_dashboard(browser, n, Path(tmp) / f"peer-{n}")
                    print(json.dumps(theirs[n]), flush=True)
        finally:
            browser.close()

    cpus = os.cpu_count()
    load = os.getloadavg()[0]
    print(
        f"\nSearch dashboard in headless Chromium ({cpus} cores, load average {load:.1f} at the end; "
        f"times in seconds, daskhpo's the median of {args.rounds} round(s))"
    )
    head = (
        f"{'trials':>8} | {'first load':>10} | {'next load':>9} | {'update':>6} | "
        f"{'trial view':>10} | {'page kB':>7} | {'update kB':>9} | {'server MB':>9} | "
        f"{'optuna-dashboard load':>21} | {'its data kB':>11} | {'ratio':>5}"
    )
    print(head)
    print("-" * len(head))
    for r in ours:
        peer = theirs.get(r["trials"])
        peer_cols = (
            f"{peer['first_load_s']:>21.2f} | {peer['api_bytes'] / 1e3:>11,.0f} | "
            f"{peer['first_load_s'] / r['first_load_s']:>5.1f}"
            if peer
            else f"{'not run':>21} | {'':>11} | {'':>5}"
        )
        print(
            f"{r['trials']:>8,} | {r['first_load_s']:>10.2f} | {r['next_load_s']:>9.2f} | "
            f"{r['update_s']:>6.2f} | {r['trial_view_s']:>10.2f} | "
            f"{r['next_load_bytes'] / 1e3:>7,.0f} | {r['update_bytes'] / 1e3:>9,.0f} | "
            f"{r['server_rss_mb']:>9.0f} | {peer_cols}"
        )
    if not have_peer:
        print("optuna-dashboard is not installed (pip install optuna-dashboard): no peer.")
    print(
        f"update: {UPDATE:,} trials appended by another writer until the open page shows them "
        "(the page looks every 500 ms); ratio: optuna-dashboard's first load / daskhpo's."
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"daskhpo": ours, "optuna-dashboard": theirs}))


if __name__ == "__main__":
    main()
