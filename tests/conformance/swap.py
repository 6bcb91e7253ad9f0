"""pytest plugin: run scikit-learn's own search tests with daskhpo's classes in place of its own.

Loaded with ``-p tests.conformance.swap`` in a pytest run over the installed scikit-learn's
``sklearn/model_selection/tests/test_search.py`` or ``test_successive_halving.py``. Before those
modules are collected it imports them while the names they import from ``sklearn.model_selection``
point at daskhpo's classes, then puts scikit-learn's names back, so only the test modules see the
swap (scikit-learn's own internals keep their classes). Every search runs on one real 2-worker
LocalCluster, set as the default client. Each case's outcome is written as JSON to the file named by
``DASKHPO_CONFORMANCE_REPORT``.
"""

from __future__ import annotations

import importlib
import json
import os
import sys

import pytest

TEST_MODULES = (
    "sklearn.model_selection.tests.test_search",
    "sklearn.model_selection.tests.test_successive_halving",
)


def _swaps() -> dict[tuple[str, str], object]:
    import daskhpo

    return {
        ("sklearn.model_selection", "GridSearchCV"): daskhpo.GridSearchCV,
        ("sklearn.model_selection", "RandomizedSearchCV"): daskhpo.RandomizedSearchCV,
        ("sklearn.model_selection", "HalvingGridSearchCV"): daskhpo.HalvingGridSearchCV,
        ("sklearn.model_selection", "HalvingRandomSearchCV"): daskhpo.HalvingRandomSearchCV,
        ("sklearn.model_selection._search", "BaseSearchCV"): daskhpo.BaseSearchCV,
    }


def _import_swapped() -> None:
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401

    saved = {}
    for (module, name), new in _swaps().items():
        mod = importlib.import_module(module)
        saved[module, name] = getattr(mod, name)
        setattr(mod, name, new)
    try:
        for name in TEST_MODULES:
            sys.modules.pop(name, None)
            importlib.import_module(name)
    finally:
        for (module, name), old in saved.items():
            setattr(importlib.import_module(module), name, old)


_outcomes: dict[str, str] = {}
_cluster = None
_client = None


def pytest_configure(config: pytest.Config) -> None:
    global _cluster, _client
    from distributed import Client, LocalCluster

    _cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=":0",
    )
    _client = Client(_cluster, set_as_default=True)
    _import_swapped()


def pytest_unconfigure(config: pytest.Config) -> None:
    report = os.environ.get("DASKHPO_CONFORMANCE_REPORT")
    if report:
        with open(report, "w") as fh:
            json.dump(_outcomes, fh, indent=1, sort_keys=True)
    if _client is not None:
        _client.close()
    if _cluster is not None:
        _cluster.close()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    key = report.nodeid.split("::")[-1]  # one module per run: the case's name is enough
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _outcomes[key] = {"outcome": "skipped", "reason": reason}
    elif report.failed:
        # A failure in setup or teardown counts as much as one in the test itself.
        text = str(report.longrepr).strip().splitlines()
        _outcomes[key] = {
            "outcome": "failed",
            "when": report.when,
            "reason": text[-1] if text else "",
        }
    elif report.when == "call":
        _outcomes.setdefault(key, {"outcome": "passed"})
