"""Shared Hypothesis strategies: values the serializers must give back equal.

The model and dataclass below live here, at module level, because the JSON serializer records a
class by its import path and imports it again to decode.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

from hypothesis import strategies as st
from pydantic import BaseModel

__all__ = [
    "Measurement",
    "Sample",
    "exceptions",
    "json_values",
    "picklable_values",
]


class Measurement(BaseModel):
    """A pydantic model, as results often are."""

    name: str
    value: float
    taken_at: datetime
    tags: list[str]


@dataclasses.dataclass(frozen=True)
class Sample:
    """A dataclass with binary data and an untyped field, which keeps whatever type it holds."""

    sample_id: UUID
    raw: bytes
    taken_on: date
    note: Any


# orjson's limits, which the JSON serializer documents: 64-bit integers, finite floats, no lone
# surrogates.
_json_ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_json_floats = st.floats(allow_nan=False, allow_infinity=False)
_json_text = st.text(st.characters(exclude_categories=["Cs"]))
# Keys the JSON decoder reads as tags are not plain data.
_json_keys = _json_text.filter(lambda key: key not in {"__class__", "__exc_type__"})

# UTC offsets in whole minutes: ISO 8601 as pydantic writes it has no seconds in an offset.
_offsets = st.just(UTC) | st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
_datetimes = st.datetimes() | st.datetimes(timezones=_offsets)
_decimals = st.decimals(allow_nan=False, allow_infinity=False)
_set_elements = _json_ints | _json_text

_measurements = st.builds(
    Measurement,
    name=_json_text,
    value=_json_floats,
    taken_at=_datetimes,
    tags=st.lists(_json_text, max_size=3),
)

_json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    _json_ints,
    _json_floats,
    _json_text,
    st.binary(),
    st.uuids(),
    _datetimes,
    st.dates(),
    st.times(),
    st.timedeltas(),
    _decimals,
    st.sets(_set_elements, max_size=4),
    st.frozensets(_set_elements, max_size=4),
    _measurements,
)

_samples = st.builds(
    Sample,
    sample_id=st.uuids(),
    raw=st.binary(),
    taken_on=st.dates(),
    note=_json_leaves,
)

json_values: st.SearchStrategy[Any] = st.recursive(
    _json_leaves | _samples,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(_json_keys, children, max_size=4)
    ),
    max_leaves=12,
)
"""Values that JSONSerializer gives back equal: JSON itself plus the types its hooks tag.

No tuples (they come back as lists) and no exceptions (they compare by identity; see
:data:`exceptions`).
"""

_hashables = st.one_of(st.none(), st.booleans(), st.integers(), st.text(), st.binary())

picklable_values: st.SearchStrategy[Any] = st.recursive(
    st.one_of(
        _hashables,
        st.floats(allow_nan=False),
        st.complex_numbers(allow_nan=False),
        st.uuids(),
        st.datetimes(timezones=st.none() | st.timezones()),
        st.timedeltas(),
        st.decimals(allow_nan=False),
        st.frozensets(_hashables, max_size=4),
        _measurements,
        _samples,
    ),
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(_hashables, children, max_size=4)
        | st.sets(_hashables, max_size=4)
    ),
    max_leaves=12,
)
"""Values that pickle gives back equal: anything but NaN (which equals nothing)."""

exceptions: st.SearchStrategy[BaseException] = st.builds(
    lambda exc_type, message: exc_type(message),
    st.sampled_from([ValueError, RuntimeError, TypeError, ArithmeticError, OSError]),
    _json_text,
)
"""Exceptions built from one message, so that their type and ``str()`` survive JSON."""
