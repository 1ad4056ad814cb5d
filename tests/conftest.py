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
import shlex
import shutil
import subprocess
import tempfile
import threading
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

# Prefect (the tests of sqlresults.prefect import it, and run its flows in subprocesses) must
# neither read nor write the user's ~/.prefect, follow a PREFECT_API_URL of the shell that runs
# the tests, nor call home. Set before any test module imports it.
for _name in [name for name in os.environ if name.startswith("PREFECT_")]:
    del os.environ[_name]
os.environ["PREFECT_HOME"] = str(
    Path(tempfile.gettempdir()) / f"sqlresults-tests-prefect-{os.getuid()}"
)
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"

BACKENDS = ["sqlite", "postgresql"]
T = TypeVar("T")

REPO = Path(__file__).resolve().parent.parent
PG_SCRIPT = REPO / "scripts" / "pg"
INITDB = Path(os.environ.get("PG_BIN") or "/usr/lib/postgresql/15/bin") / "initdb"


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


class OwnSessions:
    """The server sessions (backends) of one test's own connections on the shared PostgreSQL
    server, told apart by a unique ``application_name``: other tests share the server, so a test
    that ends sessions must end only its own.

    Args:
        server_url: The shared test database's URL.
    """

    def __init__(self, server_url: str) -> None:
        from sqlalchemy.engine import make_url

        server = make_url(server_url)
        self.application_name = f"waiter-{uuid.uuid4().hex[:16]}"
        #: The database's URL with this test's application_name (libpq reads it from the query).
        self.url = server.update_query_dict(
            {"application_name": self.application_name}
        ).render_as_string(hide_password=False)
        self._admin = _libpq_conninfo(server)

    def _pids(self, where: str = "") -> set[int]:
        import psycopg

        with psycopg.connect(self._admin, autocommit=True) as connection:
            rows = connection.execute(
                f"SELECT pid FROM pg_stat_activity WHERE application_name = %s {where}",
                [self.application_name],
            ).fetchall()
        return {int(pid) for (pid,) in rows}

    def pids(self) -> set[int]:
        """The process ids of this test's open sessions."""
        return self._pids()

    def listening(self) -> set[int]:
        """The process ids of this test's sessions whose last statement was a LISTEN (a waiter
        that listens for lock releases)."""
        return self._pids("AND state = 'idle' AND query LIKE 'LISTEN %%'")

    def terminate(self) -> set[int]:
        """End every session of this test (``pg_terminate_backend``, what a server shutdown or
        an administrator does) and return their process ids."""
        import psycopg

        with psycopg.connect(self._admin, autocommit=True) as connection:
            # In the select list, not the WHERE clause: SQL does not promise to test the
            # application name first, and other tests' sessions must survive.
            rows = connection.execute(
                "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s",
                [self.application_name],
            ).fetchall()
        return {int(pid) for pid, _ in rows}


@pytest.fixture
def own_sessions(postgres_url: str) -> OwnSessions:
    """This test's own sessions on the shared PostgreSQL server: connect through
    ``own_sessions.url`` and end them with ``own_sessions.terminate()`` (PostgreSQL-only
    tests)."""
    return OwnSessions(postgres_url)


class PrivateServer:
    """A PostgreSQL server of the tests' own (``scripts/pg start``), which they may shut down
    and start again; the shared server must never be restarted (other tests use it).

    Args:
        url: The URL ``scripts/pg start`` printed.
        directory: The cluster directory.
    """

    def __init__(self, url: str, directory: Path) -> None:
        self.url = url
        self.directory = directory
        self.running = True

    def _pg(self, *args: str) -> None:
        done = subprocess.run(
            [str(PG_SCRIPT), *args, str(self.directory)],
            env=_env_without_the_suite_cluster(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"scripts/pg {' '.join(args)} failed:\n{done.stderr}"

    def down(self) -> None:
        """Shut the server down (fast mode: every session is cut); it stays down until
        :meth:`up`."""
        self._pg("down")
        self.running = False

    def up(self) -> None:
        """Start the server again, at the same URL."""
        self._pg("up")
        self.running = True


def _env_without_the_suite_cluster() -> dict[str, str]:
    # Inside `scripts/pg run` the suite's own cluster is in the environment: never touch it.
    return {k: v for k, v in os.environ.items() if k != "SQLRESULTS_PG_DIR"}


@pytest.fixture(scope="session")
def _private_server() -> Iterator[PrivateServer]:
    """One private PostgreSQL server per test process, migrated, deleted at the end."""
    if not INITDB.exists() and not os.environ.get("SQLRESULTS_REQUIRE_POSTGRES"):
        pytest.skip(f"PostgreSQL server binaries not installed ({INITDB} is missing)")
    started = subprocess.run(
        [str(PG_SCRIPT), "start"],
        env=_env_without_the_suite_cluster(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert started.returncode == 0, f"scripts/pg start failed:\n{started.stderr}"
    # Lines of the form: export NAME='value'
    exports = dict(shlex.split(line)[1].split("=", 1) for line in started.stdout.splitlines())
    url = exports["SQLRESULTS_TEST_POSTGRES_URL"]
    server = PrivateServer(url, Path(exports["SQLRESULTS_PG_DIR"]))
    try:
        database = Database(url, auto_migrate=True)
        database.ensure_schema()
        database.close()
        yield server
    finally:
        server._pg("stop")


@pytest.fixture
def private_server(_private_server: PrivateServer) -> Iterator[PrivateServer]:
    """A migrated PostgreSQL server that the test may shut down (:meth:`PrivateServer.down`)
    and start again; it is running when the test starts and is started again after it. Tests
    using it are PostgreSQL-only (mark them ``postgres``) and, as they restart a server, ``slow``;
    use ``namespace`` to keep them apart."""
    yield _private_server
    if not _private_server.running:
        _private_server.up()


class Counter:
    """Counts calls, thread-safely; tasks close over one to show whether they ran."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            self.calls += 1
            return self.calls


@pytest.fixture
def default_store(database_url: str, namespace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the default store (``ResultStore()``, ``transaction(key=...)`` without a store, and
    tasks and flows) at the backend under test, in this test's own namespace, as Prefect's tests
    point the default storage at a temporary directory."""
    monkeypatch.setenv("SQLRESULTS_DATABASE_URL", database_url)
    monkeypatch.setenv("SQLRESULTS_NAMESPACE", namespace)


@pytest.fixture
def pipeline(default_store: None, database_url: str, namespace: str) -> ResultStore:
    """Point the default store of tasks and flows at the test database and namespace
    (``default_store``); return a store to look at what they wrote."""
    return ResultStore(result_storage=database_url, namespace=namespace)
