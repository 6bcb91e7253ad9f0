"""Never pay twice: every (candidate, fold) fit is keyed by its content and kept in the store's unit
cache, so any later search in that store, under any name, takes it from there instead of fitting again.

A unit's key is a token of everything its scores depend on:

- the data (X, y) and the fold's own train and test indices;
- the estimator's class and its full parameters (nested estimators and pipeline steps included), and
  the candidate's parameters;
- the scoring, the fit and score parameters, ``return_train_score``, ``error_score``, scikit-learn's
  configuration and the subsample seed of a budget counted in samples;
- the versions of scikit-learn, NumPy, SciPy and of every package an estimator (or a scorer's
  function) in the tree comes from; for a class or function of the user's own code (a notebook's
  ``__main__``, a module with no installed version) a hash of its source, so that editing it
  recomputes.

Change any of these and the key changes, so nothing matches: a new estimator version, other data,
another fold or another scoring recomputes. The store only compares keys; it never unpickles or runs
anything to decide.

Which units are reused (``reuse=``):

- ``True`` (default): units whose fit is deterministic. A unit is not deterministic when an estimator
  in it has a ``random_state`` that is ``None`` or a ``RandomState`` (a seed that changes between
  runs), unless scikit-learn documents that the parameter is unused in that configuration (see
  :data:`IGNORED_RANDOM_STATE`: ``SVC(probability=False)``, ``LogisticRegression`` with an ``lbfgs``
  solver, and so on).
- ``"all"``: every stored unit, deterministic or not (the scores of an unseeded estimator are then the
  ones an earlier run drew).
- ``False``: nothing is read (what is computed is still stored for later searches).

Failed fits are stored too, and reused only with ``reuse_failures=True``.

No dask import here: keys are made by the executor with ``dask.base.tokenize`` from the parts below.
"""

from __future__ import annotations

import importlib.metadata
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .exceptions import InvalidSearchError

__all__ = [
    "ReusePolicy",
    "IGNORED_RANDOM_STATE",
    "check_reuse",
    "estimator_form",
    "random_sources",
    "package_version",
    "stale",
    "versions_of",
]

KEY_VERSION = "daskhpo-unit-1"
"""Part of every key: bumped when what a key covers changes, so old rows stop matching."""


def _probability_off(p: Mapping[str, Any]) -> bool:
    # scikit-learn 1.9 deprecated the parameter: its default is then the string "deprecated".
    return p.get("probability", False) in (False, "deprecated")


def _solver_not(*solvers: str) -> Callable[[Mapping[str, Any]], bool]:
    def unused(p: Mapping[str, Any]) -> bool:
        return p.get("solver") not in solvers

    return unused


def _cyclic(p: Mapping[str, Any]) -> bool:
    return p.get("selection", "cyclic") != "random"


#: scikit-learn estimators whose ``random_state`` is documented as unused in some configurations:
#: class name -> a test on the estimator's own parameters that is true when it is unused. Only
#: classes from ``sklearn.*`` modules are looked up here.
IGNORED_RANDOM_STATE: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    "SVC": _probability_off,
    "NuSVC": _probability_off,
    "LogisticRegression": _solver_not("sag", "saga", "liblinear"),
    "LogisticRegressionCV": _solver_not("sag", "saga", "liblinear"),
    "Ridge": _solver_not("sag", "saga"),
    "RidgeClassifier": _solver_not("sag", "saga"),
    "Lasso": _cyclic,
    "ElasticNet": _cyclic,
    "MultiTaskLasso": _cyclic,
    "MultiTaskElasticNet": _cyclic,
    # "auto" picks the randomized solver for large data: only the exact solvers are certain.
    "PCA": lambda p: p.get("svd_solver") in ("full", "covariance_eigh"),
}


def _is_seed(value: Any) -> bool:
    """A random_state that gives the same draws every run: an int (NumPy's included)."""
    import numbers

    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_estimator(value: Any) -> bool:
    return hasattr(value, "get_params") and not isinstance(value, type)


def random_sources(estimator: Any, params: Mapping[str, Any] | None = None) -> list[str]:
    """The ``random_state`` parameters (as ``step__random_state`` paths) that make a fit of
    ``estimator`` with ``params`` set differ between runs; empty when the fit is deterministic."""
    return _sources(estimator, dict(params or {}), "")


def _sources(est: Any, overrides: dict[str, Any], path: str) -> list[str]:
    deep = est.get_params(deep=True)
    own = {k: v for k, v in deep.items() if "__" not in k}
    own.update({k: v for k, v in overrides.items() if "__" not in k})
    out: list[str] = []
    if "random_state" in own and not _is_seed(own["random_state"]):
        rule = IGNORED_RANDOM_STATE.get(type(est).__name__)
        from_sklearn = type(est).__module__.startswith("sklearn.")
        if not (rule is not None and from_sklearn and rule(own)):
            out.append(path + "random_state")
    for name, value in own.items():
        if _is_estimator(value):
            prefix = name + "__"
            # A step replaced by the candidate is looked at as given; its old sub-params do not apply.
            sub = {k[len(prefix) :]: v for k, v in overrides.items() if k.startswith(prefix)}
            out += _sources(value, sub, path + prefix)
    return out


