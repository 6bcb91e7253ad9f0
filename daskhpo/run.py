"""One fit sequence for every search: :class:`SearchRun`.

A facade's ``fit`` is ``SearchRun(self).fit(X, y, resume=resume, params=params)``. The run owns the
sequence every search shares, once:

1. validate the common settings, the scoring and the data (before any cluster work);
2. ask the facade for its :class:`Setup` (``search._setup(FitInput)``): the strategy, the work to
   evaluate (:class:`~daskhpo.execution.base.CrossValWork` or :class:`~daskhpo.execution.base.StreamWork`),
   a fingerprint, the settings to store and the best rule;
3. open the store, check and replay it (``resume=True``) into the strategy;
4. get the client and an executor from the one factory, run the :class:`~daskhpo.tuner.Tuner` with a
   progress bar and the live dashboard, and turn Ctrl-C and errors into a stored status;
5. build ``cv_results_`` and ``best_*`` (:mod:`daskhpo.results`, shared with :func:`daskhpo.load`),
   refit the best candidate on the cluster, and free what the search held there.

This is scikit-learn's ``BaseSearchCV.fit`` / ``_run_search`` split: the facade says *what* to
evaluate, the run does the rest.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sklearn.metrics._scorer import _MultimetricScorer

from .cluster import get_client
from .exceptions import FitFailedError, InvalidSearchError
from .execution.base import Executor, make_executor
from .execution.tasks import UnitOutcome
from .execution.work import CrossValWork, StreamWork
from .progress import ProgressBar
from .results import (
    as_number,
    best_position,
    build_cv_results,
    check_failures,
    latest_evaluations,
    metric_names,
)
from .store import Store, open_store, result_from_json
from .strategies.base import Counting, Describing, Releasing, Result, SlotAware, Strategy
from .tuner import Tuner

__all__ = ["FitInput", "Setup", "SearchRun"]


@dataclass
class FitInput:
    """What the run has validated and routed before it asks the facade for its :class:`Setup`."""

    X: Any
    y: Any
    groups: Any
    fit_params: dict[str, Any]
    score_params: dict[str, Any]
    scorers: Any
    refit_metric: Any


@dataclass
class Setup:
    """What a facade answers: which strategy, which work, and how the best is picked.

    Attributes
    ----------
    strategy : Strategy
    work : CrossValWork or StreamWork
    fingerprint : str
        A token of the data, settings and candidates: a stored search is resumed only by a fit with
        the same fingerprint.
    settings : dict
        JSON-safe settings kept in the store (what :func:`daskhpo.load` and ``daskhpo status`` show).
    best_rule : {"all", "top", "last"}
        Which evaluations compete for ``best_*`` (see :mod:`daskhpo.results`).
    name_prefix : str
        The default name in the store is ``f"{name_prefix}-{fingerprint[:12]}"``.
    header : str
        Printed when ``verbose > 0`` (``{n_slots}`` is replaced by the number of worker threads).
    budget_param : str, optional
        The estimator parameter a budget sets (shown as a parameter in ``cv_results_``).
    history : bool
        Keep ``history_``: one row per evaluation with its wall time.
    """

    strategy: Strategy
    work: CrossValWork | StreamWork
    fingerprint: str
    settings: dict[str, Any]
    best_rule: str = "all"
    name_prefix: str = "search"
    header: str = ""
    budget_param: str | None = None
    history: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


ExecutorFactory = Callable[[CrossValWork | StreamWork], tuple[Executor, int]]


class SearchRun:
    """Runs one ``fit`` of ``search`` (see the module docstring).

    Parameters
    ----------
    search : a daskhpo search estimator
    executor_factory : callable, optional
        ``executor_factory(work) -> (executor, n_slots)`` replaces the cluster: no client is made and
        the work runs on the executor returned (the loop's own tests run it in this process).
    """

    def __init__(self, search: Any, *, executor_factory: ExecutorFactory | None = None) -> None:
        self.search = search
        self.executor_factory = executor_factory

    # -- the sequence ---------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, *, resume: bool, params: Mapping[str, Any]) -> Any:
        s = self.search
        s._check_settings()
        scorers, refit_metric = s._checked_scorers()
        X, y = s._checked_xy(X, y)
        routed = s._get_routed_params_for_fit(dict(params))
        setup: Setup = s._setup(
            FitInput(
                X,
                y,
                routed.splitter.split.get("groups"),
                dict(routed.estimator.fit),
                dict(routed.scorer.score),
                scorers,
                refit_metric,
            )
        )
        setup.settings.update(best_rule=setup.best_rule, budget_param=setup.budget_param)
        name = s.name or f"{setup.name_prefix}-{setup.fingerprint[:12]}"
        store = open_store(s.storage, name)
        s.store_ = store
        replayed = self._replay(store, setup, resume)
        client = None
        if self.executor_factory is None:
            client = get_client(s._cluster_target(), verbose=s.verbose)
            n_slots = s._slots(client)
            executor = make_executor(client, setup.work, n_slots)
        else:
            executor, n_slots = self.executor_factory(setup.work)
        if isinstance(setup.strategy, SlotAware):
            setup.strategy.set_slots(n_slots)
        try:
            rows = self._loop(setup, store, executor, replayed, n_slots, refit_metric, client)
            self._finish(setup, rows, executor, scorers, refit_metric)
        finally:
            executor.close()
        return s

    def _replay(self, store: Store, setup: Setup, resume: bool) -> list[Result]:
        """The stored evaluations of this very search, told to the fresh strategy (``resume``).

        Models are not stored: a trial promoted after a restart trains again from the start on the
        same blocks in the same order, which gives the model it would have had.
        """
        s = self.search
        if not store.persistent:
            if resume:
                raise InvalidSearchError(
                    "resume=True needs a stored search: pass storage='sqlite:///path.db' (and name=) "
                    "to the search that is to be resumed."
                )
            return []
        info = store.info()
        where = f"{s.storage} (search {store.name!r})"
        if info["n_trials"] and not resume:
            raise InvalidSearchError(
                f"{where} already holds {info['n_trials']} trials: pass resume=True to fit to "
                "continue it, or another name= to start a new search."
            )
        if not info["n_trials"]:
            return []
        if info["fingerprint"] != setup.fingerprint:
            hint = ""
            if getattr(s, "random_state", 0) is None:
                hint = " A randomized search draws new candidates each time unless random_state is set."
            raise InvalidSearchError(
                f"{where} was run on other data, settings or candidates than this fit: resume it "
                f"with the same ones, or pass another name= to start a new search.{hint}"
            )
        latest: dict[tuple[int, int], Result] = {}
        for record in store.records():
            tid = int(record["trial_id"])
            params = setup.strategy.restore(tid, record["params"])
            if params is not None:
                latest[(tid, int(record.get("rung", 0)))] = result_from_json(record, params)
        replayed = [latest[k] for k in sorted(latest)]
        for result in replayed:
            setup.strategy.tell(result)
        return replayed

    def _loop(
        self,
        setup: Setup,
        store: Store,
        executor: Executor,
        replayed: list[Result],
        n_slots: int,
        refit_metric: Any,
        client: Any,
    ) -> list[Result]:
        """Run the tuner until the strategy is done; every result is stored before it is told."""
        s, strategy = self.search, setup.strategy
        if s.verbose > 0 and setup.header:
            print(setup.header.format(n_slots=n_slots), file=sys.stderr)
        watch = s._watch(store, store.name, client)
        bar = ProgressBar(
            strategy.n_planned, enabled=s.verbose > 0, desc=type(s).__name__, rule=setup.best_rule
        )
        results = list(replayed)
        history = [_history_row(r, 0.0, None) for r in replayed] if setup.history else []
        for result in replayed:
            bar.update(result)
        t_start = time.perf_counter()

        def on_result(result: Result, outcomes: list[UnitOutcome]) -> None:
            results.append(result)
            bar.update(result)
            if setup.history:
                calls = executor.stats().get("partial_fit_calls")
                history.append(_history_row(result, time.perf_counter() - t_start, calls))
            if result.failed and s.error_score == "raise":
                _raise_failure(result, outcomes, len(store))
            if isinstance(strategy, Releasing):
                finished = strategy.finished_trials()
                if finished:
                    keep = bar.tracker.trial_id  # the best so far keeps its model for the refit
                    executor.release([t for t in finished if t != keep])

        metric = refit_metric if isinstance(refit_metric, str) else None
        store.start(setup.settings, setup.fingerprint)
        status = "interrupted"
        try:
            Tuner(strategy, executor, store, metric=metric, on_result=on_result).run()
            status = "finished"
        except KeyboardInterrupt:
            bar.close()
            where = (
                f"in {s.storage} as {store.name!r}: call fit(..., resume=True) with the same "
                "arguments to continue"
                if store.persistent
                else "in search.store_; pass storage='sqlite:///FILE.db' to be able to resume"
            )
            print(
                f"\ndaskhpo: search interrupted; in-flight work was cancelled. {len(store)} finished "
                f"evaluations are kept {where}.",
                file=sys.stderr,
            )
            raise
        except BaseException:
            status = "failed"
            raise
        finally:
            bar.close()
            store.set_status(status)
            if watch is not None:
                watch.finish(status)
        s.stats_ = {
            **executor.stats(),
            "worker_threads": n_slots,
            "trials_replayed": len(replayed),
            **(dict(strategy.stats) if isinstance(strategy, Counting) else {}),
        }
        if setup.history:
            s.history_ = history
        if isinstance(strategy, Describing):
            s.metadata_ = s._metadata(setup, results, executor.stats(), executor.n_splits)
        return latest_evaluations(results)

    def _finish(
        self,
        setup: Setup,
        rows: list[Result],
        executor: Executor,
        scorers: Any,
        refit_metric: Any,
    ) -> None:
        """``cv_results_``, ``best_*`` and the refit of the best candidate."""
        s = self.search
        n_splits = executor.n_splits
        check_failures(rows, n_splits, s.error_score, stacklevel=6)
        names = metric_names(rows)
        s.multimetric_ = is_multimetric(names, s.scoring)
        if callable(s.scoring) and s.multimetric_:
            try:
                s._check_refit_for_multimetric(names)
            except ValueError as exc:
                raise InvalidSearchError(str(exc)) from exc
            refit_metric = s.refit
        cv_results = build_cv_results(
            rows,
            n_splits,
            error_score=s.error_score,
            multimetric=s.multimetric_,
            return_train_score=bool(s.return_train_score),
            budget_param=setup.budget_param,
            format_results=s._format_results,
        )
        s._extend_results(cv_results, rows)
        s.cv_results_ = cv_results
        s.n_splits_ = n_splits
        s.scorer_ = scorers._scorers if isinstance(scorers, _MultimetricScorer) else scorers
        if s.refit or not s.multimetric_:
            s.best_index_ = self._best_index(setup, rows, cv_results, refit_metric)
            if not callable(s.refit):
                s.best_score_ = cv_results[f"mean_test_{refit_metric}"][s.best_index_]
            s.best_params_ = cv_results["params"][s.best_index_]
            if "trial_id" in cv_results:
                s.best_trial_id_ = int(cv_results["trial_id"][s.best_index_])
                s.best_budget_ = cv_results["budget"][s.best_index_]
        if s.refit:
            row = rows[s.best_index_]
            estimator, seconds = executor.refit(
                s.best_params_,
                trial_id=row.trial_id,
                budget=as_number(row.job.budget),
            )
            s.best_estimator_ = estimator
            s.refit_time_ = seconds
            if hasattr(estimator, "feature_names_in_"):
                s.feature_names_in_ = estimator.feature_names_in_
        s._fitted(setup)

    def _best_index(
        self, setup: Setup, rows: list[Result], cv_results: dict[str, Any], refit_metric: Any
    ) -> int:
        s = self.search
        if callable(s.refit) or setup.best_rule == "all":
            return int(s._select_best_index(s.refit, refit_metric, cv_results))
        scores = cv_results[f"mean_test_{refit_metric}"]
        best = best_position(rows, setup.best_rule, scores=scores)
        if best is None:  # nothing completed (some fits failed, all of them at the best budget)
            best = best_position(rows, "all", scores=scores) or 0
        return int(best)


def is_multimetric(names: list[str], scoring: Any) -> bool:
    """Whether a search scored several metrics (or one, given as a list or dict)."""
    return names != ["score"] or isinstance(scoring, (list, tuple, set, Mapping))


def _raise_failure(result: Result, outcomes: list[UnitOutcome], n_stored: int) -> None:
    fold, bad = next((k, o) for k, o in enumerate(outcomes) if o.error is not None)
    note = (
        f"daskhpo: raised while fitting candidate {dict(result.job.params)!r} on fold {fold} "
        f"(error_score='raise'). The {n_stored} finished trials are kept in search.store_; set "
        "error_score=np.nan to record failing candidates and go on."
    )
    if bad.exception is not None:
        bad.exception.add_note(note)
        raise bad.exception
    raise FitFailedError(f"{note}\n{bad.error}")


def _history_row(result: Result, elapsed: float, calls: int | None) -> dict[str, Any]:
    return {
        "trial_id": result.trial_id,
        "bracket": result.job.bracket,
        "rung": result.job.rung,
        "budget": result.job.budget,
        "score": result.score,
        "status": result.status.value,
        "elapsed": elapsed,
        "partial_fit_calls": calls,
    }
