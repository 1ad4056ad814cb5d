"""Fingerprints for cache keys: task inputs and task source, hashed by value.

Prefect's ``hash_objects`` hashes ``(args, kwargs)`` as JSON and, if anything in them is not JSON,
pickles the whole tuple instead. Those keys change between processes for sets, frozensets and
dicts holding sets (PrefectHQ/prefect#16185, #12229), collide for ``[1, 2]`` and ``(1, 2)`` or
``{1: "a"}`` and ``{"1": "a"}``, and an input nobody can pickle only costs a log line (#16042).
Its ``TASK_SOURCE`` hashes the source text alone, so two tasks with one body but different
closures share entries, and editing a helper the task calls changes nothing (#23062).

Here every value is written in one canonical, type-tagged encoding and hashed with BLAKE2b
(16-byte digest, personalized, so these keys never equal any other hash of the same bytes):
:func:`fingerprint` returns its 32 hex characters. The rules, in one place:

**Encoding.** A value is a 1-byte type tag and an 8-byte little-endian length, then the payload:
bytes for atoms (the length counts bytes), the items' encodings for containers (the length
counts items). Every encoding is self-delimiting, so concatenations cannot collide.

- ``None``, ``bool``, ``int``, ``float``, ``complex``, ``str``, ``bytes``, ``bytearray``, ``list``,
  ``tuple``, ``dict``, ``set``, ``frozenset``, ``range`` and ``...`` each have their own tag:
  ``1``, ``"1"``, ``1.0``, ``True``, ``[1]``, ``(1,)``, ``b"1"`` all differ.
- ``int``: two's complement, little-endian, any size. ``float``: the IEEE-754 double, so
  ``-0.0`` and ``0.0`` differ (they print and divide differently), while every NaN is one NaN
  (NaN payloads carry no meaning, and ``nan != nan`` must not make equal inputs miss).
  ``str``: UTF-8 (lone surrogates pass through).
- ``dict``: items sorted by the encoding of their key; ``set`` and ``frozenset``: elements sorted
  by their encoding. Order never matters, whatever ``PYTHONHASHSEED``.
- Lists and tuples of 16 or more items of one type (``str`` without NUL, ``int`` in 64 bits,
  ``float`` without NaN) are packed in one piece; a marker byte that no item encoding starts
  with keeps them apart from the item-by-item form.

**Which rule a value gets**, first match wins:

1. The exact built-in types above, plus ``datetime``, ``date``, ``time``, ``timedelta``,
   ``timezone``, ``ZoneInfo``, ``Decimal`` (sign, digits, exponent: ``1.0`` differs from
   ``1.00``), ``Fraction``, ``UUID``, pure and concrete paths (by flavour and text, not the
   file's contents), functions, methods, partials, classes, modules and code objects (below).
   These encodings are fixed: :func:`register_hasher` refuses these types.
2. ``__sqlresults_hash__(self)``, looked up on the class, returns a stand-in value that is
   hashed instead, with the class's qualified name. ``__sqlresults_hash__ = None`` forbids it.
3. A function given to :func:`register_hasher` for the class or its nearest base (MRO order).
4. numpy and pandas values, only if their module is already imported (this module never
   imports them): an array is its dtype, shape and C-order bytes (NaNs made canonical; object,
   structured and ``StringDType`` arrays item by item); a numpy scalar is a 0-d array; a pandas
   ``Series``, ``Index`` or ``DataFrame`` is its values (through numpy), index, column names,
   dtypes, names and ``attrs``; pandas ``Timestamp``, ``Timedelta``, ``Period``, ``Interval``,
   ``NaT`` and ``NA`` hash by value.
5. Dataclass instances: qualified class name and a field-name -> value dict.
6. Pydantic models: qualified class name and ``model_dump(mode="json")``.
7. Enum members: qualified class name and the member's value.
8. ``OrderedDict`` (in order), ``defaultdict`` (with its factory), ``Counter``, ``deque``.
9. Instances of a subclass of a rule-1 value type (a ``namedtuple``, a ``str`` subclass): the
   qualified class name and the base value, unless the instance carries state of its own
   (instance attributes or slots), which would be silently ignored.
10. Anything else raises :class:`~sqlresults.errors.UnhashableError`, naming the argument, the
    path inside it (``x['a'][2]``) and the two ways out: ``cache_policy=INPUTS - "x"``, or a
    ``__sqlresults_hash__`` method (or :func:`register_hasher`). There is no pickle fallback,
    and an object is never hashed by its ``__dict__``: two objects with equal attributes may
    behave differently (a lock, a connection), and that is how silently shared keys happen.

Reference cycles and values nested more than :data:`MAX_DEPTH` deep raise ``UnhashableError``
too, never ``RecursionError``.

**Functions** (what :func:`function_fingerprint` hashes, and how a function inside a value is
hashed) are their module, qualified name and source (``inspect.getsource``; for a lambda also its
code, since two lambdas can share a line; without source, the code object normalized: bytecode,
constants, names, never file names or line numbers), their defaults and keyword defaults, the
values of their closure cells, and every global name their code loads (nested code included)
that resolves, in their module's globals, to a function or class defined in that same module:
those functions are hashed the same way, transitively. ``__wrapped__`` is followed to the
function the user wrote, as ``inspect.getsource`` does (a decorator's own code is not part of
the key). A function seen twice in one fingerprint is written once and then referred to by its
position, so recursion and mutual recursion end, and the result does not depend on the order in
which anything was first hashed. Inside values, classes hash by qualified name and source, and
modules by name. Module-level constants a function reads are not part of its fingerprint.

Only code-derived parts are cached (per code object and per class), since closure cells, defaults
and globals can change between calls while a code object cannot.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import itertools
import struct
import sys
import textwrap
import threading
import types
from array import array
from collections import Counter, OrderedDict, defaultdict, deque
from collections.abc import Callable, Iterable
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from fractions import Fraction
from operator import itemgetter
from pathlib import PosixPath, PurePath, PurePosixPath, PureWindowsPath, WindowsPath
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from sqlresults.errors import InvalidArgumentError, UnhashableError

__all__ = [
    "MAX_DEPTH",
    "fingerprint",
    "function_fingerprint",
    "hash_objects",
    "register_hasher",
    "unregister_hasher",
]

MAX_DEPTH = 100
"""How deep values may nest (containers, stand-ins, functions) before ``UnhashableError``. Python
needs a few frames per level, so this keeps well clear of the interpreter's recursion limit."""

