"""Tests for sqlresults.serializers."""

from __future__ import annotations

import base64
import bz2
import dataclasses
import io
import json
import lzma
import pickle
import zlib
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

import cloudpickle
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from strategies import Measurement, exceptions, json_values, picklable_values

from sqlresults.errors import (
    SerializationError,
    SerializerUnavailableError,
    UnknownSerializerError,
)
from sqlresults.serializers import (
    CompressedJSONSerializer,
    CompressedPickleSerializer,
    CompressedSerializer,
    JSONSerializer,
    PickleSerializer,
    Serializer,
    UnknownSerializer,
    json_object_decoder,
    json_object_encoder,
)

COMPRESSIONLIBS = {"zlib": zlib, "lzma": lzma, "bz2": bz2}

# Every built-in serializer configuration, with the values it must give back equal.
JSON_SERIALIZERS = [
    JSONSerializer(),
    JSONSerializer(jsonlib="json"),
    *(CompressedSerializer(serializer="json", compressionlib=name) for name in COMPRESSIONLIBS),
    CompressedJSONSerializer(),
]
PICKLE_SERIALIZERS = [
    PickleSerializer(),
    PickleSerializer(picklelib="pickle"),
    *(CompressedSerializer(serializer="pickle", compressionlib=name) for name in COMPRESSIONLIBS),
    CompressedPickleSerializer(),
]


def _ids(serializer: Serializer) -> str:
    return serializer.spec_json()


class ReversingSerializer(Serializer):
    """A custom serializer: registering one takes nothing but a subclass with a new type."""

    type: str = "test-reversing"

    def dumps(self, obj: Any) -> bytes:
        return bytes(obj)[::-1]

    def loads(self, blob: bytes) -> Any:
        return blob[::-1]


T = TypeVar("T")


class Box(BaseModel, Generic[T]):
    item: T


# Hooks for the custom encoder and decoder tests; JSONSerializer imports them by dotted path.
ENCODED: list[Any] = []
DECODED: list[dict[str, Any]] = []


def recording_encoder(obj: Any) -> Any:
    ENCODED.append(obj)
    return json_object_encoder(obj)


def recording_decoder(d: dict[str, Any]) -> Any:
    DECODED.append(dict(d))
    return json_object_decoder(d)


@pytest.fixture
def recorded() -> tuple[list[Any], list[dict[str, Any]]]:
    ENCODED.clear()
    DECODED.clear()
    return ENCODED, DECODED


class TestDispatch:
    @pytest.mark.parametrize(
        ("type_", "cls"),
        [
            ("pickle", PickleSerializer),
            ("json", JSONSerializer),
            ("compressed/pickle", CompressedPickleSerializer),
            ("compressed/json", CompressedJSONSerializer),
        ],
    )
    def test_type_string_builds_the_registered_class(
        self, type_: str, cls: type[Serializer]
    ) -> None:
        """Serializer(type=...) returns an instance of the class registered for the type."""
        serializer = Serializer(type=type_)
        assert type(serializer) is cls
        assert serializer.type == type_

    def test_fields_reach_the_dispatched_class(self) -> None:
        """Fields given to Serializer(...) are validated by the subclass (Prefect's dispatch)."""
        serializer = Serializer(type="json", jsonlib="json")
        assert isinstance(serializer, JSONSerializer)
        assert serializer.jsonlib == "json"

    def test_compressed_needs_an_inner_serializer(self) -> None:
        """Serializer(type="compressed") requires `serializer` and casts a type name to one."""
        with pytest.raises(ValidationError, match="serializer"):
            Serializer(type="compressed")
        serializer = Serializer(type="compressed", serializer="json")
        assert serializer == CompressedSerializer(serializer=JSONSerializer())

    def test_equality_is_field_equality(self) -> None:
        """Serializers with the same class and fields are equal; a different field is not."""
        assert JSONSerializer() == Serializer(type="json")
        assert JSONSerializer(jsonlib="json") != JSONSerializer()
        assert PickleSerializer() != JSONSerializer()

    def test_custom_serializer_registers_by_subclassing(self) -> None:
        """A subclass with a new `type` default is reachable by its type string."""
        serializer = Serializer(type="test-reversing")
        assert isinstance(serializer, ReversingSerializer)
        assert serializer.loads(serializer.dumps(b"abc")) == b"abc"
        assert Serializer.from_spec_json(serializer.spec_json()) == serializer

    def test_subclass_inheriting_a_type_does_not_take_it_over(self) -> None:
        """A subclass that keeps its parent's `type` is not registered in the parent's place."""

        class TweakedJSON(JSONSerializer):
            pass

        assert type(Serializer(type="json")) is JSONSerializer
        assert TweakedJSON().type == "json"
        assert type(TweakedJSON(type="json")) is TweakedJSON

    def test_redefining_a_type_with_another_class_warns(self) -> None:
        """A second class for a registered type replaces the first, with a warning naming both."""

        class First(ReversingSerializer):
            type: str = "test-redefined"

        with pytest.warns(UserWarning, match=r"'test-redefined' was registered by .*First"):

            class Second(ReversingSerializer):
                type: str = "test-redefined"

        assert type(Serializer(type="test-redefined")) is Second

    def test_type_of_another_class_is_refused(self) -> None:
        """A subclass given a type that belongs to an unrelated class raises, naming both."""
        with pytest.raises(ValueError, match="JSONSerializer cannot be given type 'pickle'"):
            JSONSerializer(type="pickle")

    def test_unknown_type_error_explains_how_to_register(self) -> None:
        """An unknown type raises UnknownSerializerError naming it, the known types and the fix."""
        with pytest.raises(UnknownSerializerError) as caught:
            Serializer(type="a-custom-serializer")
        message = str(caught.value)
        assert "'a-custom-serializer'" in message
        for known in ("'pickle'", "'json'", "'compressed'", "'compressed/pickle'"):
            assert known in message
        assert "subclass sqlresults.serializers.Serializer" in message
        assert "type: str = 'a-custom-serializer'" in message
        assert isinstance(caught.value, SerializationError)


