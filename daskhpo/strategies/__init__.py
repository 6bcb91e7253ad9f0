"""Search strategies: pure ask/tell algorithms with no dask import."""

from .adaptive import ASHA, Hyperband, Incremental, ListSource, RandomSource, SuccessiveHalving
from .base import Job, Result, Status, Strategy
from .candidates import CandidateList, GridStrategy, RandomStrategy

__all__ = [
    "Job",
    "Result",
    "Status",
    "Strategy",
    "CandidateList",
    "GridStrategy",
    "RandomStrategy",
    "RandomSource",
    "ListSource",
    "SuccessiveHalving",
    "Hyperband",
    "ASHA",
    "Incremental",
]
