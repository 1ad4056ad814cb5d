"""Tests for sqlresults.cli: ``sqlresults migrate …`` and ``sqlresults sweep``.

Commands run in-process through click's CliRunner, except one test that runs the installed
console script and ``python -m sqlresults`` for real.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from importlib.metadata import version
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from sqlresults import migrations
from sqlresults.cli import cli
from sqlresults.database import Database
from sqlresults.errors import RecordNotFoundError
from sqlresults.results import ResultStore

PASSWORD = "s3cret"
UNREACHABLE_URL = f"postgresql+psycopg://user:{PASSWORD}@127.0.0.1:1/db"
NEWER_REVISION = "ffffffffffff"
REVISION_1 = "4f0c2a9d1b7e"  # before sqlresults_records.provenance


def run(*args: str) -> Result:
    """Invoke the ``sqlresults`` command in-process, under its real name (as ``main`` does)."""
    return CliRunner().invoke(cli, list(args), prog_name="sqlresults")


def assert_ok(result: Result) -> str:
    """The command exited 0; return its output."""
    assert result.exit_code == 0, result.output
    assert result.exception is None
    return result.output


def assert_one_line_error(result: Result) -> str:
    """The command failed with exit status 1 and a one-line message, not a traceback."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ")
    return lines[0]


def table_names(url: str) -> set[str]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def schema_revision(url: str) -> str | None:
    database = Database(url, auto_migrate=False)
    try:
        return database.schema_revision()
    finally:
        database.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """The URL of a SQLite file that does not exist yet."""
    return f"sqlite:///{tmp_path / 'cli' / 'new.db'}"


@pytest.fixture
def head() -> str:
    """The newest revision of the migration tree."""
    return migrations.head_revision()