class Holder(BaseModel):
    """A model with a field typed by the serializer base class, as users declare them."""

    serializer: Serializer


class JSONHolder(BaseModel):
    """A model whose field accepts JSON serializers only."""

    serializer: JSONSerializer


class TestPydanticField:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ({"type": "json"}, JSONSerializer()),
            ("json", JSONSerializer()),
            ({"type": "compressed/pickle"}, CompressedPickleSerializer()),
            ("compressed/json", CompressedJSONSerializer()),
            ({"type": "json", "jsonlib": "json"}, JSONSerializer(jsonlib="json")),
            (
                {"type": "compressed", "serializer": "json", "compressionlib": "zlib"},
                CompressedSerializer(serializer=JSONSerializer(), compressionlib="zlib"),
            ),
            ({"type": "test-reversing"}, ReversingSerializer()),
        ],
    )
    def test_spec_builds_the_registered_class(self, value: Any, expected: Serializer) -> None:
        """A field typed Serializer accepts a type name or a spec mapping and holds an instance
        of the class registered for the type, with the given fields (Prefect's dispatch)."""
        serializer = Holder(serializer=value).serializer
        assert type(serializer) is type(expected)
        assert serializer == expected

    def test_instance_is_kept(self) -> None:
        """A serializer instance is held as it is, not copied or cut down to the base class."""
        serializer = JSONSerializer(jsonlib="json")
        assert Holder(serializer=serializer).serializer is serializer

    @pytest.mark.parametrize("value", ["a-custom-serializer", {"type": "a-custom-serializer"}])
    def test_unknown_type_is_a_validation_error_naming_it(self, value: Any) -> None:
        """An unregistered type fails validation with an error that names the type and says how
        to register one; it is an UnknownSerializerError too."""
        with pytest.raises(ValidationError) as caught:
            Holder(serializer=value)
        message = str(caught.value)
        assert "Unknown serializer type 'a-custom-serializer'" in message
        assert "type: str = 'a-custom-serializer'" in message

    def test_known_type_with_invalid_fields_is_a_validation_error(self) -> None:
        """A known type with fields it does not have fails validation naming the field."""
        with pytest.raises(ValidationError, match="bogus_extra"):
            Holder(serializer={"type": "json", "bogus_extra": 1})

    @pytest.mark.parametrize("value", [3, ["json"], {"jsonlib": "json"}])
    def test_other_values_are_validation_errors(self, value: Any) -> None:
        """Neither a serializer, a type name nor a spec with a type: a ValidationError."""
        with pytest.raises(ValidationError):
            Holder(serializer=value)

    def test_field_of_a_subclass_refuses_another_type(self) -> None:
        """A field typed JSONSerializer takes JSON specs and refuses pickle, by spec or object."""
        assert JSONHolder(serializer="json").serializer == JSONSerializer()
        for value in ("pickle", {"type": "pickle"}, PickleSerializer()):
            with pytest.raises(ValidationError):
                JSONHolder(serializer=value)

    def test_model_validate_on_the_base_class_dispatches(self) -> None:
        """Serializer.model_validate and model_validate_json build the registered class."""
        assert type(Serializer.model_validate({"type": "json"})) is JSONSerializer
        assert Serializer.model_validate_json('{"type":"json","jsonlib":"json"}') == (
            JSONSerializer(jsonlib="json")
        )

    def test_unknown_serializer_keeps_any_type(self) -> None:
        """UnknownSerializer still takes any type with its extra fields (stored specs)."""
        serializer = UnknownSerializer.model_validate({"type": "custom", "foo": "bar"})
        assert serializer.model_extra == {"foo": "bar"}

    def test_constructor_error_is_a_validation_error_naming_the_type(self) -> None:
        """Serializer(type=<unknown>) raises an error that is both pydantic's ValidationError,
        located at `type` (Prefect's behaviour 57), and UnknownSerializerError (a ValueError)."""
        with pytest.raises(ValidationError, match="type") as caught:
            Serializer(type="a-custom-serializer", foo="bar")
        assert isinstance(caught.value, UnknownSerializerError)
        assert isinstance(caught.value, SerializationError)
        [error] = caught.value.errors()
        assert error["loc"] == ("type",)
        assert error["input"] == "a-custom-serializer"
        assert "Unknown serializer type 'a-custom-serializer'" in error["msg"]

    def test_unknown_type_error_survives_pickling(self) -> None:
        """The error crosses process boundaries (process pools pickle exceptions) intact."""
        with pytest.raises(UnknownSerializerError) as caught:
            Serializer(type="a-custom-serializer")
        copy = pickle.loads(pickle.dumps(caught.value))
        assert type(copy) is type(caught.value)
        assert str(copy) == str(caught.value)


