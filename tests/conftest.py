"""Shared fixtures: one real distributed LocalCluster for the whole test session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def client():
    """A real 2-worker, 1-thread-each LocalCluster on 127.0.0.1, set up as the embedded default."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
        ) as cluster,
        Client(cluster, set_as_default=False) as c,
    ):
        yield c
