"""Tests for sqlresults.records."""

from __future__ import annotations

import base64
import json
import threading
from datetime import UTC, datetime, timedelta, timezone
from importlib.metadata import version
from typing import Any
from uuid import UUID

import cloudpickle
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from strategies import json_values, picklable_values

from sqlresults.errors import (
    InvalidEnvelopeError,
    InvalidExpirationError,
    SerializationError,
    UnknownSerializerError,
)
from sqlresults.records import (
    PREFECT_COMPAT_VERSION,
    Provenance,
    ResultRecord,
    ResultRecordMetadata,
)
from sqlresults.serializers import (
    CompressedJSONSerializer,
    CompressedPickleSerializer,
    CompressedSerializer,
    JSONSerializer,
    PickleSerializer,
    Serializer,
    UnknownSerializer,
)

# Written by Prefect 3.9.1: a cloudpickle of {"a": 1}, protocol 5.
PREFECT_ENVELOPE = (
    b'{"metadata":{"storage_key":"/abs/k1","expiration":null,"serializer":{"type":"pickle",'
    b'"picklelib":"cloudpickle","picklelib_version":null},"prefect_version":"3.9.1",'
    b'"storage_block_id":null},"result":"gAWVCgAAAAAAAAB9lIwBYZRLAXMu\\n"}'
)

JSON_SERIALIZERS = [
    JSONSerializer(),
    JSONSerializer(jsonlib="json"),
    CompressedJSONSerializer(),
    CompressedSerializer(serializer="json", compressionlib="zlib"),
]
PICKLE_SERIALIZERS = [
    PickleSerializer(),
    PickleSerializer(picklelib="pickle"),
    CompressedPickleSerializer(),
    CompressedSerializer(serializer="pickle", compressionlib="bz2"),
]


class Base64Serializer(Serializer):
    """A custom serializer with binary output that knows how Prefect would store it."""

    type: str = "test-records-binary"

    def dumps(self, obj: Any) -> bytes:
        return b"\xff" + str(obj).encode()

    def loads(self, blob: bytes) -> Any:
        return blob[1:].decode()

    def to_prefect_bytes(self, payload: bytes) -> bytes:
        return base64.encodebytes(payload)

    def from_prefect_bytes(self, data: bytes) -> bytes:
        return base64.decodebytes(data)


class BinarySerializer(Base64Serializer):
    """The same binary output, without a conversion for Prefect's envelope."""

    type: str = "test-records-binary-raw"

    def to_prefect_bytes(self, payload: bytes) -> bytes:
        return payload

    def from_prefect_bytes(self, data: bytes) -> bytes:
        return data


PROVENANCE = Provenance(
    task="pipeline.train",
    task_run_id="7d8c4f7e-3b1a-4d55-9a51-0f6f5c2c8e11",
    flow="nightly",
    flow_run_id="0b7f3f0e-9a7e-4a4b-8f1e-58b3c7f0a2d4",
    cache_policy="INPUTS + TASK_SOURCE",
    components={"task_source": "5e2a", "inputs.model": "9f1c", "inputs.seed": "0d41"},
    written_by="0.1.0",
)


class PrefectResultRecordMetadata(BaseModel):
    """Prefect 3's ``ResultRecordMetadata`` as far as reading JSON goes
    (src/prefect/_internal/result_records.py, PrefectHQ/prefect@ce79dd3): its five fields and
    no ``model_config``, so pydantic's default ``extra="ignore"``. Prefect itself is not
    installed in the test environment."""

    storage_key: str | None = None
    expiration: datetime | None = None
    serializer: dict[str, Any]
    prefect_version: str
    storage_block_id: UUID | None = None


def _record(result: Any, serializer: Serializer | None = None, **fields: Any) -> ResultRecord[Any]:
    metadata = ResultRecordMetadata(serializer=serializer or PickleSerializer(), **fields)
    return ResultRecord(metadata=metadata, result=result)


