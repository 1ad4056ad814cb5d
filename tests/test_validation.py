"""Tests for sqlresults.validation: key, prefix, namespace, holder, timeout, lease and expiration
checks."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sqlresults.errors import InvalidArgumentError, InvalidExpirationError, InvalidKeyError
from sqlresults.validation import (
    check_holder,
    check_key,
    check_lease,
    check_namespace,
    check_prefix,
    check_timeout,
    to_expiration,
)

KEY_LIMIT = 1024  # bytes of UTF-8, DESIGN.md §10
HOLDER_LIMIT = 1024  # characters
NAMESPACE_LIMIT = 255  # characters

# Text no database can store the same way: a lone surrogate (not UTF-8) or NUL (not allowed in
# PostgreSQL text; SQLite would store it).
UNSTORABLE = ["\ud800", "a\udfffb", "a\x00b", "\x00"]

# Text a database can store: no lone surrogates (not UTF-8) and no NUL (PostgreSQL text).
storable_characters = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
storable_text = st.one_of(
    st.text(storable_characters),
    # Long enough to straddle the 1,024-byte limit.
    st.text(storable_characters, min_size=250, max_size=1100),
)


class TestCheckKey:
    @given(storable_text)
    def test_accepts_exactly_the_non_empty_keys_within_the_limit(self, key: str) -> None:
        """A string key is accepted, unchanged, iff it is non-empty and at most 1,024 bytes in
        UTF-8; otherwise InvalidKeyError (a ValueError)."""
        size = len(key.encode("utf-8"))
        if 0 < size <= KEY_LIMIT:
            assert check_key(key) is key
        else:
            with pytest.raises(InvalidKeyError):
                check_key(key)

    @pytest.mark.parametrize("width", [1, 2, 3, 4])
    def test_limit_is_in_bytes_not_characters(self, width: int) -> None:
        """The limit counts UTF-8 bytes: 1,024 bytes of 1-4-byte characters pass, one byte more
        does not."""
        char = {1: "a", 2: "é", 3: "€", 4: "\N{GRINNING FACE}"}[width]
        fitting = char * (KEY_LIMIT // width) + "a" * (KEY_LIMIT % width)
        assert len(fitting.encode()) == KEY_LIMIT
        assert check_key(fitting) == fitting
        with pytest.raises(InvalidKeyError, match="1024"):
            check_key(fitting + "a")

    def test_boundaries(self) -> None:
        """300 euro signs (900 bytes) pass; 400 (1,200 bytes) fail, naming the size."""
        assert check_key("€" * 300) == "€" * 300
        with pytest.raises(InvalidKeyError, match="1200 bytes"):
            check_key("€" * 400)

    def test_empty_key(self) -> None:
        """The empty string is refused."""
        with pytest.raises(InvalidKeyError, match="empty"):
            check_key("")

    @pytest.mark.parametrize("key", [None, 0, 1, 1.5, b"key", ["k"], ("k",), object()])
    def test_non_string_key(self, key: Any) -> None:
        """Anything but a str is refused, naming its type."""
        with pytest.raises(InvalidKeyError, match=type(key).__name__):
            check_key(key)

    def test_str_subclass_is_accepted(self) -> None:
        """A str subclass is still a string key."""

        class Name(str):
            __slots__ = ()

        assert check_key(Name("k")) == "k"

    @pytest.mark.parametrize("key", ["\ud800", "a\udfffb", "a\x00b"])
    def test_key_no_database_can_store(self, key: str) -> None:
        """A lone surrogate (not encodable as UTF-8) or NUL (not storable in PostgreSQL text)
        makes a key invalid, so both backends refuse it the same way."""
        with pytest.raises(InvalidKeyError):
            check_key(key)

    def test_error_is_a_value_error(self) -> None:
        """InvalidKeyError is an InvalidArgumentError and a ValueError."""
        with pytest.raises(ValueError) as caught:
            check_key("")
        assert isinstance(caught.value, InvalidArgumentError)


class TestCheckHolder:
    @given(st.text(storable_characters, min_size=1, max_size=HOLDER_LIMIT))
    def test_accepts_non_empty_strings_within_the_limit(self, holder: str) -> None:
        """Non-empty holders of up to 1,024 storable characters are returned unchanged."""
        assert check_holder(holder) is holder

    @pytest.mark.parametrize(
        "holder", ["", "h" * (HOLDER_LIMIT + 1), None, 42, b"holder"], ids=repr
    )
    def test_refuses_others(self, holder: Any) -> None:
        """Empty, over-long or non-string holders raise InvalidArgumentError."""
        with pytest.raises(InvalidArgumentError, match="holder"):
            check_holder(holder)

    @pytest.mark.parametrize("holder", UNSTORABLE, ids=repr)
    def test_refuses_text_no_database_can_store(self, holder: str) -> None:
        """A holder with NUL or a lone surrogate is refused (like a key), so SQLite does not
        store what PostgreSQL cannot."""
        with pytest.raises(InvalidArgumentError, match="holder"):
            check_holder(holder)


class TestCheckNamespace:
    @given(st.text(storable_characters, min_size=1, max_size=NAMESPACE_LIMIT))
    def test_accepts_non_empty_strings_within_the_limit(self, namespace: str) -> None:
        """Namespaces of 1 to 255 storable characters are returned unchanged."""
        assert check_namespace(namespace) is namespace

    @pytest.mark.parametrize(
        "namespace", ["", "n" * (NAMESPACE_LIMIT + 1), None, 42, b"ns"], ids=repr
    )
    def test_refuses_empty_long_and_non_strings(self, namespace: Any) -> None:
        """Empty, over-long or non-string namespaces raise InvalidArgumentError naming the
        limit."""
        with pytest.raises(InvalidArgumentError, match="namespace must be a string of 1 to 255"):
            check_namespace(namespace)

    @pytest.mark.parametrize("namespace", UNSTORABLE, ids=repr)
    def test_refuses_text_no_database_can_store(self, namespace: str) -> None:
        """A namespace with NUL or a lone surrogate is refused, as a key would be."""
        with pytest.raises(InvalidArgumentError, match="namespace"):
            check_namespace(namespace)


class TestCheckPrefix:
    @given(st.text(storable_characters))
    def test_strings_pass_unchanged(self, prefix: str) -> None:
        """Any storable string is a prefix, the empty one included (it matches every key)."""
        assert check_prefix(prefix) is prefix

    def test_none_is_every_key(self) -> None:
        """None means no prefix: the empty string."""
        assert check_prefix(None) == ""

    @pytest.mark.parametrize("prefix", [5, b"k", 1.5, ["k"], {"k": 1}], ids=repr)
    def test_refuses_non_strings(self, prefix: Any) -> None:
        """A prefix that is not a str (bytes included) raises InvalidKeyError saying a prefix
        is a str and naming the type given."""
        with pytest.raises(InvalidKeyError, match="prefix must be a str") as caught:
            check_prefix(prefix)
        assert type(prefix).__name__ in str(caught.value)

    @pytest.mark.parametrize("prefix", UNSTORABLE, ids=repr)
    def test_refuses_text_no_key_can_hold(self, prefix: str) -> None:
        """A prefix with NUL or a lone surrogate could match no key; it is refused as such a
        key would be."""
        with pytest.raises(InvalidKeyError, match="prefix"):
            check_prefix(prefix)


class TestCheckTimeout:
    @given(
        st.one_of(
            st.integers(min_value=0, max_value=10**9),
            st.floats(min_value=0, allow_nan=False),
        )
    )
    def test_non_negative_numbers_become_floats(self, timeout: float) -> None:
        """Zero or more seconds (int or float, infinity included) are returned as a float."""
        value = check_timeout(timeout, "timeout")
        assert isinstance(value, float)
        assert value == timeout

    def test_none(self) -> None:
        """None means "no limit" where allowed, and is refused where not."""
        assert check_timeout(None, "timeout") is None
        with pytest.raises(InvalidArgumentError, match="hold_timeout"):
            check_timeout(None, "hold_timeout", allow_none=False)

    @pytest.mark.parametrize(
        "timeout", [-1, -0.001, math.nan, -math.inf, True, False, "1", [1]], ids=repr
    )
    def test_refuses_negative_nan_and_non_numbers(self, timeout: Any) -> None:
        """Negative numbers, NaN, booleans and non-numbers raise InvalidArgumentError naming
        the parameter."""
        with pytest.raises(InvalidArgumentError, match="acquire_timeout"):
            check_timeout(timeout, "acquire_timeout")


class TestCheckLease:
    @given(
        st.one_of(
            st.integers(min_value=1, max_value=10**9),
            st.floats(min_value=0, exclude_min=True, allow_nan=False, allow_infinity=False),
        )
    )
    def test_positive_numbers_become_floats(self, lease: float) -> None:
        """More than zero seconds (int or float) is returned as a float."""
        value = check_lease(lease)
        assert isinstance(value, float)
        assert value == lease

    def test_none_means_the_default(self) -> None:
        """None passes through: the caller uses its default lease."""
        assert check_lease(None) is None

    @pytest.mark.parametrize(
        "lease", [0, 0.0, -0.0, -1, -0.001, math.nan, -math.inf, True, False, "1", [1]], ids=repr
    )
    def test_one_rule_one_message(self, lease: Any) -> None:
        """Zero, negative, NaN and non-numbers all get the same message: a lease must be more
        than zero seconds; the message names the parameter and the value."""
        with pytest.raises(InvalidArgumentError) as caught:
            check_lease(lease, "default_hold_timeout")
        message = str(caught.value)
        assert message.startswith("default_hold_timeout must be more than zero seconds")
        assert repr(lease) in message


class NoOffset(tzinfo):
    """A tzinfo that knows no offset: a datetime with it is naive in practice."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None