class TestFromSpec:
    def test_serializer_is_returned_as_is(self) -> None:
        """A Serializer instance is passed through, not copied."""
        serializer = JSONSerializer(jsonlib="json")
        assert Serializer.from_spec(serializer) is serializer

    def test_string_is_a_type_name(self) -> None:
        """A string names a registered type, built with its defaults."""
        assert Serializer.from_spec("compressed/json") == CompressedJSONSerializer()

    def test_mapping_is_a_full_spec(self) -> None:
        """A mapping gives every field, nested serializers included."""
        spec = {"type": "compressed", "serializer": "json", "compressionlib": "zlib"}
        assert Serializer.from_spec(spec) == CompressedSerializer(
            serializer=JSONSerializer(), compressionlib="zlib"
        )

    def test_mapping_without_type_is_refused(self) -> None:
        """A mapping without a `type` raises ValueError listing the keys it has."""
        with pytest.raises(ValueError, match=r"needs a 'type'.*'jsonlib'"):
            Serializer.from_spec({"jsonlib": "json"})

    @pytest.mark.parametrize("value", [None, 3, ["json"], JSONSerializer])
    def test_other_values_are_a_type_error(self, value: Any) -> None:
        """Anything but a Serializer, a str or a mapping raises TypeError naming what it got."""
        with pytest.raises(TypeError, match=f"got {type(value).__name__}"):
            Serializer.from_spec(value)

    @pytest.mark.parametrize("value", ["nope", {"type": "nope"}])
    def test_unknown_type_raises(self, value: Any) -> None:
        """An unregistered type raises UnknownSerializerError, for a name or a spec."""
        with pytest.raises(UnknownSerializerError, match="'nope'"):
            Serializer.from_spec(value)

    def test_allow_unknown_keeps_an_unknown_spec(self) -> None:
        """With allow_unknown, an unregistered spec becomes an UnknownSerializer with its fields."""
        serializer = Serializer.from_spec({"type": "custom", "foo": "bar"}, allow_unknown=True)
        assert isinstance(serializer, UnknownSerializer)
        assert serializer.type == "custom"
        assert serializer.model_extra == {"foo": "bar"}

    def test_allow_unknown_still_validates_known_types(self) -> None:
        """With allow_unknown, a known type with invalid fields still raises."""
        with pytest.raises(ValidationError, match="bogus_extra"):
            Serializer.from_spec({"type": "json", "bogus_extra": 1}, allow_unknown=True)

    def test_invalid_inner_spec_is_refused(self) -> None:
        """A compressed serializer's inner spec is validated like any other."""
        with pytest.raises(ValidationError, match="Unknown serializer type 'nope'"):
            CompressedSerializer(serializer="nope")
        with pytest.raises(ValidationError, match="serializer"):
            CompressedSerializer(serializer=3)