class TestProvenance:
    def test_defaults(self) -> None:
        """Only the task is required; written_by defaults to the running sqlresults."""
        provenance = Provenance(task="m.f")
        assert (provenance.task_run_id, provenance.flow, provenance.flow_run_id) == (
            None,
            None,
            None,
        )
        assert provenance.cache_policy is None
        assert provenance.components == {}
        assert provenance.written_by == version("sqlresults")

    def test_is_frozen_and_hashable(self) -> None:
        """A provenance is a value: fields cannot be reassigned, and equal ones hash alike
        (components and all)."""
        with pytest.raises(ValidationError, match="frozen"):
            PROVENANCE.task = "other"  # type: ignore[misc]
        copy = Provenance.model_validate_json(PROVENANCE.model_dump_json())
        assert copy == PROVENANCE
        assert {copy, PROVENANCE} == {PROVENANCE}

    def test_run_ids_are_kept_as_text(self) -> None:
        """UUID run ids (the task layer's) are stored as their text."""
        task_run, flow_run = UUID(int=1), UUID(int=2)
        provenance = Provenance(task="m.f", task_run_id=task_run, flow_run_id=flow_run)  # type: ignore[arg-type]
        assert provenance.task_run_id == str(task_run)
        assert provenance.flow_run_id == str(flow_run)

    def test_json_round_trip_keeps_component_order(self) -> None:
        """The JSON the store keeps reads back equal, components in the policy's order."""
        loaded = Provenance.model_validate_json(PROVENANCE.model_dump_json())
        assert loaded == PROVENANCE
        assert list(loaded.components) == ["task_source", "inputs.model", "inputs.seed"]

    def test_fields_of_a_newer_sqlresults_are_ignored(self) -> None:
        """Provenance written by a newer sqlresults, with fields this one does not know,
        still reads."""
        document = json.loads(PROVENANCE.model_dump_json())
        document["host"] = "build-7"
        assert Provenance.model_validate(document) == PROVENANCE

    def test_diff_of_the_same_key_is_empty(self) -> None:
        """Two runs with the same task, policy and fingerprints differ in nothing that makes
        a key: run ids, flow name and sqlresults version are left out."""
        rerun = PROVENANCE.model_copy(
            update={
                "task_run_id": "other",
                "flow_run_id": "other",
                "flow": "adhoc",
                "written_by": "9.9",
            }
        )
        assert PROVENANCE.diff(rerun) == []

    def test_diff_names_each_changed_component(self) -> None:
        """Changed fingerprints are named in words, in the stored record's order."""
        current = PROVENANCE.model_copy(
            update={
                "components": {**PROVENANCE.components, "inputs.model": "aaaa", "task_source": "b"}
            }
        )
        assert PROVENANCE.diff(current) == ["task source changed", "input `model` changed"]

    def test_diff_names_added_and_removed_components(self) -> None:
        """A component only the call has is "added", one only the record has is "removed";
        added ones come last."""
        current = PROVENANCE.model_copy(
            update={"components": {"task_source": "5e2a", "inputs.model": "9f1c", "inputs.lr": "1"}}
        )
        assert PROVENANCE.diff(current) == ["input `seed` removed", "input `lr` added"]

    def test_diff_names_task_and_policy_first(self) -> None:
        """A different task or policy is named first, with both values."""
        current = PROVENANCE.model_copy(
            update={"task": "pipeline.fit", "cache_policy": None, "components": {}}
        )
        assert PROVENANCE.diff(current) == [
            "task changed from `pipeline.train` to `pipeline.fit`",
            "cache policy changed from `INPUTS + TASK_SOURCE` to no policy",
            "task source removed",
            "input `model` removed",
            "input `seed` removed",
        ]

    @pytest.mark.parametrize(
        ("component", "phrase"),
        [
            ("flow_parameters", "flow parameters changed"),
            ("run_id", "flow run changed"),
            ("inputs.x.y", "input `x.y` changed"),
            ("custom_part", "`custom_part` changed"),
        ],
    )
    def test_diff_labels(self, component: str, phrase: str) -> None:
        """Known components get words; inputs are named by parameter; others as they are."""
        before = Provenance(task="m.f", components={component: "1"})
        after = Provenance(task="m.f", components={component: "2"})
        assert before.diff(after) == [phrase]


