"""Tests for sqlresults.hashing: canonical fingerprints of task inputs and task source."""

from __future__ import annotations

import collections
import dataclasses
import enum
import functools
import importlib.util
import json
import math
import os
import pickle
import struct
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from pathlib import Path, PurePosixPath, PureWindowsPath
from types import ModuleType
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import hashing_corpus
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from sqlresults.errors import InvalidArgumentError, UnhashableError
from sqlresults.hashing import (
    MAX_DEPTH,
    fingerprint,
    function_fingerprint,
    hash_objects,
    register_hasher,
    unregister_hasher,
)

TESTS_DIR = Path(__file__).parent


def all_distinct(*values: object) -> bool:
    """Whether the values' fingerprints are pairwise different."""
    fingerprints = [fingerprint(value) for value in values]
    return len(set(fingerprints)) == len(fingerprints)


# -- fixtures and types used below -----------------------------------------------------------


class Colour(enum.Enum):
    RED = 1
    GREEN = 2


class Shade(enum.Enum):
    RED = 1


class Level(enum.IntEnum):
    LOW = 1


@dataclasses.dataclass
class Point:
    x: int
    y: int


@dataclasses.dataclass
class Pair:
    x: int
    y: int


@dataclasses.dataclass
class Node:
    value: int
    child: Node | None = None


class Measurement(BaseModel):
    name: str
    value: float
    taken: datetime


class Coordinates(NamedTuple):
    lat: float
    lon: float


class Label(str):
    """A str subclass without state of its own."""


class TaggedLabel(str):
    """A str subclass that carries an attribute the str value does not show."""

    def __new__(cls, value: str, tag: str) -> TaggedLabel:
        instance = super().__new__(cls, value)
        instance.tag = tag
        return instance


class Celsius:
    """A user type that opts in with the hook."""

    def __init__(self, degrees: float) -> None:
        self.degrees = degrees

    def __sqlresults_hash__(self) -> object:
        return self.degrees


class Fahrenheit:
    def __init__(self, degrees: float) -> None:
        self.degrees = degrees

    def __sqlresults_hash__(self) -> object:
        return self.degrees


class Opaque:
    """An ordinary object with attributes: never hashed by its __dict__."""

    def __init__(self, value: int) -> None:
        self.value = value


class Forbidden:
    __sqlresults_hash__ = None


class Recursive:
    def __sqlresults_hash__(self) -> object:
        return Recursive()


class Broken:
    def __sqlresults_hash__(self) -> object:
        raise RuntimeError("no can do")


@pytest.fixture
def registry() -> Iterator[Callable[[type, Callable[[Any], object]], None]]:
    """register_hasher, with every class registered through it forgotten afterwards."""
    registered: list[type] = []

    def register(cls: type, hasher: Callable[[Any], object]) -> None:
        register_hasher(cls, hasher)
        registered.append(cls)

    yield register
    for cls in registered:
        unregister_hasher(cls)


# -- the format -------------------------------------------------------------------------------


class TestFormat:
    def test_fingerprint_is_32_lowercase_hex(self) -> None:
        """A fingerprint is 32 lowercase hex characters (a 16-byte BLAKE2b digest)."""
        value = fingerprint({"x": [1, 2.5, "three"]})
        assert len(value) == 32
        assert set(value) <= set("0123456789abcdef")

    def test_known_values_never_change(self) -> None:
        """The encoding is pinned: these fingerprints are stored as keys in users' databases.
        A change here invalidates every cache; make it deliberately (bump the version in the
        module's personalization) and say so in the changelog."""
        assert fingerprint({"x": 1}) == "cc841310ddc79bfc469df5e3d3fe35f6"
        assert hash_objects({"x": 1}) == "1a2127857274c1fa95fa2fffab0cee86"
        assert (
            fingerprint([1, 1.0, True, "1", b"1", None, (1,), {1}, frozenset({"a"})])
            == "81236fb9e670483fbc2ad4d63f49e7e3"
        )
        assert hash_objects(1, "a", k=[1.5]) == fingerprint(((1, "a"), {"k": [1.5]}))

    def test_hash_objects_is_args_and_kwargs(self) -> None:
        """hash_objects(*args, **kwargs) fingerprints (args, kwargs): positions matter, keyword
        order does not, and one argument differs from a tuple of them."""
        assert hash_objects(1, 2) == fingerprint(((1, 2), {}))
        assert hash_objects(1, 2) != hash_objects(2, 1)
        assert hash_objects(1, 2) != hash_objects((1, 2))
        assert hash_objects(a=1, b=2) == hash_objects(b=2, a=1)
        assert hash_objects(1) != hash_objects(a=1)


# -- what differs and what is equal -----------------------------------------------------------


