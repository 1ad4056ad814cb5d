"""Result records: a result with its metadata, and Prefect's JSON envelope for both.

The database keeps a record as a row: the payload (:meth:`ResultRecord.serialize_result`, raw
bytes) beside metadata columns. :meth:`ResultRecord.serialize` and
:meth:`ResultRecord.deserialize` write and read the single JSON document Prefect 3 stores per
record, for export and import::

    {"metadata":{"storage_key":…,"expiration":…,"serializer":{…},"prefect_version":…,
    "storage_block_id":…},"result":"<the serializer's output as Prefect writes it>"}

A record written by a task also carries its :class:`Provenance`: which task, flow run and cache
policy wrote it, and a fingerprint of each component of its key. It is one more metadata field,
left out of the envelope when absent (so the envelope stays byte for byte Prefect's) and
ignored by Prefect when present (Prefect's metadata model ignores unknown fields).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Generic, Self, TypeVar
from uuid import UUID

import pydantic_core
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializeAsAny,
    ValidationError,
    field_validator,
)

from sqlresults.errors import InvalidEnvelopeError, InvalidExpirationError, SerializationError
from sqlresults.serializers import (
    CompressedSerializer,
    JSONSerializer,
    PickleSerializer,
    Serializer,
)

__all__ = [
    "PREFECT_COMPAT_VERSION",
    "Provenance",
    "ResultRecord",
    "ResultRecordMetadata",
    "envelope_from_payload",
    "payload_from_envelope",
    "serialize_result",
]

PREFECT_COMPAT_VERSION = "3.9.1"
"""The Prefect version whose envelope format this module reads and writes, and the
``prefect_version`` written into metadata by default (Prefect requires a string there)."""

R = TypeVar("R")

# A Prefect 2 `PersistedResultBlob`. Prefect 3.9.1 reads a document as one only if its keys are
# these, including `data` and `serializer`: the looser rule before it misread any raw JSON result
# that happened to have a "data" key.
_LEGACY_KEYS = frozenset({"serializer", "data", "prefect_version", "expiration"})

# How Provenance.diff names the components it knows; any other is named as it is, in backticks.
_INPUT_PREFIX = "inputs."
_COMPONENT_LABELS = {
    "task_source": "task source",
    "flow_parameters": "flow parameters",
    "run_id": "flow run",
}


@functools.cache
def _sqlresults_version() -> str:
    # Not `sqlresults.__version__`: records sits below the package's __init__, which imports it.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sqlresults")
    except PackageNotFoundError:  # pragma: no cover - a source tree without metadata
        return "0.0.0"


class Provenance(BaseModel):
    """Where a task's record comes from: which task wrote it, in which run, under which cache
    policy, and a fingerprint of each component of its key.

    The store keeps it with the record (the ``provenance`` column, JSON) under the record's
    checksum and signature, and gives it back as ``ResultStore.read(key).metadata.provenance``.
    Comparing the provenance of a stored record with that of a call that missed says what
    changed (:meth:`diff`).

    Component names: ``"task_source"``, ``"inputs.<parameter>"`` (one per hashed input, e.g.
    ``"inputs.model"``), ``"flow_parameters"``, ``"run_id"``; a policy may add others. A
    fingerprint is any short text that changes when the component does (a hex digest, say).

    Attributes:
        task: The task's qualified name, ``"module.qualname"``.
        task_run_id: The task run that wrote the record, if known.
        flow: The name of the flow it ran in, if any.
        flow_run_id: The flow run it ran in, if any.
        cache_policy: A readable description of the policy that made the key, e.g.
            ``"INPUTS + TASK_SOURCE"``; None when no policy made it (a random key, or one
            given by hand).
        components: Fingerprint per key component, in the policy's order.
        written_by: The sqlresults version that wrote the record (default: this one).

    Fields a newer sqlresults adds are ignored when read here. The model is frozen; leave
    ``components`` unchanged too once the provenance is attached to a record.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    task: str
    task_run_id: str | None = None
    flow: str | None = None
    flow_run_id: str | None = None
    cache_policy: str | None = None
    components: dict[str, str] = Field(default_factory=dict)
    written_by: str = Field(default_factory=_sqlresults_version)

    @field_validator("task_run_id", "flow_run_id", mode="before")
    @classmethod
    def _run_ids_as_text(cls, value: object) -> object:
        # Run ids are UUIDs in the task layer (as in Prefect); the record keeps their text.
        return str(value) if isinstance(value, UUID) else value

    def __hash__(self) -> int:
        # Frozen models hash their fields, and a dict does not hash.
        return hash((self.task, self.cache_policy, tuple(self.components.items())))

    def diff(self, other: Provenance) -> list[str]:
        """Say what differs between this provenance (a stored record's) and ``other`` (a
        call's), in the terms that explain a cache miss.

        Only what can change a key is compared: the task, the cache policy and the components.
        Run ids, the flow name and ``written_by`` differ between any two runs and are left out.

        Args:
            other: The provenance the call would have written.

        Returns:
            One phrase per difference, e.g. ``"input `model` changed"``, ``"task source
            changed"``, ``"input `seed` added"`` (``other`` has it, this one has not),
            ``"cache policy changed from `INPUTS` to `INPUTS + TASK_SOURCE`"``; the task and
            the policy first, then the components in this provenance's order, then those only
            ``other`` has. Empty when nothing differs.
        """
        changes: list[str] = []
        if self.task != other.task:
            changes.append(f"task changed from `{self.task}` to `{other.task}`")
        if self.cache_policy != other.cache_policy:
            changes.append(
                f"cache policy changed from {_quoted(self.cache_policy)} to "
                f"{_quoted(other.cache_policy)}"
            )
        names = [*self.components, *(n for n in other.components if n not in self.components)]
        for name in names:
            before, after = self.components.get(name), other.components.get(name)
            if before == after:
                continue
            what = "added" if before is None else "removed" if after is None else "changed"
            changes.append(f"{_component_label(name)} {what}")
        return changes


