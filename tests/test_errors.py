"""Tests for sqlresults.errors: the exception tree and its messages."""

from __future__ import annotations

import pickle

import pytest

import sqlresults.errors as errors_module
from sqlresults.errors import (
    CancelledRun,
    ClusterUnavailableError,
    ConfigurationError,
    CrashedRun,
    DamagedDatabaseError,
    EventLoopBlockingError,
    FailedRun,
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
    RunError,
    SchemaOutOfDateError,
    SelfDeadlockError,
    SerializationError,
    SerializerUnavailableError,
    SQLResultsError,
    StorageError,
    StorageUnavailableError,
    UnfinishedRun,
    UnhashableError,
    UnknownSerializerError,
    UpstreamTaskError,
    WaitTimeoutError,
)

# The tree drawn in the errors.py docstring: each error, its sqlresults parent and the builtins
# it also derives from (empty: only the sqlresults parent).
TREE: list[tuple[type[BaseException], type[BaseException], tuple[type[BaseException], ...]]] = [
    (InvalidArgumentError, SQLResultsError, (ValueError,)),
    (InvalidKeyError, InvalidArgumentError, (ValueError,)),
    (InvalidExpirationError, InvalidArgumentError, (ValueError,)),
    (RecordNotFoundError, SQLResultsError, (KeyError,)),
    (SerializationError, SQLResultsError, ()),
    (UnknownSerializerError, SerializationError, (ValueError,)),
    (SerializerUnavailableError, UnknownSerializerError, (ValueError, RuntimeError)),
    (InvalidEnvelopeError, SerializationError, (ValueError,)),
    (UnhashableError, SQLResultsError, (TypeError,)),
    (IntegrityError, SQLResultsError, ()),
    (LockError, SQLResultsError, ()),
    (LockHeldByOtherError, LockError, (RuntimeError,)),
    (LockNotHeldError, LockError, (ValueError,)),
    (LeaseLostError, LockNotHeldError, (ValueError,)),
    (LockTimeoutError, LockError, (TimeoutError,)),
    (SelfDeadlockError, LockTimeoutError, (TimeoutError,)),
    (EventLoopBlockingError, LockError, (RuntimeError,)),
    (StorageError, SQLResultsError, ()),
    (SchemaOutOfDateError, StorageError, ()),
    (StorageUnavailableError, StorageError, (OSError,)),
    (ReadOnlyStorageError, StorageUnavailableError, (PermissionError,)),
    (DamagedDatabaseError, StorageUnavailableError, (OSError,)),
    (RunError, SQLResultsError, ()),
    (UnfinishedRun, RunError, (RuntimeError,)),
    (FailedRun, RunError, ()),
    (CancelledRun, RunError, ()),
    (CrashedRun, RunError, (RuntimeError,)),
    (ClusterUnavailableError, RunError, (ConnectionError,)),
    (UpstreamTaskError, RunError, (RuntimeError,)),
    (WaitTimeoutError, RunError, (TimeoutError,)),
    (ConfigurationError, SQLResultsError, (ValueError,)),
]

# Builtins a caller might catch; an error must derive from exactly the ones the tree gives it.
BUILTINS = [ValueError, KeyError, RuntimeError, TimeoutError, OSError, PermissionError, TypeError]


class TestTree:
    def test_root(self) -> None:
        """SQLResultsError is a plain Exception."""
        assert SQLResultsError.__bases__ == (Exception,)

    @pytest.mark.parametrize(
        ("error", "parent", "builtins"), TREE, ids=[error.__name__ for error, _, _ in TREE]
    )
    def test_each_error_has_its_parent_and_builtins(
        self,
        error: type[BaseException],
        parent: type[BaseException],
        builtins: tuple[type[BaseException], ...],
    ) -> None:
        """Each error derives from its parent in the drawn tree and from its builtins, and from
        no other builtin a caller might catch by mistake."""
        assert issubclass(error, parent)
        assert issubclass(error, SQLResultsError)
        for other in BUILTINS:
            expected = any(issubclass(builtin, other) for builtin in builtins)
            assert issubclass(error, other) is expected, other

    def test_tree_covers_every_exported_error(self) -> None:
        """Every exception errors.py exports appears in the tree."""
        exported = {getattr(errors_module, name) for name in errors_module.__all__}
        assert exported == {error for error, _, _ in TREE} | {SQLResultsError}

    def test_docstring_draws_every_error(self) -> None:
        """The module docstring's tree names every exported exception."""
        doc = errors_module.__doc__ or ""
        for name in errors_module.__all__:
            assert name in doc


