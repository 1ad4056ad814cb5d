"""``sqlresults show`` and ``explain``: one record up close, and why its key is what it is.

``show`` previews a value safely: JSON payloads are parsed as plain JSON (no hooks, no
imports), and pickles are loaded only with ``--unpickle``, after a warning, and only when the
record passes its checksum (and signature, with ``SQLRESULTS_SIGNING_KEY``). ``explain``
compares the record's provenance with the nearest other record of its task.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from sqlresults import admin
from sqlresults.cli._app import (
    Env,
    cli,
    common_options,
    env_of,
    format_bytes,
    format_expires,
    format_time,
    print_facts,
    print_json,
    usage_error,
)
from sqlresults.records import Provenance

__all__ = ["explain", "show"]

# How much of a value `show` prints for people; --json gives JSON values whole.
_PREVIEW_CHARS = 2000
# Compression libraries whose decompress is safe to call on a preview (a spec may name any
# module with compress/decompress; only these are imported to look inside).
_SAFE_COMPRESSION = frozenset({"zlib", "lzma", "bz2", "gzip"})


# -- show -----------------------------------------------------------------------------------------


@cli.command()
@common_options
@click.argument("key")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--raw", is_flag=True, help="Write the stored payload bytes to stdout, as is.")
@click.option(
    "--unpickle",
    is_flag=True,
    help="Load a pickled value to show it. Unpickling runs code from the database: only for "
    "records you trust.",
)
@click.pass_context
def show(ctx: click.Context, key: str, as_json: bool, raw: bool, unpickle: bool) -> None:
    """Show a record: metadata, seals (checksum, signature), lock, provenance and a safe
    preview of its value (expired records too)."""
    if raw and (as_json or unpickle):
        usage_error(
            "--raw writes the payload bytes only; it goes with neither --json nor --unpickle."
        )
    env = env_of(ctx)
    namespace = env.resolved_namespace()
    database = env.database()
    detail = admin.get_record(database, namespace, key, admin.signer_from_settings())
    if raw:
        sys.stdout.flush()
        sys.stdout.buffer.write(detail.payload)
        sys.stdout.buffer.flush()
        return
    value, preview = _preview(env, detail, unpickle)
    info = detail.info
    if as_json:
        document = {
            "database": database.display_url,
            **info.to_json(),
            "serializer_spec": json.loads(detail.spec),
            "version": detail.version,
            "checksum": "ok" if detail.checksum_ok else "mismatch",
            "signature": detail.signature,
            "lock": None if detail.lock is None else detail.lock.to_json(),
            "provenance": None
            if detail.provenance is None
            else detail.provenance.model_dump(mode="json"),
            "preview": preview,
        }
        if value is not _NOTHING:
            document["value"] = value
        print_json(document)
        return
    rows = [
        ("key", info.key),
        ("namespace", info.namespace),
        ("database", database.display_url),
        ("size", f"{format_bytes(info.size)} ({info.size:,} bytes)"),
        ("serializer", f"{info.serializer} (--json shows its whole spec)"),
        ("created", format_time(info.created) + " UTC"),
        ("updated", format_time(info.updated) + " UTC"),
        ("expires", format_expires(info.expires, info.expired)),
        ("checksum", "ok" if detail.checksum_ok else "MISMATCH: damaged; value not shown"),
        ("signature", _signature_text(detail.signature)),
        ("lock", _lock_text(detail.lock)),
        ("task", info.task or "(no provenance: not written by a task)"),
    ]
    print_facts(env, rows)
    env.out.print()
    env.out.print(preview, markup=False)


_NOTHING: Any = object()


def _signature_text(state: str) -> str:
    return {
        "valid": "valid",
        "invalid": "INVALID: written with another key or altered; value not shown",
        "unsigned": "unsigned",
        "not checked": "signed, not checked (SQLRESULTS_SIGNING_KEY is not set here)",
    }[state]


def _lock_text(lock: admin.LockInfo | None) -> str:
    if lock is None:
        return "none"
    if lock.held:
        return (
            f"held by {lock.holder} since {format_time(lock.acquired)} UTC "
            f"(lease ends in {lock.lease_left:.0f} s, fence {lock.fence})"
        )
    return f"none (a dead lock row of {lock.holder}, lease ended; sweep removes it)"


def _preview(env: Env, detail: admin.RecordDetail, unpickle: bool) -> tuple[Any, str]:
    """The value (for --json; ``_NOTHING`` when it is not shown) and the text to print."""
    if not detail.checksum_ok or detail.signature == "invalid":
        return _NOTHING, "Value not shown: the record fails its seals (delete it and recompute)."
    try:
        spec = json.loads(detail.spec)
    except ValueError:
        return _NOTHING, "Value not shown: the serializer spec is not JSON."
    if isinstance(spec, str):
        spec = {"type": spec}
    payload = detail.payload
    kind = spec.get("type")
    if kind in ("compressed", "compressed/json", "compressed/pickle"):
        library = spec.get("compressionlib", "lzma")
        if library not in _SAFE_COMPRESSION:
            return (
                _NOTHING,
                f"Value not shown: compressed with {library!r}, not a standard library.",
            )
        import importlib

        try:
            payload = importlib.import_module(library).decompress(payload)
        except Exception as exc:
            return _NOTHING, f"Value not shown: it does not decompress ({type(exc).__name__})."
        inner = spec.get("serializer") or ("json" if kind == "compressed/json" else "pickle")
        kind = inner if isinstance(inner, str) else inner.get("type")
    if kind == "json":
        import orjson

        try:
            value = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return _NOTHING, "Value not shown: the payload is not JSON."
        text = json.dumps(value, indent=2, ensure_ascii=False)
        if len(text) > _PREVIEW_CHARS:
            text = (
                text[:_PREVIEW_CHARS]
                + f"\n… ({len(text):,} characters in all; --json or --raw for all)"
            )
        return value, text
    if kind == "pickle":
        if not unpickle:
            return _NOTHING, (
                f"A pickled value ({detail.info.size:,} bytes), not loaded: unpickling runs code "
                "from the database. Pass --unpickle to load it if you trust this database."
            )
        if detail.signature == "unsigned" and admin.signer_from_settings() is not None:
            return _NOTHING, (
                "Not unpickled: the record is unsigned and SQLRESULTS_SIGNING_KEY is set."
            )
        env.err.print(
            "Warning: --unpickle runs whatever code the pickle holds; only use it on a "
            "database you trust.",
            markup=False,
        )
        from sqlresults.serializers import Serializer

        value = Serializer.from_spec_json(detail.spec).loads(detail.payload)
        text = repr(value)
        if len(text) > _PREVIEW_CHARS:
            text = text[:_PREVIEW_CHARS] + f" … ({len(text):,} characters in all)"
        return _NOTHING, text
    return (
        _NOTHING,
        f"Value not shown: serializer {kind!r} has no safe preview (--raw shows the bytes).",
    )


# -- explain --------------------------------------------------------------------------------------


@cli.command()
@common_options
@click.argument("key")
@click.option(
    "--task",
    metavar="NAME",
    help="Compare with the records of this task (default: the task that wrote KEY).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def explain(ctx: click.Context, key: str, task: str | None, as_json: bool) -> None:
    """Explain a record's key: the task, the components of its key with their fingerprints,
    and the nearest other record of the task with what differs ("why did this call miss?")."""
    env = env_of(ctx)
    namespace = env.resolved_namespace()
    database = env.database()
    detail = admin.get_record(database, namespace, key)
    provenance = detail.provenance
    if provenance is None:
        message = (
            f"Record {key!r} has no provenance: no task wrote it (or an older sqlresults "
            "did), so there is nothing to explain its key with."
        )
        if as_json:
            print_json({"key": key, "namespace": namespace, "provenance": None, "note": message})
        else:
            env.out.print(message, markup=False)
        return
    name = task or provenance.task
    nearest = admin.nearest_record(database, namespace, provenance, task=name, exclude=key)
    if as_json:
        print_json(
            {
                "key": key,
                "namespace": namespace,
                "provenance": provenance.model_dump(mode="json"),
                "nearest": None
                if nearest is None
                else {
                    "key": nearest.key,
                    "updated": nearest.updated.isoformat(),
                    "expired": nearest.expired,
                    "provenance": nearest.provenance.model_dump(mode="json"),
                    "differences": nearest.differences,
                },
            }
        )
        return
    _print_provenance(env, key, provenance)
    env.out.print()
    if nearest is None:
        env.out.print(f"No other record of {name} in namespace {namespace!r} to compare with.")
        return
    _print_comparison(env, provenance, nearest)


def _print_provenance(env: Env, key: str, provenance: Provenance) -> None:
    facts = [
        ("record", key),
        ("task", provenance.task),
        ("cache policy", provenance.cache_policy or "(none: key given by hand)"),
    ]
    if provenance.flow:
        facts.append(("flow", provenance.flow))
    for label, value in (
        ("flow run", provenance.flow_run_id),
        ("task run", provenance.task_run_id),
    ):
        if value:
            facts.append((label, value))
    facts.append(("written by", f"sqlresults {provenance.written_by}"))
    print_facts(env, facts)


def _print_comparison(env: Env, provenance: Provenance, nearest: admin.TaskMatch) -> None:
    other = nearest.provenance
    state = " (expired)" if nearest.expired else ""
    env.out.print(
        f"Nearest other record of {escape(other.task)}: {escape(nearest.key)}{state}, "
        f"written {format_time(nearest.updated)} UTC"
    )
    table = Table(box=None, pad_edge=False)
    for column in ("component", "this record", "nearest", ""):
        table.add_column(column)
    names = [
        *provenance.components,
        *(n for n in other.components if n not in provenance.components),
    ]
    for name in names:
        mine, theirs = provenance.components.get(name), other.components.get(name)
        table.add_row(escape(name), mine or "-", theirs or "-", "" if mine == theirs else "differs")
    env.out.print(table)
    if nearest.differences:
        env.out.print("What differs: " + "; ".join(nearest.differences) + ".", markup=False)
    else:
        env.out.print(
            "No component differs: the keys differ for a reason outside them (a cache_key_fn, "
            "or a result_storage_key given by hand).",
            markup=False,
        )
