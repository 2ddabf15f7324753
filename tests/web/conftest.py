"""Fixtures of the web tests: a real PostgreSQL server for the shared feedback store.

``postgres`` is one server for the whole session (:mod:`postgres_server` says how it runs);
``postgres_url`` gives each test an empty schema on it. Without the server's programs the
tests that need them are skipped, saying so; with ``CI`` set they fail instead, so that CI
never passes without having run them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from postgres_server import NoServer, PostgresServer, running_server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server for this test session, on a free loopback port."""
    try:
        with running_server() as server:
            yield server
    except NoServer as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.fixture()
def postgres_url(postgres: PostgresServer) -> str:
    """A URL whose tables go to a new, empty schema of the ``lbp`` database."""
    return postgres.new_schema()
