"""Shared fixtures and Hypothesis profiles.

Backends. Every store, lock and transaction test runs against SQLite *and* a real PostgreSQL
server: the ``backend`` fixture is parametrized, and the database fixtures build on it. The
PostgreSQL server comes from ``scripts/pg`` (``scripts/test`` starts one and exports
``SQLRESULTS_TEST_POSTGRES_URL``). Without it the PostgreSQL cases skip, unless
``SQLRESULTS_REQUIRE_POSTGRES`` is set (CI), where they fail instead.

Isolation. SQLite tests get their own file, copied from a template migrated once per session.
PostgreSQL tests share one migrated database, so each test gets a unique namespace (namespaces
never see each other's records or locks); tests that need an empty database use
``empty_database_url``.

Hypothesis profiles (choose with ``HYPOTHESIS_PROFILE``): ``ci`` is derandomized so CI runs are
repeatable and is picked automatically when ``CI`` is set; ``dev`` (the local default) runs more
examples.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from threads import join, run_in_thread

from sqlresults.database import Database
from sqlresults.results import ResultStore

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    print_blob=True,
)
settings.register_profile(
    "dev",
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)

BACKENDS = ["sqlite", "postgresql"]
T = TypeVar("T")


class FakeClock:
    """A controllable clock in seconds since the epoch; pass it as ``Database(clock=...)``."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        self.now += seconds


def run_async(scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``scenario()`` on a fresh event loop in a helper thread, with the hang guard, so a
    regression that blocks the loop fails instead of hanging (the suite has no async plugin)."""
    outcome: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            outcome.append(asyncio.run(scenario()))
        except BaseException as exc:
            errors.append(exc)

    join(run_in_thread(target))
    if errors:
        raise errors[0]
    return outcome[0]


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test away from the user's ~/.sqlresults and from SQLRESULTS_* variables of
    the shell that runs the tests."""
    for name in list(os.environ):
        if name.startswith("SQLRESULTS_") and not name.startswith(
            ("SQLRESULTS_TEST_", "SQLRESULTS_REQUIRE_", "SQLRESULTS_PG_")
        ):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SQLRESULTS_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)


def postgres_server_url() -> str:
    """The URL of the test PostgreSQL database, or skip (fail in CI) when there is none."""
    url = os.environ.get("SQLRESULTS_TEST_POSTGRES_URL")
    if url:
        return url
    if os.environ.get("SQLRESULTS_REQUIRE_POSTGRES"):
        pytest.fail("SQLRESULTS_REQUIRE_POSTGRES is set but no PostgreSQL server was started")
    pytest.skip("no PostgreSQL server: run the suite with scripts/test (it starts one)")


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per session; tests get copies."""
    path = tmp_path_factory.mktemp("template") / "results.db"
    database = Database(f"sqlite:///{path}", auto_migrate=True)
    database.ensure_schema()
    database.close()
    return path


@pytest.fixture(scope="session")
def _postgres_migrated() -> str:
    """The shared test PostgreSQL database, migrated to head once per session."""
    url = postgres_server_url()
    database = Database(url, auto_migrate=True)
    database.ensure_schema()
    database.close()
    return url


@pytest.fixture
def postgres_url(_postgres_migrated: str) -> str:
    """URL of the shared, migrated test PostgreSQL database, for PostgreSQL-only tests (mark
    them ``postgres``); use ``namespace`` to keep tests apart."""
    return _postgres_migrated


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The database backend under test: "sqlite" or "postgresql"."""
    if request.param == "postgresql":
        request.applymarker(pytest.mark.postgres)
        postgres_server_url()
    return str(request.param)


@pytest.fixture
def database_url(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> str:
    """URL of a migrated database for this test (a fresh SQLite file, or the shared
    PostgreSQL database, where ``namespace`` keeps tests apart)."""
    if backend == "sqlite":
        path = tmp_path / "results.db"
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
        return f"sqlite:///{path}"
    return str(request.getfixturevalue("_postgres_migrated"))


@pytest.fixture
def empty_database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """URL of a database with no tables at all (a new SQLite file, or a new PostgreSQL
    database dropped afterwards)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    import psycopg
    from sqlalchemy.engine import make_url

    server = make_url(postgres_server_url())
    name = f"sqlresults_t_{uuid.uuid4().hex[:12]}"
    admin = _libpq_conninfo(server)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _libpq_conninfo(url: object) -> str:
    from sqlalchemy.engine import URL

    assert isinstance(url, URL)
    parts = {
        "dbname": url.database,
        "user": url.username,
        "password": url.password,
        "host": url.query.get("host") or url.host,
        "port": url.query.get("port") or url.port,
    }
    return " ".join(f"{key}={value}" for key, value in parts.items() if value)


@pytest.fixture
def namespace() -> str:
    """A namespace no other test uses."""
    return f"t-{uuid.uuid4().hex[:16]}"


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock that tests move forward by hand."""
    return FakeClock()


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """A migrated :class:`Database` on the backend under test, with the real clock."""
    db = Database(database_url)
    yield db
    db.close()


@pytest.fixture
def clocked_database(database_url: str, clock: FakeClock) -> Iterator[Database]:
    """A migrated :class:`Database` whose expiry and leases follow ``clock`` (on PostgreSQL
    too: a given clock replaces the server's)."""
    db = Database(database_url, clock=clock)
    yield db
    db.close()


@pytest.fixture
def store(database: Database, namespace: str) -> ResultStore:
    """A :class:`ResultStore` on ``database`` in this test's own namespace."""
    return ResultStore(result_storage=database, namespace=namespace)


@pytest.fixture
def clocked_store(clocked_database: Database, namespace: str) -> ResultStore:
    """A :class:`ResultStore` whose time is ``clock``."""
    return ResultStore(result_storage=clocked_database, namespace=namespace)
