"""Serializers: how a result becomes bytes, and how those bytes become the result again.

A serializer is a frozen pydantic model whose fields say exactly how it encodes, so its spec can be
stored next to every payload (:meth:`Serializer.spec_json`) and rebuilt by whoever reads the
payload later (:meth:`Serializer.from_spec_json`). The model and the type strings are Prefect 3's
(``prefect.serializers``):

=======================  ====================================  =============================
type string              class                                 payload
=======================  ====================================  =============================
``"pickle"``             :class:`PickleSerializer`             cloudpickle
``"json"``               :class:`JSONSerializer`               orjson, tagged JSON objects
``"compressed"``         :class:`CompressedSerializer`         lzma over another serializer
``"compressed/pickle"``  :class:`CompressedPickleSerializer`   lzma over pickle
``"compressed/json"``    :class:`CompressedJSONSerializer`     lzma over JSON
=======================  ====================================  =============================

``Serializer(type="json", jsonlib="json")`` returns a :class:`JSONSerializer`: the base class
dispatches on ``type``. A custom serializer registers itself by subclassing with a new default for
``type``::

    class ReversedSerializer(Serializer):
        type: str = "reversed"

        def dumps(self, obj: Any) -> bytes:
            return obj[::-1]

        def loads(self, blob: bytes) -> Any:
            return blob[::-1]

    Serializer(type="reversed")  # -> ReversedSerializer(type='reversed')

Unlike Prefect's, these serializers return raw bytes: the database stores payloads in a BLOB, so
base64 would only cost a third more space. Prefect's JSON record files do need the base64 text;
:meth:`Serializer.to_prefect_bytes` and :meth:`Serializer.from_prefect_bytes` convert between the
two for export and import.
"""

from __future__ import annotations

import abc
import base64
import dataclasses
import functools
import importlib
import inspect
import io
import json
import pickle
import warnings
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Self, TypeVar
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    SerializeAsAny,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.errors import PydanticSchemaGenerationError
from pydantic_core import InitErrorDetails, to_jsonable_python

from sqlresults.errors import SerializerUnavailableError, UnknownSerializerError

__all__ = [
    "CompressedJSONSerializer",
    "CompressedPickleSerializer",
    "CompressedSerializer",
    "JSONSerializer",
    "PickleSerializer",
    "Serializer",
    "UnknownSerializer",
    "json_object_decoder",
    "json_object_encoder",
]

# type string -> the class that handles it; filled by Serializer.__pydantic_init_subclass__.
_REGISTRY: dict[str, type[Serializer]] = {}

S = TypeVar("S", bound="Serializer")


def _qualified_name(cls: type[Any]) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


@functools.cache
def _import_object(path: str) -> Any:
    """Import a dotted path: a module (``"lzma"``) or an object in one (``"uuid.UUID"``).

    Cached, because serializers resolve their libraries and hooks on every call and the JSON
    decoder resolves the same class names over and over. Only successes are cached.

    Args:
        path: dotted identifiers; the longest prefix that imports is taken as the module and the
            rest as attributes, so nested classes (``"pkg.mod.Outer.Inner"``) work too.

    Returns:
        The module or object.

    Raises:
        ImportError: ``path`` is not a dotted name, or no prefix of it is a module.
        AttributeError: the module lacks the attribute.
    """
    parts = path.split(".")
    if not all(part.isidentifier() for part in parts):
        raise ImportError(f"{path!r} is not a dotted import path")
    for split in range(len(parts), 0, -1):
        module_name = ".".join(parts[:split])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # Only "this prefix is no module" means "try a shorter one"; a module that exists but
            # fails to import one of its own dependencies must say so.
            if exc.name is None or not f"{module_name}.".startswith(f"{exc.name}."):
                raise
            continue
        for attribute in parts[split:]:
            obj = getattr(obj, attribute)
        return obj
    raise ImportError(f"No module named {parts[0]!r}")


def _check_library(name: str, kind: str, *methods: str) -> str:
    """Validate a library field: ``name`` must import and have the callables ``methods``."""
    try:
        library = _import_object(name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"Failed to import requested {kind} library: {name!r}.") from exc
    for method in methods:
        if not callable(getattr(library, method, None)):
            label = kind[0].upper() + kind[1:]
            raise ValueError(f"{label} library at {name!r} does not have a {method!r} method.")
    return name