class TestDistinctions:
    def test_the_issue_examples_all_differ(self) -> None:
        """1, "1", 1.0, True, [1], (1,) (and b"1", {1}, frozenset({1})) all differ."""
        assert all_distinct(1, "1", 1.0, True, [1], (1,), b"1", {1}, frozenset({1}), 1 + 0j)

    def test_prefects_collisions_do_not_collide(self) -> None:
        """[1, 2] vs (1, 2) and {1: "a"} vs {"1": "a"}, which collide as JSON, differ."""
        assert all_distinct([1, 2], (1, 2))
        assert all_distinct({1: "a"}, {"1": "a"})
        assert all_distinct({"a": [1, 2]}, {"a": (1, 2)})

    def test_bool_is_not_int_and_int_is_not_float(self) -> None:
        """True != 1 and 1 != 1.0, also deep inside containers and as dict keys."""
        assert all_distinct(True, 1, 1.0)
        assert all_distinct(False, 0, 0.0)
        assert all_distinct([True], [1], [1.0])
        assert all_distinct({True: "x"}, {1: "x"}, {1.0: "x"})

    def test_containers_differ_by_kind(self) -> None:
        """list, tuple, set, frozenset, dict and a list of pairs all differ, also when empty."""
        assert all_distinct([], (), set(), frozenset(), {}, None, "", b"")
        assert all_distinct([1, 2], (1, 2), {1, 2}, frozenset({1, 2}))
        assert all_distinct({1: 2}, [(1, 2)], ((1, 2),))

    def test_str_bytes_bytearray_differ(self) -> None:
        """str, bytes and bytearray with the same content differ."""
        assert all_distinct("abc", b"abc", bytearray(b"abc"))

    def test_negative_zero_differs_and_nan_is_one_value(self) -> None:
        """-0.0 and 0.0 differ (they print and divide differently); every NaN, whatever its
        sign or payload, is one value, so equal inputs holding NaN always hit."""
        assert all_distinct(0.0, -0.0)
        other_nan = struct.unpack("<d", struct.pack("<Q", 0xFFF8_0000_0000_0001))[0]
        assert math.isnan(other_nan)
        assert fingerprint(float("nan")) == fingerprint(-float("nan")) == fingerprint(other_nan)
        assert fingerprint([float("nan")]) == fingerprint([math.nan])
        assert all_distinct(float("nan"), float("inf"), float("-inf"))

    def test_big_and_negative_ints(self) -> None:
        """Ints of any size hash by value; nearby values differ."""
        big = 2**200
        assert fingerprint(big) == fingerprint(int(str(big)))
        assert all_distinct(big, big + 1, -big, 255, 256, -1, -128, -129, 0)

    def test_nesting_matters(self) -> None:
        """The same leaves in different structures differ."""
        assert all_distinct([[1], 2], [1, [2]], [[1, 2]], [1, 2])
        assert all_distinct(("a", "b"), ("ab",), ("a", "", "b"))

    def test_packed_lists_keep_their_items_apart(self) -> None:
        """Long lists of one type are packed in one piece, yet item boundaries still count:
        moving a NUL or a character between items changes the fingerprint, and a packed
        list differs from a list that is not packed."""
        assert all_distinct(["a\0b", "c"] * 10, ["a", "b\0c"] * 10, ["a\0b\0c"] * 10)
        assert all_distinct(["ab", "c"] * 10, ["a", "bc"] * 10)
        assert all_distinct(list(range(20)), [*range(19), 19.0], [*range(19), True])
        assert all_distinct([1.5] * 20, [1.5] * 19 + [1], [2**70] * 20, [2**62] * 20)

    def test_long_lists_equal_their_copies(self) -> None:
        """Packed or not, a list's fingerprint is that of its copy, NaNs included."""
        for items in (
            [f"s{i}" for i in range(30)],
            list(range(30)),
            [i / 3 for i in range(30)],
            [math.nan] * 20,
            [2**80] * 20,
        ):
            assert fingerprint(items) == fingerprint(list(items))
            assert fingerprint(tuple(items)) == fingerprint(tuple(items))


class TestEqualities:
    def test_dict_order_never_matters(self) -> None:
        """Dicts with the same items in another insertion order hash alike, at any depth."""
        first = {"b": 2, "a": 1, 3: [{"y": 1, "x": 2}]}
        second = {3: [{"x": 2, "y": 1}], "a": 1, "b": 2}
        assert fingerprint(first) == fingerprint(second)

    def test_set_order_never_matters(self) -> None:
        """Sets built in different orders (and with different histories) hash alike."""
        words = [f"w{i}" for i in range(100)]
        grown = set()
        for word in reversed(words):
            grown.add(word)
        grown.add("extra")
        grown.discard("extra")
        assert fingerprint(set(words)) == fingerprint(grown)
        assert fingerprint(frozenset(words)) == fingerprint(frozenset(reversed(words)))
        assert fingerprint({frozenset({1, 2}), frozenset({3})}) == fingerprint(
            {frozenset({3}), frozenset({2, 1})}
        )

    def test_copies_hash_alike(self) -> None:
        """A deep copy of a nested value hashes like the original."""
        value = {"a": [1, (2, {3, 4}), {"b": b"x"}], "c": None}
        assert fingerprint(value) == fingerprint(pickle.loads(pickle.dumps(value)))

    def test_shared_substructure_is_not_a_cycle(self) -> None:
        """The same list twice in a value is fine (only a value containing itself is not)."""
        shared = [1, 2]
        assert fingerprint([shared, shared]) == fingerprint([[1, 2], [1, 2]])


# -- every listed type ------------------------------------------------------------------------