def _quoted(policy: str | None) -> str:
    return "no policy" if policy is None else f"`{policy}`"


def _component_label(name: str) -> str:
    if name.startswith(_INPUT_PREFIX):
        return f"input `{name.removeprefix(_INPUT_PREFIX)}`"
    return _COMPONENT_LABELS.get(name, f"`{name}`")


class ResultRecordMetadata(BaseModel):
    """What is known about a stored result besides its value.

    ``serializer`` accepts a serializer, a type name or a spec mapping; a mapping whose type is
    not registered here becomes an :class:`~sqlresults.serializers.UnknownSerializer` (so
    metadata written elsewhere still loads), while a known type with invalid fields is an error.
    ``expiration`` is always an aware UTC datetime, written as ISO 8601 with ``Z``.
    ``provenance`` is set on records written by tasks (:class:`Provenance`); beyond Prefect's
    fields, it is left out of :meth:`dump_bytes` when None.
    """

    storage_key: str | None = None
    expiration: datetime | None = None
    serializer: SerializeAsAny[Serializer] = PickleSerializer()
    prefect_version: str = PREFECT_COMPAT_VERSION
    storage_block_id: UUID | None = None
    provenance: Provenance | None = None

    @field_validator("serializer", mode="before")
    @classmethod
    def _coerce_serializer(cls, value: object) -> object:
        if isinstance(value, str | Mapping):
            return Serializer.from_spec(value, allow_unknown=True)
        return value

    @field_validator("expiration")
    @classmethod
    def _expiration_in_utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.utcoffset() is None:
            raise InvalidExpirationError(
                f"expiration must be a timezone-aware datetime; got the naive {value.isoformat()}."
            )
        return value.astimezone(UTC)

    def dump_bytes(self) -> bytes:
        """Encode as compact JSON, keeping every field of the serializer.

        Returns:
            UTF-8 JSON for :meth:`load_bytes`: without provenance, exactly Prefect's metadata
            (no ``"provenance":null``); with it, Prefect's fields and then ``provenance``.
        """
        exclude = None if self.provenance is not None else _NO_PROVENANCE
        return self.model_dump_json(serialize_as_any=True, exclude=exclude).encode()

    @classmethod
    def load_bytes(cls, data: bytes) -> Self:
        """Decode :meth:`dump_bytes` output (or Prefect's metadata JSON).

        Args:
            data: UTF-8 JSON.

        Returns:
            The metadata; missing fields take their defaults.

        Raises:
            pydantic.ValidationError: ``data`` is not valid metadata.
        """
        return cls.model_validate_json(data)


