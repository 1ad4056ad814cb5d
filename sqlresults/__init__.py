"""sqlresults: a transactional result store for Python pipelines.

Results, their metadata, expiration and locks live in one SQL database: an embedded SQLite file by
default, PostgreSQL for teams. The main names are re-exported here; submodules follow Prefect's
layout (``sqlresults.results``, ``sqlresults.transactions``, ``sqlresults.serializers`` …).

Importing the package is cheap: each name is imported from its module on first use (a module
``__getattr__``, PEP 562), so ``import sqlresults`` does not load SQLAlchemy, pydantic or the
task layer until a name that needs them is used.
"""

# No public name may be bound here but the exports (tests/test_public_api.py): hence the private
# aliases, and no ``from __future__ import annotations`` (which binds ``annotations``).
import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
    from sqlresults.database import Database
    from sqlresults.errors import (
        ConfigurationError,
        DamagedDatabaseError,
        EventLoopBlockingError,
        IntegrityError,
        InvalidArgumentError,
        InvalidEnvelopeError,
        InvalidExpirationError,
        InvalidKeyError,
        LeaseLostError,
        LockError,
        LockHeldByOtherError,
        LockNotHeldError,
        LockTimeoutError,
        ReadOnlyStorageError,
        RecordNotFoundError,
        SchemaOutOfDateError,
        SelfDeadlockError,
        SerializationError,
        SerializerUnavailableError,
        SQLResultsError,
        StorageError,
        StorageUnavailableError,
        UnhashableError,
        UnknownSerializerError,
        UpstreamTaskError,
    )
    from sqlresults.flows import Flow, flow
    from sqlresults.locking import IsolationLevel, LockManager, SQLLockManager
    from sqlresults.records import Provenance, ResultRecord, ResultRecordMetadata
    from sqlresults.results import ResultStore, StoreStats, get_result_store
    from sqlresults.serializers import (
        CompressedJSONSerializer,
        CompressedPickleSerializer,
        CompressedSerializer,
        JSONSerializer,
        PickleSerializer,
        Serializer,
    )
    from sqlresults.settings import Settings, get_settings
    from sqlresults.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner
    from sqlresults.tasks import Task, task, unmapped
    from sqlresults.transactions import (
        AsyncTransaction,
        CommitMode,
        Transaction,
        TransactionState,
        atransaction,
        get_transaction,
        transaction,
    )

# Where each public name is defined, for the lazy __getattr__ below. Every worker process and
# every CLI call imports this package, so none of those modules (SQLAlchemy, pydantic, pydantic-
# settings behind them) is imported until a name needs it.
_SOURCES: dict[str, str] = {
    "Database": "database",
    "ConfigurationError": "errors",
    "DamagedDatabaseError": "errors",
    "EventLoopBlockingError": "errors",
    "IntegrityError": "errors",
    "InvalidArgumentError": "errors",
    "InvalidEnvelopeError": "errors",
    "InvalidExpirationError": "errors",
    "InvalidKeyError": "errors",
    "LeaseLostError": "errors",
    "LockError": "errors",
    "LockHeldByOtherError": "errors",
    "LockNotHeldError": "errors",
    "LockTimeoutError": "errors",
    "ReadOnlyStorageError": "errors",
    "RecordNotFoundError": "errors",
    "SQLResultsError": "errors",
    "SchemaOutOfDateError": "errors",
    "SelfDeadlockError": "errors",
    "SerializationError": "errors",
    "SerializerUnavailableError": "errors",
    "StorageError": "errors",
    "StorageUnavailableError": "errors",
    "UnhashableError": "errors",
    "UnknownSerializerError": "errors",
    "UpstreamTaskError": "errors",
    "Flow": "flows",
    "flow": "flows",
    "IsolationLevel": "locking",
    "LockManager": "locking",
    "SQLLockManager": "locking",
    "Provenance": "records",
    "ResultRecord": "records",
    "ResultRecordMetadata": "records",
    "ResultStore": "results",
    "StoreStats": "results",
    "get_result_store": "results",
    "CompressedJSONSerializer": "serializers",
    "CompressedPickleSerializer": "serializers",
    "CompressedSerializer": "serializers",
    "JSONSerializer": "serializers",
    "PickleSerializer": "serializers",
    "Serializer": "serializers",
    "Settings": "settings",
    "get_settings": "settings",
    "ProcessPoolTaskRunner": "task_runners",
    "ThreadPoolTaskRunner": "task_runners",
    "Task": "tasks",
    "task": "tasks",
    "unmapped": "tasks",
    "AsyncTransaction": "transactions",
    "CommitMode": "transactions",
    "Transaction": "transactions",
    "TransactionState": "transactions",
    "atransaction": "transactions",
    "get_transaction": "transactions",
    "transaction": "transactions",
}


