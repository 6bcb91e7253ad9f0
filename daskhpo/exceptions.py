"""Exception hierarchy: every error daskhpo raises on purpose derives from :class:`DaskHPOError`."""

from __future__ import annotations

__all__ = [
    "DaskHPOError",
    "InvalidSearchError",
    "InvalidSearchTypeError",
    "FitFailedError",
    "ClusterError",
]


class DaskHPOError(Exception):
    """Root of every error raised by daskhpo itself."""


class InvalidSearchError(DaskHPOError, ValueError):
    """A search was configured with a bad value.

    Raised when the search is built or when ``fit`` starts, before any work is sent to a cluster.
    The message names the parameter, the bad value and what to do instead.
    """


class InvalidSearchTypeError(InvalidSearchError, TypeError):
    """A search parameter has the wrong type (also a :class:`TypeError`)."""


class FitFailedError(DaskHPOError, ValueError):
    """Every fit of a search failed, or a fit failed while ``error_score="raise"``."""


class ClusterError(DaskHPOError, RuntimeError):
    """The Dask cluster could not be reached or lost the work beyond recovery."""
