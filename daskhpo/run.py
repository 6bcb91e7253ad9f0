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

import inspect
import json
import sys
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sklearn.metrics._scorer import _MultimetricScorer

from .callbacks import SearchCallbacks, management
from .cluster import get_client
from .cluster.tuning import tune_workers
from .exceptions import FitFailedError, InvalidSearchError
from .execution.base import Executor, make_executor
from .execution.executor import UnitKeys, prime_cache, unit_context_of
from .execution.tasks import UnitOutcome
from .execution.work import ClusterFitWork, CrossValWork, StreamWork
from .progress import ProgressBar
from .resultlog import ResultLog
from .results import (
    as_number,
    best_position,
    build_cv_results,
    check_failures,
    latest_evaluations,
    metric_names,
)
from .reuse import ReusePolicy
from .store import Claiming, Store, StoreWriteError, UnitCache, open_store, result_from_json
from .strategies.base import (
    Counting,
    Describing,
    Enumerated,
    Job,
    Releasing,
    Result,
    SlotAware,
    Strategy,
    WarmStarting,
)
from .strategies.candidates import CandidateList
from .tuner import Tuner, result_from_outcomes

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
    work: CrossValWork | StreamWork | ClusterFitWork
    fingerprint: str
    settings: dict[str, Any]
    best_rule: str = "all"
    name_prefix: str = "search"
    header: str = ""
    budget_param: str | None = None
    history: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