class ResultRecord(BaseModel, Generic[R]):
    """A result and its metadata.

    Records compare by ``metadata`` and ``result``; whether and at which version a record was
    persisted is in-memory state (:meth:`mark_persisted`) that is neither compared nor
    serialized.
    """

    metadata: ResultRecordMetadata
    result: R

    _persisted: bool = PrivateAttr(default=False)
    _version: int | None = PrivateAttr(default=None)

    # Both properties read the private attributes from their dict: pydantic's __getattr__,
    # which an attribute access ends in, costs 1.4 µs, more than the statement that confirms a
    # cached record's version (read with the memory cache on calls ``version`` twice).

    @property
    def is_persisted(self) -> bool:
        """Whether the record was written to, or read from, storage."""
        try:
            return bool(self.__pydantic_private__["_persisted"])  # type: ignore[index]
        except (AttributeError, KeyError, TypeError):
            return self._persisted

    @property
    def version(self) -> int | None:
        """The version of the stored row this record reflects; None until persisted."""
        try:
            version: int | None = self.__pydantic_private__["_version"]  # type: ignore[index]
        except (AttributeError, KeyError, TypeError):
            return self._version
        return version

    @property
    def expiration(self) -> datetime | None:
        """``metadata.expiration``."""
        return self.metadata.expiration

    @property
    def serializer(self) -> Serializer:
        """``metadata.serializer``."""
        return self.metadata.serializer

    @classmethod
    def from_storage(
        cls,
        key: str,
        result: Any,
        serializer: Serializer,
        expiration: datetime | None,
        version: int | None,
        provenance: Provenance | None = None,
    ) -> ResultRecord[Any]:
        """Build a persisted record from values the store has already checked.

        The store calls this on every read and write. It sets exactly the attributes
        ``model_construct`` sets, without its per-field bookkeeping, which costs more than the
        database read of a small record (9 µs against 2 µs); a test keeps the two equivalent.

        Args:
            key: The storage key.
            result: The result.
            serializer: The serializer that wrote (or will write) the payload.
            expiration: An aware UTC datetime, or None.
            version: The stored row's version, or None if not stored yet.
            provenance: The record's provenance, if a task wrote it.

        Returns:
            The record; persisted when ``version`` is given.
        """
        # The slots BaseModel.model_construct fills, set through their descriptors: neither
        # BaseModel.__setattr__ nor a helper call per model (1.3 µs of a 10 µs read).
        metadata = _new_instance(ResultRecordMetadata)
        _set_dict(
            metadata,
            {
                "storage_key": key,
                "expiration": expiration,
                "serializer": serializer,
                "prefect_version": PREFECT_COMPAT_VERSION,
                "storage_block_id": None,
                "provenance": provenance,
            },
        )
        _set_fields_set(metadata, set(_METADATA_FIELDS))
        _set_extra(metadata, None)
        _set_private(metadata, None)
        record = _new_instance(cls)
        _set_dict(record, {"metadata": metadata, "result": result})
        _set_fields_set(record, set(_RECORD_FIELDS))
        _set_extra(record, None)
        _set_private(record, {"_persisted": version is not None, "_version": version})
        return record

    def mark_persisted(self, version: int | None = None) -> None:
        """Record that this record is in storage.

        Args:
            version: the version of the stored row, if known.
        """
        private = getattr(self, "__pydantic_private__", None)
        if type(private) is dict:
            # Straight into pydantic's private dict: its __setattr__ costs 0.15 µs a name, on
            # every write.
            private["_persisted"] = True
            private["_version"] = version
        else:
            self._persisted = True
            self._version = version

    def serialize_result(self) -> bytes:
        """Encode the result with the record's serializer.

        Returns:
            The payload, raw bytes.

        Raises:
            SerializationError: the serializer cannot encode the result (the original error is
                the ``__cause__``), or it is not available here.
        """
        return serialize_result(self.serializer, self.result)

    def serialize_metadata(self) -> bytes:
        """Encode the metadata; see :meth:`ResultRecordMetadata.dump_bytes`."""
        return self.metadata.dump_bytes()

    def serialize(self) -> bytes:
        """Encode the record as Prefect's JSON envelope, byte for byte what Prefect writes.

        Returns:
            ``{"metadata":{…},"result":"<text>"}``, the text being the serializer's Prefect
            bytes (:meth:`~sqlresults.serializers.Serializer.to_prefect_bytes`), e.g. base64 for
            pickle.

        Raises:
            SerializationError: the result cannot be encoded, or the serializer's Prefect bytes
                are not UTF-8 text.
        """
        return envelope_from_payload(self.metadata, self.serialize_result())

    @classmethod
    def deserialize(
        cls, data: bytes, backup_serializer: Serializer | None = None
    ) -> ResultRecord[Any]:
        """Decode Prefect's JSON envelope (or a Prefect 2 result blob).

        Bytes that are no envelope are, with ``backup_serializer``, read as a bare payload in
        Prefect's format (what Prefect writes when metadata is stored apart). Which one a document
        is can only be guessed from its content: a raw JSON result that looks like an envelope
        (a JSON object with ``metadata`` and ``result`` keys and valid metadata) is read as one,
        and then fails or, worse, succeeds, as in Prefect.

        Args:
            data: the document.
            backup_serializer: the serializer of a bare payload.

        Returns:
            The record; not marked persisted.

        Raises:
            InvalidEnvelopeError: ``data`` is no envelope (not JSON, the wrong shape, invalid
                metadata) and there is no ``backup_serializer``; a ``ValueError``, as Prefect's
                ``ValidationError`` is.
            SerializationError: the result does not decode (the message names the serializer).
        """
        try:
            metadata, text = _read_envelope(data)
            payload = text.encode()
        except ValueError as exc:
            if backup_serializer is None:
                raise InvalidEnvelopeError(
                    f"The bytes are not a result record envelope: {exc}. Pass backup_serializer "
                    "to read a bare serialized result."
                ) from exc
            metadata, payload = ResultRecordMetadata(serializer=backup_serializer), data
        result = _load(metadata.serializer, payload, prefect_format=True)
        return cls(metadata=metadata, result=result)

    @classmethod
    def deserialize_from_result_and_metadata(
        cls, result: bytes, metadata: bytes
    ) -> ResultRecord[Any]:
        """Rebuild a record from a payload and its metadata stored apart.

        Args:
            result: raw bytes of the serializer (:meth:`serialize_result`).
            metadata: :meth:`ResultRecordMetadata.dump_bytes` output.

        Returns:
            The record; not marked persisted.

        Raises:
            InvalidEnvelopeError: the metadata is invalid (a ``ValueError``, as Prefect's
                ``ValidationError`` is).
            SerializationError: the payload does not decode.
        """
        try:
            record_metadata = ResultRecordMetadata.load_bytes(metadata)
        except ValueError as exc:
            raise InvalidEnvelopeError("The metadata bytes are not valid result metadata.") from exc
        value = _load(record_metadata.serializer, result, prefect_format=False)
        return cls(metadata=record_metadata, result=value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ResultRecord):
            return NotImplemented
        return self.metadata == other.metadata and self.result == other.result