class TestStandardTypes:
    def test_datetimes(self) -> None:
        """Datetimes hash by value; naive vs aware, and different zones or offsets, differ."""
        naive = datetime(2024, 1, 2, 3, 4, 5, 6)
        assert fingerprint(naive) == fingerprint(datetime(2024, 1, 2, 3, 4, 5, 6))
        utc = naive.replace(tzinfo=UTC)
        paris = datetime(2024, 1, 2, 4, 4, 5, 6, tzinfo=ZoneInfo("Europe/Paris"))
        plus_one = paris.replace(tzinfo=timezone(timedelta(hours=1)))
        assert utc == paris == plus_one  # the same instant, yet not the same value
        assert all_distinct(naive, utc, paris, plus_one, naive.date(), naive.time())
        assert fingerprint(utc) == fingerprint(naive.replace(tzinfo=UTC))
        assert fingerprint(timezone(timedelta(hours=2), "X")) == fingerprint(
            timezone(timedelta(hours=2))
        )
        assert all_distinct(naive, naive.replace(fold=1), naive + timedelta(microseconds=1))

    def test_dates_times_timedeltas(self) -> None:
        """date, time and timedelta hash by value."""
        assert fingerprint(date(2024, 2, 29)) == fingerprint(date.fromisoformat("2024-02-29"))
        assert fingerprint(time(1, 2, 3)) == fingerprint(time.fromisoformat("01:02:03"))
        assert fingerprint(timedelta(hours=25)) == fingerprint(timedelta(days=1, hours=1))
        assert all_distinct(date(2024, 1, 1), date(2024, 1, 2), time(1), timedelta(1), 1)

    def test_uuid_decimal_fraction(self) -> None:
        """UUIDs, Decimals and Fractions hash by value; Decimal keeps its exponent."""
        key = uuid.uuid4()
        assert fingerprint(key) == fingerprint(uuid.UUID(str(key)))
        assert all_distinct(key, str(key), key.bytes)
        assert fingerprint(Decimal("1.5")) == fingerprint(Decimal("15e-1"))
        assert all_distinct(Decimal("1.0"), Decimal("1.00"), Decimal("1"), 1, 1.0)
        assert all_distinct(Decimal("NaN"), Decimal("sNaN"), Decimal("-0"), Decimal("0"))
        assert fingerprint(Fraction(2, 4)) == fingerprint(Fraction(1, 2))
        assert all_distinct(Fraction(1, 2), 0.5, Decimal("0.5"))

    def test_paths_hash_by_text_not_contents(self, tmp_path: Path) -> None:
        """Paths hash by flavour and normalized text; the file's contents are not read."""
        file = tmp_path / "data.csv"
        file.write_text("one")
        before = fingerprint(file)
        file.write_text("two")
        assert fingerprint(file) == before
        assert fingerprint(Path("a/b")) == fingerprint(PurePosixPath("a//b/"))
        assert all_distinct(PurePosixPath("a/b"), PureWindowsPath("a/b"), "a/b")

    def test_enums_by_class_and_value(self) -> None:
        """Enum members hash by qualified class name and value: members of different enums
        with equal values differ, and an IntEnum differs from its int."""
        assert fingerprint(Colour.RED) == fingerprint(Colour(1))
        assert all_distinct(Colour.RED, Colour.GREEN, Shade.RED, 1, Level.LOW)

    def test_bytes_by_value(self) -> None:
        """Bytes hash by content, whatever object holds them."""
        assert fingerprint(b"\x00\xff" * 10) == fingerprint(bytes(bytearray(b"\x00\xff" * 10)))

    def test_dataclasses_by_class_and_fields(self) -> None:
        """Dataclasses hash by qualified class name and fields: equal fields in another
        dataclass differ, and nested dataclasses hash by value."""
        assert fingerprint(Point(1, 2)) == fingerprint(Point(1, 2))
        assert all_distinct(Point(1, 2), Point(2, 1), Pair(1, 2), (1, 2), {"x": 1, "y": 2})
        assert fingerprint(Node(1, Node(2))) == fingerprint(Node(1, Node(2)))
        assert all_distinct(Node(1, Node(2)), Node(1, Node(3)), Node(1))

    def test_pydantic_models_by_class_and_json_dump(self) -> None:
        """Pydantic models hash by qualified class name and model_dump(mode="json")."""
        taken = datetime(2024, 1, 1, tzinfo=UTC)
        model = Measurement(name="t", value=1.5, taken=taken)
        assert fingerprint(model) == fingerprint(Measurement(name="t", value=1.5, taken=taken))
        assert all_distinct(
            model, Measurement(name="t", value=2.5, taken=taken), model.model_dump(mode="json")
        )

    def test_named_tuples_and_str_subclasses(self) -> None:
        """A subclass of a built-in value type without state of its own hashes as its class
        name plus the base value: it differs from the plain value."""
        assert fingerprint(Coordinates(1.0, 2.0)) == fingerprint(Coordinates(1.0, 2.0))
        assert all_distinct(Coordinates(1.0, 2.0), (1.0, 2.0))
        assert fingerprint(Label("a")) == fingerprint(Label("a"))
        assert all_distinct(Label("a"), "a", Label("b"))

    def test_subclass_with_state_of_its_own_is_refused(self) -> None:
        """A str subclass carrying attributes would hash as if they were not there, so it
        raises instead."""
        with pytest.raises(UnhashableError, match="attributes of its own beyond its str"):
            fingerprint(TaggedLabel("a", tag="x"))

    def test_collections(self) -> None:
        """OrderedDict keeps its order; defaultdict counts its factory; Counter and deque hash
        by value; each differs from the plain container."""
        ordered = collections.OrderedDict([("a", 1), ("b", 2)])
        assert fingerprint(ordered) == fingerprint(collections.OrderedDict(ordered))
        assert all_distinct(ordered, collections.OrderedDict([("b", 2), ("a", 1)]), dict(ordered))
        assert all_distinct(
            collections.defaultdict(int, a=1), collections.defaultdict(list, a=1), {"a": 1}
        )
        assert fingerprint(collections.Counter("abca")) == fingerprint(collections.Counter("aacb"))
        assert all_distinct(collections.deque([1, 2]), collections.deque([1, 2], maxlen=5), [1, 2])

    def test_other_builtins(self) -> None:
        """range, complex, Ellipsis and None hash by value."""
        assert fingerprint(range(0, 10, 2)) == fingerprint(range(0, 10, 2))
        assert all_distinct(range(3), [0, 1, 2], range(0, 3, 2), complex(1, -0.0), 1j, ..., None)

    def test_modules_classes_and_builtin_functions_by_name(self) -> None:
        """Modules hash by name, classes by qualified name and source, C functions by name."""
        assert all_distinct(math, json, Point, Pair, int, str, len, math.sqrt, str.upper)
        assert fingerprint(math.sqrt) == fingerprint(math.sqrt)


# -- user types -------------------------------------------------------------------------------


class TestHook:
    def test_hook_stand_in_is_hashed_with_the_class_name(self) -> None:
        """__sqlresults_hash__'s stand-in decides equality; the class name keeps two classes
        with equal stand-ins apart."""
        assert fingerprint(Celsius(10)) == fingerprint(Celsius(10))
        assert all_distinct(Celsius(10), Celsius(11), Fahrenheit(10), 10)

    def test_hook_wins_over_the_registry(
        self, registry: Callable[[type, Callable[[Any], object]], None]
    ) -> None:
        """A hook on the class itself comes before a registered hasher."""
        before = fingerprint(Celsius(10))
        registry(Celsius, lambda value: "ignored")
        assert fingerprint(Celsius(10)) == before

    def test_hook_set_to_none_forbids_hashing(self) -> None:
        """__sqlresults_hash__ = None says "never hash me", like __hash__ = None."""
        with pytest.raises(UnhashableError, match="sets __sqlresults_hash__ = None"):
            fingerprint(Forbidden())

    def test_hook_returning_its_own_class_is_an_error(self) -> None:
        """A hook that returns another instance of its class would recurse forever."""
        with pytest.raises(UnhashableError, match="returned another instance of its own class"):
            fingerprint(Recursive())

    def test_hook_that_raises_becomes_an_unhashable_error(self) -> None:
        """An exception inside the hook is reported as UnhashableError, chained to it."""
        with pytest.raises(UnhashableError, match="RuntimeError: no can do") as caught:
            fingerprint([Broken()], argument="x")
        assert isinstance(caught.value.__cause__, RuntimeError)
        assert caught.value.path == "x[0]"