ExecutorFactory = Callable[[CrossValWork | StreamWork | ClusterFitWork], tuple[Executor, int]]


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
    def fit(
        self,
        X: Any,
        y: Any,
        *,
        resume: bool,
        params: Mapping[str, Any],
        previous: Store | None = None,
    ) -> Any:
        """Run the search. ``previous``: the store of the fit this one extends (``search.extend``):
        its trials are carried over instead of computed again."""
        self.previous = previous
        with management(self.search):  # scikit-learn callbacks' teardown, however fit ends
            return self._fit(X, y, resume=resume, params=params)

    previous: Store | None = None

    def _fit(self, X: Any, y: Any, *, resume: bool, params: Mapping[str, Any]) -> Any:
        s = self.search
        s._check_settings()
        scorers, refit_metric = s._checked_scorers()
        X, y = s._checked_xy(X, y)
        routed = s._get_routed_params_for_fit(dict(params))
        data = FitInput(
            X,
            y,
            routed.splitter.split.get("groups"),
            dict(routed.estimator.fit),
            dict(routed.scorer.score),
            scorers,
            refit_metric,
        )
        if runs_own_search(s):
            return PushedSearch(self, data).fit(resume)
        setup: Setup = s._setup(data)
        self.callbacks = SearchCallbacks.start(s, X, y, data.fit_params)
        if self.callbacks is not None and self.callbacks.active:
            n_units = None
            planned = setup.strategy.n_planned
            if isinstance(setup.strategy, Enumerated) and isinstance(setup.work, CrossValWork):
                n_units = int(planned) * len(setup.work.folds) if planned is not None else None
            self._search_ctx = self.callbacks.open_search(n_units)
        setup.settings.update(best_rule=setup.best_rule, budget_param=setup.budget_param)
        store = self._open_store(setup.name_prefix, setup.fingerprint)
        claim(store)  # no other process runs this search while this one does
        try:
            carried: list[Result] = []
            self._warm_start(store, setup, data.refit_metric)
            candidates = (
                setup.strategy.candidates if isinstance(setup.strategy, Enumerated) else None
            )
            if self.previous is not None:
                carried = self._carry_over(self.previous, store, setup)
                # A candidate list gets them through the unit cache; another strategy was told them.
                replayed = [] if candidates is not None else carried
            else:
                replayed = self._replay(store, setup, resume)
            self._attach_reuse(setup.work, store, carried, candidates, setup.fingerprint)
            executor, n_slots, client = self._executor(setup.work, strategy=setup.strategy)
            try:
                rows = self._loop(setup, store, executor, replayed, n_slots, refit_metric, client)
                self._finish(setup, rows, executor, scorers, refit_metric)
            finally:
                executor.close()
        finally:
            release(store)
        if self.callbacks is not None:
            self.callbacks.finish()
        return s

    callbacks: SearchCallbacks | None = None
    _search_ctx: Any = None

    def _open_store(self, name_prefix: str, fingerprint: str) -> Store:
        s = self.search
        name = getattr(s, "name", None) or f"{name_prefix}-{fingerprint[:12]}"
        store = open_store(getattr(s, "storage", None), name)
        s.store_ = store
        return store

    def _executor(
        self,
        work: CrossValWork | StreamWork | ClusterFitWork,
        *,
        strategy: Any = None,
        client: Any = None,
    ) -> tuple[Executor, int, Any]:
        """An executor for ``work`` (the client is made once and reused when given)."""
        s = self.search
        if (
            self.callbacks is not None
            and self._search_ctx is not None
            and isinstance(work, CrossValWork)
        ):
            work.callback_parent = self.callbacks.worker_parent(self._search_ctx, work.estimator)
        if self.executor_factory is None:
            if client is None:
                client = get_client(s._cluster_target(), verbose=s.verbose)
                tune_workers(client)  # fast short fits on clusters the user started, once each
            n_slots = s._slots(client)
            executor = make_executor(client, work, n_slots)
        else:
            executor, n_slots = self.executor_factory(work)
        if isinstance(strategy, SlotAware):
            strategy.set_slots(n_slots)
        return executor, n_slots, client

    def _attach_reuse(
        self,
        work: Any,
        store: Store,
        carried: Sequence[Result] = (),
        candidates: Sequence[Mapping[str, Any]] | None = None,
        identity: str | None = None,
    ) -> None:
        """Let the executor take units from the store's unit cache (and from ``carried``: the trials
        of the fit being extended, whose folds are this fit's own)."""
        if not isinstance(work, CrossValWork) or work.content is None:
            return
        s = self.search
        # Rows are tagged with the search's fingerprint, not the store's name: one MemoryStore may
        # serve several searches, and a warm start must tell them apart.
        policy = ReusePolicy(
            getattr(s, "reuse", True), getattr(s, "reuse_failures", False), search=identity
        )
        cache: Any = _unit_cache(store)
        if carried and candidates:
            cache = prime_cache(carried, candidates, work, policy, cache)
        if cache is not None:
            work.reuse = (cache, policy)

    def _warm_start(self, store: Store, setup: Setup, refit_metric: Any) -> None:
        """Tell a warm-starting strategy what other searches in the store evaluated on this data
        with these folds, estimator, scoring and versions (``warm_start=True``)."""
        s = self.search
        if not getattr(s, "warm_start", False) or not isinstance(setup.strategy, WarmStarting):
            return
        context = unit_context_of(setup.work)
        cache = _unit_cache(store)
        if context is None or cache is None or not isinstance(setup.work, CrossValWork):
            raise InvalidSearchError(
                f"{type(s).__name__}(warm_start=True) learns from earlier searches in storage=: "
                "pass storage='sqlite:///runs.db' (or a MemoryStore shared with those searches)."
            )
        n_folds = len(setup.work.folds)
        metric = refit_metric if isinstance(refit_metric, str) else None
        by_params: dict[str, dict[int, dict[str, Any]]] = {}
        for row in cache.units_for_context(context):
            if row.get("search") == setup.fingerprint or row["status"] != "ok":
                continue
            data = row["data"]
            text = json.dumps(data["params"], sort_keys=True)
            by_params.setdefault(text, {})[int(data["fold"])] = row
        results = []
        for folds in by_params.values():
            if len(folds) != n_folds:
                continue  # not evaluated on every fold
            outcomes = [UnitKeys.outcome("", folds[f]) for f in range(n_folds)]
            params = folds[0]["data"]["params"]
            results.append(result_from_outcomes(Job(-1, params), outcomes, metric))
        setup.strategy.warm(results)

    def _carry_over(self, previous: Store, store: Store, setup: Setup) -> list[Result]:
        """The trials of the fit that ``search.extend`` continues (see :meth:`fit`).

        Refused when the data, folds or settings differ from that fit's: its scores would not be
        this search's. A candidate list (grid, random) gets them through the unit cache, by their
        parameters; another strategy (Bayes) is told them, under their own trial ids.
        """
        s = self.search
        info = previous.info()
        before = info["spec"].get("unit_context")
        now = unit_context_of(setup.work)
        if before is None or now is None or before != now:
            raise InvalidSearchError(
                f"{type(s).__name__}.extend: the data, folds, fit parameters or settings differ "
                "from those of the fit being extended (pass the same X, y and fit parameters), or "
                "the fit was made by an older daskhpo; call fit() to search from scratch."
            )
        records = previous.records()
        reset = getattr(store, "reset", None)
        if len(store) and reset is not None:  # extended under its own name: it is rewritten
            reset()
        if isinstance(setup.strategy, Enumerated):
            return [result_from_json(record) for record in records]
        carried = []
        for record in records:
            params = setup.strategy.restore(int(record["trial_id"]), record["params"])
            if params is not None:
                result = result_from_json(record, params)
                setup.strategy.tell(result)
                store.append(result)
                carried.append(result)
        return carried

    def _replay(self, store: Store, setup: Setup, resume: bool) -> list[Result]:
        """The stored evaluations of this very search, told to the fresh strategy (``resume``).

        Models are not stored: a trial promoted after a restart trains again from the start on the
        same blocks in the same order, which gives the model it would have had.
        """
        latest: dict[tuple[int, int], Result] = {}
        for record in self._stored_records(store, setup.fingerprint, resume):
            tid = int(record["trial_id"])
            params = setup.strategy.restore(tid, record["params"])
            if params is not None:
                latest[(tid, int(record.get("rung", 0)))] = result_from_json(record, params)
        replayed = [latest[k] for k in sorted(latest)]
        for result in replayed:
            setup.strategy.tell(result)
        return replayed

    def _stored_records(self, store: Store, fingerprint: str, resume: bool) -> list[dict[str, Any]]:
        """The stored trials a fit may resume from (none without ``resume``). Refuses ``resume``
        without a persistent store, a stored name without ``resume``, and another search's trials."""
        s = self.search
        if not store.persistent:
            if resume:
                raise InvalidSearchError(
                    "resume=True needs a stored search: pass storage='sqlite:///path.db' (and name=) "
                    "to the search that is to be resumed."
                )
            return []
        info = store.info()
        where = f"{getattr(s, 'storage', None)} (search {store.name!r})"
        reset = getattr(store, "reset", None)
        finished = info.get("status") == "finished"
        if (
            info["n_trials"]
            and not resume
            and getattr(s, "name", None) is None
            and reset
            and finished
        ):
            # The same search again under its default name (a notebook cell run twice): it runs
            # again from the start, and every fit it made before comes back from the unit cache.
            reset()
            return []
        if info["n_trials"] and not resume:
            raise InvalidSearchError(
                f"{where} already holds {info['n_trials']} trials: pass resume=True to fit to "
                "continue it, or another name= to start a new search."
            )
        if not info["n_trials"]:
            return []
        if info["fingerprint"] != fingerprint:
            hint = ""
            if getattr(s, "random_state", 0) is None:
                hint = " A randomized search draws new candidates each time unless random_state is set."
            raise InvalidSearchError(
                f"{where} was run on other data, settings or candidates than this fit: resume it "
                f"with the same ones, or pass another name= to start a new search.{hint}"
            )
        return store.records()

    def _loop(
        self,
        setup: Setup,
        store: Store,
        executor: Executor,
        replayed: list[Result],
        n_slots: int,
        refit_metric: Any,
        client: Any,
    ) -> Sequence[Result]:
        """Run the tuner until the strategy is done; every result is stored before it is told."""
        s, strategy = self.search, setup.strategy
        if s.verbose > 0 and setup.header:
            print(setup.header.format(n_slots=n_slots), file=sys.stderr)
        watch = s._watch(store, store.name, client)
        bar = ProgressBar(
            strategy.n_planned, enabled=s.verbose > 0, desc=type(s).__name__, rule=setup.best_rule
        )
        results = ResultLog(replayed)  # in columns: a Result object per trial costs ~1 KB
        history = [_history_row(r, 0.0, None) for r in replayed] if setup.history else []
        for result in replayed:
            bar.update(result)
        t_start = time.perf_counter()

        folds = setup.work.folds if isinstance(setup.work, CrossValWork) else None
        callbacks, search_ctx = self.callbacks, self._search_ctx
        on_submit = None
        if callbacks is not None and callbacks.active and search_ctx is not None:

            def on_submit(jobs: list[Job]) -> None:
                for job in jobs:
                    callbacks.begin(search_ctx, job_key(job), folds, executor.n_splits)

        # Checked once: a runtime protocol check costs about 50 us, too much once per result.
        releasing = strategy if isinstance(strategy, Releasing) else None

        def on_result(result: Result, outcomes: list[UnitOutcome]) -> None:
            results.append(result)
            if callbacks is not None:
                callbacks.end(job_key(result.job))
            position = result.trial_id - getattr(strategy, "first_id", 0)
            report(s, result, outcomes, executor.n_splits, (position, strategy.n_planned))
            bar.update(result)
            if setup.history:
                calls = executor.stats().get("partial_fit_calls")
                history.append(_history_row(result, time.perf_counter() - t_start, calls))
            if result.failed and s.error_score == "raise":
                _raise_failure(result, outcomes, len(store))
            if releasing is not None:
                finished = releasing.finished_trials()
                if finished:
                    keep = bar.tracker.trial_id  # the best so far keeps its model for the refit
                    executor.release([t for t in finished if t != keep])

        metric = refit_metric if isinstance(refit_metric, str) else None
        context = unit_context_of(setup.work)
        if context is not None:
            setup.settings["unit_context"] = context
        if not self.started:
            store.start(setup.settings, setup.fingerprint)
        status = "interrupted"
        try:
            Tuner(
                strategy, executor, store, metric=metric, on_result=on_result, on_submit=on_submit
            ).run()
            if callbacks is not None and self._search_ctx is not None and self.closes_search:
                callbacks.close_search()
            status = "finished"
        except KeyboardInterrupt:
            bar.close()
            where = (
                f"in {getattr(s, 'storage', None)} as {store.name!r}: call fit(..., resume=True) with the same "
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
        except BaseException as exc:
            status = "failed"
            if store.persistent and not isinstance(exc, InvalidSearchError):
                exc.add_note(
                    f"daskhpo: the evaluations finished before this are kept in "
                    f"{getattr(s, 'storage', None)} as {store.name!r}; fit(..., resume=True) with "
                    "the same arguments continues the search without computing them again."
                )
            raise
        finally:
            bar.close()
            # A pushed search runs this loop once per evaluate_candidates call: it stays "running"
            # until the whole search ends (PushedSearch sets the final status).
            between_calls = self.started and status == "finished"
            if not between_calls:
                set_final_status(store, status)
            if watch is not None:
                watch.finish("running" if between_calls else status)
        s.stats_ = {
            **executor.stats(),
            "worker_threads": n_slots,
            "trials_replayed": len(replayed),
            **(dict(strategy.stats) if isinstance(strategy, Counting) else {}),
        }
        if setup.history:
            s.history_ = history
        if isinstance(strategy, Describing):
            s.metadata_ = s._metadata(setup, results.view(), executor.stats(), executor.n_splits)
        return latest_evaluations(results.view())

    started = False  # the store's search was started (a pushed search starts it once)
    closes_search = True  # the loop ends the callbacks' "search" task (not so for a pushed search)

    def _finish(
        self,
        setup: Setup,
        rows: Sequence[Result],
        executor: Executor,
        scorers: Any,
        refit_metric: Any,
        more_results: Mapping[str, Sequence[Any]] | None = None,
        checked: bool = False,
    ) -> None:
        """``cv_results_``, ``best_*`` and the refit of the best candidate."""
        s = self.search
        n_splits = executor.n_splits
        if not checked:
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
            format_results=_with_more(s._format_results, more_results),
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
            leaf = None
            if self.callbacks is not None:
                leaf = self.callbacks.begin_refit()
            estimator, seconds = executor.refit(
                s.best_params_,
                trial_id=row.trial_id,
                budget=as_number(row.job.budget),
                callback_leaf=leaf,
            )
            if self.callbacks is not None:
                self.callbacks.end_refit()
            s.best_estimator_ = estimator
            s.refit_time_ = seconds
            if hasattr(estimator, "feature_names_in_"):
                s.feature_names_in_ = estimator.feature_names_in_
        s._fitted(setup)

    def _best_index(
        self, setup: Setup, rows: Sequence[Result], cv_results: dict[str, Any], refit_metric: Any
    ) -> int:
        s = self.search
        if callable(s.refit) or (setup.best_rule == "all" and setup.budget_param is None):
            return int(s._select_best_index(s.refit, refit_metric, cv_results))
        scores = cv_results[f"mean_test_{refit_metric}"]
        best = best_position(rows, setup.best_rule, scores=scores)
        if best is None:  # nothing completed (some fits failed, all of them at the best budget)
            best = best_position(rows, "all", scores=scores) or 0
        return int(best)


def _unit_cache(store: Store) -> UnitCache | None:
    """The store's unit cache, or None for a store that keeps none (``storage=None``)."""
    if isinstance(store, UnitCache) and getattr(store, "keeps_units", True):
        return store
    return None


def set_final_status(store: Store, status: str) -> None:
    """Record how a search ended. When the store cannot be written and the search failed anyway,
    the error already on its way says more than this one would."""
    try:
        store.set_status(status)
    except StoreWriteError:
        if status == "finished":
            raise


def claim(store: Store) -> None:
    if isinstance(store, Claiming):
        store.claim()


def release(store: Store) -> None:
    if isinstance(store, Claiming):
        store.release()


def runs_own_search(search: Any) -> bool:
    """Whether ``search`` gives candidates through scikit-learn's ``_run_search(evaluate_candidates)``
    (a subclass that overrides it, or scikit-learn's halving searches) rather than a strategy."""
    from sklearn.model_selection._search import BaseSearchCV

    return type(search)._run_search is not BaseSearchCV._run_search


def job_key(job: Job) -> tuple[Any, ...]:
    return (job.trial_id, job.bracket, job.rung)


def report(
    search: Any,
    result: Result,
    outcomes: Sequence[UnitOutcome],
    n_splits: int,
    progress: tuple[int, Any],
) -> None:
    """What a finished job shows the user: the warnings its fits raised on the workers, and with
    ``verbose > 1`` one line per fold as scikit-learn prints them (scores from ``verbose > 2``).
    ``progress``: the job's position among the candidates and how many are planned."""
    for outcome in outcomes:
        for category, message in outcome.warnings or ():
            warnings.warn(message, category, stacklevel=2)
    if search.verbose <= 1:
        return
    params = dict(result.job.params)
    text = ", ".join(f"{k}={v}" for k, v in sorted(params.items()))
    for fold, outcome in enumerate(outcomes):
        where = ""
        if search.verbose > 2:
            where = f" {fold + 1}/{n_splits}"
            position, n_planned = progress
            if isinstance(n_planned, int) and n_planned:
                where += f"; {position + 1}/{n_planned}"
        msg = text + (";" if text else "")
        if search.verbose > 2 and outcome.error is None:
            msg += _score_text(outcome, bool(search.return_train_score))
        seconds = outcome.fit_time + outcome.score_time
        msg += (
            f" total time={seconds:.1f}s" if seconds < 60 else f" total time={seconds / 60:.1f}min"
        )
        head = f"[CV{where}] END "
        print(head + "." * max(0, 80 - len(head) - len(msg)) + msg, flush=True)


def _score_text(outcome: UnitOutcome, with_train: bool) -> str:
    test, train = outcome.test_scores, outcome.train_scores
    if isinstance(test, Mapping):
        parts = []
        for name in sorted(test):
            inner = (
                f"train={train[name]:.3f}, " if with_train and isinstance(train, Mapping) else ""
            )
            parts.append(f" {name}: ({inner}test={test[name]:.3f})")
        return "".join(parts)
    if with_train and train is not None:
        return f", score=(train={train:.3f}, test={test:.3f})"
    return f", score={test:.3f}"


def _with_more(
    format_results: Callable[..., dict[str, Any]], more: Mapping[str, Sequence[Any]] | None
) -> Callable[..., dict[str, Any]]:
    """The search's ``_format_results`` with the columns a custom ``_run_search`` added."""
    if not more:
        return format_results
    return lambda c, n, o: format_results(c, n, o, {k: list(v) for k, v in more.items()})


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


class PushedSearch:
    """A search that hands out its own candidates through scikit-learn's protocol,
    ``_run_search(evaluate_candidates)``: a subclass that overrides ``_run_search`` (as scikit-learn's
    users subclass ``BaseSearchCV``), or scikit-learn's halving searches run on the cluster.

    Each ``evaluate_candidates(candidates, cv=None, more_results=None, callback_ctx=None)`` call runs
    the :class:`~daskhpo.tuner.Tuner` over those candidates on the folds of ``cv`` (the search's own by
    default) and returns ``cv_results_`` of every candidate evaluated so far, as scikit-learn's does.
    Trial ids go on from call to call, every result is stored, and ``resume=True`` reuses the stored
    trials whose ids and parameters match. The data goes to the cluster once per distinct set of folds.
    """

    def __init__(self, run: SearchRun, data: FitInput) -> None:
        self.run = run
        self.data = data
        self.rows: list[Result] = []
        self.more: dict[str, list[Any]] = defaultdict(list)
        self.executor: Executor | None = None
        self.folds_token: str | None = None
        self.client: Any = None
        self.stored: dict[int, dict[str, Any]] = {}
        self.n_stored_reused = 0
        self.next_id = 0
        self.closed_stats: list[Mapping[str, Any]] = []

    def fit(self, resume: bool) -> Any:
        from dask.base import tokenize
        from sklearn.base import is_classifier
        from sklearn.model_selection import check_cv

        run, s, data = self.run, self.run.search, self.data
        X, y, groups = s._labels(data)  # dask y and groups to the client once, before any split
        split = {} if groups is None else {"groups": groups}
        s._checked_cv_orig = check_cv(s.cv, y, classifier=is_classifier(s.estimator))
        check_inputs = getattr(s, "_check_input_parameters", None)  # scikit-learn >= 1.4 has it
        if check_inputs is not None:
            check_inputs(X=X, y=y, split_params=split)
        s.n_splits_ = s._checked_cv_orig.get_n_splits(X, y, **split)
        takes_ctx = "callback_ctx" in inspect.signature(s._run_search).parameters
        run.callbacks = SearchCallbacks.start(s, X, y, data.fit_params, always=takes_ctx)
        run.closes_search = False
        # What the stored trials depend on: the data, every setting (a halving factor changes the
        # resources of the same candidates) and the fit and score parameters.
        settings_now = {
            k: v
            for k, v in s.get_params(deep=False).items()
            if k
            not in (
                "client",
                "cluster",
                "storage",
                "name",
                "verbose",
                "n_jobs",
                "pre_dispatch",
                "reuse",
                "reuse_failures",
            )
        }
        self.fingerprint = tokenize(
            s._data_token(X),
            y,
            groups,
            settings_now,
            data.fit_params,
            data.score_params,
            type(s).__name__,
        )
        store = run._open_store(type(s.estimator).__name__, self.fingerprint)
        self.store = store
        claim(store)
        try:
            return self._run(store, resume, takes_ctx)
        finally:
            release(store)

    def _run(self, store: Store, resume: bool, takes_ctx: bool) -> Any:
        run, s, data = self.run, self.run.search, self.data
        self.stored = self._stored(store, resume)
        settings = s._spec(None, s.n_splits_)
        settings.update(best_rule="all", budget_param=None)
        store.start(settings, self.fingerprint)
        run.started = True
        status = "failed"
        try:
            if takes_ctx:
                root = run.callbacks.root if run.callbacks is not None else None
                s._run_search(self.evaluate, callback_ctx=root)
            else:
                s._run_search(self.evaluate)
            if self.executor is None:
                raise InvalidSearchError(
                    f"{type(s).__name__}._run_search never called evaluate_candidates: No fits "
                    "were performed. Was the CV iterator empty? Were there no candidates?"
                )
            setup = Setup(
                strategy=CandidateList([dict(r.job.params) for r in self.rows]),
                work=self.work,
                fingerprint=self.fingerprint,
                settings=settings,
            )
            s.stats_ = {
                **self._stats(),
                "worker_threads": self.n_slots,
                "trials_replayed": self.n_stored_reused,
            }
            run._finish(
                setup,
                self.rows,
                self.executor,
                data.scorers,
                data.refit_metric,
                more_results=self.more,
                checked=True,
            )
            status = "finished"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            try:
                if self.executor is not None:
                    self.executor.close()
            finally:
                set_final_status(store, status)
        if run.callbacks is not None:
            run.callbacks.finish()
        return s

    def _stats(self) -> dict[str, Any]:
        """The counters of every executor this search used, summed."""
        assert self.executor is not None
        total = dict(self.executor.stats())
        for stats in self.closed_stats:
            for key, value in stats.items():
                if isinstance(value, (int, float)) and isinstance(total.get(key), (int, float)):
                    total[key] += value
        return total

    def _stored(self, store: Store, resume: bool) -> dict[int, dict[str, Any]]:
        records = self.run._stored_records(store, self.fingerprint, resume)
        return {int(r["trial_id"]): r for r in records}

    def evaluate(
        self,
        candidate_params: Any,
        cv: Any = None,
        more_results: Mapping[str, Sequence[Any]] | None = None,
        callback_ctx: Any = None,
    ) -> dict[str, Any]:
        """scikit-learn's ``evaluate_candidates``, on the cluster."""
        from dask.base import tokenize

        from .store import plain_value

        run, s, data = self.run, self.run.search, self.data
        candidates = [dict(c) for c in candidate_params]
        folds = s._plan_folds(data.X, data.y, data.groups, cv=cv or s._checked_cv_orig)
        if len(folds) != s.n_splits_:
            raise InvalidSearchError(
                "cv.split and cv.get_n_splits return inconsistent results. Expected "
                f"{s.n_splits_} splits, got {len(folds)}: the cv given to evaluate_candidates must "
                "split into as many folds as the search's cv."
            )
        if not candidates:
            raise InvalidSearchError(
                "evaluate_candidates was given no candidates. No fits were performed. Was the CV "
                "iterator empty? Were there no candidates?"
            )
        s._check_param_names(candidates)
        work = s._crossval_work(data, folds, candidates)
        run._attach_reuse(work, self.store, identity=self.fingerprint)
        # Calls differ in how many candidates share a pipeline prefix, and one executor serves
        # several calls: shared prefixes are counted by the units that wait for them instead.
        work.prefix_demand = None
        first = self.next_id
        self.next_id += len(candidates)  # ids stay unique even if a call raised half-way
        strategy = CandidateList(candidates, first_id=first)
        run._search_ctx = callback_ctx
        # The workers' callbacks attach below this call's context, which travels with the data.
        follows = (
            run.callbacks is not None and run.callbacks.propagated and callback_ctx is not None
        )
        token = tokenize(folds, id(callback_ctx) if follows else None)
        if self.executor is None or token != self.folds_token:
            if self.executor is not None:
                self.executor.close()
                self.closed_stats.append(self.executor.stats())
            self.executor, self.n_slots, self.client = run._executor(work, client=self.client)
            self.folds_token = token
            self.work = work
        replayed = []
        for i, params in enumerate(candidates):
            record = self.stored.get(first + i)
            if record is not None and record["params"] == plain_value(params):
                result = result_from_json(record, params)
                strategy.tell(result)
                replayed.append(result)
        self.n_stored_reused += len(replayed)
        n = len(candidates)
        setup = Setup(
            strategy=strategy,
            work=work,
            fingerprint=self.fingerprint,
            settings={},
            header=f"Fitting {len(folds)} folds for each of {n} candidates, totalling "
            f"{n * len(folds)} fits",  # printed by the loop when verbose
        )
        batch = run._loop(
            setup,
            self.store,
            self.executor,
            replayed,
            self.n_slots,
            data.refit_metric,
            self.client,
        )
        check_failures(batch, len(folds), s.error_score, stacklevel=4)
        self.rows.extend(batch)
        for key, values in (more_results or {}).items():
            self.more[key].extend(values)
        names = metric_names(self.rows)
        cv_results = build_cv_results(
            self.rows,
            len(folds),
            error_score=s.error_score,
            multimetric=is_multimetric(names, s.scoring),
            return_train_score=bool(s.return_train_score),
            format_results=_with_more(s._format_results, self.more),
        )
        return cv_results