# Changing the encoding changes every key: bump the version in the personalization then.
_PERSON = b"sqlresults:v1"
_HEAD = struct.Struct("<cQ").pack
# A list or tuple packed in one piece starts with this byte; no item encoding does (tags are
# printable ASCII), so the packed and item-by-item forms of two values never coincide.
_PACKED = b"\x00"
# Every NaN hashes as this one (a quiet NaN, as float("nan") is on IEEE-754 machines).
_NAN = struct.pack("<d", float("nan"))
# Buffers this large go straight into the hash instead of being joined with the rest first.
_LARGE = 1 << 16
_MIN_PACKED = 16
_LITTLE_ENDIAN = sys.byteorder == "little"


# -- errors ---------------------------------------------------------------------------------


class _Unhashable(Exception):  # noqa: N818 - internal; becomes UnhashableError at the top
    """Raised inside the encoder; collects the path on its way out (innermost segment first).

    A segment is either a suffix (``"[0]"``) or a template holding ``"\\0"`` where the path so
    far goes (``"hasher(\\0)"``).
    """

    def __init__(self, value: object, reason: str | None = None) -> None:
        super().__init__(reason)
        self.type_name = _type_name(type(value))
        self.reason = reason
        self.segments: list[str] = []

    def path(self, root: str) -> str:
        path = root
        for segment in reversed(self.segments):
            path = segment.replace("\0", path) if "\0" in segment else path + segment
        return path

    def public(self, root: str, argument: str | None, function: str | None) -> UnhashableError:
        return UnhashableError(
            self.type_name,
            self.path(root),
            argument,
            reason=self.reason,
            function=function,
        )


def _type_name(cls: type) -> str:
    """``module.QualName`` of a class; the spawn start method's ``__mp_main__`` is ``__main__``."""
    module = getattr(cls, "__module__", None)
    if module == "__mp_main__":
        module = "__main__"
    qualname = str(getattr(cls, "__qualname__", None) or getattr(cls, "__name__", "?"))
    return qualname if module in (None, "builtins") else f"{module}.{qualname}"


def _short_repr(value: object, limit: int = 40) -> str:
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not hide the real error
        text = f"<{_type_name(type(value))}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- the registry ---------------------------------------------------------------------------

_REGISTRY: dict[type, Callable[[Any], object]] = {}
_REGISTRY_LOCK = threading.Lock()


def register_hasher(cls: type, hasher: Callable[[Any], object]) -> None:
    """Hash instances of ``cls`` (and of its subclasses) through ``hasher``.

    ``hasher(value)`` returns a stand-in that sqlresults knows how to hash (a tuple of the
    fields that matter, a string, bytes …); the key is the class's qualified name and that
    stand-in. Use it for types you cannot give a ``__sqlresults_hash__`` method (third-party
    classes). A ``__sqlresults_hash__`` method on the class itself wins over the registry; among
    registered classes, the nearest in the MRO wins. Registering a class again replaces its
    hasher.

    Args:
        cls: The class whose instances ``hasher`` handles.
        hasher: A function from an instance to its stand-in value.

    Raises:
        TypeError: ``cls`` is not a class, or ``hasher`` is not callable.
        InvalidArgumentError: ``cls`` is one of the built-in types whose encoding is fixed (see
            the module docstring), so keys mean the same in every program.
    """
    if not isinstance(cls, type):
        raise TypeError(f"register_hasher() needs a class, not {_short_repr(cls)}")
    if not callable(hasher):
        raise TypeError(f"register_hasher() needs a callable hasher, not {_short_repr(hasher)}")
    if cls in _NATIVE or cls is object:
        raise InvalidArgumentError(
            f"{_type_name(cls)} has a fixed encoding in sqlresults.hashing; register a hasher "
            "for a subclass of it instead."
        )
    with _REGISTRY_LOCK:
        _REGISTRY[cls] = hasher


def unregister_hasher(cls: type) -> None:
    """Forget the hasher registered for exactly ``cls`` (a no-op if there is none).

    Args:
        cls: A class given to :func:`register_hasher`.
    """
    with _REGISTRY_LOCK:
        _REGISTRY.pop(cls, None)


# -- the public functions -------------------------------------------------------------------


def fingerprint(value: object, *, argument: str | None = None) -> str:
    """The cache-key fingerprint of ``value``: equal values give equal fingerprints in every
    process, values that differ in type or content give different ones.

    See the module docstring for the encoding and which types hash how.

    Args:
        value: Anything the rules in the module docstring cover.
        argument: The task parameter ``value`` was passed as; only used in the error message.

    Returns:
        32 lowercase hex characters (BLAKE2b, 16-byte digest, of the canonical encoding).

    Raises:
        UnhashableError: Something in ``value`` has no stable value to hash. The error names
            ``argument``, the path to the offending part, and the ways out.
    """
    return _digest(value, argument or "value", argument, None)


def hash_objects(*args: object, **kwargs: object) -> str:
    """Prefect's name for hashing several objects: the :func:`fingerprint` of ``(args, kwargs)``.

    Unlike Prefect's, there is no ``hash_algo`` or ``raise_on_failure``: every keyword is
    hashed, and a value that cannot be hashed always raises.

    Args:
        *args: Values to hash, in order.
        **kwargs: Values to hash, by name (their order does not matter).

    Returns:
        32 lowercase hex characters.

    Raises:
        UnhashableError: As :func:`fingerprint`; the path starts at ``args[i]`` or
            ``kwargs['name']``.
    """
    try:
        return _digest((args, kwargs), "", None, None)
    except UnhashableError as exc:
        path = exc.path
        if path.startswith("[0]"):
            path = "args" + path[3:]
        elif path.startswith("[1]"):
            path = "kwargs" + path[3:]
        raise UnhashableError(
            exc.type_name, path or "(args, kwargs)", reason=exc.reason
        ) from exc.__cause__


def function_fingerprint(fn: Callable[..., Any]) -> str:
    """The fingerprint of a function's code, as ``TASK_SOURCE`` uses it.

    It covers the function's module, qualified name and source, its defaults and closure values,
    and, transitively, every function or class of the same module that it names (see the module
    docstring). Editing a helper the task calls changes the fingerprint; editing an unrelated
    function of the module does not.

    ``__wrapped__`` is followed; a bound method is its function (not its instance); a
    ``functools.partial`` adds its arguments; a callable object is its class.

    Args:
        fn: The task's function.

    Returns:
        32 lowercase hex characters. For a plain function, the same as ``fingerprint(fn)``.

    Raises:
        UnhashableError: A closure value or default (of ``fn`` or of a function it calls)
            cannot be hashed; the message says the task source depends on it.
    """
    target: object = _unwrap(fn)
    if isinstance(target, types.MethodType):
        target = _unwrap(target.__func__)
    elif not isinstance(
        target,
        types.FunctionType | functools.partial | type | types.BuiltinFunctionType,
    ):
        target = type(target)
    name = getattr(target, "__qualname__", None) or _type_name(type(target))
    return _digest(target, name, None, name)


