"""The exceptions sqlresults raises.

Every error derives from :class:`SQLResultsError`, and most also derive from the builtin a caller
would naturally catch, so ``except KeyError`` works for a missing record just as it does for a
dict::

    SQLResultsError
    ├── InvalidArgumentError         (ValueError)    bad input; nothing stored or changed
    │   ├── InvalidKeyError                          empty, non-string or over-long key
    │   └── InvalidExpirationError                   naive datetime, or not a time at all
    ├── RecordNotFoundError          (KeyError)      no record, or only an expired one
    ├── SerializationError                           the serializer can't handle it
    │   ├── UnknownSerializerError   (ValueError)    a serializer type nobody registered
    │   │   └── SerializerUnavailableError (RuntimeError)
    │   │                                            dumps/loads with a stored serializer
    │   │                                            that is not available here
    │   └── InvalidEnvelopeError     (ValueError)    bytes that are no record envelope
    ├── UnhashableError              (TypeError)     a cache-key input with no stable hash
    ├── IntegrityError                               bad checksum or signature; unsigned
    ├── LockError
    │   ├── LockHeldByOtherError     (RuntimeError)  write refused: another holder's lock
    │   ├── LockNotHeldError         (ValueError)    release by someone not holding it
    │   │   └── LeaseLostError                       commit after the lease ran out and
    │   │                                            the lock was taken or swept
    │   ├── LockTimeoutError         (TimeoutError)  a lock wait ran out
    │   │   └── SelfDeadlockError                    would wait on its own ancestor's lock
    │   └── EventLoopBlockingError   (RuntimeError)  a sync lock wait would block the loop
    ├── StorageError
    │   ├── SchemaOutOfDateError                     run ``sqlresults migrate``
    │   └── StorageUnavailableError  (OSError)       database unreachable or unwritable
    │       ├── ReadOnlyStorageError (PermissionError)
    │       └── DamagedDatabaseError                 SQLite file damaged: restore or recover it
    ├── RunError                                     a flow or task run's outcome
    │   ├── UnfinishedRun            (RuntimeError)  result of a run not final yet
    │   ├── FailedRun                                result of a failed run with no exception
    │   ├── CancelledRun                             result of a cancelled run
    │   ├── CrashedRun               (RuntimeError)  the run's worker process died
    │   ├── ClusterUnavailableError  (ConnectionError) the Dask scheduler is unreachable
    │   ├── UpstreamTaskError        (RuntimeError)  an input came from a failed run
    │   └── WaitTimeoutError         (TimeoutError)  waiting for futures ran out of time
    └── ConfigurationError           (ValueError)    bad URL, missing driver, bad setting

This module imports nothing from sqlresults, so every other module may import it. Backend
exceptions (SQLAlchemy's and the drivers') are translated into this tree in one place,
:func:`sqlresults.database.translate_errors`; none escapes the public API.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CancelledRun",
    "ClusterUnavailableError",
    "ConfigurationError",
    "CrashedRun",
    "DamagedDatabaseError",
    "EventLoopBlockingError",
    "FailedRun",
    "IntegrityError",
    "InvalidArgumentError",
    "InvalidEnvelopeError",
    "InvalidExpirationError",
    "InvalidKeyError",
    "LeaseLostError",
    "LockError",
    "LockHeldByOtherError",
    "LockNotHeldError",
    "LockTimeoutError",
    "ReadOnlyStorageError",
    "RecordNotFoundError",
    "RunError",
    "SQLResultsError",
    "SchemaOutOfDateError",
    "SelfDeadlockError",
    "SerializationError",
    "SerializerUnavailableError",
    "StorageError",
    "StorageUnavailableError",
    "UnfinishedRun",
    "UnhashableError",
    "UnknownSerializerError",
    "UpstreamTaskError",
    "WaitTimeoutError",
]


class SQLResultsError(Exception):
    """Base class of every error sqlresults raises.

    Every error survives pickling (a process pool worker's error is pickled back to its
    caller): the ones whose ``__init__`` takes more than a message pickle their arguments.
    """


def _rebuild(cls: type[SQLResultsError], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Unpickle an error whose ``__init__`` builds its message (see the ``__reduce__`` methods):
    call it with the arguments it was raised with. ``BaseException`` would call it with the
    finished message instead, which such an ``__init__`` refuses or wraps in a second message.
    """
    return cls(*args, **kwargs)