class TestResultRecordMetadata:
    def test_defaults(self) -> None:
        """Metadata defaults to the pickle serializer and the Prefect version of the format."""
        metadata = ResultRecordMetadata()
        assert metadata.serializer == PickleSerializer()
        assert metadata.prefect_version == PREFECT_COMPAT_VERSION == "3.9.1"
        assert (metadata.storage_key, metadata.expiration, metadata.storage_block_id) == (
            None,
            None,
            None,
        )

    def test_dump_is_compact_json_in_prefect_field_order(self) -> None:
        """dump_bytes writes compact JSON with Prefect's fields, in Prefect's order."""
        block = UUID(int=5)
        metadata = ResultRecordMetadata(storage_key="k", storage_block_id=block)
        assert metadata.dump_bytes() == (
            b'{"storage_key":"k","expiration":null,"serializer":{"type":"pickle",'
            b'"picklelib":"cloudpickle","picklelib_version":null},"prefect_version":"3.9.1",'
            b'"storage_block_id":"00000000-0000-0000-0000-000000000005"}'
        )

    def test_provenance_follows_prefects_fields(self) -> None:
        """With provenance, dump_bytes writes Prefect's fields unchanged, then provenance;
        without, no provenance key at all (not even null)."""
        plain = ResultRecordMetadata(storage_key="k")
        assert b"provenance" not in plain.dump_bytes()
        with_provenance = ResultRecordMetadata(storage_key="k", provenance=PROVENANCE)
        assert with_provenance.dump_bytes() == (
            plain.dump_bytes()[:-1]
            + b',"provenance":'
            + PROVENANCE.model_dump_json().encode()
            + b"}"
        )

    def test_round_trip_keeps_provenance(self) -> None:
        """load_bytes(dump_bytes()) gives the provenance back."""
        metadata = ResultRecordMetadata(storage_key="k", provenance=PROVENANCE)
        loaded = ResultRecordMetadata.load_bytes(metadata.dump_bytes())
        assert loaded == metadata
        assert loaded.provenance == PROVENANCE

    @pytest.mark.parametrize(
        "serializer",
        [
            *JSON_SERIALIZERS,
            *PICKLE_SERIALIZERS,
            CompressedSerializer(serializer=JSONSerializer(dumps_kwargs={"sort_keys": True})),
        ],
        ids=lambda serializer: serializer.spec_json(),
    )
    def test_round_trip_keeps_serializer_fields(self, serializer: Serializer) -> None:
        """load_bytes(dump_bytes()) is equal, every (nested) serializer field included."""
        metadata = ResultRecordMetadata(
            storage_key="k", expiration=datetime(2030, 1, 1, tzinfo=UTC), serializer=serializer
        )
        loaded = ResultRecordMetadata.load_bytes(metadata.dump_bytes())
        assert loaded == metadata
        assert type(loaded.serializer) is type(serializer)

    @pytest.mark.parametrize(
        "value", ["compressed/json", {"type": "compressed/json"}, CompressedJSONSerializer()]
    )
    def test_serializer_from_name_spec_or_instance(self, value: Any) -> None:
        """serializer accepts a type name, a spec mapping or a serializer."""
        assert ResultRecordMetadata(serializer=value).serializer == CompressedJSONSerializer()

    def test_unknown_serializer_type_is_tolerated(self) -> None:
        """Metadata naming an unregistered serializer loads, keeping its fields (behaviour 16)."""
        data = b'{"storage_key":"k","serializer":{"type":"custom","foo":"bar"}}'
        metadata = ResultRecordMetadata.load_bytes(data)
        assert isinstance(metadata.serializer, UnknownSerializer)
        assert metadata.serializer.type == "custom"
        assert metadata.serializer.foo == "bar"  # type: ignore[attr-defined]
        assert json.loads(metadata.dump_bytes())["serializer"] == {"type": "custom", "foo": "bar"}

    @pytest.mark.parametrize(
        "spec",
        [
            {"type": "pickle", "picklelib": "not_a_real_lib"},
            {"type": "json", "bogus_extra": "x"},
            {"jsonlib": "json"},
        ],
    )
    def test_invalid_known_serializer_is_an_error(self, spec: dict[str, Any]) -> None:
        """A registered type with invalid fields, or a spec without type, fails (behaviour 17)."""
        data = json.dumps({"serializer": spec}).encode()
        with pytest.raises(ValidationError, match="serializer"):
            ResultRecordMetadata.load_bytes(data)

    def test_unknown_serializer_name_is_an_error(self) -> None:
        """Only stored specs are tolerated: a bare unknown type name given in code is an error."""
        with pytest.raises(ValidationError, match="Unknown serializer type 'nope'"):
            ResultRecordMetadata(serializer="nope")

    def test_naive_expiration_is_refused(self) -> None:
        """A naive expiration raises, the InvalidExpirationError inside the ValidationError."""
        with pytest.raises(ValidationError, match="timezone-aware") as caught:
            ResultRecordMetadata(expiration=datetime(2030, 1, 1))
        assert isinstance(caught.value.errors()[0]["ctx"]["error"], InvalidExpirationError)

    @given(
        expiration=st.datetimes(
            timezones=st.timezones(),
            min_value=datetime(2000, 1, 1),
            max_value=datetime(2100, 1, 1),
        )
    )
    def test_expiration_is_converted_to_utc(self, expiration: datetime) -> None:
        """An aware expiration is kept as the same instant in UTC."""
        stored = ResultRecordMetadata(expiration=expiration).expiration
        assert stored is not None
        assert stored.tzinfo is UTC
        assert stored - expiration == timedelta(0)

    def test_expiration_is_written_with_z(self) -> None:
        """The expiration is ISO 8601 in UTC with a Z, as Prefect writes it."""
        tz = timezone(timedelta(hours=2))
        metadata = ResultRecordMetadata(
            expiration=datetime(2026, 11, 21, 6, 19, 16, 466564, tzinfo=tz)
        )
        assert json.loads(metadata.dump_bytes())["expiration"] == "2026-11-21T04:19:16.466564Z"
        assert ResultRecordMetadata.load_bytes(metadata.dump_bytes()) == metadata

    def test_missing_fields_take_defaults(self) -> None:
        """Metadata written without some fields (older writers) loads with the defaults."""
        metadata = ResultRecordMetadata.load_bytes(b'{"serializer":"json"}')
        assert metadata.serializer == JSONSerializer()
        assert metadata.prefect_version == PREFECT_COMPAT_VERSION


