"""Checks of caller input, shared by the store and the lock manager.

Each check raises an :class:`~sqlresults.errors.InvalidArgumentError` subclass that says what is
accepted, before anything reaches the database.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlresults.errors import InvalidArgumentError, InvalidExpirationError, InvalidKeyError
from sqlresults.schema import HOLDER_MAX_CHARS, KEY_MAX_BYTES

__all__ = ["check_holder", "check_key", "check_timeout", "to_expiration"]

# No character takes more than 4 bytes in UTF-8, so shorter strings need no encoding to check
# (printable ones: that excludes NUL and lone surrogates, which get the slow, precise check).
_ALWAYS_SHORT_ENOUGH = KEY_MAX_BYTES // 4


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


def check_holder(holder: Any) -> str:
    """Return ``holder`` if it is a usable lock holder id.

    Raises:
        InvalidArgumentError: ``holder`` is not a non-empty string of at most 1,024 characters.
    """
    if isinstance(holder, str) and 0 < len(holder) <= HOLDER_MAX_CHARS:
        return holder
    raise InvalidArgumentError(
        f"A lock holder must be a non-empty string of at most {HOLDER_MAX_CHARS} characters, "
        f"not {holder!r}."
    )


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
