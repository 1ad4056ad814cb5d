"""The ``sqlresults`` group and what every command shares: options, errors, output.

Conventions (DESIGN.md §10 "CLI"):

- exit status 0 ok, 1 failure, 2 bad usage, 3 key not found; a failure is one line on stderr,
  ``Error: …``, never a traceback, and never shows a password;
- ``--url`` and ``--namespace`` go before the command or after it (after wins);
- ``--json`` prints one JSON document on stdout and nothing else (prompts, warnings and
  progress go to stderr);
- commands never create a database: only ``migrate`` does. One that finds no SQLite file says
  so instead of leaving an empty file behind;
- prompts read y/n from stdin; ``--yes`` skips them; no answer is "no".
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from sqlresults.errors import (
    InvalidArgumentError,
    RecordNotFoundError,
    SQLResultsError,
)

if TYPE_CHECKING:
    # Imported where used, else every call of the command, ``--help`` included, would pay for
    # rich, SQLAlchemy and pydantic-settings up front.
    from rich.console import Console

    from sqlresults.database import Database

__all__ = [
    "EXIT_FAILURE",
    "EXIT_NOT_FOUND",
    "EXIT_USAGE",
    "CommandError",
    "Env",
    "cli",
    "common_options",
    "confirm",
    "env_of",
    "format_bytes",
    "format_expires",
    "format_time",
    "main",
    "print_facts",
    "print_json",
    "progress",
]

F = TypeVar("F", bound=Callable[..., Any])

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3

# Width of tables written to a pipe or a file: rich's 80 columns would fold long keys.
_PIPE_WIDTH = 240


class CommandError(click.ClickException):
    """A failure reported as one line on stderr (``Error: …``) with an exit status.

    Args:
        message: What went wrong and what to do; newlines are folded into spaces.
        exit_code: 1 (failure), 2 (bad usage) or 3 (key not found).
    """

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(" ".join(message.split()))
        # ClickException declares exit_code on the class; each error carries its own.
        self.exit_code = exit_code  # type: ignore[misc]


def _error_for(exc: BaseException) -> CommandError:
    """The one-line error for an exception a command let through."""
    if isinstance(exc, RecordNotFoundError):
        return CommandError(str(exc), EXIT_NOT_FOUND)
    if isinstance(exc, InvalidArgumentError):
        # Keys, prefixes, namespaces and sizes come from the command line here.
        return CommandError(str(exc), EXIT_USAGE)
    if isinstance(exc, OSError) and not isinstance(exc, SQLResultsError):
        where = f": {exc.filename}" if exc.filename else ""
        return CommandError(f"{exc.strerror or exc}{where}")
    return CommandError(str(exc))


class Env:
    """What a command needs from the command line and the settings: where the database is,
    which namespace, and the two consoles (stdout for results, stderr for the rest)."""

    def __init__(self) -> None:
        self.url: str | None = None
        self.namespace: str | None = None
        self._database: Database | None = None

    # The consoles (and rich) are made on first use, not when the group parses its options:
    # ``--help`` and ``--version`` never import rich.
    @functools.cached_property
    def out(self) -> Console:
        """The console of results (stdout)."""
        return _console(stderr=False)

    @functools.cached_property
    def err(self) -> Console:
        """The console of prompts, warnings and progress (stderr)."""
        return _console(stderr=True)

    @property
    def resolved_url(self) -> str:
        """``--url``, else ``SQLRESULTS_DATABASE_URL``, else the default SQLite file."""
        from sqlresults.settings import get_settings

        return self.url if self.url is not None else get_settings().url

    def resolved_namespace(self) -> str:
        """``--namespace``, else ``SQLRESULTS_NAMESPACE``, checked.

        Raises:
            InvalidArgumentError: Not a usable namespace.
        """
        from sqlresults.settings import get_settings
        from sqlresults.validation import check_namespace

        namespace = self.namespace if self.namespace is not None else get_settings().namespace
        return check_namespace(namespace)

    def database(self, *, must_exist: bool = True) -> Database:
        """The database, opened without migrating it (the admin decides when to migrate),
        and closed when the command ends.

        Args:
            must_exist: Refuse a SQLite file that does not exist, rather than create it (all
                commands but ``migrate``).

        Raises:
            CommandError: The SQLite file does not exist.
            ConfigurationError: The URL cannot be used.
        """
        if self._database is None:
            from sqlresults.database import Database

            database = Database(self.resolved_url, auto_migrate=False)
            click.get_current_context().call_on_close(database.close)
            self._database = database
        path = self._database.dialect.sqlite_path
        if must_exist and path is not None and not path.is_file():
            raise CommandError(
                f"There is no sqlresults database at {path}. Check --url (or "
                "SQLRESULTS_DATABASE_URL); to create one there, run: sqlresults migrate"
            )
        return self._database


@functools.cache
def _console_class() -> type[Console]:
    """rich's console, except that a reader closing the pipe is left to :class:`_Group`
    (rich would exit with status 1 itself). Made on first use: rich is imported only by a
    command that prints through it."""
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            """Raise BrokenPipeError, for :class:`_Group` to end the command with status 0."""
            raise BrokenPipeError

    return _Console


def _console(*, stderr: bool) -> Console:
    # soft_wrap: a long line (a URL, a path) stays one line; tables still fit the width.
    console = _console_class()(stderr=stderr, highlight=False, soft_wrap=True)
    if not console.is_terminal:
        # Piped or redirected: rows as wide as their content, up to a generous limit.
        console.width = _PIPE_WIDTH
    return console


def env_of(ctx: click.Context) -> Env:
    """The command's :class:`Env`."""
    return ctx.ensure_object(Env)