class TestMigrate:
    def test_migrate_creates_the_schema(self, empty_database_url: str, head: str) -> None:
        """``migrate`` on an empty database upgrades it to head and says so, naming the
        database."""
        output = assert_ok(run("--url", empty_database_url, "migrate"))

        assert f"Upgraded from (empty) to {head}." in output
        assert f"Database: {make_url(empty_database_url)}" in output
        assert schema_revision(empty_database_url) == head

    def test_migrate_twice_has_nothing_to_do(self, empty_database_url: str, head: str) -> None:
        """A second ``migrate`` finds the schema at head and changes nothing."""
        assert_ok(run("--url", empty_database_url, "migrate"))

        output = assert_ok(run("--url", empty_database_url, "migrate"))

        assert f"Already at revision {head}; nothing to do." in output
        assert "Upgraded" not in output

    def test_current_at_head(self, database_url: str, head: str) -> None:
        """``migrate current`` shows the revision and marks it as head."""
        output = assert_ok(run("--url", database_url, "migrate", "current"))

        assert f"Revision: {head} (head)" in output

    def test_current_on_an_empty_database(self, empty_database_url: str) -> None:
        """``migrate current`` on a database sqlresults never migrated says "none" and how to
        fix it, and creates no table."""
        output = assert_ok(run("--url", empty_database_url, "migrate", "current"))

        assert "Revision: none" in output
        assert "run: sqlresults migrate" in output
        assert table_names(empty_database_url) == set()

    def test_history_lists_every_revision(self) -> None:
        """``migrate history`` lists each revision with its message, the head marked, the
        first one going down to base."""
        output = assert_ok(run("migrate", "history"))

        steps = migrations.history()
        for step in steps:
            assert step.revision in output
            assert step.message in output
        assert f"{steps[0].revision} (head)" in output
        assert "(base)" in output

    def test_downgrade_to_base_and_back(self, empty_database_url: str, head: str) -> None:
        """``migrate downgrade base`` drops the schema (``current`` then says none) and
        ``migrate upgrade head`` brings it back."""
        assert_ok(run("--url", empty_database_url, "migrate"))

        output = assert_ok(run("--url", empty_database_url, "migrate", "downgrade", "base"))
        assert f"Downgraded from {head} to (empty)." in output
        assert "sqlresults_records" not in table_names(empty_database_url)

        output = assert_ok(run("--url", empty_database_url, "migrate", "current"))
        assert "Revision: none" in output

        output = assert_ok(run("--url", empty_database_url, "migrate", "upgrade", "head"))
        assert f"Upgraded from (empty) to {head}." in output
        assert schema_revision(empty_database_url) == head

    def test_migrate_from_revision_1(self, empty_database_url: str, head: str) -> None:
        """On a database an older sqlresults left at revision 1, ``current`` says to migrate,
        and ``migrate`` upgrades it to head and says from where."""
        assert_ok(run("--url", empty_database_url, "migrate", "upgrade", REVISION_1))

        output = assert_ok(run("--url", empty_database_url, "migrate", "current"))
        assert f"Revision: {REVISION_1} (head is {head}; run: sqlresults migrate)" in output

        output = assert_ok(run("--url", empty_database_url, "migrate"))
        assert f"Upgraded from {REVISION_1} to {head}." in output
        assert schema_revision(empty_database_url) == head

    def test_downgrade_one_revision_keeps_the_records(
        self, empty_database_url: str, head: str, namespace: str
    ) -> None:
        """``migrate downgrade`` to revision 1 says so and keeps the records; ``migrate``
        brings the database back to head, where they still read."""
        assert_ok(run("--url", empty_database_url, "migrate"))
        database = Database(empty_database_url, auto_migrate=False)
        try:
            ResultStore(result_storage=database, namespace=namespace).write("kept", key="k")
        finally:
            database.close()

        output = assert_ok(run("--url", empty_database_url, "migrate", "downgrade", REVISION_1))
        assert f"Downgraded from {head} to {REVISION_1}." in output
        assert_ok(run("--url", empty_database_url, "migrate"))

        database = Database(empty_database_url, auto_migrate=False)
        try:
            assert ResultStore(result_storage=database, namespace=namespace).read("k").result == (
                "kept"
            )
        finally:
            database.close()

    def test_upgrade_defaults_to_head(self, sqlite_url: str, head: str) -> None:
        """``migrate upgrade`` without a revision goes to head."""
        output = assert_ok(run("--url", sqlite_url, "migrate", "upgrade"))

        assert f"Upgraded from (empty) to {head}." in output

    @pytest.mark.parametrize("command", ["upgrade", "downgrade"])
    def test_unknown_revision_is_a_one_line_error(self, sqlite_url: str, command: str) -> None:
        """An unknown revision fails with a one-line error naming it, not a traceback."""
        line = assert_one_line_error(run("--url", sqlite_url, "migrate", command, "nosuchrev"))

        assert "nosuchrev" in line


class TestNewerSchema:
    """A database migrated by a newer sqlresults (its revision is unknown here): the fix is to
    upgrade sqlresults, and ``sqlresults migrate`` cannot help."""

    @pytest.fixture
    def newer_url(self, empty_database_url: str) -> str:
        """A database stamped with a revision this version of sqlresults does not know."""
        engine = create_engine(empty_database_url, poolclass=NullPool)
        try:
            with engine.begin() as connection:
                connection.exec_driver_sql(
                    "CREATE TABLE sqlresults_alembic_version "
                    "(version_num VARCHAR(32) NOT NULL PRIMARY KEY)"
                )
                connection.exec_driver_sql(
                    f"INSERT INTO sqlresults_alembic_version VALUES ('{NEWER_REVISION}')"
                )
        finally:
            engine.dispose()
        return empty_database_url

    def test_current_says_to_upgrade_sqlresults(self, newer_url: str) -> None:
        """``migrate current`` shows the unknown revision and tells the user to upgrade
        sqlresults, not to run ``sqlresults migrate`` (which cannot go forward from it)."""
        output = assert_ok(run("--url", newer_url, "migrate", "current"))

        assert f"Revision: {NEWER_REVISION}" in output
        assert "upgrade sqlresults" in output.lower()
        assert "run: sqlresults migrate" not in output

    def test_migrate_says_to_upgrade_sqlresults(self, newer_url: str) -> None:
        """``migrate`` refuses in one line that names the revision and says to upgrade
        sqlresults, and leaves the database as it was."""
        line = assert_one_line_error(run("--url", newer_url, "migrate"))

        assert NEWER_REVISION in line
        assert "upgrade sqlresults" in line.lower()
        assert table_names(newer_url) == {"sqlresults_alembic_version"}


