"""The search loop (:class:`daskhpo.run.SearchRun`) on an in-process executor: no cluster.

``SearchRun(search, executor_factory=...)`` runs the real loop, store, strategy, results and refit,
with every fold fitted by the worker-side functions of :mod:`daskhpo.execution.tasks` in this process.
The searches are checked against scikit-learn's own on the same folds, and the loop's bookkeeping
(store before strategy, failures, resume, interrupts, ``stats_``) against what it promises.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pytest
import scipy.stats as st
from numpy.testing import assert_allclose, assert_array_equal
from sklearn import model_selection as skms
from sklearn.base import clone
from sklearn.datasets import load_iris, make_classification
from sklearn.exceptions import FitFailedWarning
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import HalvingRandomSearchCV, KFold, StratifiedKFold
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils.validation import check_is_fitted

from daskhpo import GridSearchCV, RandomizedSearchCV, SuccessiveHalvingSearchCV
from daskhpo.exceptions import InvalidSearchError
from daskhpo.execution.executor import _budget_into_params
from daskhpo.execution.tasks import SearchContext, UnitOutcome, refit, run_units
from daskhpo.execution.work import CrossValWork
from daskhpo.run import SearchRun
from daskhpo.store import MemoryStore, SQLiteStore
from daskhpo.strategies.base import Job
from daskhpo.strategies.candidates import GridStrategy

from .helpers import keep_first_trials

X_IRIS, Y_IRIS = load_iris(return_X_y=True)
X_BIN, Y_BIN = make_classification(
    n_samples=200, n_features=10, n_informative=4, n_redundant=2, random_state=0
)
TIME_KEYS = {"mean_fit_time", "std_fit_time", "mean_score_time", "std_score_time"}


@pytest.fixture(autouse=True)
def no_cluster(monkeypatch):
    """The loop must not make a client when it is given an executor factory."""

    def get_client(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("SearchRun asked for a client although executor_factory was given")

    monkeypatch.setattr("daskhpo.run.get_client", get_client)


# --- the in-process executor ----------------------------------------------------------------------


class InProcessExecutor:
    """The :class:`~daskhpo.execution.base.Executor` protocol for :class:`CrossValWork`, in this process.

    A job's units are its folds; ``wait`` fits and scores every queued job with
    :func:`~daskhpo.execution.tasks.run_units` and returns them all. ``on_wait(executor)`` is called at
    the start of each ``wait`` (a test raises from it to stop the search mid-way).
    """

    def __init__(
        self,
        work: CrossValWork,
        n_slots: int = 2,
        on_wait: Callable[[InProcessExecutor], None] | None = None,
    ) -> None:
        if not isinstance(work, CrossValWork):
            raise TypeError(f"InProcessExecutor runs CrossValWork only, not {type(work).__name__}")
        self.ctx = SearchContext.from_work(work)
        self.n_splits = len(work.folds)
        self.n_slots = n_slots
        self.job_params = _budget_into_params(work.budget_param)
        self.on_wait = on_wait
        self.queue: list[Job] = []
        self.units_run: list[
            tuple[int, int, int]
        ] = []  # (trial id, rung, fold) of each unit fitted
        self.jobs_returned: list[Job] = []
        self.n_waits = 0
        self.n_tasks = 0  # one run_units call per job
        self.released: list[int] = []
        self.refits: list[tuple[dict[str, Any], int | None, Any]] = []
        self.cancelled = 0
        self.closed = False

    def room(self) -> int:
        return max(0, self.n_slots - len(self.queue))

    def submit(self, jobs: list[Job]) -> None:
        self.queue.extend(jobs)

    def dispatch(self) -> None:
        pass

    @property
    def busy(self) -> bool:
        return bool(self.queue)

    def wait(self) -> list[tuple[Job, list[UnitOutcome]]]:
        self.n_waits += 1
        if self.on_wait is not None:
            self.on_wait(self)
        jobs, self.queue = self.queue, []
        done = []
        for job in jobs:
            params = self.job_params(job) if self.job_params else job.params
            units = [
                (f"{job.trial_id}-{job.rung}-{fold}", params, fold) for fold in range(self.n_splits)
            ]
            outcomes = run_units(self.ctx, units)
            self.n_tasks += 1
            self.units_run.extend((job.trial_id, job.rung, fold) for fold in range(self.n_splits))
            self.jobs_returned.append(job)
            done.append((job, outcomes))
        return done

    def release(self, trial_ids: Sequence[int]) -> None:
        self.released.extend(trial_ids)

    def refit(
        self,
        params: Mapping[str, Any],
        *,
        trial_id: int | None = None,
        budget: Any = None,
        callback_leaf: Any = None,
    ) -> tuple[Any, float]:
        # As DaskExecutor.refit: params already hold an estimator-parameter budget, and a budget
        # counted in samples refits on every sample.
        self.refits.append((dict(params), trial_id, budget))
        estimator, seconds = refit(self.ctx, dict(params), callback_leaf)
        return estimator, float(seconds)

    def stats(self) -> dict[str, Any]:
        # "tasks" as DaskExecutor counts them (the adaptive searches put it into metadata_).
        return {"tasks": self.n_tasks, "units_computed": len(self.units_run), "waits": self.n_waits}

    def cancel(self) -> None:
        self.cancelled += 1
        self.queue.clear()

    def close(self) -> None:
        self.cancel()
        self.closed = True


class Factory:
    """An ``executor_factory`` that keeps the executors it made (``.made``)."""

    def __init__(
        self, n_slots: int = 2, on_wait: Callable[[InProcessExecutor], None] | None = None
    ) -> None:
        self.n_slots = n_slots
        self.on_wait = on_wait
        self.made: list[InProcessExecutor] = []

    def __call__(self, work: Any) -> tuple[InProcessExecutor, int]:
        executor = InProcessExecutor(work, self.n_slots, self.on_wait)
        self.made.append(executor)
        return executor, self.n_slots

    @property
    def executor(self) -> InProcessExecutor:
        assert len(self.made) == 1, f"{len(self.made)} executors made"
        return self.made[0]


def run(search: Any, X: Any, y: Any, factory: Factory | None = None, **fit_kw: Any) -> Any:
    """``search.fit(X, y, **fit_kw)`` the way a facade runs it, on ``factory``'s executor."""
    resume = fit_kw.pop("resume", False)
    factory = factory if factory is not None else Factory()
    return SearchRun(search, executor_factory=factory).fit(X, y, resume=resume, params=fit_kw)


