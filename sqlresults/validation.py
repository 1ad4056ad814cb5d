"""Checks of caller input, shared by the store and the lock manager.

Each check raises an :class:`~sqlresults.errors.InvalidArgumentError` subclass that says what is
accepted, before anything reaches the database. Text that goes into the database (keys, key
prefixes, namespaces, lock holders) must be storable by both backends: no NUL (PostgreSQL text
cannot hold it, while SQLite would store it) and no lone surrogate (not encodable as UTF-8), so
SQLite and PostgreSQL refuse the same input the same way.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlresults.errors import InvalidArgumentError, InvalidExpirationError, InvalidKeyError
from sqlresults.schema import HOLDER_MAX_CHARS, KEY_MAX_BYTES, NAMESPACE_MAX_CHARS

__all__ = [
    "check_holder",
    "check_key",
    "check_lease",
    "check_namespace",
    "check_prefix",
    "check_retries",
    "check_timeout",
    "to_expiration",
]

# No character takes more than 4 bytes in UTF-8, so shorter strings need no encoding to check
# (printable ones: that excludes NUL and lone surrogates, which get the slow, precise check).
_ALWAYS_SHORT_ENOUGH = KEY_MAX_BYTES // 4


def _unstorable(text: str) -> str | None:
    """Why no database can store ``text`` the same way, or None if both can."""
    if text.isprintable():  # the common case: neither NUL nor a surrogate is printable
        return None
    if "\x00" in text:
        return "contains NUL characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "holds a lone surrogate (it is not valid Unicode text)"
    return None


def check_key(key: Any) -> str:
    """Return ``key`` if it is a usable record or lock key.

    Raises:
        InvalidKeyError: ``key`` is not a string, is empty, is longer than 1,024 bytes in
            UTF-8, or holds characters no database can store (NUL, lone surrogates).
    """
    if type(key) is str and 0 < len(key) <= _ALWAYS_SHORT_ENOUGH and key.isprintable():
        return key
    if not isinstance(key, str):
        raise InvalidKeyError(f"A key must be a string, not {type(key).__name__}: {key!r}.")
    if not key:
        raise InvalidKeyError("A key must not be empty.")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidKeyError(
            f"A key must be valid Unicode text; {key[:40]!r} holds a lone surrogate ({exc})."
        ) from None
    if "\x00" in key:
        # PostgreSQL text cannot hold NUL; refuse it everywhere so both backends agree.
        raise InvalidKeyError(f"A key must not contain NUL characters: {key[:40]!r}.")
    if size > KEY_MAX_BYTES:
        raise InvalidKeyError(
            f"A key must be at most {KEY_MAX_BYTES} bytes in UTF-8; this one is {size} bytes "
            f"({key[:40]!r}…). Hash long keys (e.g. hashlib.sha256) before using them."
        )
    return key


def check_prefix(prefix: Any) -> str:
    """Return ``prefix`` as a key prefix to match: None (every key) becomes ``""``.

    Raises:
        InvalidKeyError: ``prefix`` is neither None nor a string (bytes included), or holds
            characters no key can hold (NUL, lone surrogates).
    """
    if prefix is None:
        return ""
    if not isinstance(prefix, str):
        raise InvalidKeyError(
            f"A key prefix must be a str (or None for every key), not "
            f"{type(prefix).__name__}: {prefix!r}."
        )
    problem = _unstorable(prefix)
    if problem is not None:
        raise InvalidKeyError(
            f"A key prefix must be text a key can hold; {prefix[:40]!r} {problem}."
        )
    return prefix


def check_namespace(namespace: Any) -> str:
    """Return ``namespace`` if it is a usable namespace.

    Raises:
        InvalidArgumentError: ``namespace`` is not a string of 1 to 255 characters, or holds
            characters no database can store (NUL, lone surrogates).
    """
    if not isinstance(namespace, str) or not 0 < len(namespace) <= NAMESPACE_MAX_CHARS:
        raise InvalidArgumentError(
            f"A namespace must be a string of 1 to {NAMESPACE_MAX_CHARS} characters, "
            f"not {namespace!r}."
        )
    problem = _unstorable(namespace)
    if problem is not None:
        raise InvalidArgumentError(
            f"A namespace must be storable text; {namespace[:40]!r} {problem}."
        )
    return namespace


def check_holder(holder: Any) -> str:
    """Return ``holder`` if it is a usable lock holder id.

    Raises:
        InvalidArgumentError: ``holder`` is not a non-empty string of at most 1,024 characters,
            or holds characters no database can store (NUL, lone surrogates).
    """
    if not isinstance(holder, str) or not 0 < len(holder) <= HOLDER_MAX_CHARS:
        raise InvalidArgumentError(
            f"A lock holder must be a non-empty string of at most {HOLDER_MAX_CHARS} "
            f"characters, not {holder!r}."
        )
    problem = _unstorable(holder)
    if problem is not None:
        raise InvalidArgumentError(
            f"A lock holder must be storable text; {holder[:40]!r} {problem}."
        )
    return holder


def check_timeout(timeout: Any, name: str, *, allow_none: bool = True) -> float | None:
    """Return ``timeout`` (seconds) as a float, or None when None is allowed.

    Raises:
        InvalidArgumentError: ``timeout`` is negative, not a number, NaN, or None when None is
            not allowed.
    """
    if timeout is None and allow_none:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise InvalidArgumentError(f"{name} must be a number of seconds, not {timeout!r}.")
    value = float(timeout)
    if math.isnan(value) or value < 0:
        raise InvalidArgumentError(f"{name} must be zero or more seconds, not {timeout!r}.")
    return value


def check_lease(lease: Any, name: str = "hold_timeout") -> float | None:
    """Return a lock's lease (seconds) as a float; None (use the default lease) passes through.

    One rule for every entry point that takes a lease: it must be more than zero seconds.

    Args:
        lease: The caller's value.
        name: The parameter's name, for the message.

    Raises:
        InvalidArgumentError: ``lease`` is zero, negative, NaN or not a number.
    """
    if lease is None:
        return None
    value = math.nan
    if isinstance(lease, int | float) and not isinstance(lease, bool):
        value = float(lease)
    if not value > 0:  # also refuses NaN
        raise InvalidArgumentError(
            f"{name} must be more than zero seconds, not {lease!r}: a lock's lease is how long "
            "it stays held, and a lock with no lease would be free again the moment it was taken."
        )
    return value


def to_expiration(expiration: Any, now: float) -> datetime | None:
    """Turn a caller's expiration into an aware UTC ``datetime``.

    Args:
        expiration: None (never expires), a ``timedelta`` from ``now`` (negative means already
            expired), or a timezone-aware ``datetime``.
        now: The current time in seconds since the epoch.

    Raises:
        InvalidExpirationError: ``expiration`` is a naive ``datetime`` or another type.
    """
    if expiration is None:
        return None
    if isinstance(expiration, timedelta):
        return datetime.fromtimestamp(now, UTC) + expiration
    if isinstance(expiration, datetime):
        if expiration.tzinfo is None or expiration.utcoffset() is None:
            raise InvalidExpirationError(
                f"expiration {expiration!r} has no timezone. Pass an aware datetime "
                "(e.g. datetime.now(timezone.utc) + timedelta(hours=1)) or a timedelta."
            )
        return expiration.astimezone(UTC)
    raise InvalidExpirationError(
        "expiration must be None, a datetime.timedelta or a timezone-aware datetime, "
        f"not {type(expiration).__name__}: {expiration!r}."
    )


def check_retries(retries: Any) -> int:
    """Return ``retries`` (None: 0) if it is a usable retry count.

    Raises:
        InvalidArgumentError: ``retries`` is not a whole number of zero or more.
    """
    if retries is None:
        return 0
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise InvalidArgumentError(
            f"retries must be a whole number of zero or more, not {retries!r}."
        )
    return retries