class TestSpecJson:
    @pytest.mark.parametrize("serializer", [*JSON_SERIALIZERS, *PICKLE_SERIALIZERS], ids=_ids)
    def test_round_trip(self, serializer: Serializer) -> None:
        """from_spec_json(spec_json()) rebuilds an equal serializer of the same class."""
        rebuilt = Serializer.from_spec_json(serializer.spec_json())
        assert rebuilt == serializer
        assert type(rebuilt) is type(serializer)

    def test_is_compact_json_in_field_order(self) -> None:
        """The spec is compact JSON, fields in declaration order, `type` first."""
        assert PickleSerializer().spec_json() == (
            '{"type":"pickle","picklelib":"cloudpickle","picklelib_version":null}'
        )

    def test_keeps_the_fields_of_nested_serializers(self) -> None:
        """An inner serializer is dumped with its own fields, not just those of the base."""
        inner = JSONSerializer(jsonlib="json", dumps_kwargs={"sort_keys": True})
        serializer = CompressedSerializer(serializer=inner, compressionlib="bz2")
        spec = json.loads(serializer.spec_json())
        assert spec["serializer"]["jsonlib"] == "json"
        assert spec["serializer"]["dumps_kwargs"] == {"sort_keys": True}
        assert Serializer.from_spec_json(serializer.spec_json()).serializer == inner  # type: ignore[attr-defined]

    def test_parsed_specs_are_shared(self) -> None:
        """The same text gives the same (frozen) instance, so reads don't rebuild serializers."""
        text = JSONSerializer(jsonlib="json").spec_json()
        assert Serializer.from_spec_json(text) is Serializer.from_spec_json(text)

    def test_unknown_type_becomes_unknown_serializer(self) -> None:
        """A stored spec of an unregistered type parses, keeps its fields and writes them back."""
        text = '{"type":"from-elsewhere","level":3,"options":{"a":[1,2]}}'
        serializer = Serializer.from_spec_json(text)
        assert isinstance(serializer, UnknownSerializer)
        assert serializer.model_extra == {"level": 3, "options": {"a": [1, 2]}}
        assert serializer.spec_json() == text

    def test_type_registered_after_a_read_is_found(self) -> None:
        """A spec read while its type was unknown resolves once a module registers the type."""
        text = '{"type":"test-late"}'
        assert isinstance(Serializer.from_spec_json(text), UnknownSerializer)

        class Late(ReversingSerializer):
            type: str = "test-late"

        assert isinstance(Serializer.from_spec_json(text), Late)

    def test_known_type_with_invalid_fields_raises(self) -> None:
        """Only unknown types are tolerated: a known type with bad fields is an error."""
        with pytest.raises(ValidationError, match="not_a_real_lib"):
            Serializer.from_spec_json('{"type":"pickle","picklelib":"not_a_real_lib"}')


class TestUnknownSerializer:
    def test_keeps_type_and_extra_fields(self) -> None:
        """Any type and any extra fields are kept, as attributes and in the dump."""
        serializer = UnknownSerializer(type="custom", foo="bar")
        assert serializer.type == "custom"
        assert serializer.foo == "bar"  # type: ignore[attr-defined]
        assert serializer.model_dump() == {"type": "custom", "foo": "bar"}

    def test_is_not_a_dispatch_target(self) -> None:
        """Creating one does not make its type known to Serializer(type=...)."""
        UnknownSerializer(type="test-never-registered")
        with pytest.raises(UnknownSerializerError):
            Serializer(type="test-never-registered")

    @pytest.mark.parametrize(
        ("method", "operation"), [("dumps", "serialization"), ("loads", "deserialization")]
    )
    def test_cannot_encode_or_decode(self, method: str, operation: str) -> None:
        """dumps and loads raise SerializerUnavailableError (an UnknownSerializerError and a
        RuntimeError) saying the serializer is unavailable for that operation."""
        serializer = UnknownSerializer(type="custom")
        with pytest.raises(SerializerUnavailableError) as caught:
            getattr(serializer, method)(b"x")
        assert isinstance(caught.value, UnknownSerializerError)
        assert str(caught.value) == (
            f"Serializer 'custom' is not available in this environment, so {operation} cannot "
            "be performed. Install or import the package that defines it."
        )