def assert_same_results(ours: Any, theirs: Any) -> None:
    """``cv_results_`` (but the times) and ``best_*`` of ``ours`` are scikit-learn's ``theirs``."""
    a, b = ours.cv_results_, theirs.cv_results_
    assert set(a) == set(b), f"only ours {set(a) - set(b)}, only sklearn {set(b) - set(a)}"
    assert a["params"] == b["params"]
    assert "mean_test_score" in b and "split0_test_score" in b  # never a vacuous comparison
    for key in b:
        if key in TIME_KEYS or key == "params":
            continue
        if key.startswith("param_"):
            assert list(a[key]) == list(b[key]), key
        elif key.startswith("rank_"):
            assert_array_equal(a[key], b[key], err_msg=key)
        else:
            assert_allclose(a[key], b[key], rtol=0, atol=1e-12, err_msg=key)
    assert ours.best_index_ == theirs.best_index_
    assert ours.best_params_ == theirs.best_params_
    assert_allclose(ours.best_score_, theirs.best_score_, rtol=0, atol=1e-12)
    assert ours.n_splits_ == theirs.n_splits_
    check_is_fitted(ours.best_estimator_)
    assert type(ours.best_estimator_) is type(theirs.best_estimator_)
    assert ours.best_estimator_.get_params() == theirs.best_estimator_.get_params()