class TestRegistry:
    def test_registered_hasher_is_used(
        self, registry: Callable[[type, Callable[[Any], object]], None]
    ) -> None:
        """A registered hasher makes an otherwise unhashable type hashable by its stand-in."""
        with pytest.raises(UnhashableError):
            fingerprint(Opaque(1))
        registry(Opaque, lambda value: value.value)
        assert fingerprint(Opaque(1)) == fingerprint(Opaque(1))
        assert all_distinct(Opaque(1), Opaque(2), 1)

    def test_lookup_follows_the_mro(
        self, registry: Callable[[type, Callable[[Any], object]], None]
    ) -> None:
        """A subclass uses its nearest registered base's hasher."""

        class Base:
            pass

        class Middle(Base):
            pass

        class Leaf(Middle):
            pass

        registry(Base, lambda value: "base")
        assert fingerprint(Leaf()) == fingerprint(Leaf())
        before = fingerprint(Leaf())
        registry(Middle, lambda value: "middle")
        assert fingerprint(Leaf()) != before
        assert all_distinct(Leaf(), Middle(), Base())

    def test_unregister(self, registry: Callable[[type, Callable[[Any], object]], None]) -> None:
        """unregister_hasher forgets the class; unregistering twice is harmless."""
        registry(Opaque, lambda value: value.value)
        unregister_hasher(Opaque)
        unregister_hasher(Opaque)
        with pytest.raises(UnhashableError):
            fingerprint(Opaque(1))

    @pytest.mark.parametrize("cls", [int, str, dict, list, datetime, object])
    def test_fixed_types_cannot_be_registered(self, cls: type) -> None:
        """The built-in types' encodings are fixed, so keys mean the same in every program."""
        with pytest.raises(InvalidArgumentError, match="fixed encoding"):
            register_hasher(cls, repr)

    def test_bad_arguments(self) -> None:
        """A non-class or a non-callable hasher is a TypeError."""
        with pytest.raises(TypeError):
            register_hasher("Opaque", repr)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            register_hasher(Opaque, "repr")  # type: ignore[arg-type]


# -- errors -----------------------------------------------------------------------------------


class TestErrors:
    def test_error_names_argument_path_and_both_ways_out(self) -> None:
        """The error names the argument, the path inside it and its type, and gives both ways
        out: leaving the argument out of INPUTS, or the hook / registry."""
        with pytest.raises(UnhashableError) as caught:
            fingerprint({"a": [0, 1, threading.Lock()]}, argument="x")
        error = caught.value
        assert (error.argument, error.path, error.type_name) == ("x", "x['a'][2]", "_thread.lock")
        assert error.function is None
        message = str(error)
        assert "argument 'x'" in message
        assert "x['a'][2]" in message
        assert 'cache_policy=INPUTS - "x"' in message
        assert "__sqlresults_hash__(self)" in message
        assert "register_hasher" in message

    def test_is_a_type_error(self) -> None:
        """UnhashableError is a TypeError, like hash() of an unhashable object."""
        with pytest.raises(TypeError):
            fingerprint(object())

    def test_plain_objects_are_not_hashed_by_their_dict(self) -> None:
        """An object with attributes but no rule raises: two such objects with equal
        attributes may behave differently, so hashing __dict__ would share keys silently."""
        with pytest.raises(UnhashableError, match=r"test_hashing\.Opaque") as caught:
            fingerprint(Opaque(1), argument="model")
        assert caught.value.path == "model"

    @pytest.mark.parametrize(
        ("value", "path"),
        [
            (Node(1, Node(2, Opaque(3))), "v.child.child"),  # type: ignore[arg-type]
            ({"k": {Opaque(1): 1}}, "v['k'] (the key <test_hashing.Opaque object at "),
            ((1, frozenset({("a", Opaque(2))})), "v[1] (the element ('a', <test_hashing.Opa"),
            ([Celsius(Opaque(1))], "v[0].__sqlresults_hash__()"),  # type: ignore[arg-type]
        ],
    )
    def test_paths(self, value: object, path: str) -> None:
        """The path leads through fields, dict keys, set elements and hooks."""
        with pytest.raises(UnhashableError) as caught:
            fingerprint(value, argument="v")
        assert caught.value.path.startswith(path)
        assert caught.value.type_name == "test_hashing.Opaque"

    def test_without_argument_the_root_is_value(self) -> None:
        """Without an argument name the path starts at "value"."""
        with pytest.raises(UnhashableError) as caught:
            fingerprint([object()])
        assert caught.value.path == "value[0]"
        assert caught.value.argument is None
        assert 'INPUTS - "<argument name>"' in str(caught.value)

    def test_hash_objects_paths_start_at_args_or_kwargs(self) -> None:
        """hash_objects reports args[i] or kwargs['name']."""
        with pytest.raises(UnhashableError) as caught:
            hash_objects(1, [object()])
        assert caught.value.path == "args[1][0]"
        with pytest.raises(UnhashableError) as caught:
            hash_objects(k={"a": object()})
        assert caught.value.path == "kwargs['k']['a']"

    def test_cycles_raise_not_recursion_error(self) -> None:
        """A value containing itself raises UnhashableError naming the cycle."""
        loop: list[object] = [1]
        loop.append(loop)
        with pytest.raises(UnhashableError, match="contains itself") as caught:
            fingerprint(loop, argument="x")
        assert caught.value.path == "x[1]"
        table: dict[str, object] = {}
        table["self"] = {"again": table}
        with pytest.raises(UnhashableError, match="contains itself"):
            fingerprint(table)
        node = Node(1)
        node.child = node
        with pytest.raises(UnhashableError, match="contains itself"):
            fingerprint(node)

    def test_deep_nesting_raises_not_recursion_error(self) -> None:
        """A value nested deeper than MAX_DEPTH raises UnhashableError; one just inside the
        limit hashes."""
        shallow: object = 0
        for _ in range(MAX_DEPTH - 1):
            shallow = [shallow]
        fingerprint(shallow)
        deep: object = 0
        for _ in range(10 * MAX_DEPTH):
            deep = (deep,)
        with pytest.raises(UnhashableError, match="nested more than"):
            fingerprint(deep)

    def test_message_for_a_builtin_type_suggests_a_wrapper(self) -> None:
        """A built-in type cannot take a method, so the message suggests wrapping it."""
        loop: list[object] = []
        loop.append(loop)
        with pytest.raises(UnhashableError, match="a class wrapping the list"):
            fingerprint(loop)

    def test_error_survives_pickling(self) -> None:
        """A process-pool worker's UnhashableError reaches its caller intact."""
        with pytest.raises(UnhashableError) as caught:
            fingerprint({"a": object()}, argument="x")
        restored = pickle.loads(pickle.dumps(caught.value))
        assert str(restored) == str(caught.value)
        assert restored.path == "x['a']"


