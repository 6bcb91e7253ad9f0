"""Search strategies: pure ask/tell algorithms with no dask import."""

from .adaptive import (
    ASHA,
    CandidateSource,
    Hyperband,
    Incremental,
    LearningSource,
    ListSource,
    RandomSource,
    SuccessiveHalving,
)
from .base import (
    Counting,
    Describing,
    Enumerated,
    Job,
    Releasing,
    Result,
    SlotAware,
    Status,
    Strategy,
)
from .candidates import CandidateList, GridStrategy, RandomStrategy

__all__ = [
    "Job",
    "Result",
    "Status",
    "Strategy",
    "Releasing",
    "Describing",
    "Counting",
    "SlotAware",
    "Enumerated",
    "CandidateList",
    "GridStrategy",
    "RandomStrategy",
    "CandidateSource",
    "LearningSource",
    "RandomSource",
    "ListSource",
    "SuccessiveHalving",
    "Hyperband",
    "ASHA",
    "Incremental",
]
