"""``sqlresults doctor``: check the setup and say in plain words what to fix.

Checks, in order (later ones need the earlier ones): the URL and its driver; for SQLite the
file, the permissions of the file, its directory and its log files, the SQLite version and the
journal mode; the connection and the schema revision; for PostgreSQL the server version, the
grants sqlresults needs, and the clock skew against the server (expirations are computed here
and judged by the server's clock). Read-only: it creates nothing. Exit status 1 when something
needs fixing.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

import click
from rich.markup import escape
from rich.table import Table

from sqlresults import admin, migrations
from sqlresults.cli._app import EXIT_FAILURE, Env, cli, common_options, env_of, print_json
from sqlresults.database import Database
from sqlresults.dialects import MIN_SQLITE_VERSION
from sqlresults.errors import SQLResultsError
from sqlresults.settings import get_settings

__all__ = ["doctor"]

# Beyond this, expirations written from this machine are off by enough to notice.
_SKEW_LIMIT = 2.0

# What pipelines need; CREATE on the schema only matters for `sqlresults migrate`.
_NEEDED = 9


@dataclass(frozen=True)
class Finding:
    """One check's outcome: ``ok``, ``info``, ``warn`` or ``fail`` (to fix)."""

    status: str
    check: str
    detail: str


#: Where a check reports what it found.
Add = Callable[[Finding], None]


@cli.command()
@common_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def doctor(ctx: click.Context, as_json: bool) -> None:
    """Check the URL, driver, schema, SQLite journal mode and permissions, PostgreSQL grants
    and clock skew, and say what to fix (exit status 1 when something needs fixing)."""
    env = env_of(ctx)
    findings = list(_diagnose(env))
    healthy = all(finding.status != "fail" for finding in findings)
    if as_json:
        print_json(
            {
                "ok": healthy,
                "checks": [
                    {"status": f.status, "check": f.check, "detail": f.detail} for f in findings
                ],
            }
        )
    else:
        table = Table.grid(padding=(0, 2))
        table.add_column()
        table.add_column(no_wrap=True)
        table.add_column(overflow="fold")
        marks = {"ok": "ok", "info": "--", "warn": "[yellow]warn[/]", "fail": "[red bold]FIX[/]"}
        for finding in findings:
            table.add_row(marks[finding.status], finding.check, escape(finding.detail))
        env.out.print(table)
        problems = sum(finding.status == "fail" for finding in findings)
        env.out.print(
            "Nothing to fix."
            if healthy
            else f"{problems} thing{'s' if problems > 1 else ''} to fix (marked FIX above)."
        )
    if not healthy:
        ctx.exit(EXIT_FAILURE)


def _diagnose(env: Env) -> list[Finding]:
    findings: list[Finding] = []
    add = findings.append
    try:
        database = env.database(must_exist=False)
    except SQLResultsError as exc:
        add(Finding("fail", "url", str(exc)))
        return findings
    dialect = database.dialect
    add(Finding("ok", "url", database.display_url))
    add(Finding("ok", "driver", _driver(database)))
    if dialect.is_sqlite and not _sqlite_files(database, add):
        return findings
    try:
        revision = database.schema_revision()
    except SQLResultsError as exc:
        add(Finding("fail", "connection", str(exc)))
        return findings
    add(Finding("ok", "connection", "connected"))
    if not _schema(revision, add):
        add(Finding("info", "more checks", "the rest are made once the schema is at head"))
        return findings
    try:
        if dialect.is_sqlite:
            _journal_mode(database, add)
        else:
            _postgresql(database, add)
    except SQLResultsError as exc:
        add(Finding("fail", "connection", str(exc)))
    signing = get_settings().signing_key is not None
    add(
        Finding(
            "info",
            "signing key",
            "set: records are signed, and unsigned or altered ones refused"
            if signing
            else "not set (SQLRESULTS_SIGNING_KEY): records carry a checksum, no signature",
        )
    )
    return findings


def _driver(database: Database) -> str:
    if database.dialect.is_sqlite:
        return f"sqlite3 (SQLite {sqlite3.sqlite_version})"
    name = database.url.get_driver_name()
    try:
        return f"{name} {version(name)}"
    except PackageNotFoundError:
        return name


