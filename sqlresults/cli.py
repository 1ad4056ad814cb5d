"""The ``sqlresults`` command (also ``python -m sqlresults``).

``sqlresults migrate`` upgrades the schema to head; ``--sql`` prints the DDL for a DBA instead;
``current``, ``history``, ``upgrade REV`` and ``downgrade REV`` do what their names say.
``sqlresults sweep`` deletes expired records and dead locks.

The database URL comes from ``--url`` or ``SQLRESULTS_DATABASE_URL``; it is only ever printed
with its password masked.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from sqlresults.database import Database
from sqlresults.errors import SQLResultsError
from sqlresults.settings import get_settings

__all__ = ["cli", "main"]

F = TypeVar("F", bound=Callable[..., Any])

_URL_HELP = "Database URL (default: SQLRESULTS_DATABASE_URL, else ~/.sqlresults/results.db)."


def _reports_errors(command: F) -> F:
    """Turn sqlresults errors into a one-line message and exit status 1, not a traceback."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except SQLResultsError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper  # type: ignore[return-value]


def _url(ctx: click.Context) -> str:
    url: str | None = ctx.obj.get("url")
    return url if url is not None else get_settings().url


def _database(ctx: click.Context) -> Database:
    # The admin decides when to migrate: never migrate implicitly from the CLI.
    return Database(_url(ctx), auto_migrate=False)


def _console(ctx: click.Context) -> Console:
    console: Console = ctx.obj["console"]
    return console


@click.group(name="sqlresults", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", envvar=None, default=None, help=_URL_HELP)
@click.version_option(package_name="sqlresults", prog_name="sqlresults")
@click.pass_context
def cli(ctx: click.Context, url: str | None) -> None:
    """sqlresults: a transactional result store for Python pipelines."""
    ctx.ensure_object(dict)
    ctx.obj["url"] = url
    ctx.obj.setdefault("console", Console(highlight=False, soft_wrap=True))


@cli.group(invoke_without_command=True)
@click.option("--sql", is_flag=True, help="Print the SQL instead of running it (offline).")
@click.pass_context
@_reports_errors
def migrate(ctx: click.Context, sql: bool) -> None:
    """Create or upgrade the schema to the newest revision (the admin's entry point)."""
    if ctx.invoked_subcommand is not None:
        ctx.obj["sql"] = sql
        return
    _upgrade(ctx, "head", sql)


@migrate.command("upgrade")
@click.argument("revision", default="head")
@click.option("--sql", is_flag=True, help="Print the SQL instead of running it (offline).")
@click.pass_context
@_reports_errors
def upgrade_command(ctx: click.Context, revision: str, sql: bool) -> None:
    """Upgrade the schema to REVISION (default: head)."""
    _upgrade(ctx, revision, sql or ctx.obj.get("sql", False))


def _upgrade(ctx: click.Context, revision: str, sql: bool) -> None:
    from sqlresults import migrations

    console = _console(ctx)
    if sql:
        click.echo(migrations.upgrade_sql(_url(ctx), revision), nl=False)
        return
    database = _database(ctx)
    before = migrations.current_revision(database)
    migrations.upgrade(database, revision)
    after = migrations.current_revision(database)
    console.print(f"Database: {database.display_url}")
    if before == after:
        console.print(f"Already at revision {after}; nothing to do.")
    else:
        console.print(f"Upgraded from {before or '(empty)'} to {after}.")


@migrate.command("downgrade")
@click.argument("revision")
@click.pass_context
@_reports_errors
def downgrade_command(ctx: click.Context, revision: str) -> None:
    """Downgrade the schema to REVISION ("base" drops every sqlresults table)."""
    from sqlresults import migrations

    database = _database(ctx)
    before = migrations.current_revision(database)
    migrations.downgrade(database, revision)
    after = migrations.current_revision(database)
    console = _console(ctx)
    console.print(f"Database: {database.display_url}")
    console.print(f"Downgraded from {before or '(empty)'} to {after or '(empty)'}.")


@migrate.command("current")
@click.pass_context
@_reports_errors
def current_command(ctx: click.Context) -> None:
    """Show the revision the database is at."""
    from sqlresults import migrations

    database = _database(ctx)
    revision = migrations.current_revision(database)
    head = migrations.head_revision()
    console = _console(ctx)
    console.print(f"Database: {database.display_url}")
    if revision is None:
        console.print("Revision: none (no sqlresults schema; run: sqlresults migrate)")
    elif revision == head:
        console.print(f"Revision: {revision} (head)")
    elif not migrations.is_known_revision(revision):
        console.print(
            f"Revision: {revision} (unknown to this sqlresults, whose head is {head}: the "
            "database was migrated by a newer sqlresults; upgrade sqlresults)"
        )
    else:
        console.print(f"Revision: {revision} (head is {head}; run: sqlresults migrate)")


@migrate.command("history")
@click.pass_context
@_reports_errors
def history_command(ctx: click.Context) -> None:
    """List the schema revisions, newest first."""
    from sqlresults import migrations

    table = Table("revision", "down revision", "description")
    for step in migrations.history():
        label = f"{step.revision} (head)" if step.is_head else step.revision
        table.add_row(label, step.down_revision or "(base)", step.message)
    _console(ctx).print(table)


@cli.command()
@click.option(
    "--namespace", default=None, help="Namespace to sweep (default: SQLRESULTS_NAMESPACE)."
)
@click.option(
    "--batch-size", default=1000, show_default=True, help="Records deleted per statement."
)
@click.pass_context
@_reports_errors
def sweep(ctx: click.Context, namespace: str | None, batch_size: int) -> None:
    """Delete expired records and dead lock rows."""
    from sqlresults.results import ResultStore

    store = ResultStore(result_storage=_database(ctx), namespace=namespace)
    deleted = store.sweep_expired(batch_size=batch_size)
    _console(ctx).print(
        f"Deleted {deleted} expired record{'s' if deleted != 1 else ''} from namespace "
        f"{store.namespace!r} in {store.result_storage.display_url}."
    )


def main(argv: list[str] | None = None) -> None:
    """Run the command line interface."""
    cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="sqlresults")