def estimator_form(est: Any) -> Any:
    """An estimator as plain nested data: its class path and its parameters (nested estimators in the
    same form), so that two equal configurations give the same token whatever else the objects hold."""
    if _is_estimator(est) and hasattr(est, "get_params"):
        params = est.get_params(deep=False)
        return (
            f"{type(est).__module__}.{type(est).__qualname__}",
            [(k, estimator_form(params[k])) for k in sorted(params)],
        )
    if isinstance(est, (list, tuple)):
        return (type(est).__name__, [estimator_form(v) for v in est])
    if isinstance(est, dict):
        return ("dict", [(str(k), estimator_form(est[k])) for k in sorted(est, key=str)])
    return est


def _packages(est: Any, found: set[str], code: dict[str, Any]) -> None:
    """Collect the top-level packages of ``est``'s classes (and of callables in it), and the code
    objects of those whose package has no version (a notebook's or the user's own module)."""
    if _is_estimator(est):
        _note(type(est), found, code)
        for value in est.get_params(deep=False).values():
            _packages(value, found, code)
    elif isinstance(est, (list, tuple)):
        for v in est:
            _packages(v, found, code)
    elif isinstance(est, dict):
        for v in est.values():
            _packages(v, found, code)
    elif callable(est) and getattr(est, "__module__", None):
        _note(est, found, code)
        for inner in (getattr(est, "_score_func", None), getattr(est, "func", None)):
            if inner is not None and inner is not est:
                _packages(inner, found, code)


def _note(obj: Any, found: set[str], code: dict[str, Any]) -> None:
    package = str(obj.__module__).split(".")[0]
    found.add(package)
    if package == "__main__" or package_version(package) == "unknown":
        code[f"{obj.__module__}.{getattr(obj, '__qualname__', repr(obj))}"] = _source_token(obj)


def _source_token(obj: Any) -> str:
    """A hash of the source of a class or function defined outside any installed package, so that
    editing it makes new keys; a fresh random token when the source cannot be read (never reused)."""
    import hashlib
    import inspect
    import uuid

    try:
        return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]
    except (OSError, TypeError):
        return "unreadable-" + uuid.uuid4().hex


def package_version(package: str) -> str:
    module = sys.modules.get(package)
    version = getattr(module, "__version__", None)
    if version is not None:
        return str(version)
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def versions_of(*objects: Any) -> dict[str, str]:
    """The versions of scikit-learn, NumPy and every package the estimators (and callables such as
    scorers) in ``objects`` come from, by top-level module name."""
    found = {"sklearn", "numpy", "scipy"}
    code: dict[str, Any] = {}
    for obj in objects:
        _packages(obj, found, code)
    found -= {"builtins", "__main__"}
    out = {p: package_version(p) for p in sorted(found)}
    # Classes and functions of the user's own code: their source stands in for a version.
    out.update({f"code:{name}": token for name, token in sorted(code.items())})
    return out


def stale(versions: Mapping[str, str], installed: Mapping[str, str]) -> bool:
    """Whether a unit made with ``versions`` can no longer match: a package in ``installed`` has
    another version now (``code:`` hashes of the user's own code are not judged here)."""
    return any(
        installed[k] != v
        for k, v in versions.items()
        if k in installed and not k.startswith("code:")
    )


@dataclass
class ReusePolicy:
    """What a search takes from the unit cache (see the module docstring)."""

    reuse: bool | str = True
    reuse_failures: bool = False
    search: str | None = None  # written with each computed unit: the search's fingerprint

    @property
    def reads(self) -> bool:
        return self.reuse is not False

    def may_use(self, row: Mapping[str, Any]) -> bool:
        """Whether a stored unit may stand in for a fit."""
        if not self.reads:
            return False
        if row["status"] != "ok" and not self.reuse_failures:
            return False
        return bool(row["deterministic"]) or self.reuse == "all"


def check_reuse(reuse: Any, reuse_failures: Any) -> None:
    """Refuse bad ``reuse=`` / ``reuse_failures=`` values with the fix (before any cluster work)."""
    if not (reuse is True or reuse is False or reuse == "all"):
        raise InvalidSearchError(
            f"reuse={reuse!r}: use True (take deterministic fits an earlier search in the store made), "
            "'all' (also fits of estimators without a fixed random_state) or False (compute everything)."
        )
    if not isinstance(reuse_failures, bool):
        raise InvalidSearchError(
            f"reuse_failures={reuse_failures!r}: use True to take failed fits from the store too, "
            "or False (the default) to fit them again."
        )