class _UnknownSerializerTypeError(UnknownSerializerError, ValidationError):
    """An unregistered ``type``: an :class:`~sqlresults.errors.UnknownSerializerError` that is
    also pydantic's ``ValidationError`` located at ``type``, which is what Prefect raises there
    (its users catch that; ours catch the former). Build it with :meth:`for_type`."""

    @classmethod
    def for_type(cls, type_: object, message: str) -> _UnknownSerializerTypeError:
        """The error for an unregistered ``type_``, explained by ``message``."""
        detail: InitErrorDetails = {
            "type": "value_error",
            "loc": ("type",),
            "input": type_,
            "ctx": {"error": message},
        }
        return cls.from_exception_data("Serializer", [detail])


def _lookup(type_: object) -> type[Serializer]:
    """The registered serializer class for a type string.

    Raises:
        UnknownSerializerError: nobody registered ``type_``; the error is also a pydantic
            ``ValidationError`` at ``type``, as Prefect's is.
    """
    found = _REGISTRY.get(type_) if isinstance(type_, str) else None
    if found is None:
        example = type_ if isinstance(type_, str) else "my-serializer"
        raise _UnknownSerializerTypeError.for_type(
            type_,
            f"Unknown serializer type {type_!r}. Registered types: "
            f"{', '.join(map(repr, sorted(_REGISTRY)))}. To register a serializer, subclass "
            "sqlresults.serializers.Serializer and give its `type` field a new default, e.g. "
            f"`class MySerializer(Serializer): type: str = {example!r}`, then import the module "
            "that defines it.",
        )
    return found


def _dispatch_target(cls: type[S], type_: object) -> type[S]:
    """The class that builds a serializer of ``type_`` when ``cls`` is asked to: ``cls`` itself
    for its own type (or none given), else the class registered for ``type_``.

    Raises:
        UnknownSerializerError: ``type_`` is not registered.
        ValueError: ``type_`` belongs to a class that is not a subclass of ``cls``
            (``JSONSerializer(type="pickle")``).
    """
    if type_ is None or type_ == cls.model_fields["type"].default:
        return cls
    found = _lookup(type_)
    if not issubclass(found, cls):
        raise ValueError(
            f"{cls.__name__} cannot be given type {type_!r}, which is "
            f"{found.__name__}'s. Use Serializer(type={type_!r}) instead."
        )
    return found