class TestPickleSerializer:
    @given(value=picklable_values)
    @pytest.mark.parametrize("serializer", PICKLE_SERIALIZERS, ids=_ids)
    def test_round_trip(self, serializer: Serializer, value: Any) -> None:
        """Every picklable value comes back equal, for every pickle-based configuration."""
        assert serializer.loads(serializer.dumps(value)) == value

    @given(value=picklable_values)
    def test_dumps_is_the_raw_pickle(self, value: Any) -> None:
        """dumps returns cloudpickle's bytes unchanged: a pickle, not base64 text."""
        payload = PickleSerializer().dumps(value)
        assert payload == cloudpickle.dumps(value)
        assert payload.startswith(b"\x80")

    @given(
        value=st.one_of(
            st.binary(),
            st.text(),
            st.integers(),
            st.floats(allow_nan=False),
            st.complex_numbers(allow_nan=False),
            st.booleans(),
            st.none(),
        )
    )
    def test_scalars_pickle_as_cloudpickle_does(self, value: Any) -> None:
        """Plain scalars (pickled without cloudpickle's set-up) give cloudpickle's exact
        bytes."""
        assert PickleSerializer().dumps(value) == cloudpickle.dumps(value)

    def test_scalar_subclasses_go_through_cloudpickle(self) -> None:
        """A subclass of a scalar type defined where pickle cannot import it still
        round-trips: only the exact types skip cloudpickle."""

        class Label(str):
            pass

        serializer = PickleSerializer()
        restored = serializer.loads(serializer.dumps(Label("x")))
        assert restored == "x"
        assert type(restored).__name__ == "Label"

    def test_picklelib_is_used(self) -> None:
        """picklelib="pickle" encodes and decodes with the standard library's pickle."""
        serializer = PickleSerializer(picklelib="pickle")
        assert serializer.dumps({"a": 1}) == pickle.dumps({"a": 1})
        assert serializer.loads(pickle.dumps([1, 2])) == [1, 2]

    def test_cloudpickle_handles_lambdas(self) -> None:
        """The default cloudpickle serializes what pickle cannot, such as a lambda."""
        serializer = PickleSerializer()
        assert serializer.loads(serializer.dumps(lambda x: x + 1))(1) == 2

    @given(value=picklable_values)
    def test_prefect_bytes_are_base64_of_the_pickle(self, value: Any) -> None:
        """Prefect's bytes are base64.encodebytes of the pickle, and convert back exactly."""
        serializer = PickleSerializer()
        payload = serializer.dumps(value)
        prefect_bytes = serializer.to_prefect_bytes(payload)
        assert prefect_bytes == base64.encodebytes(cloudpickle.dumps(value))
        assert serializer.from_prefect_bytes(prefect_bytes) == payload

    def test_unimportable_library_is_refused(self) -> None:
        """A picklelib that does not import fails validation with Prefect's message."""
        with pytest.raises(
            ValidationError, match=r"Failed to import requested pickle library: 'not_a_real_lib'\."
        ):
            PickleSerializer(picklelib="not_a_real_lib")

    def test_library_without_dumps_is_refused(self) -> None:
        """A picklelib without a callable dumps fails validation naming the method."""
        with pytest.raises(
            ValidationError, match=r"Pickle library at 'base64' does not have a 'dumps' method\."
        ):
            PickleSerializer(picklelib="base64")

    def test_module_object_is_refused(self) -> None:
        """picklelib takes a module name, not a module."""
        with pytest.raises(ValidationError, match="picklelib"):
            PickleSerializer(picklelib=pickle)  # type: ignore[arg-type]

    def test_is_frozen(self) -> None:
        """Serializers are immutable, so parsed specs can be shared."""
        with pytest.raises(ValidationError, match="frozen"):
            PickleSerializer().picklelib = "pickle"  # type: ignore[misc]


