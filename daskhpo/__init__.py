"""daskhpo: hyperparameter search for scikit-learn estimators on Dask clusters."""

from .cluster import get_client
from .exceptions import (
    ClusterError,
    DaskHPOError,
    FitFailedError,
    InvalidSearchError,
    InvalidSearchTypeError,
)
from .search import GridSearchCV, RandomizedSearchCV
from .space import Categorical, Float, Int
from .store import MemoryStore

__version__ = "0.1.0"

__all__ = [
    "GridSearchCV",
    "RandomizedSearchCV",
    "Float",
    "Int",
    "Categorical",
    "MemoryStore",
    "get_client",
    "DaskHPOError",
    "InvalidSearchError",
    "InvalidSearchTypeError",
    "FitFailedError",
    "ClusterError",
    "__version__",
]