# -- numpy and pandas -------------------------------------------------------------------------


class TestNumpy:
    @pytest.fixture(autouse=True)
    def np(self) -> ModuleType:
        return pytest.importorskip("numpy")

    def test_arrays_by_dtype_shape_and_bytes(self, np: ModuleType) -> None:
        """Equal arrays hash alike; dtype, shape and any element change the fingerprint."""
        array = np.arange(12, dtype="f8")
        assert fingerprint(array) == fingerprint(array.copy())
        assert all_distinct(
            array,
            array.astype("f4"),
            array.astype("i8"),
            array.reshape(3, 4),
            array.reshape(4, 3),
            np.where(array == 5, 5.5, array),
            array.tolist(),
        )

    def test_memory_layout_and_byte_order_do_not_matter(self, np: ModuleType) -> None:
        """Fortran order, strided views and big-endian storage of equal values hash alike."""
        array = np.arange(12, dtype="f8").reshape(3, 4)
        assert fingerprint(array) == fingerprint(np.asfortranarray(array))
        assert fingerprint(array[:, ::2]) == fingerprint(array[:, ::2].copy())
        assert fingerprint(array) == fingerprint(array.astype(">f8"))

    def test_nan_is_one_value_and_negative_zero_differs(self, np: ModuleType) -> None:
        """In arrays too, every NaN is one NaN, and -0.0 differs from 0.0."""
        nans = np.array([np.nan, 1.0])
        negative = nans.copy()
        negative[0] = -np.nan
        assert fingerprint(nans) == fingerprint(negative)
        assert all_distinct(np.array([0.0]), np.array([-0.0]))
        assert fingerprint(np.array([complex(np.nan, 1)])) == fingerprint(
            np.array([complex(-np.nan, 1)])
        )

    def test_object_arrays_item_by_item(self, np: ModuleType) -> None:
        """Object arrays hash their items through the same rules (sets, dicts, strings …)."""
        first = np.array([{"b", "a"}, {"k": 1}, "s", None], dtype=object)
        second = np.array([{"a", "b"}, {"k": 1}, "s", None], dtype=object)
        assert fingerprint(first) == fingerprint(second)
        assert all_distinct(first, np.array([{"a"}, {"k": 1}, "s", None], dtype=object))
        strings = np.array([f"s{i}" for i in range(50)], dtype=object)
        assert fingerprint(strings) == fingerprint(strings.copy())
        assert all_distinct(strings, strings.astype("U"))
        with pytest.raises(UnhashableError):
            fingerprint(np.array([object()], dtype=object))

    def test_structured_datetime_and_string_arrays(self, np: ModuleType) -> None:
        """Structured (item by item, padding ignored), datetime64 and unicode arrays."""
        aligned = np.dtype([("a", "i1"), ("b", "f8")], align=True)
        assert fingerprint(np.array([(1, 2.0)], dtype=aligned)) == fingerprint(
            np.array([(1, 2.0)], dtype=aligned)
        )
        stamps = np.array(["2024-01-01", "NaT"], dtype="datetime64[s]")
        assert fingerprint(stamps) == fingerprint(stamps.copy())
        assert all_distinct(stamps, stamps.astype("datetime64[ms]"))
        assert all_distinct(np.array(["ab", "c"]), np.array(["a", "bc"]))

    def test_scalars_dtypes_and_ufuncs(self, np: ModuleType) -> None:
        """numpy scalars differ from Python numbers and from each other by dtype; dtypes and
        ufuncs hash too."""
        assert fingerprint(np.float64(1.5)) == fingerprint(np.float64(1.5))
        assert all_distinct(np.float64(1.0), np.float32(1.0), 1.0, np.int64(1), 1, np.bool_(True))
        assert all_distinct(np.dtype("f8"), np.dtype("f4"), np.add, np.multiply)

    def test_array_subclasses_with_extra_state_are_refused(self, np: ModuleType) -> None:
        """A masked array's mask is not in its bytes, so it raises rather than share keys."""
        with pytest.raises(UnhashableError):
            fingerprint(np.ma.masked_array([1, 2], mask=[0, 1]))

    def test_long_double_is_refused(self, np: ModuleType) -> None:
        """Long doubles carry uninitialized padding bytes on most machines."""
        if np.dtype(np.longdouble).itemsize == 8:
            pytest.skip("long double is a plain double here")
        with pytest.raises(UnhashableError, match="padding"):
            fingerprint(np.zeros(2, dtype=np.longdouble))