class TestResultRecord:
    def test_reads_prefect_envelope(self) -> None:
        """An envelope written by Prefect 3.9.1 deserializes to its result and metadata."""
        record = ResultRecord.deserialize(PREFECT_ENVELOPE)
        assert record.result == {"a": 1}
        assert record.metadata.storage_key == "/abs/k1"
        assert record.serializer == PickleSerializer()
        assert not record.is_persisted

    def test_writes_prefect_envelope(self) -> None:
        """serialize() writes, byte for byte, the envelope Prefect writes for the same record."""
        record = _record({"a": 1}, storage_key="/abs/k1")
        assert record.serialize() == PREFECT_ENVELOPE

    @given(data=st.data())
    @pytest.mark.parametrize(
        "serializer",
        [*JSON_SERIALIZERS, *PICKLE_SERIALIZERS],
        ids=lambda serializer: serializer.spec_json(),
    )
    def test_envelope_round_trip(self, serializer: Serializer, data: st.DataObject) -> None:
        """deserialize(serialize()) gives an equal record, for every serializer."""
        values = json_values if serializer in JSON_SERIALIZERS else picklable_values
        record = _record(
            data.draw(values),
            serializer,
            storage_key=data.draw(st.text(st.characters(exclude_categories=["Cs"]))),
            expiration=datetime(2030, 1, 1, tzinfo=UTC),
        )
        assert ResultRecord.deserialize(record.serialize()) == record

    def test_envelope_without_provenance_is_prefects(self) -> None:
        """A record without provenance, built by the store's fast path too, writes Prefect's
        envelope byte for byte, with no provenance key."""
        record = ResultRecord.from_storage("/abs/k1", {"a": 1}, PickleSerializer(), None, None)
        assert record.metadata.provenance is None
        assert record.serialize() == PREFECT_ENVELOPE

    def test_envelope_round_trip_with_provenance(self) -> None:
        """deserialize(serialize()) gives the provenance back."""
        record = _record({"a": 1}, JSONSerializer(), storage_key="k", provenance=PROVENANCE)
        envelope = record.serialize()
        assert json.loads(envelope)["metadata"]["provenance"]["task"] == "pipeline.train"
        loaded = ResultRecord.deserialize(envelope)
        assert loaded == record
        assert loaded.metadata.provenance == PROVENANCE

    def test_prefect_reads_an_envelope_with_provenance(self) -> None:
        """Prefect's metadata model ignores the provenance field: an envelope with provenance
        reads as the same record without it."""
        assert PrefectResultRecordMetadata.model_config.get("extra", "ignore") == "ignore"
        record = _record({"a": 1}, storage_key="/abs/k1", provenance=PROVENANCE)
        metadata = json.loads(record.serialize())["metadata"]
        prefect = PrefectResultRecordMetadata.model_validate(metadata)
        assert prefect.model_dump(mode="json") == json.loads(PREFECT_ENVELOPE)["metadata"]

    def test_envelope_with_invalid_provenance_is_no_envelope(self) -> None:
        """An envelope whose provenance is not a Provenance (no task) is refused as invalid
        metadata, like any other invalid field."""
        envelope = json.loads(PREFECT_ENVELOPE)
        envelope["metadata"]["provenance"] = {"components": {}}
        with pytest.raises(InvalidEnvelopeError, match="metadata is invalid"):
            ResultRecord.deserialize(json.dumps(envelope).encode())

    def test_envelope_result_is_prefect_text(self) -> None:
        """The result field holds the serializer's Prefect bytes as text: JSON stays JSON."""
        envelope = json.loads(_record({"a": [1]}, JSONSerializer()).serialize())
        assert envelope["result"] == '{"a":[1]}'
        assert list(envelope) == ["metadata", "result"]

    def test_custom_serializer_with_prefect_conversion(self) -> None:
        """A custom binary serializer that converts to text round-trips through the envelope."""
        record = _record("hello", Base64Serializer())
        assert ResultRecord.deserialize(record.serialize()) == record

    def test_custom_binary_serializer_without_conversion_is_an_error(self) -> None:
        """Binary output without a text conversion cannot go into an envelope, and says why."""
        with pytest.raises(SerializationError, match=r"not UTF-8 text.*to_prefect_bytes"):
            _record("hello", BinarySerializer()).serialize()

    @pytest.mark.parametrize("serializer", [JSONSerializer(), PickleSerializer()])
    def test_bare_payload_with_backup_serializer(self, serializer: Serializer) -> None:
        """Bytes that are no envelope are read with the backup serializer (raw-blob mode)."""
        value = {"a": [1, 2]}
        data = serializer.to_prefect_bytes(serializer.dumps(value))
        record = ResultRecord.deserialize(data, backup_serializer=serializer)
        assert record.result == value
        assert record.metadata == ResultRecordMetadata(serializer=serializer)

    @pytest.mark.parametrize(
        ("data", "reason"),
        [
            (JSONSerializer().dumps({"a": 1}), "they are not a JSON object with 'metadata'"),
            (PickleSerializer().dumps({"a": 1}), "they are not JSON"),
            (b'{"metadata": {"expiration": "never"}, "result": "x"}', "its metadata is invalid"),
            (b'{"metadata": {}, "result": 1}', "the result is not a string"),
        ],
    )
    def test_bare_payload_without_backup_serializer_is_an_error(
        self, data: bytes, reason: str
    ) -> None:
        """Without a backup serializer, bytes that are no envelope raise InvalidEnvelopeError
        saying why: a SerializationError, and a ValueError as Prefect's pydantic
        ValidationError is, so code written for Prefect catches it."""
        with pytest.raises(InvalidEnvelopeError, match=f"not a result record envelope: {reason}"):
            ResultRecord.deserialize(data)
        with pytest.raises(ValueError, match="not a result record envelope"):
            ResultRecord.deserialize(data)

    def test_legacy_blob(self) -> None:
        """A Prefect 2 result blob is read, its fields going into the metadata."""
        blob = {
            "serializer": {"type": "pickle", "picklelib": "cloudpickle"},
            "data": base64.encodebytes(cloudpickle.dumps([1, 2])).decode(),
            "prefect_version": "2.20.0",
            "expiration": "2030-01-01T00:00:00Z",
        }
        record = ResultRecord.deserialize(json.dumps(blob).encode())
        assert record.result == [1, 2]
        assert record.metadata.storage_key is None
        assert record.metadata.prefect_version == "2.20.0"
        assert record.expiration == datetime(2030, 1, 1, tzinfo=UTC)

    @pytest.mark.parametrize(
        "document",
        [
            {"data": "x", "serializer": {"type": "json"}, "other": 1},
            {"data": "x", "serializer": "json"},
            {"data": 1, "serializer": {"type": "json"}},
            {"data": "x"},
        ],
    )
    def test_raw_json_with_a_data_key_is_not_a_legacy_blob(self, document: Any) -> None:
        """Only Prefect 3.9.1's strict legacy shape is a blob; other JSON with "data" is raw."""
        data = JSONSerializer().dumps(document)
        record = ResultRecord.deserialize(data, backup_serializer=JSONSerializer())
        assert record.result == document

    def test_raw_json_with_invalid_envelope_metadata_is_raw(self) -> None:
        """A raw JSON result with metadata/result keys but invalid metadata is read as raw."""
        document = {"metadata": {"expiration": "never"}, "result": "x"}
        data = JSONSerializer().dumps(document)
        record = ResultRecord.deserialize(data, backup_serializer=JSONSerializer())
        assert record.result == document

    def test_raw_json_that_looks_like_an_envelope_is_read_as_one(self) -> None:
        """A raw JSON result shaped like a valid envelope is read as an envelope and fails on the
        result, as in Prefect: the content alone cannot tell them apart."""
        data = JSONSerializer().dumps({"metadata": {}, "result": "zzz"})
        with pytest.raises(SerializationError, match="serializer 'pickle'"):
            ResultRecord.deserialize(data, backup_serializer=JSONSerializer())

    def test_corrupt_result_names_the_serializer(self) -> None:
        """A result its serializer cannot decode raises SerializationError naming it."""
        envelope = json.loads(PREFECT_ENVELOPE)
        envelope["result"] = base64.encodebytes(b"not a pickle").decode()
        with pytest.raises(SerializationError, match="serializer 'pickle'") as caught:
            ResultRecord.deserialize(json.dumps(envelope).encode())
        assert caught.value.__cause__ is not None

    def test_unknown_serializer_result_cannot_be_read(self) -> None:
        """An envelope whose serializer is unknown here raises UnknownSerializerError as is."""
        envelope = json.loads(PREFECT_ENVELOPE)
        envelope["metadata"]["serializer"] = {"type": "custom", "foo": "bar"}
        with pytest.raises(UnknownSerializerError, match="'custom' is not available"):
            ResultRecord.deserialize(json.dumps(envelope).encode())

    def test_unpicklable_result(self) -> None:
        """An object pickle refuses raises SerializationError with advice, chained to the cause."""
        with pytest.raises(SerializationError) as caught:
            _record(threading.Lock()).serialize_result()
        assert str(caught.value) == (
            "Failed to serialize object of type 'lock' with serializer 'pickle'. You can try a "
            'different serializer (e.g. result_serializer="json") or disabling persistence '
            "(persist_result=False) for this flow or task."
        )
        assert isinstance(caught.value.__cause__, TypeError)

    @pytest.mark.parametrize("serializer", [JSONSerializer(), CompressedJSONSerializer()])
    def test_json_failure_suggests_pickle(self, serializer: Serializer) -> None:
        """When JSON cannot encode an object, the advice names pickle rather than JSON again."""
        with pytest.raises(SerializationError, match=r'result_serializer="pickle"') as caught:
            _record(threading.Lock(), serializer).serialize_result()
        assert f"with serializer {serializer.type!r}" in str(caught.value)

    def test_unknown_serializer_error_is_not_rewrapped(self) -> None:
        """Serializing with an unavailable serializer keeps UnknownSerializerError's message."""
        with pytest.raises(UnknownSerializerError, match="not available"):
            _record(1, UnknownSerializer(type="custom")).serialize_result()

    @given(value=json_values)
    def test_result_and_metadata_apart(self, value: Any) -> None:
        """A raw payload and its metadata bytes rebuild the record."""
        record = _record(value, JSONSerializer(), storage_key="k")
        rebuilt = ResultRecord.deserialize_from_result_and_metadata(
            record.serialize_result(), record.serialize_metadata()
        )
        assert rebuilt == record

    def test_result_apart_is_raw_bytes(self) -> None:
        """serialize_result is the serializer's raw payload, with no base64."""
        record = _record({"a": 1})
        assert record.serialize_result() == cloudpickle.dumps({"a": 1})

    @pytest.mark.parametrize("metadata", [b'{"expiration": "never"}', b"not json", b"[]"])
    def test_invalid_metadata_apart_is_an_error(self, metadata: bytes) -> None:
        """Metadata bytes that do not validate raise InvalidEnvelopeError (a SerializationError
        and a ValueError, like Prefect's ValidationError)."""
        with pytest.raises(InvalidEnvelopeError, match="not valid result metadata") as caught:
            ResultRecord.deserialize_from_result_and_metadata(b"", metadata)
        assert isinstance(caught.value, ValueError)

    def test_equality_ignores_persistence(self) -> None:
        """Records compare by metadata and result only."""
        persisted, fresh = _record(1), _record(1)
        persisted.mark_persisted(7)
        assert persisted == fresh
        assert _record(2) != fresh
        assert _record(1, storage_key="other") != fresh

    def test_properties_proxy_metadata(self) -> None:
        """expiration and serializer are the metadata's."""
        expiration = datetime(2030, 1, 1, tzinfo=UTC)
        record = _record(1, JSONSerializer(), expiration=expiration)
        assert record.expiration == expiration
        assert record.serializer == JSONSerializer()

    def test_mark_persisted(self) -> None:
        """mark_persisted sets is_persisted and the stored version, None when not given."""
        record = _record(1)
        assert (record.is_persisted, record.version) == (False, None)
        record.mark_persisted(3)
        assert (record.is_persisted, record.version) == (True, 3)
        other = _record(1)
        other.mark_persisted()
        assert (other.is_persisted, other.version) == (True, None)

    def test_model_construct_path(self) -> None:
        """Records built without validation, as the store builds them on reads, work fully."""
        metadata = ResultRecordMetadata.model_construct(
            storage_key="k", serializer=JSONSerializer()
        )
        record = ResultRecord.model_construct(metadata=metadata, result={"a": 1})
        assert (record.is_persisted, record.version) == (False, None)
        assert metadata.prefect_version == PREFECT_COMPAT_VERSION
        record.mark_persisted(9)
        assert (record.is_persisted, record.version) == (True, 9)
        assert record == _record({"a": 1}, JSONSerializer(), storage_key="k")
        assert ResultRecord.deserialize(record.serialize()) == record

    def test_persistence_is_not_serialized(self) -> None:
        """The persisted flag and version stay in memory: they are not in the envelope."""
        record = _record(1)
        record.mark_persisted(2)
        assert not ResultRecord.deserialize(record.serialize()).is_persisted
        assert b"persisted" not in record.serialize()