def _digest(value: object, root: str, argument: str | None, function: str | None) -> str:
    encoder = _Encoder(hashlib.blake2b(digest_size=16, person=_PERSON))
    try:
        encoder.encode(value)
    except _Unhashable as exc:
        raise exc.public(root, argument, function) from exc.__cause__
    except RecursionError:
        # MAX_DEPTH keeps ordinary values well inside the limit; this catches a caller that was
        # already deep in its own stack.
        raise UnhashableError(
            _type_name(type(value)),
            root,
            argument,
            reason="it is nested too deeply for this thread's stack",
            function=function,
        ) from None
    return encoder.finish()


# -- the encoder ----------------------------------------------------------------------------


class _Encoder:
    """Writes the canonical encoding of values into ``parts`` (and on into the hash).

    ``memo`` numbers the functions (and followed classes) already written in this encoding, so
    a second sight is a back reference; ``keep`` keeps them alive so their ids stay unique.
    ``active`` holds the ids of the containers being written, to detect cycles.
    """

    __slots__ = ("active", "depth", "hasher", "keep", "memo", "parts")

    def __init__(self, hasher: Any = None) -> None:
        self.hasher = hasher
        self.parts: list[bytes | memoryview] = []
        self.depth = 0
        self.active: set[int] = set()
        self.memo: dict[int, int] = {}
        self.keep: list[object] = []

    def finish(self) -> str:
        self.flush()
        digest: str = self.hasher.hexdigest()
        return digest

    def flush(self) -> None:
        if self.parts:
            self.hasher.update(b"".join(self.parts))
            self.parts.clear()

    def write_buffer(self, data: memoryview) -> None:
        """Write a length-prefixed byte buffer, straight into the hash when it is large."""
        self.parts.append(_HEAD(b"y", data.nbytes))
        if self.hasher is not None and data.nbytes >= _LARGE:
            self.flush()
            self.hasher.update(data)
        else:
            self.parts.append(data)

    def encode(self, value: object) -> None:
        native = _NATIVE.get(type(value))
        if native is not None:
            native(self, value)
        else:
            self.other(value)

    def isolated(self, value: object) -> bytes:
        """The encoding of ``value`` on its own, for sorting (dict keys, set elements).

        It sees the functions already numbered here (so a back reference means the same thing
        in both), but numbers new ones privately: the order in which a set yields its elements
        must not leak into the result.
        """
        atom = _ATOMS.get(type(value))
        if atom is not None:
            return atom(value)
        child = _Encoder()
        child.depth = self.depth
        child.active = self.active
        child.memo = dict(self.memo)
        child.keep = self.keep
        child.encode(value)
        return b"".join(child.parts)

    def enter(self, value: object, mutable: bool = True) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.depth -= 1
            raise _Unhashable(value, f"it is nested more than {MAX_DEPTH} levels deep")
        if mutable:
            key = id(value)
            if key in self.active:
                self.depth -= 1
                raise _Unhashable(value, "it contains itself (a reference cycle)")
            self.active.add(key)

    def leave(self, value: object, mutable: bool = True) -> None:
        self.depth -= 1
        if mutable:
            self.active.discard(id(value))

    def named(self, tag: bytes, name: str, *components: object) -> None:
        """Write ``tag``, a name and components (each encoded as a value)."""
        self.parts.append(_HEAD(tag, len(components) + 1))
        self.parts.append(_str_bytes(name))
        for component in components:
            self.encode(component)

    def other(self, value: object) -> None:
        """Every value whose exact type is not in ``_NATIVE``: rules 2-10 of the docstring."""
        cls = type(value)
        hook: Any = getattr(cls, "__sqlresults_hash__", _MISSING)
        if hook is not _MISSING:
            if hook is None:
                raise _Unhashable(value, f"{_type_name(cls)} sets __sqlresults_hash__ = None")
            self.stand_in(value, hook, "\0.__sqlresults_hash__()")
            return
        if _REGISTRY:
            for base in cls.__mro__:
                hasher = _REGISTRY.get(base)
                if hasher is not None:
                    label = getattr(hasher, "__qualname__", None) or "hasher"
                    self.stand_in(value, hasher, f"{label}(\0)")
                    return
        if isinstance(value, type):
            _enc_class(self, value)
            return
        top = cls.__module__.partition(".")[0]
        if top in ("numpy", "pandas") and top in sys.modules:
            if top == "numpy":
                _encode_numpy(self, value)
            else:
                _encode_pandas(self, value)
            return
        if hasattr(cls, "__dataclass_fields__") and dataclasses.is_dataclass(value):
            fields = {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
            self.enter(value)
            try:
                self.parts.append(_HEAD(b"C", 2))
                self.parts.append(_str_bytes(_type_name(cls)))
                _enc_dict(self, fields, attributes=True)
            finally:
                self.leave(value)
            return
        pydantic = sys.modules.get("pydantic")
        if pydantic is not None and isinstance(value, pydantic.BaseModel):
            try:
                dumped = value.model_dump(mode="json")
            except Exception as exc:
                raise _Unhashable(value, f"model_dump(mode='json') failed: {exc}") from exc
            self.parts.append(_HEAD(b"P", 2))
            self.parts.append(_str_bytes(_type_name(cls)))
            try:
                self.encode(dumped)
            except _Unhashable as exc:
                exc.segments.append(".model_dump(mode='json')")
                raise
            return
        if isinstance(value, enum.Enum):
            self.parts.append(_HEAD(b"E", 2))
            self.parts.append(_str_bytes(_type_name(cls)))
            try:
                self.encode(value.value)
            except _Unhashable as exc:
                exc.segments.append(".value")
                raise
            return
        if isinstance(value, functools.partial):
            _enc_partial(self, value)
            return
        if isinstance(value, dict | deque):
            special = _collection_stand_in(value)
            if special is not None:
                self.enter(value)
                try:
                    self.named(b"S", _type_name(cls), special)
                finally:
                    self.leave(value)
                return
        for base in cls.__mro__[1:]:
            if base in _VALUE_BASES:
                _enc_subclass(self, value, base)
                return
        raise _Unhashable(value)

    def stand_in(self, value: object, hasher: Callable[[Any], object], segment: str) -> None:
        try:
            stand_in = hasher(value)
        except Exception as exc:
            what = segment.replace("\0", "").strip(".") or "hasher"
            raise _Unhashable(value, f"{what} raised {type(exc).__name__}: {exc}") from exc
        if type(stand_in) is type(value):
            raise _Unhashable(
                value, "its hasher returned another instance of its own class, not a stand-in"
            )
        self.enter(value)
        try:
            self.parts.append(_HEAD(b"U", 2))
            self.parts.append(_str_bytes(_type_name(type(value))))
            self.encode(stand_in)
        except _Unhashable as exc:
            exc.segments.append(segment)
            raise
        finally:
            self.leave(value)


_MISSING = object()


# -- built-in types -------------------------------------------------------------------------


def _str_bytes(value: str) -> bytes:
    data = value.encode("utf-8", "surrogatepass")
    return _HEAD(b"s", len(data)) + data


def _int_bytes(value: int) -> bytes:
    data = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return _HEAD(b"i", len(data)) + data


# Atoms whose encoding is one bytes object, for dict keys and set elements without an encoder.
_ATOMS: dict[type, Callable[[Any], bytes]] = {}


def _float_data(value: float) -> bytes:
    return _NAN if value != value else struct.pack("<d", value)


def _enc_none(encoder: _Encoder, value: None) -> None:
    encoder.parts.append(_HEAD(b"n", 0))


def _enc_ellipsis(encoder: _Encoder, value: object) -> None:
    encoder.parts.append(_HEAD(b".", 0))


def _enc_bool(encoder: _Encoder, value: bool) -> None:
    encoder.parts.append(_HEAD(b"b", 1) + (b"\x01" if value else b"\x00"))


def _enc_int(encoder: _Encoder, value: int) -> None:
    encoder.parts.append(_int_bytes(value))


def _enc_float(encoder: _Encoder, value: float) -> None:
    encoder.parts.append(_HEAD(b"f", 8) + _float_data(value))


def _enc_complex(encoder: _Encoder, value: complex) -> None:
    encoder.parts.append(_HEAD(b"c", 16) + _float_data(value.real) + _float_data(value.imag))


def _enc_str(encoder: _Encoder, value: str) -> None:
    encoder.parts.append(_str_bytes(value))


def _enc_bytes(encoder: _Encoder, value: bytes) -> None:
    encoder.parts.append(_HEAD(b"y", len(value)) + value)


def _enc_bytearray(encoder: _Encoder, value: bytearray) -> None:
    encoder.parts.append(_HEAD(b"Y", len(value)) + bytes(value))


def _enc_range(encoder: _Encoder, value: range) -> None:
    encoder.parts.append(_HEAD(b"r", 3))
    for number in (value.start, value.stop, value.step):
        encoder.parts.append(_int_bytes(number))


def _packed(items: list[Any] | tuple[Any, ...], kind: type | None = None) -> bytes | None:
    """One piece for a long list of one type (see the docstring), or None for item by item.

    ``kind``: the exact type of every item, when the caller already checked it.
    """
    if kind is None:
        kinds = set(map(type, items))
        if len(kinds) != 1:
            return None
        kind = kinds.pop()
    if kind is str:
        joined = "\0".join(items)
        # NUL separates the items, so it must not occur inside one.
        if joined.count("\0") != len(items) - 1:
            return None
        data = joined.encode("utf-8", "surrogatepass")
        return _PACKED + _HEAD(b"s", len(data)) + data
    if kind is float:
        if any(item != item for item in items):
            return None
        return _PACKED + _HEAD(b"f", len(items)) + struct.pack(f"<{len(items)}d", *items)
    if kind is int:
        try:
            numbers = array("q", items)
        except OverflowError:
            return None
        if not _LITTLE_ENDIAN:
            numbers.byteswap()
        return _PACKED + _HEAD(b"i", len(items)) + numbers.tobytes()
    return None


def _enc_sequence(
    encoder: _Encoder, value: list[Any] | tuple[Any, ...], tag: bytes, kind: type | None = None
) -> None:
    mutable = tag == b"l"
    encoder.enter(value, mutable)
    try:
        encoder.parts.append(_HEAD(tag, len(value)))
        if len(value) >= _MIN_PACKED:
            packed = _packed(value, kind)
            if packed is not None:
                encoder.parts.append(packed)
                return
        encode = encoder.encode
        for index, item in enumerate(value):
            try:
                encode(item)
            except _Unhashable as exc:
                exc.segments.append(f"[{index}]")
                raise
    finally:
        encoder.leave(value, mutable)


def _enc_list(encoder: _Encoder, value: list[Any]) -> None:
    _enc_sequence(encoder, value, b"l")


def _enc_tuple(encoder: _Encoder, value: tuple[Any, ...]) -> None:
    _enc_sequence(encoder, value, b"t")


def _enc_dict(
    encoder: _Encoder, value: dict[Any, Any], tag: bytes = b"d", *, attributes: bool = False
) -> None:
    """Items sorted by their key's encoding. ``attributes``: the keys are attribute names
    (dataclass fields), so the path reads ``.name`` instead of ``['name']``."""
    encoder.enter(value)
    try:
        items = []
        for key, item in value.items():
            try:
                encoded = _str_bytes(key) if type(key) is str else encoder.isolated(key)
            except _Unhashable as exc:
                exc.segments.append(f" (the key {_short_repr(key)})")
                raise
            items.append((encoded, key, item))
        items.sort(key=itemgetter(0))
        for first, second in itertools.pairwise(items):
            if first[0] == second[0]:
                # Two keys with one encoding (stand-ins that coincide): order those items by
                # their values too, so insertion order still does not matter.
                items.sort(key=lambda entry: (entry[0], encoder.isolated(entry[2])))
                break
        encoder.parts.append(_HEAD(tag, len(items)))
        for encoded, key, item in items:
            encoder.parts.append(encoded)
            try:
                encoder.encode(item)
            except _Unhashable as exc:
                exc.segments.append(f".{key}" if attributes else f"[{_short_repr(key)}]")
                raise
    finally:
        encoder.leave(value)


def _enc_plain_dict(encoder: _Encoder, value: dict[Any, Any]) -> None:
    _enc_dict(encoder, value)


def _enc_set(encoder: _Encoder, value: set[Any] | frozenset[Any], tag: bytes) -> None:
    encoder.enter(value, mutable=False)  # a set cannot contain itself
    try:
        encoded = []
        for item in value:
            try:
                encoded.append(encoder.isolated(item))
            except _Unhashable as exc:
                exc.segments.append(f" (the element {_short_repr(item)})")
                raise
        encoded.sort()
        encoder.parts.append(_HEAD(tag, len(encoded)))
        encoder.parts.extend(encoded)
    finally:
        encoder.leave(value, mutable=False)


def _enc_plain_set(encoder: _Encoder, value: set[Any]) -> None:
    _enc_set(encoder, value, b"e")


def _enc_frozenset(encoder: _Encoder, value: frozenset[Any]) -> None:
    _enc_set(encoder, value, b"z")


def _tz_stand_in(tz: tzinfo | None, moment: datetime | None) -> object:
    """A value for a tzinfo: None, a fixed offset, a zone key, or (for other tzinfo classes,
    such as pytz's or dateutil's) what it says at ``moment``: name, offset and DST."""
    if tz is None:
        return None
    if type(tz) is timezone:
        return tz
    if isinstance(tz, ZoneInfo) and tz.key is not None:
        return tz
    zone = getattr(tz, "zone", None) or getattr(tz, "key", None)
    return (
        _type_name(type(tz)),
        zone if isinstance(zone, str) else None,
        tz.tzname(moment),
        tz.utcoffset(moment),
        tz.dst(moment),
    )


def _enc_datetime(encoder: _Encoder, value: datetime) -> None:
    encoder.named(
        b"D",
        "datetime",
        (
            value.year,
            value.month,
            value.day,
            value.hour,
            value.minute,
            value.second,
            value.microsecond,
            value.fold,
        ),
        _tz_stand_in(value.tzinfo, value),
    )


def _enc_date(encoder: _Encoder, value: date) -> None:
    encoder.named(b"D", "date", (value.year, value.month, value.day))


def _enc_time(encoder: _Encoder, value: time) -> None:
    fields = (value.hour, value.minute, value.second, value.microsecond, value.fold)
    encoder.named(b"D", "time", fields, _tz_stand_in(value.tzinfo, None))


def _enc_timedelta(encoder: _Encoder, value: timedelta) -> None:
    encoder.named(b"D", "timedelta", (value.days, value.seconds, value.microseconds))


def _enc_timezone(encoder: _Encoder, value: timezone) -> None:
    # timezone(offset, name) == timezone(offset): the name is only a label.
    encoder.named(b"D", "timezone", value.utcoffset(None))


def _enc_zoneinfo(encoder: _Encoder, value: ZoneInfo) -> None:
    if value.key is None:
        raise _Unhashable(value, "a ZoneInfo read from a file has no key to hash")
    encoder.named(b"D", "zoneinfo", value.key)


def _enc_decimal(encoder: _Encoder, value: Decimal) -> None:
    sign, digits, exponent = value.as_tuple()
    encoder.named(b"D", "decimal", (sign, digits, exponent))


def _enc_fraction(encoder: _Encoder, value: Fraction) -> None:
    encoder.named(b"D", "fraction", (value.numerator, value.denominator))


def _enc_uuid(encoder: _Encoder, value: UUID) -> None:
    encoder.named(b"D", "uuid", value.bytes)


def _enc_path(encoder: _Encoder, value: PurePath) -> None:
    flavour = "windows" if isinstance(value, PureWindowsPath) else "posix"
    encoder.named(b"D", "path", flavour, str(value))


def _enc_module(encoder: _Encoder, value: types.ModuleType) -> None:
    encoder.named(b"M", value.__name__)


def _enc_builtin(encoder: _Encoder, value: Any) -> None:
    """A function written in C (``len``, ``math.sqrt``) or a method of a built-in object."""
    owner = getattr(value, "__self__", None)
    name = value.__qualname__
    if owner is None or isinstance(owner, types.ModuleType):
        encoder.named(b"B", f"{getattr(value, '__module__', None) or ''}.{name}")
    elif isinstance(owner, type):
        encoder.named(b"B", f"{_type_name(owner)}.{value.__name__}")
    else:
        encoder.parts.append(_HEAD(b"m", 2))
        encoder.named(b"B", f"{_type_name(type(owner))}.{value.__name__}")
        try:
            encoder.encode(owner)
        except _Unhashable as exc:
            exc.segments.append(".__self__")
            raise


def _enc_descriptor(encoder: _Encoder, value: Any) -> None:
    """An unbound method of a built-in class (``str.upper``)."""
    encoder.named(b"B", f"{_type_name(value.__objclass__)}.{value.__name__}")


def _enc_method(encoder: _Encoder, value: types.MethodType) -> None:
    """A bound method: its function and the object it is bound to."""
    encoder.parts.append(_HEAD(b"m", 2))
    encoder.encode(value.__func__)
    try:
        encoder.encode(value.__self__)
    except _Unhashable as exc:
        exc.segments.append(".__self__")
        raise


def _enc_partial(encoder: _Encoder, value: functools.partial[Any]) -> None:
    encoder.parts.append(_HEAD(b"W", 3))
    encoder.encode(value.func)
    try:
        encoder.encode(value.args)
    except _Unhashable as exc:
        exc.segments.append(".args")
        raise
    try:
        _enc_dict(encoder, dict(value.keywords))
    except _Unhashable as exc:
        exc.segments.append(".keywords")
        raise


def _collection_stand_in(value: dict[Any, Any] | deque[Any]) -> object | None:
    """The value of a ``collections`` container whose meaning a plain dict/list would lose."""
    if type(value) is OrderedDict:
        return list(value.items())  # OrderedDicts compare in order
    if type(value) is defaultdict:
        return (value.default_factory, dict(value))
    if type(value) is Counter:
        return dict(value)
    if type(value) is deque:
        return (list(value), value.maxlen)
    return None


def _has_own_state(value: object) -> bool:
    """Whether an instance of a built-in's subclass holds attributes or slots of its own."""
    if getattr(value, "__dict__", None):
        return True
    for cls in type(value).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        for slot in (slots,) if isinstance(slots, str) else slots:
            if slot not in ("__dict__", "__weakref__") and hasattr(value, slot):
                return True
    return False


def _enc_subclass(encoder: _Encoder, value: Any, base: type) -> None:
    """An instance of a subclass of a built-in value type: class name and the base value."""
    if _has_own_state(value):
        raise _Unhashable(value, f"it has attributes of its own beyond its {base.__name__} value")
    encoder.parts.append(_HEAD(b"S", 2))
    encoder.parts.append(_str_bytes(_type_name(type(value))))
    if base is str:
        encoder.encode(str.__str__(value))
    elif base in (int, float, complex, bytes, list, tuple, dict, set, frozenset):
        encoder.encode(base(value))
    else:
        # datetime, Decimal, UUID, paths …: their encoders read only the base's fields.
        _VALUE_BASES[base](encoder, value)


# -- functions and classes ------------------------------------------------------------------


def _unwrap(fn: Any) -> Any:
    """Follow ``__wrapped__`` (as ``functools.wraps`` sets it) to the innermost callable."""
    seen = {id(fn)}
    while True:
        try:
            inner = fn.__wrapped__
        except Exception:  # objects with a __getattr__ of their own may raise anything
            return fn
        if id(inner) in seen or len(seen) > MAX_DEPTH:
            return fn
        seen.add(id(inner))
        fn = inner


# code object -> (the code object, encoding of its source or normalized code, global names)
_CODE_CACHE: dict[int, tuple[types.CodeType, bytes, tuple[str, ...]]] = {}
# class -> (the class, its source or None)
_CLASS_SOURCE_CACHE: dict[int, tuple[type, str | None]] = {}
_CACHE_LIMIT = 4096


def _code_part(code: types.CodeType) -> tuple[bytes, tuple[str, ...]]:
    """The cached, code-derived half of a function's encoding, and the global names it loads.

    Keyed by the code object itself (held, so its id cannot be reused): code objects never
    change, and a reloaded or edited function has a new one.
    """
    entry = _CODE_CACHE.get(id(code))
    if entry is not None and entry[0] is code:
        return entry[1], entry[2]
    import inspect

    encoder = _Encoder()
    try:
        source: str | None = textwrap.dedent(inspect.getsource(code))
    except (OSError, TypeError):
        source = None
    if source is None:
        encoder.named(b"O", "code", code)
    elif code.co_name == "<lambda>":
        # inspect gives the whole line, which two lambdas may share.
        encoder.named(b"O", "lambda", source, code)
    else:
        encoder.named(b"O", "source", source)
    data = b"".join(encoder.parts)
    names = _global_names(code)
    if len(_CODE_CACHE) >= _CACHE_LIMIT:
        _CODE_CACHE.clear()
    _CODE_CACHE[id(code)] = (code, data, names)
    return data, names


def _global_names(code: types.CodeType) -> tuple[str, ...]:
    """Names the code (nested code objects included) loads as globals, sorted."""
    import dis

    names: set[str] = set()
    pending = [code]
    while pending:
        current = pending.pop()
        for instruction in dis.get_instructions(current):
            if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME") and isinstance(
                instruction.argval, str
            ):
                names.add(instruction.argval)
        pending.extend(const for const in current.co_consts if isinstance(const, types.CodeType))
    return tuple(sorted(names))