class TestJSONSerializer:
    @given(value=json_values)
    @pytest.mark.parametrize("serializer", JSON_SERIALIZERS, ids=_ids)
    def test_round_trip(self, serializer: Serializer, value: Any) -> None:
        """Every JSON value and tagged type comes back equal, for every JSON configuration."""
        assert serializer.loads(serializer.dumps(value)) == value

    @given(value=json_values)
    def test_orjson_and_json_read_each_other(self, value: Any) -> None:
        """orjson and json payloads decode to equal values, whichever library reads them."""
        with_orjson, with_json = JSONSerializer(), JSONSerializer(jsonlib="json")
        assert with_orjson.loads(with_json.dumps(value)) == value
        assert with_json.loads(with_orjson.dumps(value)) == value
        assert orjson.loads(with_orjson.dumps(value)) == json.loads(with_json.dumps(value))

    @given(exc=exceptions)
    @pytest.mark.parametrize("jsonlib", ["orjson", "json"])
    def test_exceptions_keep_type_and_message(self, jsonlib: str, exc: BaseException) -> None:
        """An exception comes back as the same type with the same message."""
        serializer = JSONSerializer(jsonlib=jsonlib)
        [back] = serializer.loads(serializer.dumps([exc]))
        assert type(back) is type(exc)
        assert str(back) == str(exc)

    @pytest.mark.parametrize("jsonlib", ["orjson", "json"])
    def test_tuples_and_int_keys_come_back_as_json_has_them(self, jsonlib: str) -> None:
        """Tuples come back as lists and int dict keys as strings, as in any JSON."""
        serializer = JSONSerializer(jsonlib=jsonlib)
        assert serializer.loads(serializer.dumps({1: (1, 2)})) == {"1": [1, 2]}

    @given(data=st.binary(min_size=1))
    def test_bytes_are_base64_in_the_document(self, data: bytes) -> None:
        """Binary data is stored as tagged base64, so any byte sequence survives."""
        document = orjson.loads(JSONSerializer().dumps(data))
        assert document == {
            "__class__": "builtins.bytes",
            "data": base64.b64encode(data).decode(),
            "encoding": "base64",
        }

    def test_dumps_does_not_mutate_the_object(self) -> None:
        """Tagging UUIDs for orjson copies the containers it changes, never the caller's."""
        uid = UUID(int=7)
        value = {"ids": [uid, (uid,)], "plain": [1, 2]}
        JSONSerializer().dumps(value)
        assert value == {"ids": [uid, (uid,)], "plain": [1, 2]}
        assert type(value["ids"][1]) is tuple

    def test_generic_model_round_trips_through_its_origin(self) -> None:
        """A parametrized pydantic model is tagged with its unparametrized class."""
        serializer = JSONSerializer()
        document = orjson.loads(serializer.dumps(Box[int](item=3)))
        assert document == {"__class__": f"{__name__}.Box", "data": {"item": 3}}
        assert serializer.loads(serializer.dumps(Box[int](item=3))) == Box(item=3)

    def test_streams_are_not_read(self) -> None:
        """An open stream is replaced by a placeholder; it is not read and decodes as a dict."""
        stream = io.BytesIO(b"secret")
        serializer = JSONSerializer()
        back = serializer.loads(serializer.dumps(stream))
        assert stream.tell() == 0
        assert back["__class__"] == "_io.BytesIO"
        assert "original content not read" in back["data"]
        assert "secret" not in back["data"]

    def test_hooks_can_be_turned_off(self) -> None:
        """Without hooks, orjson writes datetimes and UUIDs natively and returns plain JSON."""
        serializer = JSONSerializer(object_encoder=None, object_decoder=None)
        value = {"at": datetime(2026, 1, 2, tzinfo=UTC), "id": UUID(int=1)}
        assert serializer.loads(serializer.dumps(value)) == {
            "at": "2026-01-02T00:00:00+00:00",
            "id": "00000000-0000-0000-0000-000000000001",
        }

    @pytest.mark.parametrize("jsonlib", ["orjson", "json"])
    def test_custom_encoder_sees_only_what_json_cannot_hold(
        self, jsonlib: str, recorded: tuple[list[Any], list[dict[str, Any]]]
    ) -> None:
        """The object encoder is called for unsupported objects only, never for JSON types."""
        encoded, _ = recorded
        serializer = JSONSerializer(jsonlib=jsonlib, object_encoder=f"{__name__}.recording_encoder")
        uid, when = UUID(int=3), datetime(2026, 1, 1)
        serializer.dumps({"a": [1, "x", None, 2.5, True], "id": uid, "when": when})
        assert sorted(map(repr, encoded)) == sorted([repr(uid), repr(when)])

    @pytest.mark.parametrize("jsonlib", ["orjson", "json"])
    def test_custom_decoder_sees_every_object_innermost_first(
        self, jsonlib: str, recorded: tuple[list[Any], list[dict[str, Any]]]
    ) -> None:
        """The object decoder is called for each JSON object, after the objects inside it."""
        _, decoded = recorded
        serializer = JSONSerializer(jsonlib=jsonlib, object_decoder=f"{__name__}.recording_decoder")
        value = {"outer": {"inner": {"x": 1}}, "list": [{"y": 2}]}
        assert serializer.loads(serializer.dumps(value)) == value
        assert decoded.index({"x": 1}) < decoded.index({"inner": {"x": 1}})
        assert decoded[-1] == value
        assert len(decoded) == 4

    def test_orjson_translates_sort_keys_and_indent(self) -> None:
        """With orjson, sort_keys and indent become OPT_SORT_KEYS and OPT_INDENT_2."""
        assert JSONSerializer(dumps_kwargs={"sort_keys": True}).dumps({"b": 1, "a": 2}) == (
            b'{"a":2,"b":1}'
        )
        assert JSONSerializer(dumps_kwargs={"indent": 4}).dumps({"a": 1}) == b'{\n  "a": 1\n}'

    def test_json_passes_kwargs_through(self) -> None:
        """With json, dumps_kwargs and loads_kwargs go to json.dumps and json.loads."""
        serializer = JSONSerializer(
            jsonlib="json",
            dumps_kwargs={"sort_keys": True, "separators": (",", ":")},
            loads_kwargs={"parse_int": str},
        )
        assert serializer.dumps({"b": 1, "a": 2}) == b'{"a":2,"b":1}'
        assert serializer.loads(b'{"a": 2}') == {"a": "2"}

    @pytest.mark.parametrize(
        ("field", "kwargs", "message"),
        [
            ("dumps_kwargs", {"default": str}, "`default` cannot be provided"),
            ("loads_kwargs", {"object_hook": dict}, "`object_hook` cannot be provided"),
        ],
    )
    @pytest.mark.parametrize("jsonlib", ["orjson", "json"])
    def test_hook_collisions_are_refused(
        self, jsonlib: str, field: str, kwargs: dict[str, Any], message: str
    ) -> None:
        """default and object_hook must be given as object_encoder and object_decoder."""
        with pytest.raises(ValidationError, match=message):
            JSONSerializer.model_validate({"jsonlib": jsonlib, field: kwargs})

    def test_orjson_refuses_options_it_cannot_honour(self) -> None:
        """With orjson, other dumps options and any loads option are refused at construction."""
        with pytest.raises(ValidationError, match=r"\['ensure_ascii'\] are not supported"):
            JSONSerializer(dumps_kwargs={"ensure_ascii": False})
        with pytest.raises(ValidationError, match=r"\['parse_int'\] are not supported"):
            JSONSerializer(loads_kwargs={"parse_int": str})

    def test_unimportable_jsonlib_is_refused(self) -> None:
        """A jsonlib that does not import fails validation naming it."""
        with pytest.raises(
            ValidationError, match="Failed to import requested JSON library: 'nojs'"
        ):
            JSONSerializer(jsonlib="nojs")