def same_cv_results(a: Mapping[str, Any], b: Mapping[str, Any]) -> None:
    assert set(a) == set(b)
    assert a["params"] == b["params"]
    for key in a:
        if key in TIME_KEYS or key == "params":
            continue
        if key.startswith("param_"):
            assert list(a[key]) == list(b[key]), key
        else:
            assert_array_equal(a[key], b[key], err_msg=key)


# --- 1. grid and random searches equal scikit-learn's ---------------------------------------------

GRID_CASES = {
    "tree": (
        DecisionTreeClassifier(random_state=0),
        {"max_depth": [1, 2, 3, None], "criterion": ["gini", "entropy"]},
        X_IRIS,
        Y_IRIS,
        dict(cv=StratifiedKFold(4, shuffle=True, random_state=0)),
    ),
    "logreg_train_scores": (
        LogisticRegression(max_iter=2000),
        {"C": [0.01, 0.1, 1.0, 10.0]},
        X_BIN,
        Y_BIN,
        dict(cv=3, scoring="neg_log_loss", return_train_score=True),
    ),
}


@pytest.mark.parametrize("case", list(GRID_CASES))
def test_grid_search_equals_scikit_learn(case):
    estimator, grid, X, y, kwargs = GRID_CASES[case]
    factory = Factory(n_slots=3)
    ours = run(GridSearchCV(clone(estimator), grid, **kwargs), X, y, factory)
    theirs = skms.GridSearchCV(clone(estimator), grid, **kwargs).fit(X, y)
    assert_same_results(ours, theirs)
    assert_array_equal(ours.predict(X), theirs.predict(X))
    n_candidates = len(theirs.cv_results_["params"])
    assert len(factory.executor.units_run) == n_candidates * theirs.n_splits_
    assert len(ours.store_) == n_candidates
    assert ours.store_.info()["status"] == "finished"
    assert factory.executor.closed
    assert factory.executor.refits == [(ours.best_params_, ours.best_index_, None)]
    assert isinstance(ours.refit_time_, float) and ours.refit_time_ >= 0


RANDOM_CASES = {
    "tree": (
        DecisionTreeClassifier(random_state=0),
        {"max_depth": st.randint(1, 8), "min_samples_leaf": st.randint(1, 20)},
        None,
    ),
    "logreg": (LogisticRegression(max_iter=2000), {"C": st.loguniform(1e-3, 1e2)}, "neg_log_loss"),
}


@pytest.mark.parametrize("case", list(RANDOM_CASES))
def test_randomized_search_equals_scikit_learn(case):
    estimator, dists, scoring = RANDOM_CASES[case]
    kwargs = dict(n_iter=7, random_state=0, scoring=scoring, cv=3)
    factory = Factory(n_slots=2)
    ours = run(RandomizedSearchCV(clone(estimator), dists, **kwargs), X_BIN, Y_BIN, factory)
    theirs = skms.RandomizedSearchCV(clone(estimator), dists, **kwargs).fit(X_BIN, Y_BIN)
    assert_same_results(ours, theirs)
    assert_array_equal(ours.predict(X_BIN), theirs.predict(X_BIN))
    assert len(factory.executor.units_run) == 7 * 3


# --- 2. every result is stored before the strategy hears of it ----------------------------------


class RecordingStore(MemoryStore):
    """A MemoryStore that logs each append into ``events``."""

    def __init__(self, events: list[tuple[str, int]], name: str = "default") -> None:
        super().__init__(name)
        self.events = events

    def append(self, result: Any) -> None:
        self.events.append(("append", result.trial_id))
        super().append(result)