class TestPandas:
    @pytest.fixture(autouse=True)
    def pd(self) -> ModuleType:
        return pytest.importorskip("pandas")

    def frame(self, pd: ModuleType) -> Any:
        return pd.DataFrame(
            {"n": [1, 2, 3], "f": [0.5, float("nan"), 2.0], "s": ["a", None, "c"]},
            index=pd.Index(["x", "y", "z"], name="key"),
        )

    def test_equal_frames_hash_alike(self, pd: ModuleType) -> None:
        """A frame hashes like its copy and like the same frame built again."""
        assert fingerprint(self.frame(pd)) == fingerprint(self.frame(pd).copy())

    def test_values_index_columns_and_dtypes_count(self, pd: ModuleType) -> None:
        """Changing a value, the index, a column name, the column order or a dtype changes the
        fingerprint."""
        frame = self.frame(pd)
        changed_value = frame.copy()
        changed_value.loc["x", "n"] = 9
        assert all_distinct(
            frame,
            changed_value,
            frame.set_axis(["x", "y", "w"]),
            frame.rename(columns={"n": "m"}),
            frame[["f", "n", "s"]],
            frame.astype({"n": "f8"}),
            frame.rename_axis("other"),
        )

    def test_range_index_equals_the_same_integers(self, pd: ModuleType) -> None:
        """A RangeIndex and an Index holding the same integers are equal values."""
        values = {"a": [1.0, 2.0, 3.0]}
        assert fingerprint(pd.DataFrame(values)) == fingerprint(
            pd.DataFrame(values, index=pd.Index([0, 1, 2]))
        )

    def test_series_name_and_values(self, pd: ModuleType) -> None:
        """A Series hashes its name, dtype, index and values."""
        series = pd.Series([1, 2], name="a")
        assert fingerprint(series) == fingerprint(pd.Series([1, 2], name="a"))
        assert all_distinct(series, series.rename("b"), series.astype("f8"), [1, 2])

    def test_extension_dtypes(self, pd: ModuleType) -> None:
        """Categorical, nullable, string-with-missing and tz-aware columns hash by value."""
        categorical = pd.Series(pd.Categorical(["b", "a", "b"]))
        assert fingerprint(categorical) == fingerprint(pd.Series(pd.Categorical(["b", "a", "b"])))
        assert all_distinct(categorical, pd.Series(pd.Categorical(["a", "a", "b"])))
        nullable = pd.Series([1, None, 3], dtype="Int64")
        assert fingerprint(nullable) == fingerprint(pd.Series([1, None, 3], dtype="Int64"))
        assert all_distinct(nullable, pd.Series([1, 0, 3], dtype="Int64"))
        strings = pd.Series(["a", None, "c"], dtype="string")
        assert all_distinct(strings, pd.Series(["a", "", "c"], dtype="string"))
        stamps = pd.Series(pd.date_range("2024-01-01", periods=3, tz="Europe/Paris"))
        assert fingerprint(stamps) == fingerprint(stamps.copy())
        assert all_distinct(stamps, stamps.dt.tz_convert("UTC"))

    def test_scalars(self, pd: ModuleType) -> None:
        """pandas scalars hash by value: a Timestamp keeps its nanoseconds."""
        stamp = pd.Timestamp("2024-01-01 00:00:00.000000001")
        assert fingerprint(stamp) == fingerprint(pd.Timestamp(stamp.value))
        assert all_distinct(
            stamp,
            stamp.tz_localize("UTC"),
            pd.Timestamp("2024-01-01"),
            pd.Timedelta(1),
            pd.NaT,
            pd.NA,
            pd.Period("2024-01", freq="M"),
            pd.Interval(0, 1),
        )

    def test_multi_index_and_attrs(self, pd: ModuleType) -> None:
        """MultiIndex levels and a frame's attrs are part of its value."""
        index = pd.MultiIndex.from_tuples([("a", 1), ("b", 2)], names=["k", "n"])
        frame = pd.DataFrame({"v": [1, 2]}, index=index)
        assert fingerprint(frame) == fingerprint(frame.copy())
        other = frame.copy()
        other.attrs["source"] = "x"
        assert all_distinct(frame, other, frame.reset_index())


class TestNoImports:
    def test_numpy_and_pandas_are_never_imported(self) -> None:
        """Fingerprinting without numpy or pandas loaded leaves them unloaded."""
        script = (
            "import sys, sqlresults.hashing as h\n"
            "h.fingerprint({'a': [1, {2.0}], 'b': (None, b'x')})\n"
            "h.function_fingerprint(h.fingerprint)\n"
            "assert 'numpy' not in sys.modules and 'pandas' not in sys.modules, 'imported'\n"
        )
        subprocess.run([sys.executable, "-c", script], check=True, timeout=60)


# -- across interpreters ----------------------------------------------------------------------


def fresh_environment(seed: int) -> dict[str, str]:
    """The environment of a fresh interpreter with PYTHONHASHSEED=seed that imports from
    tests/."""
    path = os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONHASHSEED": str(seed), "PYTHONPATH": path}


class TestAcrossInterpreters:
    @pytest.mark.parametrize("seed", [0, 1, 12345])
    def test_corpus_fingerprints_match_fresh_interpreters(self, seed: int) -> None:
        """Fresh interpreters with different hash seeds, computing in another order, agree
        with this process on sets, frozensets, dicts holding sets, dataclasses, enums,
        numpy/pandas values (if installed) and function fingerprints."""
        result = subprocess.run(
            [sys.executable, "-c", "import hashing_corpus; hashing_corpus.main()"],
            env=fresh_environment(seed),
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        theirs = json.loads(result.stdout)
        assert theirs == hashing_corpus.fingerprints()
        assert len(set(theirs.values())) == len(theirs)


# -- Hypothesis -------------------------------------------------------------------------------

# Small alphabets, so that random pairs are often equal or nearly so ([1] vs (1,), 1 vs True).
_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 2),
    st.sampled_from([0.0, -0.0, 1.0, 0.5, math.inf, math.nan]),
    st.sampled_from(["", "1", "a", "ab", "\0", "\ud800"]),
    st.sampled_from([b"", b"1", b"a"]),
    st.integers(),
    st.floats(),
    st.text(max_size=5),
)
_hashables = st.recursive(
    _leaves,
    lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3),
    max_leaves=6,
)
values = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, min_size=16, max_size=20),
        st.tuples(inner, inner),
        st.sets(_hashables, max_size=4),
        st.frozensets(_hashables, max_size=4),
        st.dictionaries(_hashables, inner, max_size=4),
    ),
    max_leaves=12,
)


def model(value: object) -> object:
    """A model of equality that respects type: 1, True and 1.0 differ, list and tuple differ,
    all NaNs are equal and -0.0 is not 0.0. Sets and dicts compare as multisets (sorted by
    repr of plain tuples, so the model never depends on hash order)."""
    kind = type(value)
    if kind is float:
        return ("float", "nan" if value != value else struct.pack("<d", value))
    if kind in (list, tuple):
        return (kind.__name__, tuple(model(item) for item in value))  # type: ignore[attr-defined]
    if kind in (set, frozenset):
        return (kind.__name__, tuple(sorted((model(item) for item in value), key=repr)))  # type: ignore[attr-defined]
    if kind is dict:
        items = ((model(k), model(v)) for k, v in value.items())  # type: ignore[attr-defined]
        return ("dict", tuple(sorted(items, key=repr)))
    return (kind.__name__, value)