def _class_source(cls: type) -> str | None:
    entry = _CLASS_SOURCE_CACHE.get(id(cls))
    if entry is not None and entry[0] is cls:
        return entry[1]
    import inspect

    try:
        source: str | None = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        source = None
    if len(_CLASS_SOURCE_CACHE) >= _CACHE_LIMIT:
        _CLASS_SOURCE_CACHE.clear()
    _CLASS_SOURCE_CACHE[id(cls)] = (cls, source)
    return source


def _enc_code(encoder: _Encoder, code: types.CodeType) -> None:
    """A code object, normalized: what it does, never where it came from (no file name, no
    line numbers), so it hashes alike wherever the file lives."""
    encoder.named(
        b"O",
        code.co_name,
        code.co_argcount,
        code.co_posonlyargcount,
        code.co_kwonlyargcount,
        code.co_flags,
        code.co_code,
        code.co_consts,
        code.co_names,
        code.co_varnames,
        code.co_freevars,
        code.co_cellvars,
    )


def _remember(encoder: _Encoder, value: object) -> bool:
    """Write a back reference if ``value`` was written before; otherwise number it."""
    index = encoder.memo.get(id(value))
    if index is not None:
        encoder.parts.append(_HEAD(b"g", index))
        return True
    encoder.memo[id(value)] = len(encoder.memo)
    encoder.keep.append(value)
    return False