class InvalidArgumentError(SQLResultsError, ValueError):
    """An argument is out of its documented range (a negative timeout, a bad holder …).

    Raised before anything touches the database, so nothing is stored or changed.
    """


class InvalidKeyError(InvalidArgumentError):
    """A record or lock key is not a non-empty string of at most 1,024 UTF-8 bytes."""


class InvalidExpirationError(InvalidArgumentError):
    """An expiration is neither ``None``, a ``timedelta`` nor a timezone-aware ``datetime``."""


class RecordNotFoundError(SQLResultsError, KeyError):
    """No unexpired record is stored under the key.

    A ``KeyError``, so code written against a mapping keeps working.
    """

    def __init__(self, key: str, namespace: str | None = None, *, expired: bool = False) -> None:
        self.key = key
        self.namespace = namespace
        self.expired = expired
        where = f" in namespace {namespace!r}" if namespace is not None else ""
        why = "has expired" if expired else "does not exist"
        super().__init__(f"Result record {key!r}{where} {why}.")

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the message and wrap it in quotes.
        return str(self.args[0])

    def __reduce__(self) -> tuple[Any, ...]:
        arguments = (self.key, self.namespace), {"expired": self.expired}
        return _rebuild, (type(self), *arguments), self.__dict__


class SerializationError(SQLResultsError):
    """An object could not be serialized, or a payload could not be deserialized."""


class UnknownSerializerError(SerializationError, ValueError):
    """A serializer ``type`` string that no :class:`~sqlresults.serializers.Serializer` subclass
    registered.

    Where a type is looked up (``Serializer(type=...)``, a spec, a pydantic field typed
    ``Serializer``) the error raised is also pydantic's ``ValidationError``, located at
    ``type``, because that is what Prefect raises there.
    """