class TestMessages:
    def test_lock_not_held_uses_prefects_message(self) -> None:
        """LockNotHeldError says "No lock held by {holder} for transaction with key {key}"."""
        error = LockNotHeldError("my-key", "host:1:2:MainThread")
        assert str(error) == "No lock held by host:1:2:MainThread for transaction with key my-key"
        assert (error.key, error.holder) == ("my-key", "host:1:2:MainThread")

    def test_lock_held_by_other_uses_prefects_message(self) -> None:
        """LockHeldByOtherError carries Prefect's write-refused message."""
        error = LockHeldByOtherError("k/1")
        assert str(error) == (
            "Cannot write to result record with key k/1 because it is locked by another holder."
        )
        assert error.key == "k/1"

    @pytest.mark.parametrize("operation", ["serialization", "deserialization"])
    def test_serializer_unavailable_uses_prefects_message(self, operation: str) -> None:
        """SerializerUnavailableError says what Prefect's UnknownSerializer says, then how to
        fix it, and keeps the type and the operation."""
        error = SerializerUnavailableError("custom", operation)
        assert str(error) == (
            f"Serializer 'custom' is not available in this environment, so {operation} cannot "
            "be performed. Install or import the package that defines it."
        )
        assert (error.serializer_type, error.operation) == ("custom", operation)

    def test_record_not_found_str_has_no_quotes_around_it(self) -> None:
        """str(RecordNotFoundError) is the plain message, not KeyError's quoted repr."""
        error = RecordNotFoundError("my-key", "ns")
        text = str(error)
        assert text == "Result record 'my-key' in namespace 'ns' does not exist."
        assert not text.startswith(('"', "'"))
        assert (error.key, error.namespace, error.expired) == ("my-key", "ns", False)

    def test_record_not_found_expired(self) -> None:
        """An expired record's error says so and sets expired."""
        error = RecordNotFoundError("k", expired=True)
        assert error.expired
        assert str(error) == "Result record 'k' has expired."
        assert error.namespace is None

    def test_record_not_found_is_caught_as_key_error(self) -> None:
        """Code written against a mapping catches a missing record with except KeyError."""
        with pytest.raises(KeyError):
            raise RecordNotFoundError("k")


# Errors whose __init__ takes more than a message, built as sqlresults raises them.
EXAMPLES: dict[type[BaseException], BaseException] = {
    RecordNotFoundError: RecordNotFoundError("k", "ns", expired=True),
    SerializerUnavailableError: SerializerUnavailableError("custom", "deserialization"),
    LockHeldByOtherError: LockHeldByOtherError("k"),
    LockNotHeldError: LockNotHeldError("k", "holder1"),
    LeaseLostError: LeaseLostError("k", "holder1"),
    UnhashableError: UnhashableError(
        "_thread.lock", "x['a'][2]", "x", reason="why", function="mod.task"
    ),
}


class TestPickling:
    @pytest.mark.parametrize("error", [error for error, _, _ in TREE], ids=lambda e: e.__name__)
    def test_every_error_survives_pickling(self, error: type[BaseException]) -> None:
        """Every error unpickles to one of its class with the same message and attributes, as
        it must when a process pool worker raises it (concurrent.futures pickles the error
        back to the caller). Before the fix LockNotHeldError and LeaseLostError could not be
        unpickled ("missing 1 required positional argument: 'holder'"), which broke the whole
        pool (BrokenProcessPool), and RecordNotFoundError and LockHeldByOtherError came back
        with their message wrapped in a second one."""
        original = EXAMPLES.get(error) or error("the message")
        restored = pickle.loads(pickle.dumps(original))
        assert type(restored) is error
        assert str(restored) == str(original)
        assert restored.args == original.args
        assert vars(restored) == vars(original)