def _same_module_helper(obj: object, module: str | None) -> object | None:
    """``obj`` unwrapped, if it is a function or class defined in ``module``; else None."""
    obj = _unwrap(obj)
    if (
        isinstance(obj, types.FunctionType | type)
        and module is not None
        and getattr(obj, "__module__", None) == module
    ):
        return obj
    return None


def _enc_calls(
    encoder: _Encoder, names: Iterable[str], namespace: dict[str, Any], module: str | None
) -> None:
    """The same-module functions and classes that ``names`` resolve to, by name."""
    helpers = {}
    for name in names:
        helper = _same_module_helper(namespace.get(name), module)
        if helper is not None:
            helpers[name] = helper
    encoder.parts.append(_HEAD(b"d", len(helpers)))
    for name in sorted(helpers):
        encoder.parts.append(_str_bytes(name))
        helper = helpers[name]
        try:
            if isinstance(helper, type):
                _enc_followed_class(encoder, helper)
            else:
                encoder.encode(helper)
        except _Unhashable as exc:
            exc.segments.append(f".<calls {name}>")
            raise


def _enc_function(encoder: _Encoder, fn: types.FunctionType) -> None:
    """A Python function: see "Functions" in the module docstring."""
    inner = _unwrap(fn)
    if inner is not fn:
        encoder.encode(inner)
        return
    if _remember(encoder, fn):
        return
    encoder.enter(fn, mutable=False)
    try:
        code = fn.__code__
        code_data, names = _code_part(code)
        module = fn.__module__
        encoder.parts.append(_HEAD(b"h", 7))
        encoder.encode("__main__" if module == "__mp_main__" else module)
        encoder.encode(fn.__qualname__)
        encoder.parts.append(code_data)
        _enc_defaults(encoder, fn, code)
        _enc_closure(encoder, fn, code)
        _enc_calls(encoder, names, fn.__globals__, module)
    finally:
        encoder.leave(fn, mutable=False)