class Serializer(BaseModel, abc.ABC):
    """Turns objects into bytes and back; the base of every serializer.

    ``Serializer(type=..., **fields)`` builds the registered subclass for ``type``. Subclasses
    register themselves on definition under the default of their ``type`` field; a subclass that
    does not redeclare ``type`` inherits its parent's name without taking it over. Defining a
    second class for a registered name replaces the first, with a warning unless it is the same
    class defined again (a reloaded module). Serializers are frozen, compare by their fields, and
    are safe to share between threads.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str

    # Whether a spec whose `type` is not this class's own builds the class registered for it.
    _dispatches: ClassVar[bool] = True

    def __new__(cls, **data: Any) -> Self:
        """Dispatch ``Serializer(type=...)`` to the class registered for that type.

        Raises:
            UnknownSerializerError: ``type`` is not registered (also a pydantic
                ``ValidationError`` at ``type``, Prefect's error).
            ValueError: ``type`` belongs to a class that is not a subclass of ``cls``
                (``JSONSerializer(type="pickle")``).
        """
        return super().__new__(_dispatch_target(cls, data.get("type")))

    @model_validator(mode="wrap")
    @classmethod
    def _dispatch_on_type(cls, value: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        """Let a pydantic field typed ``Serializer`` (or a subclass) take a type name or a spec
        mapping and hold an instance of the class registered for its ``type``, as Prefect's
        does; an instance passes through.

        ``__new__`` dispatches direct calls, but pydantic builds a field's model without it: on
        its own it would try to instantiate the abstract base. Inside ``__init__`` the class was
        already chosen by ``__new__`` with the same rule, so this never dispatches again there.

        Raises:
            UnknownSerializerError: the type is not registered (pydantic reports it as a
                validation error of the field).
            ValueError: the type belongs to a class that is not a subclass of ``cls``.
        """
        if isinstance(value, str):
            value = {"type": value}
        if cls._dispatches and isinstance(value, Mapping):
            target = _dispatch_target(cls, value.get("type"))
            if target is not cls:
                return target.model_validate(value)
        return handler(value)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        # Only a class that declares `type` itself names a serializer: one that inherits it (a
        # tweaked JSONSerializer, say) must not take the name over from its parent.
        if "type" not in inspect.get_annotations(cls):
            return
        key = cls.model_fields["type"].default
        if not isinstance(key, str):  # no default (UnknownSerializer): nothing to dispatch to
            return
        previous = _REGISTRY.get(key)
        if previous is not None and _qualified_name(previous) != _qualified_name(cls):
            warnings.warn(
                f"Serializer type {key!r} was registered by {_qualified_name(previous)}; "
                f"{_qualified_name(cls)} replaces it.",
                stacklevel=2,
            )
        _REGISTRY[key] = cls
        # A spec read before this class existed was cached as an UnknownSerializer.
        _serializer_from_spec_json.cache_clear()

    @abc.abstractmethod
    def dumps(self, obj: Any) -> bytes:
        """Encode an object.

        Args:
            obj: the object.

        Returns:
            The payload, raw bytes (never base64).
        """

    @abc.abstractmethod
    def loads(self, blob: bytes) -> Any:
        """Decode a payload produced by :meth:`dumps`.

        Args:
            blob: the payload.

        Returns:
            The object.
        """

    def to_prefect_bytes(self, payload: bytes) -> bytes:
        """Convert a payload of :meth:`dumps` into what Prefect's serializer of the same type
        would have produced for the same object.

        Prefect stores that output as the text of the ``result`` field in its JSON record files,
        so it must be UTF-8. The default is the identity, right for serializers whose bytes are
        already UTF-8 text (JSON). A custom serializer that produces binary must override this
        and :meth:`from_prefect_bytes`, e.g. with :func:`base64.encodebytes` and
        :func:`base64.decodebytes`, or its records cannot be exported.

        Args:
            payload: bytes returned by :meth:`dumps`.

        Returns:
            Prefect's bytes for the same object.
        """
        return payload

    def from_prefect_bytes(self, data: bytes) -> bytes:
        """The inverse of :meth:`to_prefect_bytes`: Prefect's bytes back to a :meth:`dumps`
        payload.

        Args:
            data: what Prefect's serializer of the same type produced.

        Returns:
            A payload for :meth:`loads`.
        """
        return data

    @staticmethod
    def from_spec(
        value: Serializer | str | Mapping[str, Any], *, allow_unknown: bool = False
    ) -> Serializer:
        """Build a serializer from a serializer, a type name or a spec mapping.

        Args:
            value: a :class:`Serializer` (returned as is), a type string (``"json"``), or a
                mapping of fields with a ``type`` (``{"type": "compressed", "serializer":
                "json", "compressionlib": "zlib"}``).
            allow_unknown: if true, a mapping whose ``type`` nobody registered becomes an
                :class:`UnknownSerializer` that keeps its fields, instead of raising. This is
                for specs read from storage, which a newer or extended program may have written.

        Returns:
            The serializer.

        Raises:
            UnknownSerializerError: the type is not registered (and not tolerated).
            ValueError: the mapping has no ``type``.
            pydantic.ValidationError: the fields are invalid for the type.
            TypeError: ``value`` is none of the above.
        """
        if isinstance(value, Serializer):
            return value
        if isinstance(value, str):
            return _lookup(value)(type=value)
        if isinstance(value, Mapping):
            if "type" not in value:
                raise ValueError(f"A serializer spec needs a 'type'; got keys {list(value)}.")
            type_ = value["type"]
            if allow_unknown and isinstance(type_, str) and type_ not in _REGISTRY:
                return UnknownSerializer(**value)
            return _lookup(type_)(**value)
        raise TypeError(
            "A serializer must be a Serializer, a type name such as 'json', or a mapping with a "
            f"'type'; got {type(value).__name__} {value!r}."
        )

    def spec_json(self) -> str:
        """The full spec as compact JSON, subclass fields included, in field order.

        Returns:
            Text for :meth:`from_spec_json`, the same for serializers of one class with equal
            fields.
        """
        return self.model_dump_json(serialize_as_any=True)

    @staticmethod
    def from_spec_json(text: str) -> Serializer:
        """Rebuild a serializer from :meth:`spec_json`.

        Results are cached and shared (serializers are frozen), because this runs on every
        database read. A spec whose type nobody registered becomes an :class:`UnknownSerializer`,
        so records written by a serializer missing here can still be listed and inspected.

        Args:
            text: a JSON spec object (or a JSON string holding a type name).

        Returns:
            The serializer.

        Raises:
            ValueError: ``text`` is not JSON, or the spec is invalid for its (known) type.
            TypeError: the JSON is neither an object nor a string.
        """
        return _serializer_from_spec_json(text)


@functools.lru_cache(maxsize=256)
def _serializer_from_spec_json(text: str) -> Serializer:
    return Serializer.from_spec(json.loads(text), allow_unknown=True)


class UnknownSerializer(Serializer):
    """Stands in for a serializer type that is not available here (Prefect's behaviour).

    It keeps whatever fields were stored (``extra="allow"``), so the spec survives a round trip,
    but cannot encode or decode. It is never a dispatch target: ``Serializer(type=...)`` still
    raises for unknown types.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str

    # Whatever `type` says, an unknown type is this class's purpose: never dispatch.
    _dispatches: ClassVar[bool] = False

    def __new__(cls, **data: Any) -> Self:
        return object.__new__(cls)

    def dumps(self, obj: Any) -> bytes:
        """Refuse to encode.

        Raises:
            SerializerUnavailableError: always (a RuntimeError with Prefect's message, and an
                UnknownSerializerError).
        """
        raise SerializerUnavailableError(self.type, "serialization")

    def loads(self, blob: bytes) -> Any:
        """Refuse to decode.

        Raises:
            SerializerUnavailableError: always (a RuntimeError with Prefect's message, and an
                UnknownSerializerError).
        """
        raise SerializerUnavailableError(self.type, "deserialization")


# Types whose pickle is the same from pickle and cloudpickle (exact types: a subclass may
# reduce itself otherwise), and the protocol cloudpickle uses (its DEFAULT_PROTOCOL).
_PLAIN_SCALARS = frozenset({bytes, str, int, float, complex, bool, type(None)})
_CLOUDPICKLE_PROTOCOL = pickle.HIGHEST_PROTOCOL


class PickleSerializer(Serializer):
    """Pickles with ``picklelib`` (cloudpickle by default, so lambdas and local classes work).

    Only load payloads you trust: unpickling runs code.
    """

    type: str = "pickle"
    picklelib: str = "cloudpickle"
    picklelib_version: str | None = None
    """Kept for compatibility with Prefect's spec; unused."""

    @field_validator("picklelib")
    @classmethod
    def _check_picklelib(cls, value: str) -> str:
        return _check_library(value, "pickle", "dumps", "loads")

    def dumps(self, obj: Any) -> bytes:
        """Pickle an object.

        Args:
            obj: the object.

        Returns:
            The pickle, starting with the protocol byte ``0x80``.
        """
        if self.picklelib == "cloudpickle" and type(obj) in _PLAIN_SCALARS:
            # cloudpickle's Pickler changes how functions, classes and a few library types
            # reduce, never these: the same bytes, without its per-call set-up (5 µs, a fifth
            # of a small write).
            return pickle.dumps(obj, _CLOUDPICKLE_PROTOCOL)
        payload: bytes = _import_object(self.picklelib).dumps(obj)
        return payload

    def loads(self, blob: bytes) -> Any:
        """Unpickle a payload.

        Args:
            blob: a pickle.

        Returns:
            The object.
        """
        return _import_object(self.picklelib).loads(blob)

    def to_prefect_bytes(self, payload: bytes) -> bytes:
        """Prefect's pickle serializer base64-encodes (MIME style, ``\\n`` every 76 characters)."""
        return base64.encodebytes(payload)

    def from_prefect_bytes(self, data: bytes) -> bytes:
        """Undo :meth:`to_prefect_bytes`."""
        return base64.decodebytes(data)


class JSONSerializer(Serializer):
    """Encodes JSON, with hooks that tag what JSON cannot hold so it comes back with its type.

    With the default hooks (:func:`json_object_encoder`, :func:`json_object_decoder`) these
    round-trip with their type: pydantic models, dataclasses, ``set``, ``frozenset``, ``bytes``
    (any binary), ``UUID``, ``datetime`` (aware or naive), ``date``, ``time``, ``timedelta``,
    ``Decimal``, and exceptions built from a message (type and message). Known losses, all
    shared with Prefect: tuples come back as lists and non-string dict keys as strings; elements
    of sets come back in their JSON form (sets of ``str``, ``int``, ``float`` and ``bool``
    round-trip exactly); UTC offsets keep whole minutes only. Dicts with a ``"__class__"`` or
    ``"__exc_type__"`` key are read as tagged objects.

    ``jsonlib="orjson"`` (the default) and ``jsonlib="json"`` produce interchangeable payloads.
    orjson refuses integers beyond 64 bits and strings with lone surrogates, and writes NaN and
    infinities as ``null``; ``json`` handles all three.
    """

    type: str = "json"
    jsonlib: str = "orjson"
    object_encoder: str | None = "sqlresults.serializers.json_object_encoder"
    object_decoder: str | None = "sqlresults.serializers.json_object_decoder"
    dumps_kwargs: dict[str, Any] = Field(default_factory=dict)
    loads_kwargs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("jsonlib")
    @classmethod
    def _check_jsonlib(cls, value: str) -> str:
        return _check_library(value, "JSON", "dumps", "loads")

    @field_validator("dumps_kwargs")
    @classmethod
    def _no_default(cls, value: dict[str, Any]) -> dict[str, Any]:
        if "default" in value:
            raise ValueError("`default` cannot be provided. Use `object_encoder` instead.")
        return value

    @field_validator("loads_kwargs")
    @classmethod
    def _no_object_hook(cls, value: dict[str, Any]) -> dict[str, Any]:
        if "object_hook" in value:
            raise ValueError("`object_hook` cannot be provided. Use `object_decoder` instead.")
        return value

    @model_validator(mode="after")
    def _check_orjson_kwargs(self) -> Self:
        if self.jsonlib != "orjson":
            return self
        unsupported = sorted(set(self.dumps_kwargs) - {"sort_keys", "indent"})
        if unsupported:
            raise ValueError(
                f"dumps_kwargs {unsupported} are not supported with jsonlib='orjson', which "
                "understands only `sort_keys` and `indent`. Use jsonlib='json' for other options."
            )
        if self.loads_kwargs:
            raise ValueError(
                f"loads_kwargs {sorted(self.loads_kwargs)} are not supported with "
                "jsonlib='orjson', whose loads() takes no options. Use jsonlib='json'."
            )
        return self

    def dumps(self, obj: Any) -> bytes:
        """Encode an object as UTF-8 JSON.

        Args:
            obj: the object; what JSON cannot represent goes through ``object_encoder``.

        Returns:
            The JSON document.
        """
        encoder = _resolve_hook(self.object_encoder)
        if self.jsonlib != "orjson":
            kwargs = dict(self.dumps_kwargs)
            if encoder is not None:
                kwargs["default"] = encoder
            text = _import_object(self.jsonlib).dumps(obj, **kwargs)
            return text.encode() if isinstance(text, str) else bytes(text)

        import orjson

        option = orjson.OPT_NON_STR_KEYS
        if encoder is not None:
            # orjson would write these natively, losing their type; passing them through sends
            # them to the encoder, as the json module does.
            option |= orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
            obj = _tag_uuids(obj, encoder)
        if self.dumps_kwargs.get("sort_keys"):
            option |= orjson.OPT_SORT_KEYS
        if self.dumps_kwargs.get("indent") is not None:
            option |= orjson.OPT_INDENT_2
        return orjson.dumps(obj, default=encoder, option=option)

    def loads(self, blob: bytes) -> Any:
        """Decode a JSON document.

        Args:
            blob: UTF-8 JSON.

        Returns:
            The object; every JSON object went through ``object_decoder``, innermost first.
        """
        decoder = _resolve_hook(self.object_decoder)
        if self.jsonlib != "orjson":
            kwargs = dict(self.loads_kwargs)
            if decoder is not None:
                kwargs["object_hook"] = decoder
            return _import_object(self.jsonlib).loads(blob.decode(), **kwargs)

        import orjson

        value = orjson.loads(blob)
        return value if decoder is None else _apply_object_hook(value, decoder)


def _resolve_hook(path: str | None) -> Callable[[Any], Any] | None:
    return None if path is None else _import_object(path)


def _tag_uuids(value: Any, encoder: Callable[[Any], Any]) -> Any:
    """Replace the UUIDs inside dicts, lists and tuples by ``encoder(uuid)``.

    orjson writes UUIDs natively (as strings) and has no option to pass them to ``default``, so
    this walk stands in for one. Containers are copied only where something was replaced: the
    caller's objects are never mutated, and a payload without UUIDs is not copied at all.
    """
    if isinstance(value, UUID):
        return encoder(value)
    if isinstance(value, dict):
        copied: dict[Any, Any] | None = None
        for key, item in value.items():
            new = _tag_uuids(item, encoder)
            if new is not item:
                if copied is None:
                    copied = dict(value)
                copied[key] = new
        return value if copied is None else copied
    if isinstance(value, list | tuple):
        replaced: list[Any] | None = None
        for index, item in enumerate(value):
            new = _tag_uuids(item, encoder)
            if new is not item:
                if replaced is None:
                    replaced = list(value)
                replaced[index] = new
        return value if replaced is None else replaced
    return value


def _apply_object_hook(value: Any, hook: Callable[[dict[str, Any]], Any]) -> Any:
    """Apply ``hook`` to every dict in a freshly loaded document, innermost first.

    This is what ``json.loads(object_hook=...)`` does and ``orjson.loads`` cannot. The document
    was just built by the loader, so it is updated in place.
    """
    if isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, dict | list):
                value[index] = _apply_object_hook(item, hook)
        return value
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list):
                value[key] = _apply_object_hook(item, hook)
        return hook(value)
    return value


