"""Estimators for tests that must be importable by worker processes and subprocesses, and a
store helper."""

from __future__ import annotations

import json
import time

from sklearn.ensemble import RandomForestClassifier
from sklearn.tree import DecisionTreeClassifier


class SlowTree(DecisionTreeClassifier):
    """A decision tree whose fit also sleeps ``delay`` seconds: gives a test time to act mid-search."""

    def __init__(self, delay=0.2, max_depth=None, random_state=0):
        super().__init__(max_depth=max_depth, random_state=random_state)
        self.delay = delay

    def fit(self, X, y, sample_weight=None):
        time.sleep(self.delay)
        return super().fit(X, y, sample_weight=sample_weight)


class SlowForest(RandomForestClassifier):
    """A random forest whose fit also sleeps ``delay`` seconds (and can warm start, as a forest)."""

    def __init__(
        self, n_estimators=100, *, delay=0.2, max_features="sqrt", warm_start=False, random_state=0
    ):
        super().__init__(
            n_estimators=n_estimators,
            max_features=max_features,
            warm_start=warm_start,
            random_state=random_state,
        )
        self.delay = delay

    def fit(self, X, y, sample_weight=None):
        time.sleep(self.delay)
        return super().fit(X, y, sample_weight=sample_weight)


class Crasher(DecisionTreeClassifier):
    """A decision tree that takes its whole worker process down in fit when ``crash`` is true."""

    def __init__(self, crash=False, max_depth=None, random_state=0):
        super().__init__(max_depth=max_depth, random_state=random_state)
        self.crash = crash

    def fit(self, X, y, sample_weight=None):
        if self.crash:
            import os

            os._exit(13)
        return super().fit(X, y, sample_weight=sample_weight)


class Hanger(DecisionTreeClassifier):
    """A decision tree whose fit never returns (in practice) when ``hang`` is true."""

    def __init__(self, hang=False, max_depth=None, random_state=0):
        super().__init__(max_depth=max_depth, random_state=random_state)
        self.hang = hang

    def fit(self, X, y, sample_weight=None):
        if self.hang:
            time.sleep(1000)
        return super().fit(X, y, sample_weight=sample_weight)


def keep_first_trials(store, target, n: int) -> None:
    """Copy the first ``n`` trial rows of ``store`` (a SQLiteStore) into the search ``target`` of
    the same file, under the same fingerprint: that search looks like a run that crashed after ``n``
    trials (``target`` must have been opened, so that its row exists)."""
    for record in store.records()[:n]:
        store._conn.execute(
            "INSERT INTO trials (search, trial_id, status, score, data, created) VALUES (?,?,?,?,?,0)",
            (target, record["trial_id"], record["status"], record["score"], json.dumps(record)),
        )
    store._conn.execute(
        "UPDATE searches SET fingerprint=(SELECT fingerprint FROM searches WHERE name=?) "
        "WHERE name=?",
        (store.name, target),
    )