def _enc_defaults(encoder: _Encoder, fn: types.FunctionType, code: types.CodeType) -> None:
    defaults = fn.__defaults__ or ()
    positional = code.co_varnames[: code.co_argcount]
    names = positional[len(positional) - len(defaults) :]
    encoder.parts.append(_HEAD(b"t", len(defaults)))
    for name, default in zip(names, defaults, strict=True):
        try:
            encoder.encode(default)
        except _Unhashable as exc:
            exc.segments.append(f".<default {name}>")
            raise
    keyword_defaults = fn.__kwdefaults__ or {}
    encoder.parts.append(_HEAD(b"d", len(keyword_defaults)))
    for name in sorted(keyword_defaults):
        encoder.parts.append(_str_bytes(name))
        try:
            encoder.encode(keyword_defaults[name])
        except _Unhashable as exc:
            exc.segments.append(f".<default {name}>")
            raise


def _enc_closure(encoder: _Encoder, fn: types.FunctionType, code: types.CodeType) -> None:
    cells = dict(zip(code.co_freevars, fn.__closure__ or (), strict=True))
    encoder.parts.append(_HEAD(b"d", len(cells)))
    for name in sorted(cells):
        encoder.parts.append(_str_bytes(name))
        try:
            contents = cells[name].cell_contents
        except ValueError:  # a cell not yet (or no longer) bound
            encoder.parts.append(_HEAD(b"_", 0))
            continue
        try:
            encoder.encode(contents)
        except _Unhashable as exc:
            exc.segments.append(f".<closure {name}>")
            raise


