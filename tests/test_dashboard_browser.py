"""The live search dashboard in a real headless browser (Debian chromium driven by Playwright).

Both tests load the page while a search runs, wait until bokeh has drawn it, read from the page how
many trials are plotted while the search goes on, and check that the count grows and ends equal to the
store's count. One follows a SQLite search through the ``daskhpo dashboard`` command (a separate
process that reads only the file); the other follows a search kept in memory, reached the way a user
would: from the Dask dashboard's /status page through its "Daskhpo" menu entry, on a scheduler that
runs in another process.

Regenerate the README's screenshot with ``DASKHPO_UPDATE_SCREENSHOT=1 python -m pytest
tests/test_dashboard_browser.py``: it is written to docs/dashboard.png by :func:`save_screenshot`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sklearn.tree import DecisionTreeClassifier

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
GRID = {
    "max_depth": [None, 3, 6, 12],
    "criterion": ["gini", "entropy"],
    "min_samples_leaf": [1, 2, 8],
}  # 24 candidates

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="needs Debian's chromium (.ci/apt-packages installs it)"
)


# Worker processes import this module to unpickle SlowTree: keep its top level light.
class SlowTree(DecisionTreeClassifier):
    """A decision tree whose fit also sleeps ``delay`` seconds, so that a test sees a search run,
    and first waits for the file ``gate`` to exist, so that a test decides when the fits begin."""

    def __init__(
        self,
        delay=0.15,
        gate=None,
        criterion="gini",
        max_depth=None,
        min_samples_leaf=1,
        random_state=0,
    ):
        super().__init__(
            criterion=criterion,
            max_depth=max_depth,
            min_samples_leaf=min_samples_leaf,
            random_state=random_state,
        )
        self.delay = delay
        self.gate = gate

    def fit(self, X, y, sample_weight=None):
        while self.gate is not None and not os.path.exists(self.gate):
            time.sleep(0.05)
        time.sleep(self.delay)
        return super().fit(X, y, sample_weight=sample_weight)


# -- what the page shows -------------------------------------------------------------------------
DRAWN = """() => {
    if (!window.Bokeh || !Bokeh.documents || !Bokeh.documents.length) return false;
    const trials = Bokeh.documents[0].get_model_by_name('daskhpo-trials');
    const views = Object.values(Bokeh.index);
    return trials !== null && views.length > 0 && views.every(v => v.has_finished());
}"""
PLOTTED = "() => Bokeh.documents[0].get_model_by_name('daskhpo-trials').get_length()"


@contextlib.contextmanager
def browser_page() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # launch() gives chromium a fresh profile directory of its own (the --user-data-dir).
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            yield page
            assert not errors, errors
        finally:
            browser.close()


def wait_drawn(page: Any, timeout: float = 30) -> None:
    """Until bokeh has drawn every plot of the page (and at least one canvas is there)."""
    page.wait_for_function(DRAWN, timeout=timeout * 1000, polling=100)
    assert page.locator("canvas").count() > 0


def plotted(page: Any) -> int:
    return int(page.evaluate(PLOTTED))


def follow(page: Any, running: threading.Thread) -> list[int]:
    """The plotted-trial counts read from the page every 0.2 s while ``running`` is alive."""
    counts = []
    while running.is_alive():
        counts.append(plotted(page))
        time.sleep(0.2)
    return counts


def assert_grew(counts: list[int], final: int) -> None:
    assert counts == sorted(counts), counts  # never goes back
    during = {c for c in counts if 0 < c < final}
    assert len(during) >= 2, f"the page showed too few intermediate counts: {counts}"


def save_screenshot(page: Any, tmp_path: Path, name: str = "dashboard") -> Path:
    """Screenshot of the whole page under ``tmp_path``; also docs/dashboard.png (the README's image)
    when the environment variable DASKHPO_UPDATE_SCREENSHOT is set."""
    shot = tmp_path / f"{name}.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000  # a drawn page, not a blank one
    if os.environ.get("DASKHPO_UPDATE_SCREENSHOT") and name == "dashboard":
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copyfile(shot, ROOT / "docs" / "dashboard.png")
    return shot


def _run(search: Any) -> threading.Thread:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    failure: list[BaseException] = []

    def fit() -> None:
        try:
            search.fit(X, y)
        except BaseException as exc:  # surfaced by the test below
            failure.append(exc)

    thread = threading.Thread(target=fit, daemon=True)
    thread.failure = failure  # type: ignore[attr-defined]
    thread.start()
    return thread


# -- the tests -----------------------------------------------------------------------------------
def test_dashboard_command_follows_a_sqlite_search_in_the_browser(client, tmp_path, capsys):
    from daskhpo import GridSearchCV
    from daskhpo.cli import main
    from daskhpo.store import SQLiteStore

    db = tmp_path / "runs.db"
    storage = f"sqlite:///{db}"
    SQLiteStore(db, "digits-trees").close()  # the search's row, as `daskhpo run` makes it first
    server = subprocess.Popen(
        [sys.executable, "-m", "daskhpo", "dashboard", "--storage", storage]
        + ["--name", "digits-trees", "--port", "0", "--interval", "200"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    search = GridSearchCV(
        SlowTree(delay=0.15), GRID, cv=2, storage=storage, name="digits-trees", client=client
    )
    try:
        with browser_page() as page:  # chromium starts while the command does
            line = server.stdout.readline()  # type: ignore[union-attr]
            found = re.search(r"(http://127\.0\.0\.1:\d+/daskhpo\?name=digits-trees)", line)
            assert found, line + server.stderr.read()  # type: ignore[union-attr]
            page.goto(found.group(1))
            wait_drawn(page)  # the search exists but has no trials yet
            assert plotted(page) == 0
            running = _run(search)
            counts = follow(page, running)
            running.join()
            assert not running.failure, running.failure  # type: ignore[attr-defined]
            stored = len(SQLiteStore(db, "digits-trees", create=False))
            assert stored == 24
            page.wait_for_function(f"() => ({PLOTTED})() === {stored}", timeout=10_000)
            wait_drawn(page)
            assert_grew(counts, stored)
            header = page.locator("text=evaluations stored").first.inner_text()
            assert "status finished" in header and f"{stored} evaluations stored" in header
            # One scatter per parameter, and the table lists the best trial first.
            for name in GRID:
                assert page.evaluate(
                    f"() => Bokeh.documents[0].get_model_by_name('daskhpo-param-{name}') !== null"
                )
                assert page.get_by_text(name, exact=True).count() == 1  # the table's column
            assert f"{search.best_score_:.4f}" in page.locator(".slick-row").first.inner_text()
            save_screenshot(page, tmp_path)

            # The same search as a standalone report, opened from the file.
            report = tmp_path / "report.html"
            assert (
                main(["report", "digits-trees", "--storage", storage, "--html", str(report)]) == 0
            )
            page.goto(report.as_uri())
            wait_drawn(page)
            assert plotted(page) == stored
            save_screenshot(page, tmp_path, "report")
    finally:
        server.terminate()
        server.wait(10)
    capsys.readouterr()


def test_dask_dashboard_leads_to_the_live_page_of_a_search_in_memory(client, tmp_path, capsys):
    import dask

    from daskhpo import GridSearchCV

    status_url = client.dashboard_link
    gate = tmp_path / "go"  # the fits wait for it: the page is open before any trial ends
    search = GridSearchCV(
        SlowTree(delay=0.15, gate=str(gate)),
        GRID,
        cv=2,
        verbose=1,
        client=client,
        name="digits-in-memory",
    )
    with dask.config.set({"daskhpo.dashboard.interval": 200}):
        running = _run(search)
        with browser_page() as page:  # chromium starts while the search does
            err = ""
            deadline = time.monotonic() + 60
            while "Search dashboard:" not in err and time.monotonic() < deadline:
                err += capsys.readouterr().err
                time.sleep(0.05)
            live = re.search(r"Search dashboard: (http://\S+)", err)
            assert live, err
            # The Dask dashboard answers while the search runs, and leads to it:
            # /status -> "Daskhpo" menu entry -> the search's link.
            response = page.goto(status_url)
            assert response is not None and response.status == 200
            assert running.is_alive()
            page.get_by_role("link", name="Daskhpo").click()
            page.wait_for_url(re.compile(r".*/daskhpo$"))
            page.get_by_role("link", name="digits-in-memory").click()
            page.wait_for_url(live.group(1))
            wait_drawn(page)
            assert plotted(page) == 0
            gate.touch()
            counts = follow(page, running)
            running.join()
            assert not running.failure, running.failure  # type: ignore[attr-defined]
            stored = len(search.store_)
            assert stored == 24
            page.wait_for_function(f"() => ({PLOTTED})() === {stored}", timeout=10_000)
            wait_drawn(page)
            assert_grew(counts, stored)
            assert "status finished" in page.locator("text=evaluations stored").first.inner_text()
            save_screenshot(page, tmp_path, "memory")
            # The Dask dashboard's list shows how the search ended.
            page.goto(status_url.rsplit("/", 1)[0] + "/daskhpo")
            row = page.locator("tr", has_text="digits-in-memory").inner_text()
            assert "finished" in row and "memory" in row


# -- a search of 100,000 trials --------------------------------------------------------------------
BIG = 100_000


def loaded(n: int) -> str:
    """JS: the header shows ``n`` evaluations read (none left to read) and every plot is drawn."""
    return f"""() => {{
        if (!({DRAWN})()) return false;
        const text = Bokeh.documents[0].get_model_by_name('daskhpo-header').text;
        return text.includes('<b>{n:,}</b> evaluations stored') && !text.includes('reading the store');
    }}"""


IMPORTANCE = "() => Bokeh.documents[0].get_model_by_name('daskhpo-importance').data.name"
PARALLEL = "() => Bokeh.documents[0].get_model_by_name('daskhpo-parallel').get_length()"


class Wire:
    """Bytes a page receives on its websockets (bokeh's document, then its updates)."""

    def __init__(self, page: Any) -> None:
        self.bytes = 0
        page.on("websocket", lambda ws: ws.on("framereceived", self._frame))

    def _frame(self, payload: bytes | str) -> None:
        self.bytes += len(payload.encode() if isinstance(payload, str) else payload)


@pytest.fixture(scope="module")
def big_store(tmp_path_factory: Any) -> tuple[Path, float]:
    """A SQLite store with one search of 100,000 realistic trials (about 2% failed)."""
    from tests.test_dashboard_data import fill_store

    path = tmp_path_factory.mktemp("big") / "runs.db"
    start = time.perf_counter()
    fill_store(path, "big", BIG).close()
    return path, time.perf_counter() - start


def test_dashboard_command_shows_a_100k_trial_store(big_store, tmp_path):
    """Load, live update, importance, paging and the per-trial view of a failed trial, on 100,000
    stored trials served by ``daskhpo dashboard``. The times are recorded (printed and written to
    ``dashboard-100k.json`` in the test's folder), never asserted; the bytes a page receives are
    asserted bounded."""
    import json
    import sqlite3

    from tests.test_dashboard_data import PARAMS, fill_store, store_best

    path, fill_seconds = big_store
    record: dict[str, Any] = {"trials": BIG, "fill_seconds": round(fill_seconds, 2)}
    server = subprocess.Popen(
        [sys.executable, "-m", "daskhpo", "dashboard", "--storage", f"sqlite:///{path}"]
        + ["--name", "big", "--port", "0", "--interval", "500"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        with browser_page() as page:
            wire = Wire(page)
            line = server.stdout.readline()  # type: ignore[union-attr]
            found = re.search(r"(http://127\.0\.0\.1:\d+/daskhpo\?name=big)", line)
            assert found, line + server.stderr.read()  # type: ignore[union-attr]
            url = found.group(1)

            # The first page: the server reads the 100,000 stored trials (once) while it answers.
            start = time.perf_counter()
            page.goto(url)
            page.wait_for_function(loaded(BIG), timeout=180_000, polling=100)
            record["load_seconds"] = round(time.perf_counter() - start, 2)
            record["load_bytes"] = wire.bytes
            header = page.locator("text=evaluations stored").first.inner_text()
            assert f"{BIG:,} evaluations stored" in header
            best_id, best_score = store_best(path, "big")
            assert (
                f"best score {best_score:.4f} (trial {best_id})"
                in page.locator("text=best score").first.inner_text()
            )
            assert 2000 <= plotted(page) <= 2101  # a sample, not 100,000 glyphs
            assert 50 <= page.evaluate(PARALLEL) <= 1000
            page.wait_for_function(
                f"() => ({IMPORTANCE})().length === {len(PARAMS)}", timeout=60_000
            )
            assert sorted(page.evaluate(IMPORTANCE)) == sorted(PARAMS)
            assert page.evaluate(IMPORTANCE)[0] == "learning_rate"
            assert wire.bytes < 2_000_000, wire.bytes
            assert page.locator(".slick-row").count() > 0

            # A live update: 1,000 more trials appended to the file by another writer.
            before = wire.bytes
            fill_store(path, "big", 1000, seed=1, start=BIG).close()
            start = time.perf_counter()
            page.wait_for_function(loaded(BIG + 1000), timeout=60_000, polling=50)
            record["update_seconds"] = round(time.perf_counter() - start, 2)
            record["update_bytes"] = wire.bytes - before
            assert (
                f"{BIG + 1000:,} evaluations stored"
                in page.locator("text=evaluations stored").first.inner_text()
            )
            assert record["update_bytes"] < 1_000_000, record

            # Paging, then the failed evaluations and the per-trial view of the newest one.
            page.get_by_role("button", name="next ▶").click()
            page.get_by_text("rows 51–100 of").wait_for(timeout=30_000)
            page.locator("select").select_option(label="failed evaluations")
            page.get_by_text("rows 1–50 of").wait_for(timeout=30_000)
            first = page.locator(".slick-row").first
            first.get_by_text("failed").wait_for(timeout=30_000)
            trial = int(first.locator(".slick-cell").nth(1).inner_text())
            with sqlite3.connect(str(path)) as conn:
                newest_failed = conn.execute(
                    "SELECT trial_id FROM trials WHERE search='big' AND status='failed' "
                    "ORDER BY seq DESC LIMIT 1"
                ).fetchone()[0]
            assert trial == newest_failed
            first.locator(".slick-cell").nth(2).click()
            page.get_by_text(f"Trial {trial}", exact=True).wait_for(timeout=30_000)
            shown = page.get_by_text("FloatingPointError: overflow in the loss").first
            shown.wait_for(timeout=30_000)
            view = page.locator(".daskhpo-traceback").first.inner_text()
            assert "Traceback (most recent call last)" in view and "fit_stages" in view
            assert page.get_by_text("worker: not recorded").count() == 1
            save_screenshot(page, tmp_path, "big")

            # A second tab, straight to one trial: the store is read already.
            other = page.context.browser.new_page(viewport={"width": 1200, "height": 900})
            other_wire = Wire(other)
            start = time.perf_counter()
            other.goto(f"{url}&trial={trial}")
            other.wait_for_function(loaded(BIG + 1000), timeout=60_000, polling=100)
            record["second_load_seconds"] = round(time.perf_counter() - start, 2)
            record["second_load_bytes"] = other_wire.bytes
            other.get_by_text(f"Trial {trial}", exact=True).wait_for(timeout=30_000)
            assert other.locator(".daskhpo-traceback").count() >= 1
    finally:
        server.terminate()
        server.wait(10)
    print("\ndaskhpo dashboard at 100,000 trials:", json.dumps(record))
    (tmp_path / "dashboard-100k.json").write_text(json.dumps(record, indent=1))
