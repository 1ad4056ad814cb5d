"""``sqlresults sweep``, ``locks``, ``unlock``, ``stats`` and ``vacuum``: tend the database."""

from __future__ import annotations

import click
from rich.markup import escape
from rich.table import Table

from sqlresults import admin
from sqlresults.cli._app import (
    EXIT_NOT_FOUND,
    CommandError,
    cli,
    common_options,
    env_of,
    format_bytes,
    format_duration,
    format_time,
    plural,
    print_facts,
    print_json,
    progress,
    usage_error,
    where,
)
from sqlresults.schema import SCHEMA_REVISION

__all__ = ["locks", "stats", "sweep", "unlock", "vacuum"]


@cli.command()
@common_options
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@click.option(
    "--batch",
    "--batch-size",
    "batch",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Rows deleted per statement (each its own short transaction).",
)
@click.option("--all-namespaces", is_flag=True, help="Every namespace.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def sweep(
    ctx: click.Context, dry_run: bool, batch: int, all_namespaces: bool, as_json: bool
) -> None:
    """Delete expired records and dead lock rows (whose lease ended), and count both."""
    env = env_of(ctx)
    namespace = None if all_namespaces else env.resolved_namespace()
    database = env.database()
    if dry_run:
        counts = admin.count_sweepable(database, namespace)
    else:
        total = admin.count_sweepable(database, namespace) if env.err.is_terminal else None
        with progress(
            env, None if total is None else total.records + total.locks, "Sweeping"
        ) as advance:
            counts = admin.sweep(database, namespace, batch=batch, progress=advance)
    if as_json:
        print_json(
            {
                "database": database.display_url,
                "namespace": namespace,
                "dry_run": dry_run,
                "expired_records": counts.records,
                "dead_locks": counts.locks,
            }
        )
        return
    verb = "Would delete" if dry_run else "Deleted"
    env.out.print(
        f"{verb} {plural(counts.records, 'expired record')} and "
        f"{plural(counts.locks, 'dead lock')} from {where(env, namespace)} in "
        f"{database.display_url}.",
        markup=False,
    )


@cli.command()
@common_options
@click.option("--all-namespaces", is_flag=True, help="Every namespace.")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="At most this many (0: no limit).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def locks(ctx: click.Context, all_namespaces: bool, limit: int, as_json: bool) -> None:
    """List locks: key, holder, since when, lease left and fence (dead rows too, marked)."""
    env = env_of(ctx)
    namespace = None if all_namespaces else env.resolved_namespace()
    database = env.database()
    found = list(admin.list_locks(database, namespace, limit=limit or None))
    if as_json:
        print_json(
            {
                "database": database.display_url,
                "namespace": namespace,
                "locks": [lock.to_json() for lock in found],
            }
        )
        return
    if not found:
        env.out.print(
            f"No locks in {where(env, namespace)} ({database.display_url}).", markup=False
        )
        return
    table = Table(box=None, pad_edge=False)
    if all_namespaces:
        table.add_column("namespace", overflow="fold")
    for name in ("key", "holder", "since", "lease left", "fence"):
        table.add_column(
            name,
            justify="right" if name in ("lease left", "fence") else "left",
            overflow="fold",
        )
    for lock in found:
        left = (
            format_duration(lock.lease_left)
            if lock.held
            else f"ended {format_duration(lock.lease_left)} ago"
        )
        row = [
            escape(lock.key),
            escape(lock.holder),
            format_time(lock.acquired),
            left,
            str(lock.fence),
        ]
        table.add_row(*([escape(lock.namespace)] if all_namespaces else []), *row)
    env.out.print(table)
    held = sum(lock.held for lock in found)
    dead = len(found) - held
    summary = f"{plural(held, 'lock')} held"
    if dead:
        summary += (
            f", {plural(dead, 'dead lock row')} (the key is free; `sqlresults sweep` removes them)"
        )
    if limit and len(found) == limit:
        summary += f"; the first {limit:,} shown (--limit 0 lists all)"
    env.out.print(summary + ".", markup=False)


