"""Alembic, driven from code: the schema's upgrades, downgrades, current revision and history.

The migration tree is the top-level ``alembic/`` directory of the repository, shipped inside the
wheel as ``sqlresults/_alembic``; :func:`script_location` finds whichever exists. There is no
``alembic.ini``: the configuration is built here, so nothing depends on the working directory.
``alembic/env.py`` only calls :func:`run_env`.

This module sits below :mod:`sqlresults.database`: it works on any :class:`MigrationTarget`
(a :class:`~sqlresults.database.Database` is one), so the database can upgrade its own schema on
first use without the two modules importing each other.

Alembic is imported inside the functions that need it: opening a store must not pay for it.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sqlresults.errors import ConfigurationError, SchemaOutOfDateError
from sqlresults.schema import VERSION_TABLE, metadata

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.runtime.environment import EnvironmentContext
    from sqlalchemy.engine import Connection

    from sqlresults.dialects import Dialect

__all__ = [
    "MigrationTarget",
    "Revision",
    "check",
    "check_revision",
    "current_revision",
    "downgrade",
    "downgrade_sql",
    "head_revision",
    "history",
    "is_known_revision",
    "newer_schema_error",
    "run_env",
    "script_location",
    "stamp",
    "stamp_sql",
    "upgrade",
    "upgrade_sql",
]

# alembic.context is a module-level proxy and not thread-safe; one migration at a time per process
# (other processes are kept out by the database lock taken in _migration_connection).
_ALEMBIC_LOCK = threading.Lock()


class MigrationTarget(Protocol):
    """What migrating needs of a database; :class:`~sqlresults.database.Database` is one."""

    @property
    def display_url(self) -> str:
        """The URL with any password masked."""
        ...

    @property
    def dialect(self) -> Dialect:
        """The database's dialect."""
        ...

    def admin_connection(self) -> AbstractContextManager[Connection]:
        """A SQLAlchemy connection inside a write transaction, committed at exit."""
        ...

    def schema_revision(self) -> str | None:
        """The revision the database is at, or None before the first migration."""
        ...

    def forget_schema_state(self) -> None:
        """Make the next operation check the schema again."""
        ...


@dataclass(frozen=True)
class Revision:
    """One step of the migration history."""

    revision: str
    down_revision: str | None
    message: str
    is_head: bool


def script_location() -> Path:
    """Return the directory holding ``env.py`` and ``versions/``.

    Inside an installed wheel that is ``sqlresults/_alembic``; in a source checkout (or an
    editable install) it is the repository's top-level ``alembic/``.

    Raises:
        ConfigurationError: Neither exists, i.e. the installation is broken.
    """
    package_dir = Path(__file__).resolve().parent
    for candidate in (package_dir / "_alembic", package_dir.parent / "alembic"):
        if (candidate / "env.py").is_file():
            return candidate
    raise ConfigurationError(
        "The sqlresults migration scripts are missing from this installation; reinstall sqlresults."
    )


def _config(*, connection: Connection | None = None, url: str | None = None) -> Config:
    from alembic.config import Config

    config = Config(stdout=io.StringIO())
    config.set_main_option("script_location", str(script_location()))
    config.attributes["connection"] = connection
    config.attributes["url"] = url
    return config


def head_revision() -> str:
    """Return the newest revision of the migration tree."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:  # pragma: no cover - the tree always has a revision
        raise ConfigurationError("The sqlresults migration tree has no revisions.")
    return head


def history() -> list[Revision]:
    """Return every revision, newest first."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_config())
    heads = set(script.get_heads())
    return [
        Revision(
            revision=step.revision,
            down_revision=step.down_revision if isinstance(step.down_revision, str) else None,
            message=(step.doc or "").strip(),
            is_head=step.revision in heads,
        )
        for step in script.walk_revisions()
    ]


def current_revision(database: MigrationTarget) -> str | None:
    """Return the revision the database is at, or None if sqlresults never migrated it.

    Args:
        database: The database to look at.

    Raises:
        StorageUnavailableError: The database cannot be reached.
    """
    return database.schema_revision()