def _enc_class(encoder: _Encoder, cls: type) -> None:
    """A class as a value: qualified name and source (None for built-in classes)."""
    encoder.named(b"K", _type_name(cls), _class_source(cls))


def _enc_followed_class(encoder: _Encoder, cls: type) -> None:
    """A class a function names from its own module: as :func:`_enc_class`, plus the
    same-module functions and classes its methods name."""
    if _remember(encoder, cls):
        return
    encoder.enter(cls, mutable=False)
    try:
        encoder.parts.append(_HEAD(b"k", 3))
        encoder.parts.append(_str_bytes(_type_name(cls)))
        encoder.encode(_class_source(cls))
        names: set[str] = set()
        namespace: dict[str, Any] = {}
        for attribute in vars(cls).values():
            for function in _methods(attribute):
                names.update(_code_part(function.__code__)[1])
                namespace = function.__globals__
        _enc_calls(encoder, sorted(names), namespace, cls.__module__)
    finally:
        encoder.leave(cls, mutable=False)


def _methods(attribute: object) -> list[types.FunctionType]:
    """The Python functions behind a class attribute (method, static/class method, property)."""
    if isinstance(attribute, staticmethod | classmethod):
        attribute = attribute.__func__
    if isinstance(attribute, property):
        candidates: list[object] = [attribute.fget, attribute.fset, attribute.fdel]
    else:
        candidates = [attribute]
    found = []
    for candidate in candidates:
        candidate = _unwrap(candidate)
        if isinstance(candidate, types.FunctionType):
            found.append(candidate)
    return found


# -- numpy and pandas (only when already imported) ------------------------------------------


def _encode_numpy(encoder: _Encoder, value: Any) -> None:
    np = sys.modules["numpy"]
    if isinstance(value, np.ndarray):
        if type(value) is np.ndarray or type(value) is np.memmap:
            _enc_ndarray(encoder, value, "numpy.ndarray")
            return
        if type(value) is np.matrix:
            _enc_ndarray(encoder, np.asarray(value), "numpy.matrix")
            return
        # Masked arrays and other subclasses carry state (a mask …) the bytes do not show.
        raise _Unhashable(value)
    if isinstance(value, np.generic):
        _enc_ndarray(encoder, np.asarray(value), "numpy.scalar")
        return
    if isinstance(value, np.dtype):
        encoder.named(b"X", "numpy.dtype", _dtype_stand_in(value))
        return
    if isinstance(value, np.ufunc):
        encoder.named(b"B", f"numpy.{value.__name__}")
        return
    raise _Unhashable(value)


def _dtype_stand_in(dtype: Any) -> object:
    if dtype.fields is not None:
        return [tuple(field) for field in dtype.descr]
    if dtype.kind == "T":
        return str(dtype)
    if dtype.byteorder == ">" or (dtype.byteorder == "=" and not _LITTLE_ENDIAN):
        dtype = dtype.newbyteorder("<")
    return str(dtype.str)


def _enc_ndarray(encoder: _Encoder, array_: Any, name: str) -> None:
    """dtype, shape, then the C-order bytes (little-endian, NaNs canonical) or, for arrays of
    Python objects, the items one by one."""
    np = sys.modules["numpy"]
    dtype = array_.dtype
    encoder.parts.append(_HEAD(b"X", 4))
    encoder.parts.append(_str_bytes(name))
    encoder.encode(_dtype_stand_in(dtype))
    encoder.encode(tuple(int(size) for size in array_.shape))
    if dtype.char in "gG":
        # long double: 80 bits of value in 96 or 128 bits of storage, the rest uninitialized.
        raise _Unhashable(array_, "numpy long double values have padding bytes")
    if dtype.hasobject or dtype.kind == "T" or dtype.fields is not None:
        # Items one by one: object pointers, StringDType pointers and struct padding bytes
        # mean nothing from one process to the next.
        encoder.enter(array_, mutable=False)
        try:
            _enc_list(encoder, array_.reshape(-1).tolist())
        finally:
            encoder.leave(array_, mutable=False)
        return
    flat = np.ascontiguousarray(array_).reshape(-1)
    if dtype.byteorder == ">" or (dtype.byteorder == "=" and not _LITTLE_ENDIAN):
        flat = flat.astype(dtype.newbyteorder("<"))
    if dtype.kind in "fc":
        parts = flat.view(np.dtype(f"<f{dtype.itemsize // 2}")) if dtype.kind == "c" else flat
        nans = np.isnan(parts)
        if nans.any():
            parts = parts.copy()
            parts[nans] = np.nan
            flat = parts
    encoder.write_buffer(memoryview(flat.view(np.uint8)))


def _encode_pandas(encoder: _Encoder, value: Any) -> None:
    pd = sys.modules["pandas"]
    if isinstance(value, pd.DataFrame):
        _enc_dataframe(encoder, value)
    elif isinstance(value, pd.Series):
        encoder.enter(value, mutable=False)
        try:
            encoder.parts.append(_HEAD(b"X", 6))
            encoder.parts.append(_str_bytes("pandas.Series"))
            encoder.encode(value.name)
            encoder.encode(str(value.dtype))
            _enc_index(encoder, value.index)
            _enc_pandas_values(encoder, value)
            encoder.encode(dict(value.attrs))
        finally:
            encoder.leave(value, mutable=False)
    elif isinstance(value, pd.Index):
        _enc_index(encoder, value)
    elif isinstance(value, pd.api.extensions.ExtensionArray):
        encoder.parts.append(_HEAD(b"X", 3))
        encoder.parts.append(_str_bytes(f"pandas.{type(value).__name__}"))
        encoder.encode(str(value.dtype))
        _enc_pandas_values(encoder, pd.Series(value, copy=False))
    elif value is pd.NaT or value is pd.NA:
        encoder.named(b"X", f"pandas.{'NaT' if value is pd.NaT else 'NA'}")
    elif isinstance(value, pd.Timestamp):
        encoder.named(b"X", "pandas.Timestamp", value.value, _tz_stand_in(value.tzinfo, value))
    elif isinstance(value, pd.Timedelta):
        encoder.named(b"X", "pandas.Timedelta", value.value)
    elif isinstance(value, pd.Period):
        encoder.named(b"X", "pandas.Period", value.ordinal, value.freqstr)
    elif isinstance(value, pd.Interval):
        encoder.named(b"X", "pandas.Interval", value.left, value.right, value.closed)
    else:
        raise _Unhashable(value)