class RecordingGrid(GridSearchCV):
    """A grid search whose strategy checks that each told result is stored, and logs the ``tell``
    to the events of its ``storage`` (a :class:`RecordingStore`)."""

    def _make_strategy(self) -> GridStrategy:
        strategy = super()._make_strategy()
        told = strategy.tell
        events, store = self.storage.events, self.storage

        def tell(result: Any) -> None:
            assert any(r.trial_id == result.trial_id for r in store.results()), (
                f"trial {result.trial_id} told before it was stored"
            )
            events.append(("tell", result.trial_id))
            told(result)

        strategy.tell = tell  # type: ignore[method-assign]
        return strategy


def test_every_result_is_stored_before_it_is_told():
    events: list[tuple[str, int]] = []
    store = RecordingStore(events, name="ordered")
    grid = {"max_depth": [1, 2, 3, 4, 5]}
    search = RecordingGrid(DecisionTreeClassifier(random_state=0), grid, cv=3, storage=store)
    run(search, X_IRIS, Y_IRIS, Factory(n_slots=2))
    assert search.store_ is store
    # Each trial: appended, then told, before the next one is appended.
    assert events == [(kind, t) for t in range(5) for kind in ("append", "tell")]


# --- 3. failing candidates -------------------------------------------------------------------------

FAILING_GRID = {"max_depth": [2, -1, 3]}  # max_depth=-1 makes every fit raise


@pytest.mark.filterwarnings("ignore:One or more of the test scores are non-finite:UserWarning")
def test_error_score_nan_records_failing_candidates_and_warns():
    factory = Factory()
    search = GridSearchCV(DecisionTreeClassifier(random_state=0), FAILING_GRID, cv=3)
    with pytest.warns(FitFailedWarning, match="3 fits failed out of a total of 9"):
        run(search, X_IRIS, Y_IRIS, factory)
    with pytest.warns(FitFailedWarning):
        theirs = skms.GridSearchCV(DecisionTreeClassifier(random_state=0), FAILING_GRID, cv=3)
        theirs.fit(X_IRIS, Y_IRIS)
    assert_same_results(search, theirs)
    res = search.cv_results_
    assert np.isnan(res["mean_test_score"][1])
    assert np.isfinite(res["mean_test_score"][[0, 2]]).all()
    failed = [r for r in search.store_.results() if r.failed]
    assert [r.trial_id for r in failed] == [1]
    assert all("max_depth" in e for e in failed[0].errors)
    assert search.store_.info()["status"] == "finished"
    assert len(factory.executor.units_run) == 9


def test_error_score_raise_raises_the_fit_error_naming_the_candidate():
    factory = Factory(n_slots=1)  # one job per wait: the search stops right at the failing one
    search = GridSearchCV(
        DecisionTreeClassifier(random_state=0), FAILING_GRID, cv=3, error_score="raise"
    )
    with pytest.raises(ValueError, match="max_depth") as info:
        run(search, X_IRIS, Y_IRIS, factory)
    exc = info.value
    assert type(exc).__name__ == "InvalidParameterError"  # the fit's own exception
    notes = "\n".join(getattr(exc, "__notes__", []))
    assert "{'max_depth': -1}" in notes, notes
    assert "error_score='raise'" in notes and "fold 0" in notes
    # What finished stays in the store: trial 0, and the failing trial 1; trial 2 never ran.
    stored = search.store_.results()
    assert [(r.trial_id, r.failed) for r in stored] == [(0, False), (1, True)]
    assert search.store_.info()["status"] == "failed"
    assert {t for t, _, _ in factory.executor.units_run} == {0, 1}
    assert factory.executor.closed
    assert not hasattr(search, "cv_results_")


# --- 4. resume ------------------------------------------------------------------------------------

RESUME_GRID = {"max_depth": [1, 2, 3, 4, None], "criterion": ["gini", "entropy"]}  # 10 candidates


def _resume_search(path: Any, name: str) -> GridSearchCV:
    return GridSearchCV(
        DecisionTreeClassifier(random_state=0),
        RESUME_GRID,
        cv=StratifiedKFold(3, shuffle=True, random_state=0),
        storage=f"sqlite:///{path}",
        name=name,
    )