# The submodules that importing the package used to load, and so were attributes of it
# (``import sqlresults; sqlresults.results.ResultStore``): still there, now imported on first use.
# Not cli, prefect or dask_runner, which were never loaded by the package (and __main__ runs the
# command line).
_SUBMODULES = frozenset(
    {
        "backoff",
        "cache_policies",
        "context",
        "database",
        "dialects",
        "effects",
        "errors",
        "flows",
        "futures",
        "hashing",
        "integrity",
        "leases",
        "locking",
        "migrations",
        "queries",
        "records",
        "results",
        "schema",
        "serializers",
        "settings",
        "states",
        "task_runners",
        "tasks",
        "transactions",
        "validation",
    }
)

__version__: str  # set by __getattr__ on first use


def __getattr__(name: str) -> _typing.Any:
    """Import a public name (or one of :data:`_SUBMODULES`) on first use; from then on it is an
    ordinary attribute of the package.

    Args:
        name: The attribute asked for.

    Returns:
        The object ``from sqlresults import name`` gives.

    Raises:
        AttributeError: ``name`` is neither a public name of the package nor such a submodule.
    """
    value: _typing.Any
    if name == "__version__":
        value = _package_version()
    elif name in _SOURCES:
        value = getattr(_importlib.import_module(f"{__name__}.{_SOURCES[name]}"), name)
    elif name in _SUBMODULES:
        # Importing a submodule binds it on the package itself.
        return _importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # Cached: the next access is a plain lookup, without calling this function.
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The package's names, those not imported yet included."""
    return sorted(set(globals()) | set(__all__) | _SUBMODULES)


def _package_version() -> str:
    # importlib.metadata alone takes tens of milliseconds to import: only when asked.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sqlresults")
    except PackageNotFoundError:  # pragma: no cover - a source tree without metadata
        return "0.0.0"


__all__ = [
    "AsyncTransaction",
    "CommitMode",
    "CompressedJSONSerializer",
    "CompressedPickleSerializer",
    "CompressedSerializer",
    "ConfigurationError",
    "DamagedDatabaseError",
    "Database",
    "EventLoopBlockingError",
    "Flow",
    "IntegrityError",
    "InvalidArgumentError",
    "InvalidEnvelopeError",
    "InvalidExpirationError",
    "InvalidKeyError",
    "IsolationLevel",
    "JSONSerializer",
    "LeaseLostError",
    "LockError",
    "LockHeldByOtherError",
    "LockManager",
    "LockNotHeldError",
    "LockTimeoutError",
    "PickleSerializer",
    "ProcessPoolTaskRunner",
    "Provenance",
    "ReadOnlyStorageError",
    "RecordNotFoundError",
    "ResultRecord",
    "ResultRecordMetadata",
    "ResultStore",
    "SQLLockManager",
    "SQLResultsError",
    "SchemaOutOfDateError",
    "SelfDeadlockError",
    "SerializationError",
    "Serializer",
    "SerializerUnavailableError",
    "Settings",
    "StorageError",
    "StorageUnavailableError",
    "StoreStats",
    "Task",
    "ThreadPoolTaskRunner",
    "Transaction",
    "TransactionState",
    "UnhashableError",
    "UnknownSerializerError",
    "UpstreamTaskError",
    "__version__",
    "atransaction",
    "flow",
    "get_result_store",
    "get_settings",
    "get_transaction",
    "task",
    "transaction",
    "unmapped",
]