def upgrade(database: MigrationTarget, revision: str = "head") -> None:
    """Upgrade the schema to ``revision`` in one transaction, serialised across processes.

    Args:
        database: The database to migrate.
        revision: Target revision; ``"head"`` (default) is the newest.

    Raises:
        StorageUnavailableError: The database cannot be reached or written.
        ConfigurationError: ``revision`` is not a revision of the tree.
    """
    from alembic import command

    with _migration_connection(database) as connection:
        command.upgrade(_config(connection=connection), revision)


def downgrade(database: MigrationTarget, revision: str) -> None:
    """Downgrade the schema to ``revision`` (``"base"`` drops every sqlresults table).

    Args:
        database: The database to migrate.
        revision: Target revision, or ``"base"``; relative forms such as ``"-1"`` work too.

    Raises:
        StorageUnavailableError: The database cannot be reached or written.
        ConfigurationError: ``revision`` is not a revision of the tree.
    """
    from alembic import command

    with _migration_connection(database) as connection:
        command.downgrade(_config(connection=connection), revision)


def stamp(database: MigrationTarget, revision: str) -> None:
    """Record ``revision`` as the database's revision without running any migration (for a
    schema a DBA applied by hand).

    Args:
        database: The database to stamp.
        revision: The revision its tables are at, or ``"base"`` to clear the record.

    Raises:
        StorageUnavailableError: The database cannot be reached or written.
        ConfigurationError: ``revision`` is not a revision of the tree.
    """
    from alembic import command

    with _migration_connection(database) as connection:
        command.stamp(_config(connection=connection), revision)


def upgrade_sql(url: str, revision: str = "head", *, from_revision: str | None = None) -> str:
    """Return the DDL that upgrading would run, for a DBA to review or apply by hand.

    Args:
        url: A database URL; only its dialect matters and nothing connects to it.
        revision: Target revision; ``FROM:TO`` gives the start too.
        from_revision: Starting revision; None starts from an empty database.

    Returns:
        The SQL script.

    Raises:
        ConfigurationError: A revision is not one of the tree.
    """
    target = revision if from_revision is None else f"{from_revision}:{revision}"
    return _offline_sql("upgrade", url, target)


def downgrade_sql(url: str, revision: str, *, from_revision: str | None = None) -> str:
    """Return the SQL that downgrading would run, without connecting to the database.

    Args:
        url: A database URL; only its dialect matters and nothing connects to it.
        revision: Target revision (``"base"`` drops every table); ``FROM:TO`` gives the start
            too.
        from_revision: Starting revision; None starts from the head (offline, the database's
            own revision cannot be read).

    Returns:
        The SQL script.

    Raises:
        ConfigurationError: A revision is not one of the tree, or a relative one (``-1``)
            that cannot be resolved offline.
    """
    if ":" not in revision:
        revision = f"{from_revision or head_revision()}:{revision}"
    return _offline_sql("downgrade", url, revision)


def stamp_sql(url: str, revision: str) -> str:
    """Return the SQL that stamping ``revision`` would run (it writes the version table only),
    without connecting to the database.

    Raises:
        ConfigurationError: ``revision`` is not one of the tree.
    """
    return _offline_sql("stamp", url, revision)


def _offline_sql(name: str, url: str, revision: str) -> str:
    from alembic import command

    config = _config(url=url)
    with _ALEMBIC_LOCK, _translate_alembic_errors():
        try:
            getattr(command, name)(config, revision, sql=True)
        except NotImplementedError as exc:
            # A step that must read the rows (the provenance downgrade reseals records).
            raise ConfigurationError(f"Cannot print this {name} as SQL: {exc}") from exc
    output = config.attributes.get("sql_output")
    return output.getvalue() if isinstance(output, io.StringIO) else ""


def check(database: MigrationTarget) -> None:
    """Fail if :mod:`sqlresults.schema` and the migration tree disagree (``alembic check``).

    Raises:
        SchemaOutOfDateError: Autogenerate would emit operations: a revision is missing.
    """
    from alembic import command
    from alembic.util import AutogenerateDiffsDetected

    with _migration_connection(database) as connection:
        try:
            command.check(_config(connection=connection))
        except AutogenerateDiffsDetected as exc:
            raise SchemaOutOfDateError(f"The migrations do not match the tables: {exc}") from exc