@pytest.mark.parametrize("k", [0, 4, 9])
def test_resume_computes_only_the_rest(tmp_path, k):
    path = tmp_path / "trials.db"
    full = run(_resume_search(path, "full"), X_IRIS, Y_IRIS, Factory())
    assert len(full.store_) == 10
    # A search that crashed after its first k trials (in the same file, with the same fingerprint).
    SQLiteStore(path, "partial").close()
    keep_first_trials(full.store_, "partial", k)
    factory = Factory()
    again = run(_resume_search(path, "partial"), X_IRIS, Y_IRIS, factory, resume=True)
    assert {t for t, _, _ in factory.executor.units_run} == set(range(k, 10))
    assert len(factory.executor.units_run) == (10 - k) * 3
    assert again.stats_["trials_replayed"] == k
    same_cv_results(again.cv_results_, full.cv_results_)
    assert again.best_params_ == full.best_params_ and again.best_score_ == full.best_score_
    assert_array_equal(again.predict(X_IRIS), full.predict(X_IRIS))
    info = again.store_.info()
    assert info["status"] == "finished" and info["n_trials"] == 10


def test_resume_of_a_finished_search_computes_nothing(tmp_path):
    path = tmp_path / "trials.db"
    full = run(_resume_search(path, "s"), X_IRIS, Y_IRIS, Factory())
    factory = Factory()
    again = run(_resume_search(path, "s"), X_IRIS, Y_IRIS, factory, resume=True)
    assert factory.executor.units_run == []
    assert again.stats_["trials_replayed"] == 10
    same_cv_results(again.cv_results_, full.cv_results_)


def test_resume_without_storage_names_storage():
    factory = Factory()
    search = GridSearchCV(DecisionTreeClassifier(random_state=0), {"max_depth": [1, 2]}, cv=3)
    with pytest.raises(InvalidSearchError, match="storage="):
        run(search, X_IRIS, Y_IRIS, factory, resume=True)
    assert factory.made == []  # refused before any executor was made


def test_fit_of_a_stored_search_without_resume_is_refused(tmp_path):
    path = tmp_path / "trials.db"
    run(_resume_search(path, "s"), X_IRIS, Y_IRIS, Factory())
    factory = Factory()
    with pytest.raises(InvalidSearchError, match="resume=True"):
        run(_resume_search(path, "s"), X_IRIS, Y_IRIS, factory)
    assert factory.made == []


# --- 5. successive halving with n_samples equals scikit-learn's --------------------------------------

# The settings of tests/test_adaptive.py::test_successive_halving_equals_scikit_learn[n_samples].
X_SH, Y_SH = make_classification(n_samples=600, n_features=8, n_informative=5, random_state=0)
SH_SPACE = {"C": st.loguniform(1e-3, 1e2)}


def _halving_rows(search: Any) -> dict[tuple[str, int], float]:
    res = search.cv_results_
    return {
        (repr(sorted(p.items())), int(i)): float(s)
        for p, i, s in zip(res["params"], res["iter"], res["mean_test_score"], strict=True)
    }