def _sqlite_files(database: Database, add: Add) -> bool:
    """Check the SQLite file and its neighbours; False if there is nothing to connect to."""
    if sqlite3.sqlite_version_info < MIN_SQLITE_VERSION:
        add(
            Finding(
                "fail",
                "library",
                f"SQLite {sqlite3.sqlite_version} is too old (3.35 or newer needed): upgrade "
                "Python or the system SQLite library",
            )
        )
    path = database.dialect.sqlite_path
    if path is None:
        add(Finding("info", "file", "an in-memory database: it is gone when the process ends"))
        return True
    if not path.is_file():
        add(
            Finding(
                "fail",
                "file",
                f"no database at {path}: create it with `sqlresults migrate`, or point --url "
                "(SQLRESULTS_DATABASE_URL) at the right file",
            )
        )
        return False
    problems = False
    directory = path.parent
    if not os.access(directory, os.W_OK | os.X_OK):
        problems = True
        add(
            Finding(
                "fail",
                "directory",
                f"{directory} is not writable by this user: SQLite creates the -wal and -shm "
                "files beside the database; make the directory writable (chmod/chown)",
            )
        )
    for candidate in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if candidate.exists() and not os.access(candidate, os.R_OK | os.W_OK):
            problems = True
            add(
                Finding(
                    "fail",
                    "permissions",
                    f"{candidate} is not readable and writable by this user: fix its "
                    "permissions (chmod/chown), or run as its owner",
                )
            )
    if not problems:
        add(Finding("ok", "file", f"{path}: the file and its directory are writable"))
    return True


def _schema(revision: str | None, add: Add) -> bool:
    """Check the schema revision; True when it is at head (the other checks need it)."""
    head = migrations.head_revision()
    if revision == head:
        add(Finding("ok", "schema", f"revision {revision} (head)"))
        return True
    if revision is None:
        add(Finding("fail", "schema", "no sqlresults schema: create it with `sqlresults migrate`"))
    elif not migrations.is_known_revision(revision):
        add(
            Finding(
                "fail",
                "schema",
                f"revision {revision} is newer than this sqlresults knows: upgrade sqlresults "
                "(pip install -U sqlresults)",
            )
        )
    else:
        add(
            Finding(
                "fail",
                "schema",
                f"revision {revision}, head is {head}: upgrade it with `sqlresults migrate`",
            )
        )
    return False


def _journal_mode(database: Database, add: Add) -> None:
    (mode,) = admin.dialect_facts(database, "journal_mode")
    if str(mode).lower() == "wal":
        add(Finding("ok", "journal mode", "WAL: readers never block the writer"))
    else:
        add(
            Finding(
                "warn",
                "journal mode",
                f"{mode}, not WAL: readers and the writer block each other. WAL cannot be set "
                "on this file system (a network share?): keep the database on a local disk",
            )
        )


def _postgresql(database: Database, add: Add) -> None:
    (server_version,) = admin.dialect_facts(database, "server_version")
    add(Finding("ok", "server", f"PostgreSQL {server_version}"))
    row = admin.dialect_facts(database, "privileges")
    names = database.dialect.privilege_names()
    flags, user, schema = row[: len(names)], row[-2], row[-1]
    missing = [
        name for name, granted in zip(names[:_NEEDED], flags[:_NEEDED], strict=True) if not granted
    ]
    if missing:
        add(
            Finding(
                "fail",
                "grants",
                f"user {user} lacks {', '.join(missing)}: ask the DBA to grant them "
                f"(GRANT SELECT, INSERT, UPDATE, DELETE ON sqlresults_records, "
                f"sqlresults_locks TO {user}; GRANT SELECT ON sqlresults_alembic_version "
                f"TO {user})",
            )
        )
    else:
        add(Finding("ok", "grants", f"user {user} may read and write sqlresults' tables"))
    if not flags[_NEEDED]:
        add(
            Finding(
                "info",
                "migrations",
                f"user {user} cannot create tables in schema {schema}: a DBA runs "
                "`sqlresults migrate` (or applies `sqlresults migrate --sql`) on upgrades",
            )
        )
    skew = admin.clock_skew(database)
    if abs(skew) > _SKEW_LIMIT:
        side = "ahead of" if skew > 0 else "behind"
        add(
            Finding(
                "fail",
                "clock",
                f"the server's clock is {abs(skew):.1f} s {side} this machine's: expirations "
                "written here are off by as much. Synchronize the clocks (NTP)",
            )
        )
    else:
        add(Finding("ok", "clock", f"within {_SKEW_LIMIT:g} s of the server's ({skew:+.2f} s)"))