@contextmanager
def _migration_connection(database: MigrationTarget) -> Iterator[Connection]:
    """Open one SQLAlchemy connection in a write transaction that keeps other migrators out.

    Raises:
        SchemaOutOfDateError: The database was migrated by a newer sqlresults, whose revisions
            this one does not know.
    """
    with (
        _ALEMBIC_LOCK,
        _translate_alembic_errors(),
        database.admin_connection() as connection,
    ):
        lock_sql = database.dialect.migration_lock_sql()
        if lock_sql is not None:
            connection.exec_driver_sql(lock_sql)
        _refuse_unknown_revision(database, connection)
        yield connection
    database.forget_schema_state()


def _refuse_unknown_revision(database: MigrationTarget, connection: Connection) -> None:
    from alembic.runtime.migration import MigrationContext

    current = MigrationContext.configure(
        connection, opts={"version_table": VERSION_TABLE}
    ).get_current_revision()
    if current is not None and not is_known_revision(current):
        raise newer_schema_error(database.display_url, current)


def check_revision(revision: str) -> None:
    """Fail unless ``revision`` names revisions of the tree (``head``, ``base``, a revision
    id or a unique prefix of one, ``FROM:TO``); relative forms (``-1``) pass, as only a
    database can resolve them.

    Raises:
        ConfigurationError: It names no revision, with Alembic's words for why.
    """
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_config())
    with _translate_alembic_errors():
        for part in revision.split(":"):
            if part and part not in ("head", "heads", "base") and not part.lstrip("+-").isdigit():
                script.get_revisions(part)


def is_known_revision(revision: str) -> bool:
    """Whether ``revision`` belongs to this version's migration tree."""
    return any(step.revision == revision for step in history())


def newer_schema_error(where: str, revision: str) -> SchemaOutOfDateError:
    """The error for a database migrated by a newer sqlresults than this one."""
    return SchemaOutOfDateError(
        f"The result database {where} is at schema revision {revision!r}, which this version "
        "of sqlresults does not know: it was migrated by a newer sqlresults. Upgrade "
        "sqlresults (pip install -U sqlresults); `sqlresults migrate` cannot help."
    )


@contextmanager
def _translate_alembic_errors() -> Iterator[None]:
    from alembic.util import CommandError

    try:
        yield
    except CommandError as exc:
        raise ConfigurationError(str(exc)) from exc


def run_env(
    context: EnvironmentContext,
    open_database: Callable[[str], MigrationTarget] | None = None,
) -> None:
    """The body of ``alembic/env.py``: run migrations online or print them offline.

    Online, the connection comes from :func:`upgrade`/:func:`downgrade` (or, when Alembic is run
    by hand from a checkout, from ``SQLRESULTS_DATABASE_URL``, opened with ``open_database``).
    Offline (``--sql``), only the URL's dialect is used and the SQL goes to a buffer the caller
    reads.

    Args:
        context: Alembic's environment context.
        open_database: Opens the database of a URL, for Alembic run by hand.

    Raises:
        ConfigurationError: Alembic was run by hand and no ``open_database`` was given.
    """
    options: dict[str, Any] = {
        "target_metadata": metadata,
        "version_table": VERSION_TABLE,
        "render_as_batch": True,
        "transactional_ddl": True,
        "include_object": _include_object,
        "compare_type": True,
    }
    config = context.config
    if context.is_offline_mode():
        buffer = io.StringIO()
        config.attributes["sql_output"] = buffer
        context.configure(
            url=config.attributes.get("url") or _settings_url(),
            literal_binds=True,
            output_buffer=buffer,
            **options,
        )
        with context.begin_transaction():
            context.run_migrations()
        return

    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, **options)
        with context.begin_transaction():
            context.run_migrations()
        return

    # Plain `alembic` from a checkout (e.g. `alembic revision --autogenerate`).
    if open_database is None:
        raise ConfigurationError("run_env needs open_database to migrate outside sqlresults.")
    database = open_database(_settings_url())
    with _migration_connection(database) as own_connection:
        context.configure(connection=own_connection, **options)
        with context.begin_transaction():
            context.run_migrations()


def _settings_url() -> str:
    from sqlresults.settings import get_settings

    return get_settings().url


def _include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    # Autogenerate must only ever consider our own tables: the host database may hold others.
    if type_ == "table":
        return name is not None and name.startswith("sqlresults_") and name != VERSION_TABLE
    return True