class TestOfflineSQL:
    @pytest.mark.parametrize(
        "args",
        [("migrate", "--sql"), ("migrate", "upgrade", "--sql"), ("migrate", "--sql", "upgrade")],
        ids=["migrate", "upgrade", "group-flag"],
    )
    def test_prints_ddl_without_touching_the_database(
        self, sqlite_url: str, args: tuple[str, ...]
    ) -> None:
        """``--sql`` prints the DDL for a DBA and neither creates nor migrates the file; the
        output is pure SQL, ready to pipe into a client."""
        output = assert_ok(run("--url", sqlite_url, *args))

        assert "CREATE TABLE sqlresults_records" in output
        assert "CREATE TABLE sqlresults_locks" in output
        assert "CREATE TABLE sqlresults_alembic_version" in output
        assert "Database:" not in output
        assert not Path(make_url(sqlite_url).database or "").exists()

    def test_script_from_an_older_revision(self, sqlite_url: str) -> None:
        """``migrate upgrade OLD:head --sql`` prints only the steps after OLD (for a DBA whose
        database is at revision 1: add the provenance column), touching nothing."""
        output = assert_ok(
            run("--url", sqlite_url, "migrate", "upgrade", f"{REVISION_1}:head", "--sql")
        )

        assert "ALTER TABLE sqlresults_records ADD COLUMN provenance TEXT" in output
        assert "CREATE TABLE" not in output
        assert not Path(make_url(sqlite_url).database or "").exists()

    def test_postgresql_ddl_never_shows_the_password(self) -> None:
        """For a PostgreSQL URL the DDL is PostgreSQL's, nothing connects (the host does not
        exist) and the password appears nowhere."""
        result = run("--url", f"postgresql+psycopg://u:{PASSWORD}@h.invalid/db", "migrate", "--sql")

        output = assert_ok(result)
        assert "CREATE TABLE sqlresults_records" in output
        assert "BYTEA" in output
        assert PASSWORD not in output


class TestPasswordsAreMasked:
    @pytest.fixture
    def url_with_password(self, database_url: str) -> str:
        """The migrated test database's URL with a password added (the test server's trust
        authentication accepts any password)."""
        return make_url(database_url).set(password=PASSWORD).render_as_string(hide_password=False)

    @pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
    @pytest.mark.parametrize(
        "args",
        [("migrate",), ("migrate", "current"), ("migrate", "upgrade"), ("sweep",)],
        ids=["migrate", "current", "upgrade", "sweep"],
    )
    def test_output_masks_the_password(
        self, url_with_password: str, namespace: str, args: tuple[str, ...]
    ) -> None:
        """Commands that name the database show its URL with ``***`` for the password."""
        extra = ("--namespace", namespace) if args == ("sweep",) else ()
        output = assert_ok(run("--url", url_with_password, *args, *extra))

        assert ":***@" in output
        assert PASSWORD not in output

    @pytest.mark.parametrize(
        "args",
        [("migrate",), ("migrate", "current"), ("migrate", "downgrade", "base"), ("sweep",)],
        ids=["migrate", "current", "downgrade", "sweep"],
    )
    def test_unreachable_server_is_a_one_line_error(self, args: tuple[str, ...]) -> None:
        """A server that refuses connections gives exit status 1 and a one-line error that
        names the database with its password masked."""
        line = assert_one_line_error(run("--url", UNREACHABLE_URL, *args))

        assert PASSWORD not in line
        assert "user:***@127.0.0.1:1/db" in line

    @pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
    @pytest.mark.parametrize("parameter", ["password", "sslpassword"])
    def test_output_masks_a_password_parameter(
        self, database_url: str, parameter: str, namespace: str
    ) -> None:
        """A password or sslpassword given as a query parameter of --url is masked in the
        output (the test server's trust authentication accepts any password, and a unix
        socket uses no SSL)."""
        url = make_url(database_url).update_query_dict({parameter: PASSWORD})
        for args in (("migrate", "current"), ("sweep", "--namespace", namespace)):
            output = assert_ok(run("--url", url.render_as_string(hide_password=False), *args))
            assert PASSWORD not in output
            assert "***" in output

    @pytest.mark.parametrize(
        "url",
        [
            f"postgresql+psycopg://user@127.0.0.1:1/db?password={PASSWORD}",
            f"postgresql+psycopg://user@127.0.0.1:1/db?sslpassword={PASSWORD}",
            f"postgresql+psycopg://user@127.0.0.1:1/db?conninfo=password%3D{PASSWORD}",
        ],
        ids=["password", "sslpassword", "conninfo"],
    )
    def test_unreachable_server_with_a_password_parameter(self, url: str) -> None:
        """A server that refuses connections, with the password in a query parameter, gives a
        one-line error that does not show it."""
        line = assert_one_line_error(run("--url", url, "migrate", "current"))
        assert PASSWORD not in line
        assert "***" in line

    def test_unparsable_url_is_a_one_line_error(self) -> None:
        """A URL that cannot be parsed is refused in one line, without echoing it (it may hold
        a password)."""
        line = assert_one_line_error(run("--url", f"not a url {PASSWORD}", "migrate"))

        assert "Cannot parse the database URL" in line
        assert PASSWORD not in line