@cli.command()
@common_options
@click.argument("key")
@click.option("--force", is_flag=True, help="Remove the lock, whoever holds it.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def unlock(ctx: click.Context, key: str, force: bool, as_json: bool) -> None:
    """Remove the lock on KEY, whoever holds it (--force is required): for a holder that is
    gone while its lease runs on. If it is still running, its commit is refused
    (LeaseLostError) rather than overwrite newer work."""
    if not force:
        usage_error(
            "unlock removes the lock on KEY whoever holds it, even a process still running: "
            "pass --force to do it (`sqlresults locks` shows the holder)."
        )
    env = env_of(ctx)
    namespace = env.resolved_namespace()
    database = env.database()
    removed = admin.force_unlock(database, namespace, key)
    if removed is None:
        raise CommandError(f"No lock on {key!r} in namespace {namespace!r}.", EXIT_NOT_FOUND)
    if as_json:
        print_json({"database": database.display_url, "removed": removed.to_json()})
        return
    state = (
        f"its lease had {format_duration(removed.lease_left)} left"
        if removed.held
        else "its lease had ended"
    )
    env.out.print(
        f"Removed the lock on {key!r} held by {removed.holder} since "
        f"{format_time(removed.acquired)} UTC (fence {removed.fence}; {state}).",
        markup=False,
    )


@cli.command()
@common_options
@click.option("--all-namespaces", is_flag=True, help="Every namespace, and a line for each.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def stats(ctx: click.Context, all_namespaces: bool, as_json: bool) -> None:
    """Records, payload bytes, by serializer and namespace, expired records waiting for a
    sweep, locks, schema revision and database size (SQLite: log size and pages too)."""
    env = env_of(ctx)
    namespace = None if all_namespaces else env.resolved_namespace()
    database = env.database()
    figures = admin.database_stats(database, namespace)
    # The revision this sqlresults expects (a test keeps it equal to the tree's head), not
    # the tree itself: reading that imports Alembic, a third of this command's time.
    head = SCHEMA_REVISION
    if as_json:
        print_json(
            {
                "database": database.display_url,
                "namespace": namespace,
                **figures.to_json(),
                "schema_head": head,
            }
        )
        return
    revision = figures.schema_revision
    revision_note = "head" if revision == head else f"head is {head}: run sqlresults migrate"
    totals = figures.totals
    storage = figures.storage
    facts = [
        ("database", database.display_url),
        ("schema", f"{revision} ({revision_note})"),
        ("namespace", "(every namespace)" if namespace is None else namespace),
        ("records", f"{totals.records:,} ({format_bytes(totals.payload_bytes)} of payloads)"),
        (
            "expired",
            f"{totals.expired:,}" + (" (waiting for `sqlresults sweep`)" if totals.expired else ""),
        ),
    ]
    dead = f", {plural(figures.dead_locks, 'dead lock row')}" if figures.dead_locks else ""
    facts.append(("locks", f"{figures.locks_held:,} held{dead}"))
    size = format_bytes(storage["database_bytes"])
    if "wal_bytes" in storage:
        facts.append(
            (
                "file",
                f"{size}; write-ahead log {format_bytes(storage['wal_bytes'])}; "
                f"{storage['page_count']:,} pages of {storage['page_size']:,} bytes, "
                f"{storage['free_pages']:,} free",
            )
        )
    else:
        facts.append(
            ("size", f"{size} database; sqlresults tables {format_bytes(storage['table_bytes'])}")
        )
    print_facts(env, facts)
    for title, groups in (
        ("serializer", figures.by_serializer),
        ("namespace", figures.by_namespace),
    ):
        if title == "namespace" and not all_namespaces:
            continue
        if not groups:
            continue
        table = Table(box=None, pad_edge=False, title=None)
        table.add_column(title)
        for column in ("records", "payload", "expired"):
            table.add_column(column, justify="right")
        for name, group in groups.items():
            table.add_row(
                escape(name),
                f"{group.records:,}",
                format_bytes(group.payload_bytes),
                f"{group.expired:,}",
            )
        env.out.print()
        env.out.print(table)


@cli.command()
@common_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def vacuum(ctx: click.Context, as_json: bool) -> None:
    """Give freed space back (SQLite: VACUUM and truncate the log; PostgreSQL: VACUUM
    sqlresults' tables), with the bytes before and after."""
    env = env_of(ctx)
    database = env.database()
    before, after = admin.vacuum(database)
    if as_json:
        print_json({"database": database.display_url, "before": before, "after": after})
        return
    what = "database file and log" if database.dialect.sqlite_path is not None else "tables"
    saved = before - after
    note = f"{format_bytes(saved)} given back" if saved > 0 else "nothing to give back"
    env.out.print(
        f"Vacuumed {database.display_url}: {what} {format_bytes(before)} -> "
        f"{format_bytes(after)} ({note}).",
        markup=False,
    )