def rebuilt(value: object) -> object:
    """An equal value built another way: new containers, reversed insertion order."""
    kind = type(value)
    if kind is list:
        return [rebuilt(item) for item in value]  # type: ignore[attr-defined]
    if kind is tuple:
        return tuple(rebuilt(item) for item in value)  # type: ignore[attr-defined]
    if kind in (set, frozenset):
        return kind(rebuilt(item) for item in reversed(list(value)))  # type: ignore[attr-defined]
    if kind is dict:
        return {rebuilt(k): rebuilt(v) for k, v in reversed(list(value.items()))}  # type: ignore[attr-defined]
    if kind is float:
        return float(repr(value)) if value == value else -value  # type: ignore[operator]
    if kind is str:
        return "".join(list(value))  # type: ignore[call-overload]
    return value


class TestProperties:
    @given(values)
    def test_equal_values_equal_fingerprints(self, value: object) -> None:
        """A value rebuilt with fresh containers in reversed insertion order (and NaNs of
        another sign) has the same fingerprint."""
        assert fingerprint(rebuilt(value)) == fingerprint(value)

    @given(values, values)
    def test_fingerprints_agree_with_typed_equality(self, first: object, second: object) -> None:
        """Two values have the same fingerprint exactly when they are equal under a model of
        equality that respects type (1 != True != 1.0, list != tuple)."""
        assert (fingerprint(first) == fingerprint(second)) == (model(first) == model(second))

    @given(values)
    def test_type_confusions_differ(self, value: object) -> None:
        """Wrapping a value in a list, a tuple or a one-element set, or swapping list and
        tuple, always changes the fingerprint."""
        assert all_distinct(value, [value], (value,))
        if type(value) in (list, tuple):
            other = tuple(value) if type(value) is list else list(value)  # type: ignore[call-overload]
            assert fingerprint(other) != fingerprint(value)


class FreshInterpreter:
    """A fresh Python with its own PYTHONHASHSEED that fingerprints pickled values."""

    def __init__(self, seed: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", "import hashing_corpus; hashing_corpus.main()", "--serve"],
            env=fresh_environment(seed),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    def fingerprint(self, value: object) -> dict[str, str]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        data = pickle.dumps(value)
        self.process.stdin.write(struct.pack(">I", len(data)) + data)
        self.process.stdin.flush()
        answer: dict[str, str] = json.loads(self.process.stdout.readline())
        return answer

    def close(self) -> None:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)
        self.process.stdout.close()


@pytest.fixture(scope="module")
def fresh_interpreters() -> Iterator[list[FreshInterpreter]]:
    interpreters = [FreshInterpreter(seed) for seed in (1, 2)]
    yield interpreters
    for interpreter in interpreters:
        interpreter.close()


class TestPropertiesAcrossInterpreters:
    @given(value=values)
    def test_fresh_interpreters_agree(
        self, fresh_interpreters: list[FreshInterpreter], value: object
    ) -> None:
        """Any generated value, pickled to fresh interpreters with other hash seeds (where its
        sets and dicts are rebuilt in their own order), gets the fingerprint it has here."""
        expected = fingerprint(value)
        for interpreter in fresh_interpreters:
            assert interpreter.fingerprint(value) == {"fingerprint": expected}


# -- function fingerprints --------------------------------------------------------------------


def make_adder(n: object) -> Callable[[int], object]:
    def add(x: int) -> object:
        return x + n  # type: ignore[operator]

    return add


def load_module(directory: Path, name: str, source: str) -> ModuleType:
    """Import ``source`` as module ``name`` from a file in ``directory`` (registered in
    sys.modules while the test runs, so inspect finds its classes)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.py"
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def module_versions(tmp_path: Path) -> Iterator[Callable[[str], ModuleType]]:
    """Load successive versions of one module (same name, new file each time)."""
    name = f"tasks_{uuid.uuid4().hex}"
    count = 0

    def load(source: str) -> ModuleType:
        nonlocal count
        count += 1
        return load_module(tmp_path / f"v{count}", name, source)

    yield load
    sys.modules.pop(name, None)


TASKS_V1 = """
    LIMIT = 10

    def helper(x):
        return x + 1

    def unrelated():
        return "a"

    class Config:
        scale = 2

    def task(x):
        return helper(x) * Config.scale