class TestUnusableSQLiteLocation:
    """SQLite-only: the default file cannot be created."""

    @pytest.mark.parametrize("how", ["SQLRESULTS_HOME", "--url"])
    def test_migrate_prints_one_line_on_stderr(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
    ) -> None:
        """`sqlresults migrate` where the SQLite file cannot be created (SQLRESULTS_HOME, or
        the --url's directory, below a regular file) exits 1 with one line on stderr naming
        the file and what to set, and no traceback."""
        blocker = tmp_path / "a-regular-file"
        blocker.write_text("in the way")
        path = blocker / "home" / "results.db"
        if how == "--url":
            result = CliRunner().invoke(
                cli, ["--url", f"sqlite:///{path}", "migrate"], prog_name="sqlresults"
            )
        else:
            monkeypatch.setenv("SQLRESULTS_HOME", str(path.parent))
            result = CliRunner().invoke(cli, ["migrate"], prog_name="sqlresults")
        line = assert_one_line_error(result)
        assert result.stdout == ""
        assert result.stderr.strip() == line
        assert str(path) in line
        assert "SQLRESULTS_DATABASE_URL" in line
        assert "SQLRESULTS_HOME" in line


class TestSweep:
    def test_deletes_expired_records_and_reports_the_count(
        self, database_url: str, namespace: str
    ) -> None:
        """``sweep`` deletes the namespace's expired records, reports how many, and keeps
        records that have not expired or never expire."""
        database = Database(database_url)
        try:
            store = ResultStore(result_storage=database, namespace=namespace)
            store.write("old", key="expired-1", expiration=timedelta(hours=-1))
            store.write("old", key="expired-2", expiration=timedelta(hours=-1))
            store.write("fresh", key="fresh", expiration=timedelta(hours=1))
            store.write("forever", key="forever")

            output = assert_ok(run("--url", database_url, "sweep", "--namespace", namespace))

            assert f"Deleted 2 expired records from namespace {namespace!r}" in output
            for key in ("expired-1", "expired-2"):
                with pytest.raises(RecordNotFoundError):
                    store.read(key, include_expired=True)
            assert store.read("fresh").result == "fresh"
            assert store.read("forever").result == "forever"
        finally:
            database.close()

    def test_singular_and_zero(self, database_url: str, namespace: str) -> None:
        """One deleted record is reported in the singular; a second sweep deletes none."""
        database = Database(database_url)
        try:
            store = ResultStore(result_storage=database, namespace=namespace)
            store.write("old", key="expired", expiration=timedelta(hours=-1))

            first = assert_ok(run("--url", database_url, "sweep", "--namespace", namespace))
            second = assert_ok(run("--url", database_url, "sweep", "--namespace", namespace))

            assert "Deleted 1 expired record from" in first
            assert "Deleted 0 expired records from" in second
        finally:
            database.close()

    def test_other_namespaces_are_untouched(self, database_url: str, namespace: str) -> None:
        """``sweep --namespace A`` leaves namespace B's expired records alone."""
        other = f"{namespace}-other"
        database = Database(database_url)
        try:
            store = ResultStore(result_storage=database, namespace=other)
            store.write("old", key="expired", expiration=timedelta(hours=-1))

            assert_ok(run("--url", database_url, "sweep", "--namespace", namespace))

            assert store.read("expired", include_expired=True).result == "old"
        finally:
            database.close()

    def test_never_migrates_implicitly(self, empty_database_url: str) -> None:
        """``sweep`` on a database without the schema fails in one line naming
        ``sqlresults migrate`` and creates no table, even for SQLite: the admin decides when to
        migrate."""
        line = assert_one_line_error(run("--url", empty_database_url, "sweep"))

        assert "sqlresults migrate" in line
        assert table_names(empty_database_url) == set()


