"""Tests for the ``sqlresults`` command: the group (help, options, exit statuses, secrets, never
creating a database by accident), ``migrate``, and every command once as a real process.

The other commands' own tests are in test_cli_records.py (ls, show, explain, rm),
test_cli_maintenance.py (sweep, locks, unlock, stats, vacuum, doctor) and test_cli_transfer.py
(export, import). Commands run in-process through click's CliRunner, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from cli_helpers import PASSWORD, UNREACHABLE_URL, assert_error, assert_ok, fill, run
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from sqlresults import migrations
from sqlresults.database import Database
from sqlresults.results import ResultStore

NEWER_REVISION = "ffffffffffff"
REVISION_1 = "4f0c2a9d1b7e"  # before sqlresults_records.provenance


def assert_one_line_error(result: object) -> str:
    """The command failed with exit status 1 and one line on stderr, not a traceback."""
    return assert_error(result, 1)  # type: ignore[arg-type]


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

        output = assert_ok(
            run("--url", empty_database_url, "migrate", "downgrade", "base", "--yes")
        )
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

        output = assert_ok(
            run("--url", empty_database_url, "migrate", "downgrade", REVISION_1, input="y\n")
        )
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

    @pytest.mark.parametrize("command", ["upgrade", "downgrade", "stamp"])
    def test_unknown_revision_is_a_one_line_error(self, sqlite_url: str, command: str) -> None:
        """An unknown revision fails with a one-line error naming it, not a traceback."""
        assert_ok(run("--url", sqlite_url, "migrate"))

        line = assert_one_line_error(
            run("--url", sqlite_url, "migrate", command, "nosuchrev", input="y\n")
        )

        assert "nosuchrev" in line


class TestMigrateSQLAndConfirmation:
    def test_sql_downgrade_touches_nothing(self, empty_database_url: str, head: str) -> None:
        """Defect (issue 9): ``migrate --sql downgrade base`` ignored --sql and dropped the
        tables. Now --sql is honoured: a downgrade that must read rows (the provenance one)
        cannot be printed and says so in one line, and one that can (from revision 1) prints
        its DROP TABLEs; either way the database keeps its tables and revision."""
        assert_ok(run("--url", empty_database_url, "migrate"))

        line = assert_one_line_error(
            run("--url", empty_database_url, "migrate", "--sql", "downgrade", "base")
        )
        printed = assert_ok(
            run("--url", empty_database_url, "migrate", "downgrade", f"{REVISION_1}:base", "--sql")
        )

        assert "run it against the database, not with --sql" in line
        assert "DROP TABLE sqlresults_records" in printed
        assert "sqlresults_records" in table_names(empty_database_url)
        assert schema_revision(empty_database_url) == head

    @pytest.mark.parametrize("answer", ["", "n\n", "\n"], ids=["no-answer", "n", "empty-line"])
    def test_downgrade_asks_and_no_is_the_default(
        self, empty_database_url: str, head: str, answer: str
    ) -> None:
        """``migrate downgrade`` asks first, on stderr; "n", an empty line or no answer at all
        (stdin closed) leave the database as it was, with exit status 1."""
        assert_ok(run("--url", empty_database_url, "migrate"))

        result = run("--url", empty_database_url, "migrate", "downgrade", "base", input=answer)

        assert result.exit_code == 1
        assert "drops every sqlresults table" in result.stderr
        assert "Downgrade cancelled; nothing changed." in result.stderr
        assert schema_revision(empty_database_url) == head

    def test_stamp_records_a_revision_without_migrating(
        self, empty_database_url: str, head: str
    ) -> None:
        """``migrate stamp REV`` writes the version table only (for tables a DBA created by
        hand); ``--sql`` prints that statement and touches nothing."""
        assert_ok(run("--url", empty_database_url, "migrate"))

        printed = assert_ok(
            run("--url", empty_database_url, "migrate", "stamp", REVISION_1, "--sql")
        )
        assert schema_revision(empty_database_url) == head
        output = assert_ok(run("--url", empty_database_url, "migrate", "stamp", REVISION_1))

        assert REVISION_1 in printed
        assert "sqlresults_alembic_version" in printed
        assert f"Stamped {REVISION_1} (was {head})" in output
        assert schema_revision(empty_database_url) == REVISION_1
        assert "sqlresults_records" in table_names(empty_database_url)


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
        database is at revision 1: add the provenance column, later ones' index changes and
        revision 4's copy of the locks into a WITHOUT ROWID table), touching nothing."""
        output = assert_ok(
            run("--url", sqlite_url, "migrate", "upgrade", f"{REVISION_1}:head", "--sql")
        )

        assert "ALTER TABLE sqlresults_records ADD COLUMN provenance TEXT" in output
        assert "CREATE TABLE sqlresults_" not in output  # neither table is created anew
        assert "ALTER TABLE _sqlresults_locks_new RENAME TO sqlresults_locks" in output
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
        [("migrate",), ("migrate", "current"), ("migrate", "downgrade", "base", "-y"), ("sweep",)],
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
            result = run("--url", f"sqlite:///{path}", "migrate")
        else:
            monkeypatch.setenv("SQLRESULTS_HOME", str(path.parent))
            result = run("migrate")
        line = assert_one_line_error(result)
        assert result.stdout == ""
        assert result.stderr.strip() == line
        assert str(path) in line
        assert "SQLRESULTS_DATABASE_URL" in line
        assert "SQLRESULTS_HOME" in line


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


