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
from .search import GridSearchCV, RandomizedSearchCV
from .space import Categorical, Float, Int
from .store import MemoryStore

__version__ = "0.1.0"

__all__ = [
    "GridSearchCV",
    "RandomizedSearchCV",
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