def serialize_result(serializer: Serializer, result: Any) -> bytes:
    """Encode ``result`` with ``serializer``: :meth:`ResultRecord.serialize_result` without a
    record (the store's write builds none when it keeps nothing in memory).

    Raises:
        SerializationError: The serializer cannot encode the result (the original error is the
            ``__cause__``), or it is not available here.
    """
    try:
        return serializer.dumps(result)
    except SerializationError:
        raise
    except Exception as exc:
        # Prefect always suggests "json", which is no advice when JSON is what failed.
        alternative = "pickle" if _uses_json(serializer) else "json"
        raise SerializationError(
            f"Failed to serialize object of type {type(result).__name__!r} with "
            f"serializer {serializer.type!r}. You can try a different serializer (e.g. "
            f'result_serializer="{alternative}") or disabling persistence '
            "(persist_result=False) for this flow or task."
        ) from exc


def envelope_from_payload(metadata: ResultRecordMetadata, payload: bytes) -> bytes:
    """Prefect's JSON envelope for a payload that is already serialized, without decoding it:
    what :meth:`ResultRecord.serialize` writes for the same record (an export never
    deserializes what it moves).

    Args:
        metadata: The record's metadata; its serializer wrote ``payload``.
        payload: The serializer's raw bytes (:meth:`ResultRecord.serialize_result`).

    Returns:
        ``{"metadata":{…},"result":"<text>"}``.

    Raises:
        SerializationError: The serializer's Prefect bytes are not UTF-8 text, or it cannot
            convert the payload (a damaged compressed payload, say).
    """
    serializer = metadata.serializer
    try:
        text = serializer.to_prefect_bytes(payload).decode()
    except UnicodeDecodeError as exc:
        raise SerializationError(
            f"Serializer {serializer.type!r} produced bytes that are not UTF-8 text, which "
            "Prefect's envelope cannot hold. Give it to_prefect_bytes() and "
            "from_prefect_bytes() methods that convert to text (base64, for example)."
        ) from exc
    except SerializationError:
        raise
    except Exception as exc:
        raise SerializationError(
            f"Serializer {serializer.type!r} cannot convert the payload to Prefect's format: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    # Built by hand rather than through a model so the key order is Prefect's, and with
    # pydantic's JSON encoder so the text is escaped exactly as Prefect's pydantic does.
    return (
        b'{"metadata":' + metadata.dump_bytes() + b',"result":' + pydantic_core.to_json(text) + b"}"
    )


def payload_from_envelope(data: bytes) -> tuple[ResultRecordMetadata, bytes]:
    """Read Prefect's JSON envelope (or a Prefect 2 result blob) into its metadata and the
    serializer's raw payload, without deserializing the result (an import runs no code from
    the file, and needs none of the result's classes).

    Args:
        data: The document.

    Returns:
        The metadata and the payload, ready for
        :meth:`~sqlresults.results.ResultStore.write_payload`.

    Raises:
        InvalidEnvelopeError: ``data`` is no envelope (a ``ValueError``).
        SerializationError: The result text does not convert back with the serializer the
            metadata names (bad base64, say), or that serializer is not available here.
    """
    try:
        metadata, text = _read_envelope(data)
    except ValueError as exc:
        raise InvalidEnvelopeError(f"The bytes are not a result record envelope: {exc}.") from exc
    serializer = metadata.serializer
    try:
        payload = serializer.from_prefect_bytes(text.encode())
    except SerializationError:
        raise
    except Exception as exc:
        raise SerializationError(
            f"The result does not decode with serializer {serializer.type!r}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    return metadata, payload


def _read_envelope(data: bytes) -> tuple[ResultRecordMetadata, str]:
    """Parse an envelope or a Prefect 2 blob into its metadata and its result text.

    Raises:
        ValueError: ``data`` is neither; the message says why, in words that complete "The bytes
            are not a result record envelope: ".
    """
    import orjson

    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ValueError("they are not JSON") from exc
    if isinstance(document, dict) and "metadata" in document and "result" in document:
        fields, text = document["metadata"], document["result"]
    elif (
        isinstance(document, dict)
        and {"data", "serializer"} <= document.keys() <= _LEGACY_KEYS
        and isinstance(document["serializer"], dict)
    ):
        text = document["data"]
        fields = {key: value for key, value in document.items() if key != "data"}
    else:
        raise ValueError("they are not a JSON object with 'metadata' and 'result' keys")
    if not isinstance(text, str):
        raise ValueError("the result is not a string")
    try:
        return ResultRecordMetadata.model_validate(fields), text
    except ValidationError as exc:
        raise ValueError("its metadata is invalid") from exc


def _uses_json(serializer: Serializer) -> bool:
    if isinstance(serializer, CompressedSerializer):
        return _uses_json(serializer.serializer)
    return isinstance(serializer, JSONSerializer)


def _load(serializer: Serializer, payload: bytes, *, prefect_format: bool) -> Any:
    """Decode a payload, turning any failure into a SerializationError naming the serializer."""
    try:
        if prefect_format:
            payload = serializer.from_prefect_bytes(payload)
        return serializer.loads(payload)
    except SerializationError:
        raise
    except Exception as exc:
        raise SerializationError(
            f"Failed to deserialize the result with serializer {serializer.type!r}: {exc!r}"
        ) from exc


_new_instance = object.__new__
# The four slots BaseModel.model_construct sets on a new instance, as descriptors: setting
# through them skips BaseModel.__setattr__.
_set_dict = BaseModel.__dict__["__dict__"].__set__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__
_METADATA_FIELDS = frozenset(ResultRecordMetadata.model_fields)
_NO_PROVENANCE: set[str] = {"provenance"}  # never mutated; pydantic wants a set
_RECORD_FIELDS = frozenset(ResultRecord.model_fields)
