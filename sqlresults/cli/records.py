"""``sqlresults ls`` and ``rm``: list and remove records.

``ls`` reads metadata only, a page at a time; ``rm`` asks before deleting more than one
record and keeps those another holder has locked.
"""

from __future__ import annotations

import json
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from sqlresults import admin
from sqlresults.cli._app import (
    EXIT_FAILURE,
    EXIT_NOT_FOUND,
    CommandError,
    Env,
    cli,
    common_options,
    confirm,
    env_of,
    format_bytes,
    format_expires,
    format_time,
    plural,
    print_json,
    progress,
    usage_error,
    where,
)
from sqlresults.errors import LockHeldByOtherError
from sqlresults.locking import SQLLockManager
from sqlresults.queries import SORTS
from sqlresults.results import ResultStore

__all__ = ["ls", "rm"]


def _state(expired: bool, every: bool) -> str:
    if expired and every:
        usage_error("--expired and --all exclude each other: --all lists expired records too.")
    return "expired" if expired else "all" if every else "live"


@cli.command("ls")
@common_options
@click.option("--prefix", default="", metavar="P", help="Only keys that start with P.")
@click.option("--expired", is_flag=True, help="Only expired records (waiting for a sweep).")
@click.option("--all", "every", is_flag=True, help="Expired records too.")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=50,
    show_default=True,
    help="At most this many (0: no limit).",
)
@click.option("--sort", type=click.Choice(SORTS), default="key", show_default=True, help="Order.")
@click.option("--all-namespaces", is_flag=True, help="Every namespace.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def ls(
    ctx: click.Context,
    prefix: str,
    expired: bool,
    every: bool,
    limit: int,
    sort: str,
    all_namespaces: bool,
    as_json: bool,
) -> None:
    """List records: key, size, serializer, times, lock holder and task (payloads are never
    read)."""
    env = env_of(ctx)
    state = _state(expired, every)
    namespace = None if all_namespaces else env.resolved_namespace()
    database = env.database()
    found = admin.list_records(
        database, namespace, prefix=prefix, state=state, sort=sort, limit=limit or None
    )
    if as_json:
        shown = _stream_json(database.display_url, namespace, found)
        total = _total(database, namespace, prefix, state, shown, limit)
        # Closes the document _stream_json opened.
        click.echo(f'],"shown":{shown},"total":{total}}}')
        return
    table = Table(box=None, pad_edge=False)
    # Keys, namespaces and holders are folded when long, never cut short.
    if all_namespaces:
        table.add_column("namespace", overflow="fold")
    for name in ("key", "size", "serializer", "created", "expires", "locked by", "task"):
        table.add_column(
            name,
            justify="right" if name == "size" else "left",
            overflow="fold" if name in ("key", "locked by", "task") else "ellipsis",
        )
    shown = 0
    for record in found:
        shown += 1
        row = [
            escape(record.key),
            format_bytes(record.size),
            record.serializer,
            format_time(record.created),
            format_expires(record.expires, record.expired),
            escape(record.locked_by or ""),
            escape(record.task or ""),
        ]
        table.add_row(*([escape(record.namespace)] if all_namespaces else []), *row)
    total = _total(database, namespace, prefix, state, shown, limit)
    which = {"live": "", "expired": "expired ", "all": ""}[state]
    scope = where(env, namespace) + (f" with prefix {prefix!r}" if prefix else "")
    if shown == 0:
        env.out.print(f"No {which}records in {scope} ({database.display_url}).")
        return
    env.out.print(table)
    summary = f"{plural(shown, which + 'record')} of {total:,} in {scope}"
    if shown < total:
        summary += " (--limit 0 lists all)"
    env.out.print(f"{summary}.")


def _stream_json(url: str, namespace: str | None, found: Any) -> int:
    """Write the start of ls's JSON document and its records as they come (constant memory
    for any number); return how many. The caller closes the document."""
    head = json.dumps({"database": url, "namespace": namespace})[:-1]
    click.echo(f'{head},"records":[', nl=False)
    shown = 0
    for record in found:
        click.echo(("," if shown else "") + json.dumps(record.to_json()), nl=False)
        shown += 1
    return shown


def _total(
    database: Any, namespace: str | None, prefix: str, state: str, shown: int, limit: int
) -> int:
    if limit == 0 or shown < limit:
        return shown
    return admin.count_records(database, namespace, prefix=prefix, state=state)


