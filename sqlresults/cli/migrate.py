"""``sqlresults migrate``: create, upgrade, downgrade and stamp the schema, or print the SQL.

``--sql`` (on ``migrate`` or on any subcommand) prints the SQL for a DBA and touches nothing:
nothing connects, nothing is created. A downgrade asks first unless ``--yes``: going to
``base`` drops every sqlresults table with its records. ``current`` and ``history`` only read,
and never create a database file.
"""

from __future__ import annotations

import click
from rich.table import Table

from sqlresults import migrations
from sqlresults.cli._app import EXIT_FAILURE, CommandError, cli, common_options, confirm, env_of

__all__ = ["migrate"]

_SQL_HELP = "Print the SQL instead of running it (nothing connects to the database)."


def _group_sql(ctx: click.Context) -> bool:
    # `migrate --sql SUBCOMMAND` and `migrate SUBCOMMAND --sql` mean the same.
    parent = ctx.parent
    return bool(parent is not None and parent.params.get("sql"))


@cli.group(invoke_without_command=True)
@common_options
@click.option("--sql", is_flag=True, help=_SQL_HELP)
@click.pass_context
def migrate(ctx: click.Context, sql: bool) -> None:
    """Create or upgrade the schema to the newest revision (the admin's entry point).

    The only command that creates a database (a SQLite file and its directory).
    """
    if ctx.invoked_subcommand is None:
        _upgrade(ctx, "head", sql)


@migrate.command("upgrade")
@common_options
@click.argument("revision", default="head")
@click.option("--sql", is_flag=True, help=_SQL_HELP)
@click.pass_context
def upgrade_command(ctx: click.Context, revision: str, sql: bool) -> None:
    """Upgrade the schema to REVISION (default: head; FROM:TO with --sql)."""
    _upgrade(ctx, revision, sql or _group_sql(ctx))


def _upgrade(ctx: click.Context, revision: str, sql: bool) -> None:
    env = env_of(ctx)
    if sql:
        click.echo(migrations.upgrade_sql(env.resolved_url, revision), nl=False)
        return
    database = env.database(must_exist=False)
    before = migrations.current_revision(database)
    migrations.upgrade(database, revision)
    after = migrations.current_revision(database)
    env.out.print(f"Database: {database.display_url}")
    if before == after:
        env.out.print(f"Already at revision {after}; nothing to do.")
    else:
        env.out.print(f"Upgraded from {before or '(empty)'} to {after}.")


@migrate.command("downgrade")
@common_options
@click.argument("revision")
@click.option("--sql", is_flag=True, help=_SQL_HELP + " Starts from head unless FROM:TO.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def downgrade_command(ctx: click.Context, revision: str, sql: bool, yes: bool) -> None:
    """Downgrade the schema to REVISION ("base" drops every sqlresults table and its records).

    Asks for confirmation first, unless --yes.
    """
    env = env_of(ctx)
    if sql or _group_sql(ctx):
        click.echo(migrations.downgrade_sql(env.resolved_url, revision), nl=False)
        return
    migrations.check_revision(revision)
    database = env.database()
    before = migrations.current_revision(database)
    what = (
        "This drops every sqlresults table, and every record and lock in them."
        if revision == "base"
        else "Columns later revisions added are dropped with their contents."
    )
    question = (
        f"Downgrade {database.display_url} from {before or '(empty)'} to {revision}? {what} "
        "Continue?"
    )
    if not yes and not confirm(env, question):
        raise CommandError("Downgrade cancelled; nothing changed.", EXIT_FAILURE)
    migrations.downgrade(database, revision)
    after = migrations.current_revision(database)
    env.out.print(f"Database: {database.display_url}")
    env.out.print(f"Downgraded from {before or '(empty)'} to {after or '(empty)'}.")


@migrate.command("stamp")
@common_options
@click.argument("revision")
@click.option("--sql", is_flag=True, help=_SQL_HELP)
@click.pass_context
def stamp_command(ctx: click.Context, revision: str, sql: bool) -> None:
    """Record REVISION as the schema's revision without migrating (for tables a DBA created
    from the --sql script)."""
    env = env_of(ctx)
    if sql or _group_sql(ctx):
        click.echo(migrations.stamp_sql(env.resolved_url, revision), nl=False)
        return
    database = env.database()
    before = migrations.current_revision(database)
    migrations.stamp(database, revision)
    after = migrations.current_revision(database)
    env.out.print(f"Database: {database.display_url}")
    env.out.print(f"Stamped {after or '(empty)'} (was {before or '(empty)'}); no table changed.")


@migrate.command("current")
@common_options
@click.pass_context
def current_command(ctx: click.Context) -> None:
    """Show the revision the database is at (never creates a database)."""
    env = env_of(ctx)
    database = env.database(must_exist=False)
    path = database.dialect.sqlite_path
    if path is not None and not path.is_file():
        env.out.print(f"Database: {database.display_url}")
        env.out.print(f"Revision: none (no database file at {path}; run: sqlresults migrate)")
        return
    revision = migrations.current_revision(database)
    head = migrations.head_revision()
    env.out.print(f"Database: {database.display_url}")
    if revision is None:
        env.out.print("Revision: none (no sqlresults schema; run: sqlresults migrate)")
    elif revision == head:
        env.out.print(f"Revision: {revision} (head)")
    elif not migrations.is_known_revision(revision):
        env.out.print(
            f"Revision: {revision} (unknown to this sqlresults, whose head is {head}: the "
            "database was migrated by a newer sqlresults; upgrade sqlresults)"
        )
    else:
        env.out.print(f"Revision: {revision} (head is {head}; run: sqlresults migrate)")


@migrate.command("history")
@common_options
@click.pass_context
def history_command(ctx: click.Context) -> None:
    """List the schema revisions, newest first."""
    table = Table("revision", "down revision", "description")
    for step in migrations.history():
        label = f"{step.revision} (head)" if step.is_head else step.revision
        table.add_row(label, step.down_revision or "(base)", step.message)
    env_of(ctx).out.print(table)