def json_object_encoder(obj: Any) -> Any:
    """Encode an object that JSON cannot hold as a tagged JSON object.

    The tags are Prefect's, so Prefect's decoder reads these too; bytes are the exception (see
    below).

    Args:
        obj: the object.

    Returns:
        - an exception: ``{"__exc_type__": "<module>.<qualname>", "message": str(obj)}``;
        - ``bytes`` or ``bytearray``: ``{"__class__": "builtins.bytes", "data": <base64>,
          "encoding": "base64"}`` (Prefect writes the bytes as UTF-8 text, which fails on
          binary);
        - a stream (``io.IOBase``): a placeholder naming it; the stream is not read;
        - a pydantic model: ``{"__class__": <class>, "data": model_dump(mode="json",
          by_alias=True)}``, the class being the unparametrized one for generic models;
        - a dataclass: ``{"__class__": <class>, "data": {field: value}}``, the values left for
          the JSON library to encode (through this hook), so binary and typed values inside
          survive;
        - anything else: ``{"__class__": <class>, "data": to_jsonable_python(obj)}``.

    Raises:
        pydantic_core.PydanticSerializationError: pydantic cannot make ``obj`` JSON-able.
    """
    if isinstance(obj, BaseException):
        return {"__exc_type__": _qualified_name(type(obj)), "message": str(obj)}
    if isinstance(obj, bytes | bytearray):
        return {
            "__class__": "builtins.bytes",
            "data": base64.b64encode(obj).decode(),
            "encoding": "base64",
        }
    if isinstance(obj, io.IOBase):
        return {
            "__class__": _qualified_name(type(obj)),
            "data": (
                f"<sqlresults IOStream placeholder: type={type(obj).__name__}, repr={obj!r} "
                "(original content not read)>"
            ),
        }
    if isinstance(obj, BaseModel):
        cls = obj.__pydantic_generic_metadata__["origin"] or type(obj)
        return {
            "__class__": _qualified_name(cls),
            "data": obj.model_dump(mode="json", by_alias=True),
        }
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {field.name: getattr(obj, field.name) for field in dataclasses.fields(obj)}
        return {
            "__class__": _qualified_name(type(obj)),
            "data": _tag_uuids(fields, json_object_encoder),
        }
    return {"__class__": _qualified_name(type(obj)), "data": to_jsonable_python(obj)}