NOW = 1_800_000_000.0


class TestToExpiration:
    def test_none_never_expires(self) -> None:
        """None stays None."""
        assert to_expiration(None, NOW) is None

    @given(st.timedeltas(min_value=timedelta(days=-3650), max_value=timedelta(days=3650)))
    def test_timedelta_is_from_now(self, delta: timedelta) -> None:
        """A timedelta (negative included) is added to now and returned in UTC."""
        expiration = to_expiration(delta, NOW)
        assert expiration is not None
        assert expiration.utcoffset() == timedelta(0)
        assert expiration == datetime.fromtimestamp(NOW, UTC) + delta

    @given(
        st.datetimes(
            min_value=datetime(1971, 1, 1),
            max_value=datetime(9000, 1, 1),
            timezones=st.sampled_from(
                [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-11))]
            ),
        )
    )
    def test_aware_datetime_is_converted_to_utc(self, when: datetime) -> None:
        """An aware datetime is the same instant, expressed in UTC."""
        expiration = to_expiration(when, NOW)
        assert expiration == when
        assert expiration is not None
        assert expiration.tzinfo is UTC

    @pytest.mark.parametrize(
        "expiration",
        [
            datetime(2099, 1, 1),
            datetime(2099, 1, 1, tzinfo=NoOffset()),
            3600,
            3600.0,
            "2099-01-01T00:00:00+00:00",
            NOW,
        ],
        ids=["naive", "tzinfo-without-offset", "int", "float", "string", "timestamp"],
    )
    def test_refuses_naive_datetimes_and_other_types(self, expiration: Any) -> None:
        """A naive datetime, or a value that is no time, raises InvalidExpirationError."""
        with pytest.raises(InvalidExpirationError):
            to_expiration(expiration, NOW)

    def test_naive_datetime_message_explains_the_fix(self) -> None:
        """The naive-datetime error says to pass an aware datetime or a timedelta."""
        with pytest.raises(InvalidExpirationError, match="timezone") as caught:
            to_expiration(datetime(2099, 1, 1), NOW)
        assert "timedelta" in str(caught.value)
