"""The developer script ``scripts/pg`` gives the test suite a real, throwaway PostgreSQL 15, and
tests a server they may shut down and start again."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import PrivateServer

REPO = Path(__file__).resolve().parent.parent
PG_SCRIPT = REPO / "scripts" / "pg"
INITDB = Path(os.environ.get("PG_BIN") or "/usr/lib/postgresql/15/bin") / "initdb"


def _parse_exports(stdout: str) -> dict[str, str]:
    """Turn the ``export NAME='value'`` lines printed by ``scripts/pg start`` into a dict."""
    exports: dict[str, str] = {}
    for line in stdout.splitlines():
        words = shlex.split(line)
        assert len(words) == 2, f"not an export line: {line!r}"
        assert words[0] == "export", f"not an export line: {line!r}"
        name, sep, value = words[1].partition("=")
        assert sep, f"not an export line: {line!r}"
        exports[name] = value
    return exports


def _conninfo_params(url: str) -> dict[str, str]:
    """libpq connection parameters for a ``postgresql+psycopg://user@/db?host=DIR&port=N`` URL."""
    parts = urlsplit(url)
    assert parts.scheme == "postgresql+psycopg"
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    return {
        "user": parts.username or "",
        "dbname": parts.path.lstrip("/"),
        "host": query["host"],
        "port": query["port"],
    }


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.skipif(
    not INITDB.exists() and not os.environ.get("SQLRESULTS_REQUIRE_POSTGRES"),
    reason=f"PostgreSQL server binaries not installed ({INITDB} is missing)",
)
def test_pg_start_serves_postgres_15_and_stop_removes_cluster() -> None:
    """`scripts/pg start` prints exports for a running PostgreSQL 15 with the test database.

    Connecting to the printed URL over its unix socket reaches database ``sqlresults_test`` as
    user ``postgres`` on PostgreSQL 15; `scripts/pg stop DIR` shuts the server down and deletes
    the cluster directory.
    """
    import psycopg
    from psycopg.conninfo import make_conninfo

    # Inside `scripts/pg run` the suite's own cluster is in the environment: never touch it.
    env = {k: v for k, v in os.environ.items() if k != "SQLRESULTS_PG_DIR"}
    started = subprocess.run(
        [str(PG_SCRIPT), "start"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert started.returncode == 0, f"scripts/pg start failed:\n{started.stderr}"
    exports = _parse_exports(started.stdout)
    assert set(exports) == {"SQLRESULTS_TEST_POSTGRES_URL", "SQLRESULTS_PG_DIR"}
    cluster_dir = Path(exports["SQLRESULTS_PG_DIR"])
    try:
        assert cluster_dir.is_dir()
        params = _conninfo_params(exports["SQLRESULTS_TEST_POSTGRES_URL"])
        assert params["user"] == "postgres"
        assert params["dbname"] == "sqlresults_test"
        assert Path(params["host"]) == cluster_dir
        conninfo = make_conninfo(**params, connect_timeout=10)
        with psycopg.connect(conninfo) as conn:
            row = conn.execute("SELECT version(), current_database()").fetchone()
        assert row is not None
        version, database = row
        assert "PostgreSQL 15" in version
        assert database == "sqlresults_test"
    finally:
        stopped = subprocess.run(
            [str(PG_SCRIPT), "stop", str(cluster_dir)],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert stopped.returncode == 0, f"scripts/pg stop failed:\n{stopped.stderr}"
    assert not cluster_dir.exists()


@pytest.mark.slow
@pytest.mark.postgres
def test_pg_down_and_up_restart_the_server_at_the_same_url(private_server: PrivateServer) -> None:
    """`scripts/pg down DIR` shuts the server down but keeps the cluster, and connecting fails;
    `scripts/pg up DIR` starts it again at the URL `start` printed, with its data."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    conninfo = make_conninfo(**_conninfo_params(private_server.url), connect_timeout=10)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS kept (x int)")
    private_server.down()
    assert (private_server.directory / "data").is_dir()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(conninfo).close()
    private_server.up()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass('kept') IS NOT NULL").fetchone() == (True,)
        conn.execute("DROP TABLE kept")