def json_object_decoder(d: dict[str, Any]) -> Any:
    """Decode a JSON object written by :func:`json_object_encoder`; leave any other as it is.

    Decoding imports the module a tag names, so only read JSON you trust to name modules. It
    instantiates only exception classes and what pydantic can validate.

    Args:
        d: a decoded JSON object whose own values are already decoded.

    Returns:
        - ``"__exc_type__"``: ``exc_type(message)``;
        - ``"__class__"`` with ``"encoding": "base64"``: the bytes;
        - another ``"__class__"``: ``TypeAdapter(cls).validate_python(d["data"])``, or ``d``
          unchanged when the name has no dot, does not import, is no class, or is a class
          pydantic cannot validate (a stream placeholder);
        - anything else: ``d``.

    Raises:
        ValueError: ``"__exc_type__"`` does not name an importable exception class
            (``"Invalid exception type: 'builtins.int'"``), or the data does not validate.
    """
    if "__exc_type__" in d:
        exc_type = _import_class(d["__exc_type__"])
        if exc_type is None or not issubclass(exc_type, BaseException):
            raise ValueError(f"Invalid exception type: {d['__exc_type__']!r}")
        return exc_type(d["message"])
    if "__class__" in d:
        if d["__class__"] == "builtins.bytes" and d.get("encoding") == "base64":
            return base64.b64decode(d["data"])
        cls = _import_class(d["__class__"])
        adapter = None if cls is None else _type_adapter(cls)
        return d if adapter is None else adapter.validate_python(d["data"])
    return d