class TestJSONObjectEncoder:
    def test_exception(self) -> None:
        """An exception becomes its qualified type name and message."""
        assert json_object_encoder(KeyError("k")) == {
            "__exc_type__": "builtins.KeyError",
            "message": "'k'",
        }

    @pytest.mark.parametrize("data", [b"\xff\x00binary", bytearray(b"\xfe")])
    def test_bytes_are_base64(self, data: bytes) -> None:
        """bytes and bytearray become tagged base64 (Prefect's UTF-8 text fails on binary)."""
        assert json_object_encoder(data) == {
            "__class__": "builtins.bytes",
            "data": base64.b64encode(data).decode(),
            "encoding": "base64",
        }

    def test_pydantic_model(self) -> None:
        """A model is tagged with its class and dumped in JSON mode."""
        model = Measurement(name="t", value=1.5, taken_at=datetime(2026, 1, 1), tags=["a"])
        assert json_object_encoder(model) == {
            "__class__": "strategies.Measurement",
            "data": {"name": "t", "value": 1.5, "taken_at": "2026-01-01T00:00:00", "tags": ["a"]},
        }

    def test_dataclass_values_are_left_to_the_json_library(self) -> None:
        """A dataclass's field values are not flattened, so binary values can be tagged too."""

        @dataclasses.dataclass
        class Blob:
            data: bytes

        encoded = json_object_encoder(Blob(b"\xff"))
        assert encoded["data"] == {"data": b"\xff"}

    def test_other_objects_are_tagged_with_their_class(self) -> None:
        """Anything else is tagged with its class and made JSON-able by pydantic."""
        assert json_object_encoder({3, 1}) == {"__class__": "builtins.set", "data": [1, 3]}
        assert json_object_encoder(UUID(int=1)) == {
            "__class__": "uuid.UUID",
            "data": "00000000-0000-0000-0000-000000000001",
        }