def _enc_dataframe(encoder: _Encoder, frame: Any) -> None:
    encoder.enter(frame, mutable=False)
    try:
        encoder.parts.append(_HEAD(b"X", 6))
        encoder.parts.append(_str_bytes("pandas.DataFrame"))
        _enc_index(encoder, frame.columns)
        _enc_index(encoder, frame.index)
        encoder.encode([str(dtype) for dtype in frame.dtypes])
        encoder.parts.append(_HEAD(b"l", frame.shape[1]))
        for position in range(frame.shape[1]):
            try:
                _enc_pandas_values(encoder, frame.iloc[:, position])
            except _Unhashable as exc:
                exc.segments.append(f".iloc[:, {position}]")
                raise
        encoder.encode(dict(frame.attrs))
    finally:
        encoder.leave(frame, mutable=False)


def _enc_index(encoder: _Encoder, index: Any) -> None:
    pd = sys.modules["pandas"]
    encoder.enter(index, mutable=False)
    try:
        if isinstance(index, pd.MultiIndex):
            encoder.parts.append(_HEAD(b"X", 3))
            encoder.parts.append(_str_bytes("pandas.MultiIndex"))
            encoder.encode(list(index.names))
            encoder.parts.append(_HEAD(b"l", index.nlevels))
            for level in range(index.nlevels):
                _enc_index(encoder, index.get_level_values(level))
            return
        # A RangeIndex and an Index holding the same integers are equal: hash the values.
        encoder.parts.append(_HEAD(b"X", 4))
        encoder.parts.append(_str_bytes("pandas.Index"))
        encoder.encode(list(index.names))
        encoder.encode(str(index.dtype))
        _enc_pandas_values(encoder, index)
    finally:
        encoder.leave(index, mutable=False)


def _enc_pandas_values(encoder: _Encoder, data: Any) -> None:
    """The values of a Series or Index, through numpy, as fast as their dtype allows."""
    np = sys.modules["numpy"]
    pd = sys.modules["pandas"]
    dtype = data.dtype
    if isinstance(dtype, np.dtype):
        _enc_ndarray(encoder, data.to_numpy(copy=False), "numpy.ndarray")
        return
    values = data.array
    if isinstance(dtype, pd.CategoricalDtype):
        encoder.parts.append(_HEAD(b"X", 4))
        encoder.parts.append(_str_bytes("pandas.Categorical"))
        _enc_index(encoder, values.categories)
        encoder.encode(bool(values.ordered))
        _enc_ndarray(encoder, np.asarray(values.codes), "numpy.ndarray")
        return
    if isinstance(dtype, pd.StringDtype):
        # Missing-value mask, then the strings that are present (packed in one piece).
        objects = np.asarray(values, dtype=object)
        present = objects.tolist()
        kind: type | None = str
        if set(map(type, present)) == {str}:
            missing = np.zeros(len(present), dtype=bool)  # isna() would cost as much again
        else:
            missing = np.asarray(values.isna(), dtype=bool)
            present = objects[~missing].tolist()
            kind = None
        encoder.parts.append(_HEAD(b"X", 3))
        encoder.parts.append(_str_bytes("pandas.strings"))
        _enc_ndarray(encoder, missing, "numpy.ndarray")
        _enc_sequence(encoder, present, b"l", kind)
        return
    missing = np.asarray(values.isna(), dtype=bool)
    numpy_dtype = getattr(dtype, "numpy_dtype", None)
    if isinstance(numpy_dtype, np.dtype) and numpy_dtype.kind in "biuf":
        # Nullable integers, floats, booleans: mask, then the values with holes filled.
        filled = values.to_numpy(dtype=numpy_dtype, na_value=numpy_dtype.type(0))
        encoder.parts.append(_HEAD(b"X", 3))
        encoder.parts.append(_str_bytes("pandas.masked"))
        _enc_ndarray(encoder, missing, "numpy.ndarray")
        _enc_ndarray(encoder, filled, "numpy.ndarray")
        return
    asi8 = getattr(values, "asi8", None)
    if isinstance(asi8, np.ndarray):
        # Datetimes with a time zone, periods: int64 ticks; the unit, zone and frequency
        # are in the dtype, hashed beside.
        encoder.parts.append(_HEAD(b"X", 3))
        encoder.parts.append(_str_bytes("pandas.ticks"))
        encoder.encode(str(dtype))
        _enc_ndarray(encoder, asi8, "numpy.ndarray")
        return
    _enc_ndarray(encoder, np.asarray(values, dtype=object), "numpy.ndarray")


# -- the dispatch table ---------------------------------------------------------------------

_NATIVE: dict[type, Callable[[_Encoder, Any], None]] = {
    type(None): _enc_none,
    type(...): _enc_ellipsis,
    bool: _enc_bool,
    int: _enc_int,
    float: _enc_float,
    complex: _enc_complex,
    str: _enc_str,
    bytes: _enc_bytes,
    bytearray: _enc_bytearray,
    list: _enc_list,
    tuple: _enc_tuple,
    dict: _enc_plain_dict,
    set: _enc_plain_set,
    frozenset: _enc_frozenset,
    range: _enc_range,
    datetime: _enc_datetime,
    date: _enc_date,
    time: _enc_time,
    timedelta: _enc_timedelta,
    timezone: _enc_timezone,
    ZoneInfo: _enc_zoneinfo,
    Decimal: _enc_decimal,
    Fraction: _enc_fraction,
    UUID: _enc_uuid,
    PurePosixPath: _enc_path,
    PureWindowsPath: _enc_path,
    PosixPath: _enc_path,
    WindowsPath: _enc_path,
    types.FunctionType: _enc_function,
    types.MethodType: _enc_method,
    types.BuiltinFunctionType: _enc_builtin,
    types.MethodDescriptorType: _enc_descriptor,
    types.WrapperDescriptorType: _enc_descriptor,
    types.ClassMethodDescriptorType: _enc_descriptor,
    types.MethodWrapperType: _enc_builtin,
    types.ModuleType: _enc_module,
    types.CodeType: _enc_code,
    functools.partial: _enc_partial,
    type: _enc_class,
}

_ATOMS.update({str: _str_bytes, int: _int_bytes})

# Built-in value types whose subclasses hash as "class name + base value" (rule 9), nearest
# base first, each with the encoder for its fields.
_VALUE_BASES: dict[type, Callable[[_Encoder, Any], None]] = {
    base: _NATIVE[base]
    for base in (
        bool,
        int,
        float,
        complex,
        str,
        bytes,
        list,
        tuple,
        dict,
        set,
        frozenset,
        datetime,
        date,
        time,
        timedelta,
        Decimal,
        Fraction,
        UUID,
    )
} | {PurePath: _enc_path}