def test_successive_halving_n_samples_equals_scikit_learn():
    cv = KFold(3, shuffle=True, random_state=0)
    factory = Factory(n_slots=4)
    ours = SuccessiveHalvingSearchCV(
        LogisticRegression(),
        SH_SPACE,
        n_candidates=12,
        resource="n_samples",
        min_budget=30,
        max_budget=540,
        reduction_factor=3,
        cv=cv,
        scoring="neg_log_loss",
        random_state=0,
        best_from="top",  # scikit-learn's rule
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run(ours, X_SH, Y_SH, factory)
        theirs = HalvingRandomSearchCV(
            LogisticRegression(),
            SH_SPACE,
            n_candidates=12,
            resource="n_samples",
            min_resources=30,
            max_resources=540,
            factor=3,
            cv=cv,
            scoring="neg_log_loss",
            random_state=0,
        ).fit(X_SH, Y_SH)
    assert ours.n_resources_ == theirs.n_resources_ == [30, 90, 270]
    assert ours.n_candidates_ == theirs.n_candidates_ == [12, 4, 2]
    a, b = _halving_rows(ours), _halving_rows(theirs)
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == pytest.approx(b[key], abs=1e-12), key
    assert ours.best_params_ == theirs.best_params_
    assert ours.best_score_ == pytest.approx(theirs.best_score_, abs=1e-12)
    # Every unit was fitted at its rung's budget, and the refit used every sample, as scikit-learn's.
    executor = factory.executor
    assert len(executor.units_run) == sum(theirs.n_candidates_) * 3
    assert_allclose(ours.best_estimator_.coef_, theirs.best_estimator_.coef_, rtol=0, atol=1e-10)
    assert ours.stats_["worker_threads"] == 4 and ours.stats_["trials_replayed"] == 0


# --- 6. interrupts and errors from the executor ---------------------------------------------------


def _stop_at_wait(n: int, exc: BaseException) -> Callable[[InProcessExecutor], None]:
    def on_wait(executor: InProcessExecutor) -> None:
        if executor.n_waits == n:
            raise exc

    return on_wait


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_keyboard_interrupt_in_wait_leaves_status_interrupted(tmp_path, capsys, storage):
    where = None if storage == "memory" else f"sqlite:///{tmp_path / 'trials.db'}"
    factory = Factory(n_slots=2, on_wait=_stop_at_wait(3, KeyboardInterrupt()))
    search = GridSearchCV(
        DecisionTreeClassifier(random_state=0),
        {"max_depth": [1, 2, 3, 4, 5, 6]},
        cv=3,
        storage=where,
        name="stopped",
    )
    with pytest.raises(KeyboardInterrupt):
        run(search, X_IRIS, Y_IRIS, factory)
    assert search.store_.info()["status"] == "interrupted"
    assert [r.trial_id for r in search.store_.results()] == [0, 1, 2, 3]  # two waits of 2 jobs
    assert factory.executor.closed and factory.executor.cancelled >= 1
    assert "search interrupted" in capsys.readouterr().err
    if storage == "sqlite":
        # And it can be resumed: only the two trials left are fitted.
        again_factory = Factory()
        again = GridSearchCV(
            DecisionTreeClassifier(random_state=0),
            {"max_depth": [1, 2, 3, 4, 5, 6]},
            cv=3,
            storage=where,
            name="stopped",
        )
        run(again, X_IRIS, Y_IRIS, again_factory, resume=True)
        assert {t for t, _, _ in again_factory.executor.units_run} == {4, 5}
        assert again.store_.info()["status"] == "finished"


def test_other_exception_in_wait_leaves_status_failed():
    class Boom(RuntimeError):
        pass

    factory = Factory(n_slots=2, on_wait=_stop_at_wait(2, Boom("executor broke")))
    search = GridSearchCV(DecisionTreeClassifier(random_state=0), {"max_depth": [1, 2, 3, 4]}, cv=3)
    with pytest.raises(Boom, match="executor broke"):
        run(search, X_IRIS, Y_IRIS, factory)
    assert search.store_.info()["status"] == "failed"
    assert [r.trial_id for r in search.store_.results()] == [0, 1]
    assert factory.executor.closed


# --- 7. stats_ ------------------------------------------------------------------------------------


def test_stats_have_worker_threads_and_trials_replayed():
    factory = Factory(n_slots=3)
    search = run(
        GridSearchCV(DecisionTreeClassifier(random_state=0), {"max_depth": [1, 2, 3]}, cv=3),
        X_IRIS,
        Y_IRIS,
        factory,
    )
    stats = search.stats_
    assert stats["worker_threads"] == 3
    assert stats["trials_replayed"] == 0
    assert stats["units_computed"] == 9  # the executor's own stats are merged in