class TestGroup:
    def test_no_command_prints_help_and_exits_0(self) -> None:
        """Defect (issue 9): ``sqlresults`` alone printed its help and exited 2. Help is an
        answer, not a usage error: it exits 0, listing every command."""
        output = assert_ok(run())

        assert "Usage: sqlresults" in output
        for command in COMMANDS:
            assert command in output

    @pytest.mark.parametrize("where", ["before", "after"])
    def test_url_and_namespace_go_before_or_after_the_command(
        self, database_url: str, namespace: str, store: ResultStore, where: str
    ) -> None:
        """``--url`` and ``--namespace`` work before the command and after it."""
        store.write(1, key="here")
        options = ("--url", database_url, "--namespace", namespace)
        args = (*options, "ls") if where == "before" else ("ls", *options)

        output = assert_ok(run(*args))

        assert "here" in output

    def test_the_option_after_the_command_wins(
        self, database_url: str, namespace: str, store: ResultStore
    ) -> None:
        """Given twice, the namespace after the command is the one used."""
        store.write(1, key="here")

        output = assert_ok(
            run("--namespace", "elsewhere", "ls", "--url", database_url, "--namespace", namespace)
        )

        assert "here" in output

    def test_namespace_defaults_to_the_setting(
        self, database_url: str, namespace: str, store: ResultStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without ``--namespace`` the namespace is SQLRESULTS_NAMESPACE."""
        store.write(1, key="here")
        monkeypatch.setenv("SQLRESULTS_NAMESPACE", namespace)

        assert "here" in assert_ok(run("--url", database_url, "ls"))

    @pytest.mark.parametrize(
        "args",
        [("ls", "--no-such-option"), ("show",), ("ls", "--sort", "colour"), ("rm",)],
        ids=["unknown-option", "missing-key", "bad-choice", "rm-nothing"],
    )
    def test_bad_usage_exits_2(self, database_url: str, args: tuple[str, ...]) -> None:
        """Bad usage (an unknown option, a missing argument, a bad choice, rm without keys)
        exits 2, with no traceback."""
        result = run("--url", database_url, *args)

        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        assert result.stdout == ""

    def test_a_bad_namespace_is_bad_usage(self, database_url: str) -> None:
        """A namespace that cannot be stored (a NUL in it) is refused in one line, exit 2."""
        line = assert_error(run("--url", database_url, "--namespace", "a\x00b", "ls"), 2)

        assert "namespace" in line.lower()

    @pytest.mark.parametrize(
        "args",
        [("show", "nope"), ("explain", "nope"), ("rm", "nope"), ("unlock", "nope", "--force")],
        ids=["show", "explain", "rm", "unlock"],
    )
    def test_unknown_key_exits_3(
        self, database_url: str, namespace: str, args: tuple[str, ...]
    ) -> None:
        """A key with no record (or, for unlock, no lock) exits 3 with one line naming it."""
        result = run("--url", database_url, "--namespace", namespace, *args)

        assert result.exit_code == 3, result.output
        assert "'nope'" in result.stderr
        assert "Traceback" not in result.output

    @pytest.mark.parametrize("args", [("ls",), ("stats",), ("sweep",), ("locks",)])
    def test_out_of_date_schema_names_migrate(
        self, empty_database_url: str, args: tuple[str, ...]
    ) -> None:
        """On a database without the schema, a command fails in one line that names
        ``sqlresults migrate``, and creates no table (the admin decides when to migrate)."""
        if empty_database_url.startswith("sqlite"):
            Path(make_url(empty_database_url).database or "").touch()

        line = assert_one_line_error(run("--url", empty_database_url, *args))

        assert "sqlresults migrate" in line
        assert table_names(empty_database_url) == set()


#: Every command, with arguments that need nothing to exist.
COMMANDS = [
    "ls",
    "show",
    "explain",
    "rm",
    "sweep",
    "locks",
    "unlock",
    "stats",
    "vacuum",
    "export",
    "import",
    "doctor",
    "migrate",
]


class TestNothingIsCreated:
    @pytest.mark.parametrize(
        "args",
        [
            ("migrate", "current"),
            ("migrate", "downgrade", "base", "--yes"),
            ("migrate", "stamp", "head"),
            ("ls",),
            ("show", "k"),
            ("explain", "k"),
            ("rm", "k"),
            ("sweep",),
            ("locks",),
            ("unlock", "k", "--force"),
            ("stats",),
            ("vacuum",),
            ("doctor",),
            ("export", "out"),
            ("import", "."),
        ],
        ids=lambda args: "-".join(args[:2]),
    )
    def test_a_mistyped_sqlite_path_creates_no_file(
        self, tmp_path: Path, args: tuple[str, ...]
    ) -> None:
        """Defect (issue 9): read-only commands (``migrate current``, ``sweep`` on a
        mistyped path) created the directory and an empty database file. Only ``migrate``
        (upgrade) creates a database: every other command leaves the path alone, and says
        there is no database there (``migrate current``: revision none; ``doctor``: what to
        fix)."""
        missing = tmp_path / "typo" / "results.db"

        result = run("--url", f"sqlite:///{missing}", *args)

        assert not missing.parent.exists()
        assert "Traceback" not in result.output
        if args == ("migrate", "current"):
            assert result.exit_code == 0
            assert "Revision: none (no database file at" in result.stdout
        elif args == ("doctor",):
            assert result.exit_code == 1
            assert "no database at" in result.stdout
        else:
            line = assert_one_line_error(result)
            assert f"There is no sqlresults database at {missing}" in line
            assert "sqlresults migrate" in line


class TestEntryPoints:
    def test_every_command_runs_as_a_real_process(self, tmp_path: Path, head: str) -> None:
        """The installed ``sqlresults`` script and ``python -m sqlresults`` run each command
        in a real process: exit status 0 on success, 1, 2 or 3 with one line on stderr (and no
        traceback) on failure, and ``--json`` output that parses as one JSON document."""
        url = f"sqlite:///{tmp_path / 'real.db'}"
        script = str(Path(sys.executable).parent / "sqlresults")
        module = [sys.executable, "-m", "sqlresults"]

        def call(*args: str, via: list[str] | None = None) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [*(via or [script]), *args],
                capture_output=True,
                text=True,
                check=False,
                stdin=subprocess.DEVNULL,
                timeout=60,
            )

        assert call("--version").stdout.strip() == f"sqlresults, version {version('sqlresults')}"
        assert call().returncode == 0
        migrate = call("--url", url, "migrate")
        assert migrate.returncode == 0, migrate.stderr
        assert f"Upgraded from (empty) to {head}." in migrate.stdout
        database = Database(url)
        try:
            fill(ResultStore(result_storage=database, namespace="default"))
        finally:
            database.close()
        exports = tmp_path / "exported"
        json_commands = [
            ("ls", "--all"),
            ("show", "reports/daily"),
            ("explain", "embed/1"),
            ("locks",),
            ("stats",),
            ("sweep", "--dry-run"),
            ("vacuum",),
            ("doctor",),
            ("unlock", "reports/weekly", "--force"),
            ("export", str(exports)),
            ("import", str(exports)),
            ("sweep",),
            ("rm", "reports/daily", "big", "--yes"),
        ]
        for args in json_commands:
            done = call("--url", url, *args, "--json")
            assert done.returncode == 0, (args, done.stderr)
            assert isinstance(json.loads(done.stdout), dict), args
        current = call("--url", url, "migrate", "current", via=module)
        assert f"Revision: {head} (head)" in current.stdout
        for args, status in [
            (("migrate", "upgrade", "nosuchrev"), 1),
            (("ls", "--sort", "colour"), 2),
            (("show", "nope"), 3),
            (("rm", "a-key", "another"), 3),
        ]:
            failing = call("--url", url, *args, via=module)
            assert failing.returncode == status, (args, failing.stderr)
            assert "Traceback" not in failing.stderr
            assert failing.stdout == ""
        failing = call("--url", url, "show", "nope")
        assert failing.stderr.startswith("Error: ")
        assert len(failing.stderr.strip().splitlines()) == 1
