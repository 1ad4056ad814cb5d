"""Settings, read from ``SQLRESULTS_*`` environment variables, then a ``.env`` file, then defaults.

``get_settings()`` returns a cached :class:`Settings` that is rebuilt whenever an ``SQLRESULTS_*``
environment variable changes, so tests and notebooks that set variables at run time see them
without a reset call. Secrets (the database password, the signing key) are ``SecretStr`` and never
appear in a repr; use :meth:`Settings.display_url` to show where the database is.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sqlresults.errors import ConfigurationError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

__all__ = [
    "Settings",
    "get_settings",
    "hide_password",
    "hide_secrets",
    "url_secrets",
    "use_settings",
]

ENV_PREFIX = "SQLRESULTS_"

# The shortest signing key accepted, in bytes of UTF-8: an empty or short HMAC key is guessed
# (or, empty, simply known), and then anyone can sign a payload the store will unpickle.
MIN_SIGNING_KEY_BYTES = 16


class Settings(BaseSettings):
    """Every knob of sqlresults. Each field is read from ``SQLRESULTS_<FIELD NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        # A refused value may be a secret (the signing key, a URL with a password).
        hide_input_in_errors=True,
    )

    home: Path = Field(
        default_factory=lambda: Path.home() / ".sqlresults",
        description="Directory of the default SQLite file (results.db).",
    )
    database_url: SecretStr | None = Field(
        default=None,
        description=(
            "SQLAlchemy URL of the result database, e.g. sqlite:///team.db or "
            "postgresql+psycopg://user:password@host/db. Default: a SQLite file in `home`."
        ),
    )
    namespace: str = Field(
        default="default",
        min_length=1,
        max_length=255,
        description="Namespace of stores created without one; namespaces never see each other.",
    )
    results_persist_by_default: bool = Field(
        default=False, description="Persist flow and task results when nothing says otherwise."
    )
    results_default_serializer: str = Field(
        default="pickle", description="Serializer type used when none is given."
    )
    tasks_refresh_cache: bool = Field(
        default=False, description="Recompute and overwrite cached task results."
    )
    tasks_default_persist_result: bool | None = Field(
        default=None, description="Default `persist_result` of tasks; None inherits the flow's."
    )
    tasks_default_no_cache: bool = Field(
        default=False,
        description="Tasks without a cache_policy get NO_CACHE instead of DEFAULT.",
    )
    tasks_disable_caching: bool = Field(
        default=False, description="Every task gets NO_CACHE, whatever its cache_policy says."
    )
    lock_hold_timeout: float = Field(
        default=60.0,
        gt=0,
        description=(
            "Lease of a lock, in seconds: a holder that dies frees its key after at most this "
            "long. Open transactions renew their lease every third of it."
        ),
    )
    signing_key: SecretStr | None = Field(
        default=None,
        description=(
            "When set, payloads are HMAC-SHA256 signed and unsigned ones are refused. At least "
            f"{MIN_SIGNING_KEY_BYTES} bytes."
        ),
    )
    auto_migrate: bool | None = Field(
        default=None,
        description=(
            "Upgrade the schema on first use. Unset: SQLite files yes, PostgreSQL no; "
            "true: both; false: neither."
        ),
    )
    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = Field(
        default="NORMAL",
        description=(
            "SQLite's PRAGMA synchronous. NORMAL in WAL mode survives application crashes; "
            "FULL also survives power loss, at about 3x the commit latency."
        ),
    )
    busy_timeout: float = Field(
        default=30.0,
        gt=0,
        description=(
            "Seconds an operation keeps retrying while the database is busy (SQLite's write "
            "lock, PostgreSQL serialization failures) before StorageUnavailableError; also the "
            "longest outage (server unreachable) a lock wait rides out."
        ),
    )
    memory_cache_size: int = Field(
        default=1000, ge=0, description="Records each store keeps deserialized in memory (LRU)."
    )

    @field_validator("signing_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        # The message never shows the key, nor its length.
        if value is not None and len(value.get_secret_value().encode()) < MIN_SIGNING_KEY_BYTES:
            raise ValueError(
                f"the signing key must be at least {MIN_SIGNING_KEY_BYTES} bytes: anyone who "
                "guesses it (an empty key: anyone at all) can sign a payload the store will "
                'unpickle. Make one with: python -c "import secrets; '
                'print(secrets.token_hex(32))"'
            )
        return value

    @field_validator("sqlite_synchronous", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @property
    def url(self) -> str:
        """The database URL in full (password included): pass it to a driver, never print it."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.home.expanduser() / 'results.db'}"

    def display_url(self) -> str:
        """The database URL with any password replaced by ``***``, safe to log or print."""
        return hide_password(self.url)


# libpq connection parameters that hold secrets, besides the URL's own password.
SECRET_PARAMETERS = frozenset({"password", "sslpassword"})
# A password inside a libpq keyword/value string ("host=h password=secret", quoted or not) ...
_KEYWORD_SECRET = re.compile(
    r"\b((?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'?|[^\s']\S*)", re.IGNORECASE
)
# ... or inside a URI ("postgresql://user:secret@host/db"): libpq accepts both wherever it
# accepts a connection string.
_URI_PASSWORD = re.compile(r"(://[^/?#@:\s]*:)([^@/?#\s]+)(@)")
_HIDDEN = "***"
# Stands for _HIDDEN while a URL is rendered: rendering would percent-encode "***".
_PLACEHOLDER = "sqlresultshiddensecret"


def hide_password(url: str | URL) -> str:
    """Return ``url`` with every secret masked; an unparsable URL is masked entirely.

    Masked: the URL's password, the ``password`` and ``sslpassword`` query parameters, and a
    password inside a keyword/value string or a URI in any other query value or in the
    database name (libpq reads all of them).

    Args:
        url: A SQLAlchemy database URL, as a string or a ``sqlalchemy.engine.URL``.

    Returns:
        The URL as a string, each secret replaced by ``***``.
    """
    from sqlalchemy.engine import URL, make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except (ArgumentError, ValueError):  # ValueError: e.g. a port that is no number
        return "<unparsable database URL>"
    query: dict[str, str | tuple[str, ...]] = {}
    for key, value in parsed.query.items():
        values = (value,) if isinstance(value, str) else tuple(value)
        if key.lower() in SECRET_PARAMETERS:
            hidden = tuple(_PLACEHOLDER for _ in values)
        else:
            hidden = tuple(_hide_embedded(item, _PLACEHOLDER) for item in values)
        query[key] = hidden[0] if isinstance(value, str) else hidden
    database = parsed.database
    safe = parsed.set(
        database=None if database is None else _hide_embedded(database, _PLACEHOLDER),
        query=query,
    )
    return safe.render_as_string(hide_password=True).replace(_PLACEHOLDER, _HIDDEN)


def url_secrets(url: URL) -> tuple[str, ...]:
    """Every secret value ``url`` holds (see :func:`hide_password`), longest first, so that
    :func:`hide_secrets` can scrub them out of text a driver or server echoes back."""
    found: list[str] = []
    if url.password:
        found.append(str(url.password))
    for key, value in url.query.items():
        values = (value,) if isinstance(value, str) else tuple(value)
        for item in values:
            found.extend([item] if key.lower() in SECRET_PARAMETERS else _embedded_secrets(item))
    if url.database:
        found.extend(_embedded_secrets(url.database))
    return tuple(sorted({secret for secret in found if secret}, key=len, reverse=True))


def hide_secrets(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Return ``text`` (e.g. a driver's error message) with ``secrets`` and any password in a
    keyword/value string or URI replaced by ``***``."""
    for secret in secrets:
        text = text.replace(secret, _HIDDEN)
    return _hide_embedded(text, _HIDDEN)


def _hide_embedded(text: str, mask: str) -> str:
    text = _KEYWORD_SECRET.sub(lambda match: match.group(1) + mask, text)
    return _URI_PASSWORD.sub(lambda match: match.group(1) + mask + match.group(3), text)


def _embedded_secrets(text: str) -> list[str]:
    """The passwords inside keyword/value strings and URIs in ``text``, as written and as
    libpq reads them (unquoted, percent-decoded)."""
    found = []
    for match in _KEYWORD_SECRET.finditer(text):
        value = match.group(2)
        found.append(value)
        if value.startswith("'"):  # quoted: libpq reads it without quotes and backslashes
            found.append(re.sub(r"\\(.)", r"\1", value[1:].removesuffix("'")))
    for match in _URI_PASSWORD.finditer(text):
        found.extend((match.group(2), unquote(match.group(2))))
    return found


_lock = threading.Lock()
_cached: tuple[tuple[tuple[Any, Any], ...], Settings] | None = None
_RAW_PREFIX = ENV_PREFIX.encode()


def _environment_fingerprint() -> tuple[tuple[Any, Any], ...]:
    """The ``SQLRESULTS_*`` variables of the environment, cheaply: what decides whether the
    cached settings still hold.

    Every store operation and task run reads the settings, and ``os.environ.items()`` decodes
    every variable of the environment on each call (about 20 µs for a usual environment). On
    POSIX the encoded mapping behind ``os.environ`` is filtered without decoding instead; the
    order may differ from call to call only after variables were set or unset, which merely
    rebuilds the settings once.
    """
    raw = getattr(os.environ, "_data", None) if os.name == "posix" else None
    if isinstance(raw, dict):
        return tuple(item for item in raw.items() if item[0].startswith(_RAW_PREFIX))
    return tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(ENV_PREFIX)))


