"""daskhpo: hyperparameter search for scikit-learn estimators on Dask clusters."""

from .adaptive import (
    ASHASearchCV,
    BOHBSearchCV,
    HyperbandSearchCV,
    IncrementalSearchCV,
    MedianStoppingSearchCV,
    SuccessiveHalvingSearchCV,
)
from .bayes import BayesSearchCV
from .cluster import connect, get_client
from .exceptions import (
    ClusterError,
    DaskHPOError,
    FitFailedError,
    InvalidSearchError,
    InvalidSearchTypeError,
)
from .load import StoredSearch, load
from .search import BaseSearchCV, GridSearchCV, RandomizedSearchCV
from .space import Categorical, Float, Int
from .store import MemoryStore

__version__ = "0.1.0"

_HALVING = ("HalvingGridSearchCV", "HalvingRandomSearchCV")


def __getattr__(name: str) -> object:
    # scikit-learn's halving searches on Dask (daskhpo.halving), imported on first use: importing
    # them enables scikit-learn's experimental halving classes, which a plain `import daskhpo` must not.
    if name in _HALVING:
        from . import halving

        return getattr(halving, name)
    raise AttributeError(f"module 'daskhpo' has no attribute {name!r}")


__all__ = [
    "BaseSearchCV",
    "GridSearchCV",
    "RandomizedSearchCV",
    "HalvingGridSearchCV",
    "HalvingRandomSearchCV",
    "BayesSearchCV",
    "SuccessiveHalvingSearchCV",
    "HyperbandSearchCV",
    "ASHASearchCV",
    "IncrementalSearchCV",
    "BOHBSearchCV",
    "MedianStoppingSearchCV",
    "Float",
    "Int",
    "Categorical",
    "MemoryStore",
    "load",
    "StoredSearch",
    "get_client",
    "connect",
    "DaskHPOError",
    "InvalidSearchError",
    "InvalidSearchTypeError",
    "FitFailedError",
    "ClusterError",
    "__version__",
]
