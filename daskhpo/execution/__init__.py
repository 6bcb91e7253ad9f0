"""Execution on a Dask cluster: the task functions and the executor that submits them."""

from .executor import DaskExecutor
from .tasks import SearchContext, UnitOutcome

__all__ = ["DaskExecutor", "SearchContext", "UnitOutcome"]