"""


class TestFunctionFingerprint:
    def test_same_body_different_closures_differ(self) -> None:
        """Two closures with one body but different captured values differ (#23062); equal
        captured values hash alike."""
        assert function_fingerprint(make_adder(1)) != function_fingerprint(make_adder(2))
        assert function_fingerprint(make_adder(1)) == function_fingerprint(make_adder(1))
        assert function_fingerprint(make_adder(1)) != function_fingerprint(make_adder(1.0))

    def test_defaults_matter(self) -> None:
        """Positional and keyword-only defaults are part of the fingerprint."""

        def build(default: int, keyword: int) -> Callable[..., int]:
            def fn(x: int = default, *, k: int = keyword) -> int:
                return x + k

            return fn

        assert function_fingerprint(build(1, 2)) == function_fingerprint(build(1, 2))
        assert all_distinct(build(1, 2), build(3, 2), build(1, 3))

    def test_editing_a_called_helper_changes_the_caller(
        self, module_versions: Callable[[str], ModuleType]
    ) -> None:
        """Editing a same-module helper the task calls by name changes the task's fingerprint
        (Prefect's TASK_SOURCE misses this); editing a function it does not call does not."""

        def task_fingerprint(source: str) -> str:
            # Right after loading: inspect finds a class's source through sys.modules, which
            # the next version replaces.
            return function_fingerprint(module_versions(source).task)

        original = task_fingerprint(TASKS_V1)
        assert task_fingerprint(TASKS_V1) == original
        assert task_fingerprint(TASKS_V1.replace('return "a"', 'return "b"')) == original
        assert task_fingerprint(TASKS_V1.replace("LIMIT = 10", "LIMIT = 11")) == original
        assert task_fingerprint(TASKS_V1.replace("x + 1", "x + 2")) != original
        assert task_fingerprint(TASKS_V1.replace("scale = 2", "scale = 3")) != original
        assert task_fingerprint(TASKS_V1.replace("* Config", "+ Config")) != original

    def test_helpers_are_followed_transitively(
        self, module_versions: Callable[[str], ModuleType]
    ) -> None:
        """A helper of a helper counts too, through nested code (comprehensions)."""
        source = """
            def leaf(x):
                return x * 2

            def middle(xs):
                return [leaf(x) for x in xs]

            def task(xs):
                return middle(xs)
        """
        before = function_fingerprint(module_versions(source).task)
        after = function_fingerprint(module_versions(source.replace("x * 2", "x * 3")).task)
        assert before != after

    def test_functions_from_other_modules_are_not_followed(self) -> None:
        """A function imported from another module is not the task's code: only names
        defined in the task's own module are followed (json.dumps here is hashed nowhere)."""

        def task(x: object) -> str:
            return json.dumps(x)

        assert len(function_fingerprint(task)) == 32

    def test_recursion_terminates(self, module_versions: Callable[[str], ModuleType]) -> None:
        """A function calling itself and two functions calling each other fingerprint, and
        each one's fingerprint does not depend on which was fingerprinted first."""
        source = """
            def fact(n):
                return 1 if n <= 1 else n * fact(n - 1)

            def ping(n):
                return n if n <= 0 else pong(n - 1)

            def pong(n):
                return n if n <= 0 else ping(n - 1)
        """
        first = module_versions(source)
        ping_first = function_fingerprint(first.ping)
        pong_second = function_fingerprint(first.pong)
        second = module_versions(source)
        pong_first = function_fingerprint(second.pong)
        assert function_fingerprint(second.ping) == ping_first
        assert pong_first == pong_second
        assert ping_first != pong_first
        assert len(function_fingerprint(first.fact)) == 32

    def test_lambdas(self) -> None:
        """Lambdas work; two lambdas on one line with different bodies differ."""
        first, second = (lambda x: x + 1), (lambda x: x + 2)
        assert function_fingerprint(first) != function_fingerprint(second)
        assert function_fingerprint(first) == function_fingerprint(first)

    def test_closure_holding_a_function_follows_it(self) -> None:
        """A function in a closure cell is fingerprinted as a function: its own closure
        counts."""

        def outer(inner: Callable[[int], object]) -> Callable[[int], object]:
            def task(x: int) -> object:
                return inner(x)

            return task

        assert function_fingerprint(outer(make_adder(1))) != function_fingerprint(
            outer(make_adder(2))
        )

    def test_closure_holding_modules_and_classes(self) -> None:
        """Modules in closures hash by name, classes by qualified name and source."""

        def capture(value: object) -> Callable[[], object]:
            def task() -> object:
                return value

            return task

        assert all_distinct(capture(math), capture(json), capture(Point), capture(Pair))

    def test_unhashable_closure_value_names_task_source(self) -> None:
        """A closure value that cannot be hashed raises, saying the task source depends on
        it, with the way out (a policy without TASK_SOURCE, or make it hashable)."""
        lock = threading.Lock()

        def task() -> None:
            with lock:
                pass

        with pytest.raises(UnhashableError) as caught:
            function_fingerprint(task)
        error = caught.value
        assert error.function == task.__qualname__
        assert error.path == f"{task.__qualname__}.<closure lock>"
        assert "TASK_SOURCE" in str(error)
        assert "cache_policy=INPUTS" in str(error)

    def test_wrapped_functions_are_unwrapped(self) -> None:
        """functools.wraps decorators are followed to the function the user wrote."""

        def decorate(fn: Callable[[int], int]) -> Callable[[int], int]:
            @functools.wraps(fn)
            def wrapper(x: int) -> int:
                return fn(x)

            return wrapper

        def task(x: int) -> int:
            return x

        assert function_fingerprint(decorate(task)) == function_fingerprint(task)
        assert function_fingerprint(functools.lru_cache(task)) == function_fingerprint(task)

    def test_methods_partials_and_callable_objects(self) -> None:
        """A bound method is its function; a partial adds its arguments; a callable object is
        its class."""

        class Runner:
            def run(self, x: int) -> int:
                return x

            def __call__(self) -> None:
                pass

        assert function_fingerprint(Runner().run) == function_fingerprint(Runner.run)
        base = function_fingerprint(make_adder)
        assert all_distinct(
            functools.partial(make_adder, 1), functools.partial(make_adder, 2), make_adder
        )
        assert function_fingerprint(functools.partial(make_adder, 1)) != base
        assert function_fingerprint(Runner()) == fingerprint(Runner)

    def test_plain_function_fingerprint_equals_fingerprint(self) -> None:
        """For a plain function, function_fingerprint(fn) is fingerprint(fn): a function
        passed as an input hashes by its code, like TASK_SOURCE."""
        assert function_fingerprint(make_adder) == fingerprint(make_adder)

    def test_code_without_source_is_normalized(self) -> None:
        """Without source (exec), the code object is used, without its file name or line
        numbers: the same code compiled elsewhere hashes alike; other code does not."""

        def compile_fn(body: str, filename: str, blank_lines: int) -> Callable[..., Any]:
            namespace: dict[str, Any] = {"__name__": "generated"}
            exec(compile("\n" * blank_lines + body, filename, "exec"), namespace)
            fn: Callable[..., Any] = namespace["f"]
            return fn

        body = "def f(x, y=2):\n    return [x * y for _ in range(3)]\n"
        first = compile_fn(body, "<one>", 0)
        second = compile_fn(body, "<two>", 7)
        other = compile_fn(body.replace("x * y", "x + y"), "<one>", 0)
        assert function_fingerprint(first) == function_fingerprint(second)
        assert function_fingerprint(first) != function_fingerprint(other)

    def test_cached_code_part_does_not_hide_changed_closures(self) -> None:
        """Only code-derived parts are cached: a closure cell that changes after a first
        fingerprint changes the next one."""
        counter = 1

        def task() -> int:
            return counter

        before = function_fingerprint(task)
        counter = 2
        assert function_fingerprint(task) != before