# -- rm -------------------------------------------------------------------------------------------


@cli.command()
@common_options
@click.argument("keys", nargs=-1)
@click.option("--prefix", default=None, metavar="P", help="Every record whose key starts with P.")
@click.option("--expired", is_flag=True, help="Only expired records (with --prefix, or alone).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before deleting several records.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def rm(
    ctx: click.Context,
    keys: tuple[str, ...],
    prefix: str | None,
    expired: bool,
    yes: bool,
    as_json: bool,
) -> None:
    """Delete the records KEY... (or those with --prefix; --expired: only expired ones).

    Asks before deleting more than one record, unless --yes. A key another holder has locked
    is kept (exit status 1); a key with no record gives exit status 3.
    """
    if keys and (prefix is not None or expired):
        usage_error("Give KEYs, or --prefix/--expired, not both.")
    if not keys and prefix is None and not expired:
        usage_error("Name the KEYs to delete, or pass --prefix P (or --expired).")
    env = env_of(ctx)
    namespace = env.resolved_namespace()
    database = env.database()
    store = ResultStore(result_storage=database, namespace=namespace, cache_result_in_memory=False)
    if keys:
        _remove_keys(env, store, list(dict.fromkeys(keys)), yes, as_json)
    else:
        _remove_prefix(env, store, prefix or "", "expired" if expired else "all", yes, as_json)


def _ask(env: Env, store: ResultStore, count: int, yes: bool) -> None:
    if count > 1 and not yes:
        question = (
            f"Delete {count:,} records from namespace {store.namespace!r} in "
            f"{store.result_storage.display_url}?"
        )
        if not confirm(env, question):
            raise CommandError("Nothing deleted.", EXIT_FAILURE)


def _remove_keys(env: Env, store: ResultStore, keys: list[str], yes: bool, as_json: bool) -> None:
    database = store.result_storage
    present = [key for key in keys if admin.record_present(database, store.namespace, key)]
    missing = [key for key in keys if key not in present]
    _ask(env, store, len(present), yes)
    deleted: list[str] = []
    locked: list[dict[str, str | None]] = []
    for key in present:
        try:
            if store.delete(key):
                deleted.append(key)
            else:
                missing.append(key)  # deleted by someone else meanwhile
        except LockHeldByOtherError:
            locked.append({"key": key, "holder": _holder(store, key)})
    if as_json:
        print_json({"deleted": deleted, "not_found": missing, "locked": locked})
    else:
        if deleted:
            env.out.print(f"Deleted {plural(len(deleted), 'record')}.")
        for key in missing:
            env.err.print(f"No record {key!r} in namespace {store.namespace!r}.", markup=False)
        for entry in locked:
            env.err.print(
                f"Kept {entry['key']!r}: locked by {entry['holder']}. If that holder is gone, "
                f"`sqlresults unlock {entry['key']} --force` removes its lock.",
                markup=False,
            )
    if locked:
        raise CommandError(
            f"{plural(len(locked), 'record')} not deleted: locked by another holder."
        )
    if missing:
        ctx = click.get_current_context()
        ctx.exit(EXIT_NOT_FOUND)


def _holder(store: ResultStore, key: str) -> str | None:
    manager = store.lock_manager
    return manager.lock_holder(key) if isinstance(manager, SQLLockManager) else None


def _remove_prefix(
    env: Env, store: ResultStore, prefix: str, state: str, yes: bool, as_json: bool
) -> None:
    database = store.result_storage
    count = admin.count_records(database, store.namespace, prefix=prefix, state=state)
    what = "expired records" if state == "expired" else "records"
    scope = f"namespace {store.namespace!r}" + (f" with prefix {prefix!r}" if prefix else "")
    if count == 0:
        if as_json:
            print_json({"deleted": 0, "locked": 0})
        else:
            env.out.print(f"No {what} in {scope}; nothing to delete.")
        return
    _ask(env, store, count, yes)
    with progress(env, count, "Deleting") as advance:
        counts = admin.remove_prefix(store, prefix=prefix, state=state, progress=advance)
    if as_json:
        print_json({"deleted": counts.deleted, "locked": counts.locked})
    else:
        env.out.print(f"Deleted {plural(counts.deleted, what[:-1])} from {scope}.", markup=False)
    if counts.locked:
        raise CommandError(
            f"{plural(counts.locked, 'record')} kept: locked by another holder "
            "(`sqlresults locks` lists them)."
        )