def _remember(name: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        # Given before and after the command, the later one (the command's) wins.
        if value is not None:
            setattr(env_of(ctx), name, value)
        return value

    return callback


_url_option = click.option(
    "--url",
    metavar="URL",
    expose_value=False,
    callback=_remember("url"),
    help="Database URL (default: SQLRESULTS_DATABASE_URL, else ~/.sqlresults/results.db).",
)
_namespace_option = click.option(
    "--namespace",
    metavar="NAME",
    expose_value=False,
    callback=_remember("namespace"),
    help="Namespace (default: SQLRESULTS_NAMESPACE, else 'default').",
)


def common_options(command: F) -> F:
    """Add ``--url`` and ``--namespace`` to a command (they also work before it)."""
    return _url_option(_namespace_option(command))


# Every command: the module of this package that defines it, and the first paragraph of its
# help (what ``sqlresults --help`` shortens into its one-line summary). The module is imported
# only when the command runs, or shows its own help: ``sqlresults --help`` imports none of them,
# and ``sqlresults ls`` only the one it needs. Checked against the commands by the tests.
COMMANDS: dict[str, tuple[str, str]] = {
    "doctor": (
        "doctor",
        "Check the URL, driver, schema, SQLite journal mode and permissions, PostgreSQL grants "
        "and clock skew, and say what to fix (exit status 1 when something needs fixing).",
    ),
    "explain": (
        "show",
        "Explain a record's key: the task, the components of its key with their fingerprints, "
        'and the nearest other record of the task with what differs ("why did this call miss?").',
    ),
    "export": (
        "transfer",
        "Write each record to DIRECTORY/<key> as Prefect's JSON envelope (Prefect's "
        "local-storage layout), streaming, without deserializing anything.",
    ),
    "import": (
        "transfer",
        "Store each file under DIRECTORY (Prefect's local-storage layout: JSON envelopes named "
        "by key) as a record, without deserializing anything; expired ones are skipped.",
    ),
    "locks": (
        "maintenance",
        "List locks: key, holder, since when, lease left and fence (dead rows too, marked).",
    ),
    "ls": (
        "records",
        "List records: key, size, serializer, times, lock holder and task (payloads are never "
        "read).",
    ),
    "migrate": (
        "migrate",
        "Create or upgrade the schema to the newest revision (the admin's entry point).",
    ),
    "rm": (
        "records",
        "Delete the records KEY... (or those with --prefix; --expired: only expired ones).",
    ),
    "show": (
        "show",
        "Show a record: metadata, seals (checksum, signature), lock, provenance and a safe "
        "preview of its value (expired records too).",
    ),
    "stats": (
        "maintenance",
        "Records, payload bytes, by serializer and namespace, expired records waiting for a "
        "sweep, locks, schema revision and database size (SQLite: log size and pages too).",
    ),
    "sweep": (
        "maintenance",
        "Delete expired records and dead lock rows (whose lease ended), and count both.",
    ),
    "unlock": (
        "maintenance",
        "Remove the lock on KEY, whoever holds it (--force is required): for a holder that is "
        "gone while its lease runs on. If it is still running, its commit is refused "
        "(LeaseLostError) rather than overwrite newer work.",
    ),
    "vacuum": (
        "maintenance",
        "Give freed space back (SQLite: VACUUM and truncate the log; PostgreSQL: VACUUM "
        "sqlresults' tables), with the bytes before and after.",
    ),
}


class _Group(click.Group):
    """The command group: loads each command's module on first use (see :data:`COMMANDS`), and
    turns the commands' errors into one line and an exit status, not a traceback."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command's name, loaded or not, sorted."""
        return sorted(set(self.commands) | set(COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command ``cmd_name``, importing its module (which registers it) the first time;
        None for an unknown name."""
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            importlib.import_module(f"{__package__}.{COMMANDS[cmd_name][0]}")
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The help's list of commands, each with its one-line summary, made from
        :data:`COMMANDS` for a command not loaded yet (click's own would import them all)."""
        commands = []
        for name in self.list_commands(ctx):
            command = self.commands.get(name)
            if command is None:
                # A stand-in with the command's help: click shortens it the same way.
                command = click.Command(name, help=COMMANDS[name][1])
            if not command.hidden:
                commands.append((name, command))
        if not commands:
            return
        # As click does: the summaries get the width left after the longest name.
        limit = formatter.width - 6 - max(len(name) for name, _ in commands)
        with formatter.section("Commands"):
            formatter.write_dl(
                [(name, command.get_short_help_str(limit)) for name, command in commands]
            )

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except BrokenPipeError:
            # The reader has what it wanted (`sqlresults ls | head`): stop quietly with
            # status 0, as ripgrep does, so that a pipeline under `set -o pipefail` goes on.
            # stdout now leads nowhere, so that the interpreter's final flush cannot fail.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            raise click.exceptions.Exit(0) from None
        except (SQLResultsError, OSError) as exc:
            raise _error_for(exc) from exc


@click.group(
    name="sqlresults",
    cls=_Group,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@common_options
@click.version_option(package_name="sqlresults", prog_name="sqlresults")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """sqlresults: a transactional result store for Python pipelines.

    See and tend what is stored, on the desktop's SQLite file or the team's PostgreSQL:
    readable tables for people, --json for scripts. Exit status: 0 ok, 1 failure, 2 bad
    usage, 3 key not found.
    """
    env_of(ctx)
    if ctx.invoked_subcommand is None:
        # Help is an answer, not a usage error: exit 0 (click's no_args_is_help exits 2).
        click.echo(ctx.get_help())
        ctx.exit(0)


def main(argv: list[str] | None = None) -> None:
    """Run the command line interface (the ``sqlresults`` console script)."""
    cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="sqlresults")


# -- output --------------------------------------------------------------------------------------


def print_json(document: Any) -> None:
    """Print ``document`` as the command's one JSON document on stdout."""
    click.echo(json.dumps(document, ensure_ascii=False))


def usage_error(message: str) -> NoReturn:
    """Fail with exit status 2 and one line."""
    raise CommandError(message, EXIT_USAGE)


def confirm(env: Env, question: str) -> bool:
    """Ask a yes/no question on stderr and read the answer from stdin; no answer (an empty
    line, or the end of the input) is "no"."""
    try:
        return click.confirm(question, default=False, err=True)
    except click.Abort:
        click.echo(err=True)
        return False


@contextmanager
def progress(env: Env, total: int | None, description: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr when stderr is a terminal (else nothing is drawn).

    Yields:
        ``advance(n)``: n more items done.
    """
    if not env.err.is_terminal:
        yield lambda _n: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=env.err,
        transient=True,
    )
    with bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def print_facts(env: Env, rows: list[tuple[str, str]]) -> None:
    """Print ``label  value`` lines, labels aligned (plain text: values are not markup)."""
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        env.out.print(f"{label:<{width}}  {value}", markup=False)


def format_bytes(size: int) -> str:
    """``1,234 B``, ``12.3 kB``, ``4.5 MB``, … (powers of 1000)."""
    if size < 1000:
        return f"{size:,} B"
    value = float(size)
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1000
        if value < 1000:
            return f"{value:.1f} {unit}"
    return f"{value:.1f} PB"


def format_time(moment: datetime) -> str:
    """A UTC time to the second, e.g. ``2026-11-30 05:43:50``."""
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def format_duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3 h 20 min``, ``2 d 4 h``."""
    seconds = abs(seconds)
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def format_expires(expires: datetime | None, expired: bool) -> str:
    """``never``, ``in 5 h``, or ``expired 2 min ago``."""
    if expires is None:
        return "never"
    left = expires.timestamp() - time.time()
    if expired:
        return f"expired {format_duration(left)} ago"
    return f"in {format_duration(left)}"


def plural(count: int, noun: str, plural_noun: str | None = None) -> str:
    """``1 record``, ``2 records``, ``1,000 records``."""
    word = noun if count == 1 else (plural_noun or f"{noun}s")
    return f"{count:,} {word}"


def where(env: Env, namespace: str | None) -> str:
    """``namespace 'x'`` or ``every namespace``, for summaries."""
    return "every namespace" if namespace is None else f"namespace {namespace!r}"
