"""sqlresults: a transactional result store for Python pipelines.

Results, their metadata, expiration and locks live in one SQL database: an embedded SQLite file by
default, PostgreSQL for teams. The main names are re-exported here; submodules follow Prefect's
layout (``sqlresults.results``, ``sqlresults.transactions``, ``sqlresults.serializers`` …).
"""

from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version

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

try:
    __version__ = _version("sqlresults")
except _PackageNotFoundError:  # pragma: no cover - running from a source tree without metadata
    __version__ = "0.0.0"

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
