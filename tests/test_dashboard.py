"""The live dashboard's server side: the page a bokeh client receives, the command's errors, the
Dask dashboard's /daskhpo page, and turning the dashboard off. The browser tests are in
test_dashboard_browser.py."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

import dask
import pytest
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier

from daskhpo import GridSearchCV
from daskhpo.cli import main
from daskhpo.dashboard import serve_file
from daskhpo.store import SQLiteStore
from daskhpo.strategies.base import Job, Result, Status

X, y = load_iris(return_X_y=True)


def _result(trial: int, score: float) -> Result:
    return Result(
        job=Job(trial, {"max_depth": trial + 1}),
        status=Status.COMPLETE,
        score=score,
        test_scores={"score": (score,)},
        train_scores=None,
        fit_times=(0.1,),
        score_times=(0.01,),
    )


def _page(url: str, **arguments: str):
    """The document a browser tab gets from the server (pulled over bokeh's websocket)."""
    from bokeh.client import pull_session

    session = pull_session(url=url, arguments=arguments)
    try:
        doc = session.document
        header = doc.select_one({"name": "daskhpo-header"})
        waiting = doc.select_one({"name": "daskhpo-waiting"})
        trials = doc.select_one({"name": "daskhpo-trials"})
        return (
            None if header is None else header.text,
            None if waiting is None else waiting.text,
            None if trials is None else len(trials.data["trial_id"]),
        )
    finally:
        session.close()


def test_page_waits_for_its_search_then_shows_it_and_links_the_others(tmp_path):
    db = tmp_path / "runs.db"
    first = SQLiteStore(db, "first")
    for t in range(3):
        first.append(_result(t, 0.5 + 0.1 * t))
    server = serve_file(db, port=0)
    try:
        url = server.url()
        header, waiting, _ = _page(url, name="second")
        assert header is None and "no search named <b>second</b>" in waiting and "first" in waiting

        second = SQLiteStore(db, "second")
        second.start({"search": "GridSearchCV"}, None)
        second.append(_result(0, 0.9))
        header, _, plotted = _page(url, name="second")
        assert plotted == 1
        assert "status <b>running</b>" in header and "best score <b>0.9000</b>" in header
        assert 'href="/daskhpo?name=first"' in header  # the other search in the file

        header, _, plotted = _page(url)  # no name: the newest search
        assert plotted == 1 and "daskhpo · second" in header
        header, _, plotted = _page(url, name="first")
        assert plotted == 3 and "best score <b>0.7000</b>" in header
    finally:
        server.stop()


def test_dashboard_command_refuses_what_it_cannot_show(tmp_path):
    with pytest.raises(SystemExit, match="no store at"):
        main(["dashboard", "--storage", f"sqlite:///{tmp_path / 'missing.db'}"])
    SQLiteStore(tmp_path / "runs.db", "trees").close()
    with pytest.raises(SystemExit, match="no search named 'tress'.*trees"):
        main(["dashboard", "--storage", f"sqlite:///{tmp_path / 'runs.db'}", "--name", "tress"])
    with pytest.raises(SystemExit, match="give a store such as sqlite:///runs.db"):
        main(["dashboard", "--storage", "runs.db"])


def test_dashboard_command_says_when_the_port_is_taken(tmp_path, capsys):
    SQLiteStore(tmp_path / "runs.db", "trees").close()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(
            ["dashboard", "--storage", f"sqlite:///{tmp_path / 'runs.db'}", "--port", str(port)]
        )
    assert code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "dashboard" in out and "report" in out


def test_dask_dashboard_page_of_an_unknown_search_is_a_404(client):
    from daskhpo.dashboard.scheduler import SearchLinks

    client.register_plugin(SearchLinks())
    base = client.dashboard_link.rsplit("/", 1)[0]
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{base}/daskhpo/no-such-search", timeout=10)
    assert info.value.code == 404 and b"No search named no-such-search" in info.value.read()
    with urllib.request.urlopen(f"{base}/daskhpo", timeout=10) as page:
        assert page.status == 200 and b"daskhpo searches on this cluster" in page.read()


@pytest.mark.parametrize(
    ("enabled", "verbose", "shown"),
    [(None, 0, False), (None, 1, True), (False, 1, False), (True, 0, True)],
)
def test_which_searches_the_dashboard_shows(client, capsys, enabled, verbose, shown):
    name = f"search-{enabled}-{verbose}"
    with dask.config.set({"daskhpo.dashboard.enabled": enabled}):
        GridSearchCV(
            DecisionTreeClassifier(random_state=0),
            {"max_depth": [1, 2]},
            cv=2,
            verbose=verbose,
            client=client,
            name=name,
        ).fit(X, y)
    err = capsys.readouterr().err
    assert ("2/2" in err) == bool(verbose)  # the progress bar
    assert ("Search dashboard: http://" in err) == (shown and bool(verbose))
    announced = client.get_metadata(["daskhpo-searches"], default={})
    assert (name in announced) == shown


def test_a_page_follows_a_search_run_again_under_the_same_name():
    import gc

    from bokeh.document import Document

    from daskhpo.dashboard.server import LiveCatalog, _Page
    from daskhpo.store import MemoryStore

    catalog = LiveCatalog()
    first = MemoryStore()
    for t in range(2):
        first.append(_result(t, 0.5))
    catalog.add("trees", first)
    doc = Document()
    page = _Page(doc, catalog, "trees", 1000)
    trials = doc.select_one({"name": "daskhpo-trials"})
    assert len(trials.data["trial_id"]) == 2

    second = MemoryStore()
    second.append(_result(0, 0.8))
    catalog.add("trees", second)  # fit called again
    page.refresh()
    assert len(trials.data["trial_id"]) == 1
    catalog.set_status("trees", "finished")
    page.refresh()
    assert "status <b>finished</b>" in doc.select_one({"name": "daskhpo-header"}).text

    del first, second, page, doc, trials  # searches gone, pages closed: entries gone too
    gc.collect()
    assert catalog.names() == []


def test_dask_dashboard_of_a_scheduler_in_another_process_links_the_search(tmp_path, capsys):
    """The scheduler is a separate process that never imports daskhpo: the /daskhpo page reaches it
    through the client, and links to the live page this process serves."""
    import subprocess
    import sys
    import time

    from distributed import Client

    from daskhpo.dashboard.server import watch
    from daskhpo.store import MemoryStore

    scheduler_file = tmp_path / "scheduler.json"
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1"]
        + ["--port", "0", "--dashboard-address", "127.0.0.1:0"]
        + ["--scheduler-file", str(scheduler_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        with Client(scheduler_file=str(scheduler_file), set_as_default=False) as client:
            store = MemoryStore()
            store.append(_result(0, 0.75))
            watched = watch(store, "remote-search", client, verbose=1, search="GridSearchCV")
            assert watched is not None
            base = client.dashboard_link.rsplit("/", 1)[0]
            err = capsys.readouterr().err
            assert f"Search dashboard: {watched.url}" in err
            assert f"linked from the Dask dashboard at {base}/daskhpo/remote-search" in err

            with urllib.request.urlopen(f"{base}/status", timeout=30) as page:
                assert page.status == 200
                assert b'href="daskhpo"' in page.read()  # the menu entry
            with urllib.request.urlopen(f"{base}/daskhpo", timeout=10) as page:
                listing = page.read().decode()
            assert f'href="{watched.url}"' in listing and "running" in listing
            with urllib.request.urlopen(f"{base}/daskhpo/remote-search", timeout=10) as page:
                assert page.url == watched.url and page.status == 200  # redirected to this process
                assert b"bokeh" in page.read()
            watched.finish("finished")
            with urllib.request.urlopen(f"{base}/daskhpo", timeout=10) as page:
                assert "<td>finished</td>" in page.read().decode()
            assert not client.run_on_scheduler(lambda: "daskhpo" in sys.modules)
    finally:
        scheduler.terminate()
        scheduler.wait(10)


def test_a_trial_url_opens_the_per_trial_view_with_the_traceback(tmp_path):
    """``?trial=ID`` opens that trial's view: params, fold scores, times, the traceback of a failed
    fold, and no invented worker (the store does not record it)."""
    from bokeh.client import pull_session

    db = tmp_path / "runs.db"
    store = SQLiteStore(db, "trees")
    store.append(_result(0, 0.5))
    store.append(
        Result(
            job=Job(1, {"max_depth": 0}),
            status=Status.FAILED,
            score=float("nan"),
            test_scores={"score": (float("nan"), 0.7)},
            train_scores=None,
            fit_times=(0.25, 0.5),
            score_times=(0.01, 0.02),
            errors=("Traceback (most recent call last):\nValueError: max_depth must be >= 1", None),
        )
    )
    server = serve_file(db, port=0)
    try:
        session = pull_session(url=server.url(), arguments={"name": "trees", "trial": "1"})
        try:
            doc = session.document
            text = doc.select_one({"name": "daskhpo-trial"}).text
            assert doc.select_one({"name": "daskhpo-trial-input"}).value == "1"
        finally:
            session.close()
    finally:
        server.stop()
    assert "Trial 1" in text and "max_depth" in text and "0.7000" in text  # the fold that ran
    assert "ValueError: max_depth must be &gt;= 1" in text and "daskhpo-traceback" in text
    assert "0.250" in text and "worker: <i>not recorded" in text
