"""``sqlresults export DIR`` and ``sqlresults import DIR``: Prefect's local-storage format.

Prefect's ``LocalFileSystem`` result storage keeps one file per record, named by its key (a
``/`` in a key makes subdirectories), holding the record's JSON envelope. Export writes that
layout and import reads it, so a team can move a Prefect cache into sqlresults and back.

Both stream: one record in memory at a time (export fetches payloads in batches of about
2 MB), and neither deserializes a result, so no code from the database or the files runs. A
record that fails is reported on stderr and the rest go on; the exit status is then 1.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import click

from sqlresults import admin
from sqlresults.cli._app import (
    CommandError,
    Env,
    cli,
    common_options,
    env_of,
    plural,
    print_json,
    progress,
)
from sqlresults.errors import SQLResultsError
from sqlresults.results import ResultStore

__all__ = ["export", "import_"]

# Written first, then renamed over the record's file, so an interrupted export never leaves a
# truncated envelope under a record's name. Import skips such leftovers.
_PARTIAL = ".sqlresults-partial"


def _file_for(directory: Path, key: str) -> Path | None:
    """Where the record ``key`` goes under ``directory``, or None if its key cannot be a
    relative file path there (absolute, or with an empty, ``.`` or ``..`` part, which would
    land elsewhere or collide), or would be named like an interrupted export's leftover,
    which import skips."""
    parts = key.split("/")
    if (
        any(part in ("", ".", "..") for part in parts)
        or "\\" in key
        or parts[-1].endswith(_PARTIAL)
    ):
        return None
    return directory.joinpath(*parts)


@cli.command()
@common_options
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--prefix", default="", metavar="P", help="Only keys that start with P.")
@click.option("--all", "every", is_flag=True, help="Expired records too.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def export(ctx: click.Context, directory: Path, prefix: str, every: bool, as_json: bool) -> None:
    """Write each record to DIRECTORY/<key> as Prefect's JSON envelope (Prefect's
    local-storage layout), streaming, without deserializing anything."""
    env = env_of(ctx)
    namespace = env.resolved_namespace()
    database = env.database()
    state = "all" if every else "live"
    # The count feeds the progress bar only, which is drawn on a terminal only.
    total = (
        admin.count_records(database, namespace, prefix=prefix, state=state)
        if env.err.is_terminal
        else None
    )
    directory.mkdir(parents=True, exist_ok=True)
    exported = 0
    failed: list[dict[str, str]] = []
    items = admin.export_records(
        database,
        namespace,
        prefix=prefix,
        include_expired=every,
        signer=admin.signer_from_settings(),
    )
    with progress(env, total, "Exporting") as advance:
        for item in items:
            error = (
                item.error if item.envelope is None else _write(directory, item.key, item.envelope)
            )
            if error is None:
                exported += 1
            else:
                failed.append({"key": item.key, "error": error})
                _report(env, item.key, error)
            advance(1)
    if as_json:
        print_json(
            {
                "database": database.display_url,
                "namespace": namespace,
                "directory": str(directory),
                "exported": exported,
                "failed": failed,
            }
        )
    else:
        env.out.print(
            f"Exported {plural(exported, 'record')} from namespace {namespace!r} to {directory}.",
            markup=False,
        )
    if failed:
        raise CommandError(f"{plural(len(failed), 'record')} could not be exported (listed above).")


def _write(directory: Path, key: str, envelope: bytes) -> str | None:
    """Write one envelope; return what went wrong, or None."""
    path = _file_for(directory, key)
    if path is None:
        return (
            "its key cannot be a file name under the directory (it is absolute, has an "
            f"empty, '.' or '..' part, or ends in {_PARTIAL!r}, which import skips)"
        )
    partial = path.with_name(path.name + _PARTIAL)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(envelope)
        os.replace(partial, path)
    except OSError as exc:
        with suppress(OSError):
            partial.unlink(missing_ok=True)
        return f"{exc.strerror or exc} ({exc.filename or path})"
    return None


def _report(env: Env, key: str, error: str) -> None:
    env.err.print(f"Failed: {key!r}: {error}", markup=False)


@cli.command("import")
@common_options
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--prefix", default="", metavar="P", help="Only keys that start with P.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def import_(ctx: click.Context, directory: Path, prefix: str, as_json: bool) -> None:
    """Store each file under DIRECTORY (Prefect's local-storage layout: JSON envelopes named
    by key) as a record, without deserializing anything; expired ones are skipped."""
    env = env_of(ctx)
    namespace = env.resolved_namespace()
    database = env.database()
    store = ResultStore(result_storage=database, namespace=namespace, cache_result_in_memory=False)
    # Counting walks the tree once more: worth it for a progress bar only (a terminal).
    total = sum(1 for _ in _files(directory, prefix)) if env.err.is_terminal else None
    now = time.time()
    imported = expired = 0
    failed: list[dict[str, str]] = []
    with progress(env, total, "Importing") as advance:
        for key, path in _files(directory, prefix):
            try:
                if isinstance(path, OSError):
                    raise path  # a directory that could not be listed
                stored = admin.import_envelope(store, key, path.read_bytes(), now=now)
            except (SQLResultsError, OSError) as exc:
                if isinstance(exc, SQLResultsError) and database.is_outage(exc):
                    raise  # the database went away: the rest would fail the same way
                error = str(exc) if isinstance(exc, SQLResultsError) else (exc.strerror or str(exc))
                failed.append({"key": key, "error": error})
                _report(env, key, error)
            else:
                imported += stored
                expired += not stored
            advance(1)
    if as_json:
        print_json(
            {
                "database": database.display_url,
                "namespace": namespace,
                "directory": str(directory),
                "imported": imported,
                "expired_skipped": expired,
                "failed": failed,
            }
        )
    else:
        skipped = f"; {plural(expired, 'expired record')} skipped" if expired else ""
        env.out.print(
            f"Imported {plural(imported, 'record')} from {directory} into namespace "
            f"{namespace!r}{skipped}.",
            markup=False,
        )
    if failed:
        raise CommandError(f"{plural(len(failed), 'file')} could not be imported (listed above).")


def _files(directory: Path, prefix: str) -> Iterator[tuple[str, Path | OSError]]:
    """(key, path) of every regular file under ``directory``, in a stable order, lazily; for a
    directory that cannot be listed, (its relative path, the error), so that it is reported
    instead of silently missing from the import."""
    unlisted: list[OSError] = []
    for root, dirs, names in os.walk(directory, onerror=unlisted.append):
        yield from _unlisted(unlisted, directory, prefix)
        dirs.sort()
        for name in sorted(names):
            if name.endswith(_PARTIAL):
                continue
            path = Path(root, name)
            key = path.relative_to(directory).as_posix()
            if not key.startswith(prefix):
                continue
            try:
                if path.is_file():
                    yield key, path
            except OSError as exc:  # its directory can be listed but not searched
                yield key, exc
    # A directory's listing fails when the walk steps into it: the last one's after the loop.
    yield from _unlisted(unlisted, directory, prefix)


def _unlisted(errors: list[OSError], directory: Path, prefix: str) -> Iterator[tuple[str, OSError]]:
    """Take the listing errors gathered so far; yield those of directories that could hold
    keys starting with ``prefix`` (the directory itself is ".")."""
    while errors:
        error = errors.pop(0)
        where = Path(error.filename or directory)
        try:
            key = where.relative_to(directory).as_posix()
        except ValueError:
            key = where.as_posix()
        if key == "." or key.startswith(prefix) or prefix.startswith(key + "/"):
            yield key, error