class TestJSONObjectDecoder:
    def test_untagged_dict_is_returned_unchanged(self) -> None:
        """A dict without tags is returned as it is."""
        d = {"data": 1, "encoding": "base64"}
        assert json_object_decoder(d) is d

    def test_prefect_bytes_are_read(self) -> None:
        """Prefect's untagged-encoding bytes (UTF-8 text) decode to bytes too."""
        assert json_object_decoder({"__class__": "builtins.bytes", "data": "abc"}) == b"abc"

    def test_exception(self) -> None:
        """An exception tag builds the exception type from the message."""
        exc = json_object_decoder({"__exc_type__": "builtins.ValueError", "message": "boom"})
        assert type(exc) is ValueError
        assert exc.args == ("boom",)

    @pytest.mark.parametrize(
        "name", ["builtins.int", "os.system", "not_a_module.Error", "ValueError", "a..b", 3]
    )
    def test_exception_type_must_be_an_exception_class(self, name: Any) -> None:
        """An __exc_type__ that is no importable BaseException subclass raises ValueError."""
        with pytest.raises(ValueError, match=r"Invalid exception type: "):
            json_object_decoder({"__exc_type__": name, "message": "x"})

    @pytest.mark.parametrize(
        "name", ["not_a_module.Thing", "uuid.NotThere", "UUID", "os.system", "io.BytesIO"]
    )
    def test_class_that_is_not_a_validatable_class_is_left_alone(self, name: str) -> None:
        """An unimportable, dotless, non-class or non-validatable __class__ leaves the dict as is:
        the decoder never calls functions or builds arbitrary objects."""
        d = {"__class__": name, "data": "echo hi"}
        assert json_object_decoder(d) is d

    def test_invalid_data_for_a_class_raises(self) -> None:
        """Data that does not validate as the tagged class raises instead of passing through."""
        with pytest.raises(ValidationError):
            json_object_decoder({"__class__": "uuid.UUID", "data": "not a uuid"})


class TestCompressedSerializer:
    @pytest.mark.parametrize(
        ("type_", "inner"),
        [("compressed/pickle", PickleSerializer()), ("compressed/json", JSONSerializer())],
    )
    def test_preset_types(self, type_: str, inner: Serializer) -> None:
        """compressed/pickle and compressed/json wrap a default pickle or JSON serializer."""
        serializer = Serializer(type=type_)
        assert isinstance(serializer, CompressedSerializer)
        assert serializer.serializer == inner
        assert serializer.compressionlib == "lzma"

    @pytest.mark.parametrize("name", sorted(COMPRESSIONLIBS))
    def test_dumps_compresses_the_inner_payload(self, name: str) -> None:
        """dumps is compressionlib.compress of the inner serializer's raw payload."""
        serializer = CompressedSerializer(serializer="pickle", compressionlib=name)
        payload = serializer.dumps({"a": 1})
        assert COMPRESSIONLIBS[name].decompress(payload) == cloudpickle.dumps({"a": 1})

    def test_inner_serializer_from_a_spec(self) -> None:
        """The inner serializer may be given as a full spec mapping."""
        serializer = CompressedSerializer(serializer={"type": "json", "jsonlib": "json"})
        assert serializer.serializer == JSONSerializer(jsonlib="json")

    def test_unimportable_library_is_refused(self) -> None:
        """A compressionlib that does not import fails validation naming it."""
        with pytest.raises(
            ValidationError, match=r"Failed to import requested compression library: 'nozip'\."
        ):
            CompressedPickleSerializer(compressionlib="nozip")

    def test_library_without_compress_is_refused(self) -> None:
        """A compressionlib without compress fails validation naming the method."""
        with pytest.raises(
            ValidationError,
            match=r"Compression library at 'json' does not have a 'compress' method\.",
        ):
            CompressedPickleSerializer(compressionlib="json")

    @given(value=picklable_values)
    def test_prefect_bytes_of_compressed_pickle(self, value: Any) -> None:
        """Prefect's compressed pickle is base64 of the compressed base64 pickle."""
        serializer = CompressedPickleSerializer()
        expected = base64.encodebytes(lzma.compress(base64.encodebytes(cloudpickle.dumps(value))))
        assert serializer.to_prefect_bytes(serializer.dumps(value)) == expected


class TestPrefectBytes:
    @given(value=json_values)
    def test_json_is_unchanged(self, value: Any) -> None:
        """JSON payloads are already what Prefect stores: the conversion is the identity."""
        serializer = JSONSerializer()
        payload = serializer.dumps(value)
        assert serializer.to_prefect_bytes(payload) is payload

    @given(data=st.data())
    @pytest.mark.parametrize("serializer", [*JSON_SERIALIZERS, *PICKLE_SERIALIZERS], ids=_ids)
    def test_conversion_is_invertible(self, serializer: Serializer, data: st.DataObject) -> None:
        """from_prefect_bytes undoes to_prefect_bytes, and the result is UTF-8 text."""
        values = json_values if serializer in JSON_SERIALIZERS else picklable_values
        value = data.draw(values)
        payload = serializer.dumps(value)
        prefect_bytes = serializer.to_prefect_bytes(payload)
        prefect_bytes.decode()  # raises unless the bytes are UTF-8 text
        assert serializer.from_prefect_bytes(prefect_bytes) == payload
        assert serializer.loads(serializer.from_prefect_bytes(prefect_bytes)) == value
