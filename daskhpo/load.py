"""Stored searches read back without a cluster: :func:`load`, and ``daskhpo resume NAME``.

:func:`load` opens a SQLite trial store, reads one named search (its settings, status and trials, all
JSON: nothing is imported or run) and returns a :class:`StoredSearch` with the fitted attributes a
search ends with: ``cv_results_``, ``best_index_``, ``best_score_``, ``best_params_``. A search started
with ``daskhpo run SPEC`` also keeps its spec document in the store, so :meth:`StoredSearch.resume`
can build the real search again, load its data and continue it (nothing stored is recomputed; a
finished search is only refitted), without the spec file. ``daskhpo resume NAME --storage ...`` does
the same from the command line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .exceptions import InvalidSearchError, InvalidSearchTypeError

__all__ = ["load", "StoredSearch"]

_PREFIX = "sqlite:///"


def _store_path(storage: Any) -> Path:
    if not isinstance(storage, (str, Path)) or not str(storage).startswith(_PREFIX):
        raise InvalidSearchError(
            f"storage={storage!r}: give the SQLite store the search was run with, such as "
            "'sqlite:///runs.db' (a relative path after the three slashes, or four slashes for an "
            "absolute one)."
        )
    path = Path(str(storage)[len(_PREFIX) :])
    if not path.is_file():
        raise InvalidSearchError(
            f"storage={storage!r}: there is no store at {path.resolve()}: check the path (it is "
            "relative to the current folder unless it starts with a slash)."
        )
    return path


def load(name: str, storage: str) -> StoredSearch:
    """Read a stored search back, without a cluster.

    Parameters
    ----------
    name : str
        The search's name in the store (``name=`` of the search, or the name ``daskhpo run`` used;
        ``daskhpo status --storage ...`` lists them).
    storage : str
        The store, such as ``"sqlite:///runs.db"``.

    Returns
    -------
    StoredSearch
        Its ``cv_results_``, ``best_*``, ``status`` and ``n_trials`` as stored right now (a search that
        is still running, or was stopped, shows the trials finished so far).

    Raises
    ------
    InvalidSearchError
        When there is no store at that path, or no search of that name in it (the message lists the
        names there).

    Examples
    --------
    >>> import daskhpo
    >>> found = daskhpo.load("trees-v1", storage="sqlite:///runs.db")  # doctest: +SKIP
    >>> found.best_params_, found.status  # doctest: +SKIP
    ({'max_depth': 4}, 'finished')
    >>> search = found.resume(client="tcp://10.0.0.5:8786")  # doctest: +SKIP
    >>> search.best_estimator_.predict(X)  # doctest: +SKIP
    """
    from .store import SQLiteStore

    if not isinstance(name, str) or not name:
        raise InvalidSearchTypeError(
            f"name={name!r}: give the name of a stored search as a string ('daskhpo status "
            "--storage ...' lists them)."
        )
    path = _store_path(storage)
    store = SQLiteStore(path, name, create=False)
    try:
        names = [s["name"] for s in store.searches()]
        if name not in names:
            close = _closest(name, names)
            raise InvalidSearchError(
                f"name={name!r}: no search of that name in {path}{close} Searches there: "
                f"{', '.join(map(repr, names)) or 'none'}."
            )
        info = store.info()
        records = store.records()
    finally:
        store.close()
    return StoredSearch(name, str(storage), info, records)


def _closest(word: str, options: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean {close[0]!r}?)." if close else "."


class StoredSearch:
    """A search read from a trial store: what it ran, how far it got, and its results.

    Built by :func:`load`. Its attributes mirror a fitted search's, from the stored trials:

    Attributes
    ----------
    name : str
    storage : str
    status : str
        ``'new'``, ``'running'`` (or killed while running), ``'interrupted'``, ``'failed'`` or
        ``'finished'``.
    n_trials : int
        Distinct trials stored.
    cv_results_ : dict
        The same keys, rows and order as the search's own ``cv_results_`` (built by the same code,
        :mod:`daskhpo.results`): one row per trial, or per (trial, rung) for adaptive searches.
        ``params`` (and the ``param_*`` columns) hold the stored JSON form of each value: numbers,
        strings, booleans and None as they were, tuples as lists, other objects (an estimator
        searched over, say) as ``{"__repr__": "..."}``. Failed folds score ``error_score``.
    best_index_, best_score_, best_params_
        As the search computes them, by the same rule (for adaptive searches also ``best_trial_id_``
        and ``best_budget_``) (absent when nothing is stored yet, when ``refit`` was a
        callable, or for several metrics with ``refit=False``).
    n_splits_, multimetric_ : int, bool
    settings : dict
        What the search recorded about itself (search class, estimator, space, scoring, cv, ...).
    document : dict or None
        The spec of a search started with ``daskhpo run`` (None for one started from Python).

    Notes
    -----
    There is no ``best_estimator_``, ``predict`` or ``score``: nothing fitted is stored. Call
    :meth:`resume` to get a fitted search.
    """

    def __init__(
        self,
        name: str,
        storage: str,
        info: Mapping[str, Any],
        records: list[dict[str, Any]],
    ) -> None:
        self.name = name
        self.storage = storage
        self.status = str(info["status"])
        self.created = float(info["created"])
        self.updated = float(info["updated"])
        settings = dict(info.get("spec") or {})
        document = settings.pop("document", None)
        self.document: dict[str, Any] | None = document if isinstance(document, dict) else None
        self.settings = settings
        self.records = list(records)
        self.n_trials = len({int(r["trial_id"]) for r in self.records})
        self._build()

    # -- settings the search recorded -------------------------------------------------------------
    def _setting(self, key: str, default: Any) -> Any:
        if key in self.settings:
            return self.settings[key]
        if self.document is not None and key in self.document:
            return self.document[key]
        return default

    def _build(self) -> None:
        from .results import best_position, build_cv_results, latest_evaluations, metric_names
        from .store import result_from_json

        rows = latest_evaluations(result_from_json(r) for r in self.records)
        n_splits = self.settings.get("n_splits")
        if not isinstance(n_splits, int):
            n_splits = len(rows[0].fit_times) if rows else 0
        self.n_splits_ = n_splits
        names = metric_names(rows)
        scoring = self.settings.get("scoring")
        listed = isinstance(scoring, str) and scoring.startswith(("[", "{", "(", "set("))
        self.multimetric_ = names != ["score"] or listed
        err = self._setting("error_score", math.nan)
        if isinstance(err, str) and err.lower() == "nan":
            err = math.nan
        self.error_score = err
        has_train = any(r.train_scores for r in rows)
        self.return_train_score = bool(self._setting("return_train_score", has_train))
        self.refit = self._setting("refit", True)
        adaptive = any(r.job.budget is not None for r in rows)
        rule = self.settings.get("best_rule") or ("top" if adaptive else "all")
        if not rows:
            self.cv_results_: dict[str, Any] = {}
            return
        self.cv_results_ = build_cv_results(
            rows,
            n_splits,
            error_score=err,
            multimetric=self.multimetric_,
            return_train_score=self.return_train_score,
            budget_param=self.settings.get("budget_param"),
        )
        refit = self.refit
        if isinstance(refit, Mapping):  # a callable, stored as its repr: it cannot be called here
            return
        if refit or not self.multimetric_:
            metric = refit if isinstance(refit, str) and self.multimetric_ else names[0]
            if not self.multimetric_:
                metric = "score"
            if f"rank_test_{metric}" not in self.cv_results_:
                return
            scores = self.cv_results_[f"mean_test_{metric}"]
            if rule == "all" and not adaptive:  # scikit-learn's rank, as the search did
                best = int(np.argmin(self.cv_results_[f"rank_test_{metric}"]))
            else:
                found = best_position(rows, rule, scores=scores)
                best = int(found) if found is not None else 0
            self.best_index_ = best
            self.best_score_ = scores[best]
            self.best_params_ = self.cv_results_["params"][best]
            self.best_trial_id_ = rows[best].trial_id
            if "budget" in self.cv_results_:
                self.best_budget_ = self.cv_results_["budget"][best]

    def __getattr__(self, attr: str) -> Any:
        # Only called for attributes that are not there: say why, instead of a bare AttributeError.
        if attr in ("best_index_", "best_score_", "best_params_"):
            why = (
                "no trial is stored yet"
                if not self.__dict__.get("records")
                else "refit was a callable, or several metrics were scored with refit=False"
            )
            raise AttributeError(
                f"stored search {self.__dict__.get('name')!r} has no {attr}: {why}."
            )
        if attr in ("best_estimator_", "predict", "predict_proba", "score", "transform"):
            raise AttributeError(
                f"a loaded search has no {attr}: nothing fitted is stored. Call .resume() to build "
                "the search again and refit its best candidate (searches started with daskhpo run), "
                "or build the search as before and call fit(X, y, resume=True)."
            )
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {attr!r}")

    def __repr__(self) -> str:
        best = ""
        if "best_score_" in self.__dict__:
            best = f", best_score_={self.best_score_:.6g}"
        return (
            f"StoredSearch(name={self.name!r}, status={self.status!r}, "
            f"n_trials={self.n_trials}{best})"
        )

    # -- back to a real search ----------------------------------------------------------------------
    def resume(self, client: Any = None, **kwargs: Any) -> Any:
        """Build the search from its stored spec, load its data and continue it; return it fitted.

        Only for searches started with ``daskhpo run SPEC`` (their spec is stored). Trials already
        stored are read back, not recomputed: for a finished search only the best candidate is
        refitted; for one that was stopped, the trials not stored are run first (the same as
        ``daskhpo run SPEC --resume`` or ``daskhpo resume NAME``).

        Parameters
        ----------
        client : distributed.Client or str, optional
            The cluster to run on (by default the active client, or an embedded LocalCluster).
        **kwargs
            More constructor arguments for the search, overriding the spec's (such as ``verbose=1``,
            ``n_jobs=4`` or ``trial_timeout=600``).

        Returns
        -------
        GridSearchCV or RandomizedSearchCV
            Fitted: ``best_estimator_``, ``predict`` and every other attribute of a search.

        Raises
        ------
        InvalidSearchError
            For a search started from Python (its estimator and data are not in the store), or
            when the spec cannot be built or its data loaded here (a class that does not import,
            a data file that is not there).
        """
        if self.document is None:
            raise InvalidSearchError(
                f"search {self.name!r} in {self.storage} was started from Python, so its estimator "
                "and data are not in the store: build the search with the same arguments and "
                f"storage={self.storage!r}, name={self.name!r}, then call fit(X, y, resume=True). "
                "(Searches started with 'daskhpo run SPEC' can be resumed from the store alone.)"
            )
        from .spec import build_search, load_data

        settings: dict[str, Any] = {"verbose": 0, "name": self.name}
        settings.update(kwargs)
        search = build_search(self.document, client=client, storage=self.storage, **settings)
        X, y = load_data(self.document)
        return search.fit(X, y, resume=True)