_override: ContextVar[Settings | None] = ContextVar("sqlresults_settings", default=None)


def get_settings() -> Settings:
    """Return the current settings.

    Inside :func:`use_settings`, the settings it was given. Otherwise the object is cached and
    rebuilt when any ``SQLRESULTS_*`` environment variable changes.

    Raises:
        ConfigurationError: An environment variable holds a value of the wrong type or range;
            the message names the variable.
    """
    override = _override.get()
    if override is not None:
        return override
    global _cached
    fingerprint = _environment_fingerprint()
    cached = _cached
    if cached is not None and cached[0] == fingerprint:
        return cached[1]
    with _lock:
        try:
            settings = Settings()
        except ValidationError as exc:
            raise _configuration_error(exc) from None
        _cached = (fingerprint, settings)
        return settings


@contextmanager
def use_settings(settings: Settings) -> Iterator[Settings]:
    """Make :func:`get_settings` return ``settings`` in this context (this thread, or this
    task of an event loop), whatever the environment says.

    A :class:`~sqlresults.task_runners.DaskTaskRunner` worker runs each task run inside the
    settings of the process that submitted it: a worker on another machine has other
    environment variables, and the run must persist, sign and lease as its flow would.

    Args:
        settings: The settings to use.

    Returns:
        A context manager that yields ``settings``.
    """
    token = _override.set(settings)
    try:
        yield settings
    finally:
        _override.reset(token)


def _configuration_error(exc: ValidationError) -> ConfigurationError:
    """Name each bad variable and what it needs, without echoing values (one may be secret)."""
    problems = [
        f"{ENV_PREFIX}{'_'.join(map(str, error['loc'])).upper()}: {error['msg']}"
        for error in exc.errors()
    ]
    return ConfigurationError(
        "Invalid sqlresults settings (from the environment or .env): " + "; ".join(problems)
    )
