"""A fixed corpus of values and functions for the fresh-interpreter tests of sqlresults.hashing.

``tests/test_hashing.py`` fingerprints :func:`corpus` in its own process and runs :func:`main` in
fresh interpreters with other ``PYTHONHASHSEED`` values; the fingerprints must agree. Import it as
``hashing_corpus`` (not run it as a script), so the functions' module name is the same in both.

``python -c "import hashing_corpus; hashing_corpus.main()"`` prints ``{name: fingerprint}`` as
JSON; with ``--serve`` as the first argument it instead answers requests on stdin (see
:func:`serve`).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import pickle
import struct
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import PurePosixPath
from typing import Any
from uuid import UUID

from sqlresults.errors import UnhashableError
from sqlresults.hashing import fingerprint, function_fingerprint


class Colour(enum.Enum):
    """An enum whose members hash by qualified class name and value."""

    RED = "red"
    GREEN = "green"


@dataclasses.dataclass(frozen=True)
class Point:
    """A dataclass holding a set, which a pickle-based hash would order by hash seed."""

    x: int
    y: int
    tags: frozenset[str] = frozenset()


LIMIT = 3


def helper(n: int) -> int:
    """Called by name from :func:`task`, so it is part of the task's fingerprint."""
    return n * LIMIT


def task(n: int) -> int:
    """A task that calls a same-module helper and recursive functions."""
    return helper(n) + int(is_even(n))


def is_even(n: int) -> bool:
    """Mutually recursive with :func:`is_odd`: fingerprinting must terminate."""
    return True if n == 0 else is_odd(n - 1)


def is_odd(n: int) -> bool:
    """Mutually recursive with :func:`is_even`."""
    return False if n == 0 else is_even(n - 1)


def make_scaler(factor: float) -> Any:
    """Closures differing only in ``factor``: their fingerprints must differ."""

    def scale(x: float) -> float:
        return x * factor

    return scale


def corpus() -> dict[str, object]:
    """Values whose naive hashes depend on the hash seed, and some that depend on nothing."""
    words = {f"word-{i}" for i in range(50)}
    values: dict[str, object] = {
        "set of str": words,
        "frozenset of str": frozenset(words),
        "dict holding sets": {"a": {"x", "y", "z"}, "b": frozenset({"p", "q"}), "c": set()},
        "set of tuples": {("a", 1), ("b", 2), ("c", 3)},
        "frozenset of frozensets": frozenset({frozenset({"a", "b"}), frozenset({"c"})}),
        "dict with tuple keys": {("x", 1): "one", ("y", 2): "two"},
        "nested": [{"k": ({"v"}, b"bytes", 1.5, None, True)}],
        "long str list": [f"item-{i}" for i in range(40)],
        "long int list": list(range(-20, 40)),
        "dataclass": Point(1, 2, frozenset({"north", "east", "up"})),
        "enum": Colour.GREEN,
        "datetime": datetime(2024, 5, 6, 7, 8, 9, 10, tzinfo=UTC),
        "date": date(2024, 1, 31),
        "timedelta": timedelta(days=1, seconds=2),
        "decimal": Decimal("1.50"),
        "uuid": UUID("12345678-1234-5678-1234-567812345678"),
        "path": PurePosixPath("/data/input.csv"),
        "partial": functools.partial(helper, 3),
    }
    try:
        import numpy as np
    except ImportError:
        pass
    else:
        values["numpy float"] = np.linspace(0.0, 1.0, 101)
        values["numpy object"] = np.array([{"a"}, frozenset({"b", "c"}), "d"], dtype=object)
        values["numpy structured"] = np.array([(1, 2.5)], dtype=[("a", "i4"), ("b", "f8")])
    try:
        import pandas as pd
    except ImportError:
        pass
    else:
        values["pandas frame"] = pd.DataFrame(
            {"n": [1, 2, 3], "s": ["a", None, "c"], "f": [0.5, float("nan"), 2.0]},
            index=pd.Index(["x", "y", "z"], name="key"),
        )
        values["pandas series"] = pd.Series(pd.Categorical(["b", "a", "b"]), name="cat")
    return values


FUNCTIONS: dict[str, Any] = {
    "task": task,
    "is_even": is_even,
    "is_odd": is_odd,
    "scale by 2": make_scaler(2.0),
    "scale by 3": make_scaler(3.0),
}


def fingerprints(*, reverse: bool = False) -> dict[str, str]:
    """Every corpus fingerprint; ``reverse`` computes them in the other order (the result must
    not depend on what was fingerprinted first)."""
    items = [(name, fingerprint, value) for name, value in corpus().items()]
    items += [(name, function_fingerprint, fn) for name, fn in FUNCTIONS.items()]
    if reverse:
        items.reverse()
    return {name: hasher(value) for name, hasher, value in items}


def serve() -> None:
    """Answer requests until stdin closes: each request is a 4-byte big-endian length and a
    pickled value; each answer is one JSON line, ``{"fingerprint": ...}`` or ``{"error": ...}``."""
    stdin = sys.stdin.buffer
    while header := stdin.read(4):
        (size,) = struct.unpack(">I", header)
        value = pickle.loads(stdin.read(size))
        try:
            answer = {"fingerprint": fingerprint(value)}
        except UnhashableError as exc:
            answer = {"error": str(exc)}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


def main() -> None:
    """Print the corpus fingerprints as JSON (computed in reverse order), or serve requests."""
    if sys.argv[1:2] == ["--serve"]:
        serve()
        return
    print(json.dumps(fingerprints(reverse=True), sort_keys=True))