class SerializerUnavailableError(UnknownSerializerError, RuntimeError):
    """A serializer read from storage (a record written elsewhere) was asked to encode or
    decode, but its type is not available in this environment.

    The spec is kept, so such records can be listed and inspected; only their payloads cannot
    be used. A ``RuntimeError`` with Prefect's message, because Prefect's ``UnknownSerializer``
    raises exactly that, so ``except RuntimeError`` written for Prefect keeps working.

    Args:
        serializer_type: The type string nobody registered here.
        operation: ``"serialization"`` (``dumps``) or ``"deserialization"`` (``loads``).
    """

    def __init__(self, serializer_type: str, operation: str) -> None:
        self.serializer_type = serializer_type
        self.operation = operation
        super().__init__(
            f"Serializer {serializer_type!r} is not available in this environment, so "
            f"{operation} cannot be performed. Install or import the package that defines it."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (type(self), (self.serializer_type, self.operation), {}), self.__dict__


class InvalidEnvelopeError(SerializationError, ValueError):
    """Bytes given as a result record's JSON envelope (or as its metadata document) are not
    one: not JSON, the wrong shape, or invalid metadata.

    A ``ValueError`` because Prefect raises pydantic's ``ValidationError`` (a ``ValueError``)
    here, so code written for Prefect keeps catching it.
    """


class UnhashableError(SQLResultsError, TypeError):
    """A value that should become part of a cache key has no stable value to hash.

    Raised by :mod:`sqlresults.hashing` instead of falling back to pickle (whose bytes change
    between processes, PrefectHQ/prefect#16185) or silently sharing a key. The message names
    where the value sits and the two ways out: leave it out of the key, or teach sqlresults to
    hash its type. A ``TypeError``, like ``hash()`` of an unhashable object.

    Args:
        type_name: The qualified name of the offending value's type.
        path: Where the value sits, as an expression from the argument (``"x['a'][2]"``), or
            from the function whose source was fingerprinted (``"f.<closure lock>"``).
        argument: The task parameter the value was passed as, if known.
        reason: Why it cannot be hashed, when there is more to say than "unknown type" (a
            reference cycle, a hook that raised ...).
        function: The qualified name of the function whose source fingerprint (``TASK_SOURCE``)
            depends on the value; None when the value is a task input.
    """

    def __init__(
        self,
        type_name: str,
        path: str,
        argument: str | None = None,
        *,
        reason: str | None = None,
        function: str | None = None,
    ) -> None:
        self.type_name = type_name
        self.path = path
        self.argument = argument
        self.reason = reason
        self.function = function
        why = f"cannot be hashed: {reason}" if reason is not None else "has no stable value to hash"
        # A built-in type (no module in its name) cannot take a method: wrap the value instead.
        owner = type_name if "." in type_name else f"a class wrapping the {type_name}"
        hook = (
            f"give {owner} a __sqlresults_hash__(self) method that returns a hashable "
            "stand-in (or register one with sqlresults.hashing.register_hasher)"
        )
        if function is not None:
            message = (
                f"Cannot fingerprint the source of {function} for TASK_SOURCE: it depends on "
                f"{path}, a {type_name}, which {why}. Either use a cache policy without "
                f"TASK_SOURCE (e.g. cache_policy=INPUTS), or make the value hashable: {hook}."
            )
        else:
            subject = f"argument {argument!r}" if argument is not None else "a value"
            leave_out = f'"{argument}"' if argument is not None else '"<argument name>"'
            message = (
                f"Cannot compute a cache key from {subject}: {path} is a {type_name}, which "
                f"{why}. Either leave it out of "
                f"the cache key with cache_policy=INPUTS - {leave_out}, or {hook}."
            )
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        arguments = (self.type_name, self.path, self.argument)
        keywords = {"reason": self.reason, "function": self.function}
        return _rebuild, (type(self), arguments, keywords), self.__dict__


class IntegrityError(SQLResultsError):
    """A stored payload failed its checksum or signature check, or is unsigned while a signing
    key is configured. Raised before the payload is deserialized."""


class LockError(SQLResultsError):
    """Base class of the locking errors."""


class LockHeldByOtherError(LockError, RuntimeError):
    """A write was refused because another holder has an unexpired lock on the key.

    The message is Prefect's, so code that matches on it keeps working.
    """

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(
            f"Cannot write to result record with key {key} because it is locked by another holder."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (type(self), (self.key,), {}), self.__dict__


class LockNotHeldError(LockError, ValueError):
    """A lock was released (or renewed) by a holder that does not hold it.

    The message is Prefect's: ``No lock held by {holder} for transaction with key {key}``.
    """

    def __init__(self, key: str, holder: str) -> None:
        self.key = key
        self.holder = holder
        super().__init__(f"No lock held by {holder} for transaction with key {key}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Also LeaseLostError's: it takes the same arguments.
        return _rebuild, (type(self), (self.key, self.holder), {}), self.__dict__


class LeaseLostError(LockNotHeldError):
    """A holder wrote (or committed) under a lock it no longer holds.

    Its lease ran out and the lock row was taken by another holder, or swept, before the
    write: writing now could overwrite newer work, so nothing is written. A transaction that
    hits this rolls back (its rollback hooks run) and the error propagates.
    """

    def __init__(self, key: str, holder: str) -> None:
        self.key = key
        self.holder = holder
        # LockNotHeldError's message is Prefect's and fixed; this one says what happened.
        SQLResultsError.__init__(
            self,
            f"The lock on key {key!r} held by {holder} was lost: its lease ran out and the lock "
            "was taken by another holder or swept before this write, so nothing was written. "
            "Give the lock a longer hold_timeout, or keep renewing it (open transactions renew "
            "theirs) while the work runs.",
        )


class LockTimeoutError(LockError, TimeoutError):
    """Waiting for a lock took longer than the caller allowed."""


class SelfDeadlockError(LockTimeoutError):
    """A nested transaction would wait for a lock that one of its own ancestors holds.

    Prefect hangs forever here (PrefectHQ/prefect#18600); sqlresults raises instead.
    """


class EventLoopBlockingError(LockError, RuntimeError):
    """A synchronous transaction would wait for a lock in a thread that runs an event loop.

    The wait would block the loop, and with it every coroutine that could release the lock
    (two coroutines using ``transaction()`` on one key would hang forever). Use
    ``async with atransaction(...)`` in async code.
    """


class StorageError(SQLResultsError):
    """Base class of the errors about the database itself."""


class SchemaOutOfDateError(StorageError):
    """The database schema is missing or older than this version of sqlresults expects.

    The message names the fix: ``sqlresults migrate``.
    """


class StorageUnavailableError(StorageError, OSError):
    """The database could not be reached, opened or written in time.

    Never mistaken for a cache miss: ``exists()`` raises this instead of returning False.
    """


class ReadOnlyStorageError(StorageUnavailableError, PermissionError):
    """The database (or the directory holding a SQLite file) does not accept writes."""


class DamagedDatabaseError(StorageUnavailableError):
    """The SQLite file is damaged: its pages are malformed (SQLITE_CORRUPT) or its header is,
    while it still starts as a SQLite file. The message says how to restore or recover it."""


class RunError(SQLResultsError):
    """Base class of the errors about a flow or task run's outcome."""


class UnfinishedRun(RunError, RuntimeError):  # noqa: N818 (Prefect's name)
    """The result of a run that is not final (``PENDING`` or ``RUNNING``) was asked for.

    Prefect's name and message: ``Run is in RUNNING state, its result is not available.``
    """


class FailedRun(RunError):  # noqa: N818 (Prefect's name)
    """The result of a failed run that carries no exception (only a message) was asked for."""


class CancelledRun(RunError):  # noqa: N818 (Prefect's name)
    """The result of a cancelled run (e.g. work a runner dropped before it started) was asked
    for."""


class CrashedRun(RunError, RuntimeError):  # noqa: N818 (Prefect's name)
    """A run's worker died under it (a process pool worker that exited or was killed).

    Its state is ``FAILED`` and named ``"Crashed"``.
    """


class ClusterUnavailableError(RunError, ConnectionError):
    """The cluster a task runner sends runs to cannot be reached: a
    :class:`~sqlresults.task_runners.DaskTaskRunner` whose scheduler refused the connection
    or went away. The message names the scheduler's address (never a password); runs it had
    not finished get a ``Failed`` state holding this error.
    """


class UpstreamTaskError(RunError, RuntimeError):
    """A run depends on the result of another run that did not complete.

    Raised by :func:`sqlresults.futures.resolve_futures_to_results` (and ``_data``) when one of
    the futures it resolves failed or was cancelled; the task engine makes it the Failed state
    of a task run that then does not run. The message is Prefect's, with the upstream's state::

        Upstream task run 'load' (0f0e…) did not reach a 'COMPLETED' state: it is Failed.

    Attributes:
        upstream_state: The final state of the upstream run, when known.
    """

    def __init__(self, message: str, upstream_state: Any = None) -> None:
        super().__init__(message)
        self.upstream_state = upstream_state

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (str(self.args[0]), self.upstream_state)


class WaitTimeoutError(RunError, TimeoutError):
    """Waiting for futures ran out of time (``TaskRunFuture.result``, ``as_completed``,
    ``FutureList.result``).

    A ``TimeoutError`` with Prefect's messages. Its own class so that a ``TimeoutError`` raised
    by a task itself is told apart and passes through unchanged.
    """


class ConfigurationError(SQLResultsError, ValueError):
    """A setting or argument describes something sqlresults cannot use: a malformed URL, a
    database driver that is not installed, a file that is not a SQLite database."""