def _import_class(name: object) -> type | None:
    """The class a tag names, or None if ``name`` is not a dotted path to an importable class."""
    if not isinstance(name, str) or "." not in name:
        return None
    try:
        obj = _import_object(name)
    except (ImportError, AttributeError):
        return None
    return obj if isinstance(obj, type) else None


@functools.lru_cache(maxsize=1024)
def _type_adapter(cls: type) -> TypeAdapter[Any] | None:
    # Building an adapter costs far more than validating with it, and a payload repeats classes.
    try:
        return TypeAdapter(cls)
    except PydanticSchemaGenerationError:
        return None


class CompressedSerializer(Serializer):
    """Compresses the payload of another serializer.

    ``serializer`` accepts a serializer, a type name or a spec (see
    :meth:`Serializer.from_spec`); ``compressionlib`` names any module with ``compress`` and
    ``decompress`` (``lzma``, ``zlib``, ``bz2``).
    """

    type: str = "compressed"
    serializer: SerializeAsAny[Serializer]
    compressionlib: str = "lzma"

    @field_validator("serializer", mode="before")
    @classmethod
    def _cast_serializer(cls, value: object) -> object:
        if isinstance(value, str | Mapping):
            return Serializer.from_spec(value)
        return value

    @field_validator("compressionlib")
    @classmethod
    def _check_compressionlib(cls, value: str) -> str:
        return _check_library(value, "compression", "compress", "decompress")

    def dumps(self, obj: Any) -> bytes:
        """Encode with the inner serializer, then compress.

        Args:
            obj: the object.

        Returns:
            The compressed payload.
        """
        payload: bytes = _import_object(self.compressionlib).compress(self.serializer.dumps(obj))
        return payload

    def loads(self, blob: bytes) -> Any:
        """Decompress, then decode with the inner serializer.

        Args:
            blob: a payload of :meth:`dumps`.

        Returns:
            The object.
        """
        return self.serializer.loads(_import_object(self.compressionlib).decompress(blob))

    def to_prefect_bytes(self, payload: bytes) -> bytes:
        """Prefect compresses the inner serializer's Prefect bytes and base64-encodes the result,
        so the payload is decompressed, converted inside and compressed again; when the inner
        serializer's Prefect bytes are its own (JSON), the payload already is what Prefect
        compresses, and is only base64-encoded (an export then never runs a compressor, whose
        buffers cost lzma 17 MB)."""
        if self._inner_bytes_are_prefects():
            return base64.encodebytes(payload)
        library = _import_object(self.compressionlib)
        inner = self.serializer.to_prefect_bytes(library.decompress(payload))
        return base64.encodebytes(library.compress(inner))

    def from_prefect_bytes(self, data: bytes) -> bytes:
        """Undo :meth:`to_prefect_bytes`."""
        if self._inner_bytes_are_prefects():
            return base64.decodebytes(data)
        library = _import_object(self.compressionlib)
        inner = self.serializer.from_prefect_bytes(library.decompress(base64.decodebytes(data)))
        payload: bytes = library.compress(inner)
        return payload

    def _inner_bytes_are_prefects(self) -> bool:
        inner = type(self.serializer)
        return (
            inner.to_prefect_bytes is Serializer.to_prefect_bytes
            and inner.from_prefect_bytes is Serializer.from_prefect_bytes
        )


class CompressedPickleSerializer(CompressedSerializer):
    """A :class:`CompressedSerializer` around a :class:`PickleSerializer`."""

    type: str = "compressed/pickle"
    serializer: SerializeAsAny[Serializer] = Field(default_factory=PickleSerializer)


class CompressedJSONSerializer(CompressedSerializer):
    """A :class:`CompressedSerializer` around a :class:`JSONSerializer`."""

    type: str = "compressed/json"
    serializer: SerializeAsAny[Serializer] = Field(default_factory=JSONSerializer)