class TestOptions:
    def test_url_defaults_to_the_environment(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, head: str
    ) -> None:
        """Without ``--url`` the database is SQLRESULTS_DATABASE_URL."""
        path = tmp_path / "from-env.db"
        monkeypatch.setenv("SQLRESULTS_DATABASE_URL", f"sqlite:///{path}")

        output = assert_ok(run("migrate"))

        assert str(path) in output
        assert schema_revision(f"sqlite:///{path}") == head

    def test_url_option_wins_over_the_environment(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """``--url`` is used instead of SQLRESULTS_DATABASE_URL."""
        monkeypatch.setenv("SQLRESULTS_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")

        assert_ok(run("--url", f"sqlite:///{tmp_path / 'option.db'}", "migrate"))

        assert (tmp_path / "option.db").exists()
        assert not (tmp_path / "env.db").exists()

    def test_default_database_is_in_sqlresults_home(self, tmp_path: Path, head: str) -> None:
        """With neither, the database is results.db in SQLRESULTS_HOME (here set by the test
        fixtures to a temporary directory)."""
        output = assert_ok(run("migrate"))

        path = tmp_path / "home" / "results.db"
        assert str(path) in output
        assert schema_revision(f"sqlite:///{path}") == head

    @pytest.mark.parametrize("flag", ["--help", "-h"])
    def test_help(self, flag: str) -> None:
        """``--help`` (or ``-h``) lists the commands."""
        output = assert_ok(run(flag))

        assert "migrate" in output
        assert "sweep" in output
        assert "--url" in output

    def test_migrate_help(self) -> None:
        """``migrate --help`` lists its subcommands and the --sql flag."""
        output = assert_ok(run("migrate", "--help"))

        for name in ("current", "history", "upgrade", "downgrade", "--sql"):
            assert name in output

    def test_version(self) -> None:
        """``--version`` prints the installed version."""
        output = assert_ok(run("--version"))

        assert output.strip() == f"sqlresults, version {version('sqlresults')}"


class TestEntryPoints:
    def test_console_script_and_module(self, tmp_path: Path, head: str) -> None:
        """The installed ``sqlresults`` console script and ``python -m sqlresults`` both run
        the CLI in a real process, with exit status 0 on success and 1 (and no traceback) on
        an error."""
        url = f"sqlite:///{tmp_path / 'real.db'}"
        script = Path(sys.executable).parent / "sqlresults"
        module = [sys.executable, "-m", "sqlresults"]

        migrate = subprocess.run(
            [str(script), "--url", url, "migrate"], capture_output=True, text=True, check=False
        )
        current = subprocess.run(
            [*module, "--url", url, "migrate", "current"],
            capture_output=True,
            text=True,
            check=False,
        )
        version_output = subprocess.run(
            [str(script), "--version"], capture_output=True, text=True, check=False
        )
        failing = subprocess.run(
            [*module, "--url", url, "migrate", "upgrade", "nosuchrev"],
            capture_output=True,
            text=True,
            check=False,
        )

        assert migrate.returncode == 0, migrate.stderr
        assert f"Upgraded from (empty) to {head}." in migrate.stdout
        assert current.returncode == 0, current.stderr
        assert f"Revision: {head} (head)" in current.stdout
        assert version_output.stdout.strip() == f"sqlresults, version {version('sqlresults')}"
        assert failing.returncode == 1
        assert failing.stderr.startswith("Error: ")
        assert "Traceback" not in failing.stderr