class TestFromStorage:
    def test_equals_the_validated_record(self) -> None:
        """ResultRecord.from_storage (the store's fast constructor) builds the same record as
        validated construction: equal, same dump, same envelope, persisted with its version,
        and still mutable through mark_persisted."""
        expiration = datetime(2026, 11, 21, 4, 19, 16, 466564, tzinfo=UTC)
        serializer = JSONSerializer()
        fast = ResultRecord.from_storage("k/1", {"a": [1, 2]}, serializer, expiration, 7)
        slow = ResultRecord(
            metadata=ResultRecordMetadata(
                storage_key="k/1", expiration=expiration, serializer=serializer
            ),
            result={"a": [1, 2]},
        )
        slow.mark_persisted(7)
        assert fast == slow
        assert fast.model_dump() == slow.model_dump()
        assert fast.serialize() == slow.serialize()
        assert fast.model_fields_set == slow.model_fields_set
        # Every metadata field is given explicitly, as model_construct with all values would.
        assert fast.metadata.model_fields_set == set(ResultRecordMetadata.model_fields)
        assert (fast.is_persisted, fast.version) == (True, 7)
        fast.mark_persisted(8)
        assert fast.version == 8

    def test_with_provenance_equals_the_validated_record(self) -> None:
        """from_storage with a provenance builds the record validated construction builds."""
        fast = ResultRecord.from_storage("k", [1], JSONSerializer(), None, 3, PROVENANCE)
        slow = ResultRecord(
            metadata=ResultRecordMetadata(
                storage_key="k", serializer=JSONSerializer(), provenance=PROVENANCE
            ),
            result=[1],
        )
        assert fast == slow
        assert fast.serialize() == slow.serialize()
        assert fast.metadata.provenance is PROVENANCE

    def test_without_version_is_not_persisted(self) -> None:
        """A record built for writing (no version yet) is not persisted."""
        record = ResultRecord.from_storage("k", 1, PickleSerializer(), None, None)
        assert (record.is_persisted, record.version) == (False, None)
