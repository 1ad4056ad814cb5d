"""Tests for sqlresults.settings: environment, .env file, defaults, secrets and caching."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from pydantic import ValidationError

from sqlresults.errors import ConfigurationError
from sqlresults.settings import Settings, get_settings, hide_password, use_settings

PASSWORD = "s3cret"
SECRET_URL = f"postgresql+psycopg://u:{PASSWORD}@h/db"
SIGNING_KEY = "signing-key-that-must-stay-hidden"


class TestSources:
    def test_environment_variables_use_the_prefix(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Each field is read from SQLRESULTS_<FIELD>; unprefixed names are ignored."""
        monkeypatch.setenv("SQLRESULTS_NAMESPACE", "from-env")
        monkeypatch.setenv("SQLRESULTS_LOCK_HOLD_TIMEOUT", "12.5")
        monkeypatch.setenv("SQLRESULTS_RESULTS_PERSIST_BY_DEFAULT", "true")
        monkeypatch.setenv("SQLRESULTS_MEMORY_CACHE_SIZE", "7")
        monkeypatch.setenv("NAMESPACE", "unprefixed")
        settings = Settings()
        assert settings.namespace == "from-env"
        assert settings.lock_hold_timeout == 12.5
        assert settings.results_persist_by_default is True
        assert settings.memory_cache_size == 7

    def test_dotenv_file_is_read(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A .env file in the working directory supplies settings the environment does not
        set; the environment wins over it."""
        (tmp_path / ".env").write_text(
            "SQLRESULTS_NAMESPACE=from-dotenv\nSQLRESULTS_RESULTS_DEFAULT_SERIALIZER=json\n",
            encoding="utf-8",
        )
        settings = Settings()
        assert settings.namespace == "from-dotenv"
        assert settings.results_default_serializer == "json"
        monkeypatch.setenv("SQLRESULTS_NAMESPACE", "from-env")
        settings = Settings()
        assert settings.namespace == "from-env"
        assert settings.results_default_serializer == "json"

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("SQLRESULTS_LOCK_HOLD_TIMEOUT", "0"),
            ("SQLRESULTS_LOCK_HOLD_TIMEOUT", "-1"),
            ("SQLRESULTS_BUSY_TIMEOUT", "0"),
            ("SQLRESULTS_MEMORY_CACHE_SIZE", "-1"),
            ("SQLRESULTS_SQLITE_SYNCHRONOUS", "SOMETIMES"),
            ("SQLRESULTS_NAMESPACE", ""),
            ("SQLRESULTS_AUTO_MIGRATE", "perhaps"),
        ],
    )
    def test_invalid_values_are_refused(
        self, name: str, value: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Out-of-range or mistyped values raise a validation error naming the field."""
        monkeypatch.setenv(name, value)
        field = name.removeprefix("SQLRESULTS_").lower()
        with pytest.raises(ValidationError, match=field):
            Settings()

    def test_sqlite_synchronous_is_case_insensitive(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """SQLRESULTS_SQLITE_SYNCHRONOUS=full is FULL."""
        monkeypatch.setenv("SQLRESULTS_SQLITE_SYNCHRONOUS", "full")
        assert Settings().sqlite_synchronous == "FULL"

    def test_settings_are_frozen(self) -> None:
        """Settings cannot be changed after construction."""
        settings = Settings()
        with pytest.raises(ValidationError):
            settings.namespace = "changed"  # type: ignore[misc]


class TestDefaults:
    def test_defaults(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without variables: home ~/.sqlresults, namespace "default", no persistence by
        default, pickle, a positive lock lease, auto-migration decided per dialect (None),
        synchronous NORMAL, no signing key, no URL."""
        monkeypatch.delenv("SQLRESULTS_HOME")
        settings = Settings()
        assert settings.home == Path.home() / ".sqlresults"
        assert settings.namespace == "default"
        assert settings.results_persist_by_default is False
        assert settings.results_default_serializer == "pickle"
        assert settings.tasks_refresh_cache is False
        assert settings.tasks_default_persist_result is None
        assert settings.lock_hold_timeout > 0
        assert settings.busy_timeout > 0
        assert settings.auto_migrate is None
        assert settings.sqlite_synchronous == "NORMAL"
        assert settings.signing_key is None
        assert settings.database_url is None
        assert settings.memory_cache_size == 1000

    def test_default_url_is_results_db_in_home(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without SQLRESULTS_DATABASE_URL the URL is the SQLite file results.db in home."""
        monkeypatch.delenv("SQLRESULTS_HOME")
        assert Settings().url == f"sqlite:///{Path.home() / '.sqlresults' / 'results.db'}"

    def test_home_moves_the_default_url(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """SQLRESULTS_HOME moves the default file; ~ is expanded."""
        monkeypatch.setenv("SQLRESULTS_HOME", str(tmp_path / "elsewhere"))
        assert Settings().url == f"sqlite:///{tmp_path / 'elsewhere' / 'results.db'}"
        monkeypatch.setenv("SQLRESULTS_HOME", "~/custom-home")
        assert Settings().url == f"sqlite:///{Path.home() / 'custom-home' / 'results.db'}"

    def test_database_url_wins_over_home(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """SQLRESULTS_DATABASE_URL, when set, is the URL."""
        monkeypatch.setenv("SQLRESULTS_DATABASE_URL", SECRET_URL)
        assert Settings().url == SECRET_URL


class TestSecrets:
    def test_password_and_signing_key_never_shown(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """display_url masks the password; repr and str of Settings show neither the password
        nor the signing key."""
        monkeypatch.setenv("SQLRESULTS_DATABASE_URL", SECRET_URL)
        monkeypatch.setenv("SQLRESULTS_SIGNING_KEY", SIGNING_KEY)
        settings = Settings()
        assert PASSWORD not in settings.display_url()
        assert settings.display_url() == "postgresql+psycopg://u:***@h/db"
        for text in (repr(settings), str(settings), repr(get_settings())):
            assert PASSWORD not in text
            assert SIGNING_KEY not in text
        assert settings.signing_key is not None
        assert settings.signing_key.get_secret_value() == SIGNING_KEY

    @pytest.mark.parametrize(
        ("url", "shown"),
        [
            (
                f"postgresql+psycopg://u@h/db?password={PASSWORD}",
                "postgresql+psycopg://u@h/db?password=***",
            ),
            (
                f"postgresql+psycopg://u@h/db?sslpassword={PASSWORD}&sslmode=require",
                "postgresql+psycopg://u@h/db?sslmode=require&sslpassword=***",
            ),
            (
                f"postgresql+psycopg://u@h/db?conninfo=host%3Dh+password%3D{PASSWORD}",
                "postgresql+psycopg://u@h/db?conninfo=host%3Dh+password%3D***",
            ),
            (
                f"postgresql+psycopg://u@h/db%20password%3D{PASSWORD}",
                "postgresql+psycopg://u@h/db password%3D***",
            ),
            (
                f"postgresql+psycopg://u@h/db?conninfo=postgresql%3A%2F%2Fu%3A{PASSWORD}%40h%2Fdb",
                "postgresql+psycopg://u@h/db?conninfo=postgresql%3A%2F%2Fu%3A***%40h%2Fdb",
            ),
        ],
        ids=["password", "sslpassword", "conninfo", "database name", "URI in a value"],
    )
    def test_hide_password_masks_every_form(self, url: str, shown: str) -> None:
        """Besides the URL's own password, hide_password masks password= and sslpassword=
        query parameters and a password inside a keyword/value string or a URI in any value
        (libpq reads them all), and leaves the rest readable."""
        assert hide_password(url) == shown

    def test_settings_mask_a_password_parameter(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A password given as a query parameter of SQLRESULTS_DATABASE_URL is masked by
        display_url and absent from repr and str of Settings."""
        monkeypatch.setenv(
            "SQLRESULTS_DATABASE_URL", f"postgresql+psycopg://u@h/db?password={PASSWORD}"
        )
        settings = Settings()
        assert settings.display_url() == "postgresql+psycopg://u@h/db?password=***"
        for text in (repr(settings), str(settings), repr(get_settings())):
            assert PASSWORD not in text

    def test_hide_password(self) -> None:
        """hide_password masks the password, keeps a URL without one, and masks an
        unparsable URL entirely."""
        assert hide_password(SECRET_URL) == "postgresql+psycopg://u:***@h/db"
        assert hide_password("sqlite:///x.db") == "sqlite:///x.db"
        assert PASSWORD not in hide_password(f"::not a url {PASSWORD}")


class TestGetSettings:
    def test_cached_until_the_environment_changes(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """get_settings() returns the same object while SQLRESULTS_* variables stay the same,
        and a new one reflecting a change (set, changed or removed)."""
        first = get_settings()
        assert get_settings() is first
        monkeypatch.setenv("SQLRESULTS_NAMESPACE", "changed")
        second = get_settings()
        assert second is not first
        assert second.namespace == "changed"
        assert get_settings() is second
        monkeypatch.setenv("SQLRESULTS_NAMESPACE", "changed again")
        assert get_settings().namespace == "changed again"
        monkeypatch.delenv("SQLRESULTS_NAMESPACE")
        assert get_settings().namespace == "default"

    def test_other_variables_do_not_rebuild(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Variables without the prefix leave the cached settings in place."""
        first = get_settings()
        monkeypatch.setenv("UNRELATED_VARIABLE", "x")
        assert get_settings() is first

    def test_use_settings_wins_over_the_environment_in_its_context_only(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Inside use_settings(s) get_settings() is s, whatever the environment says; other
        threads, and the code after the block, see the environment again."""
        submitted = Settings(namespace="from-the-submitter")
        monkeypatch.setenv("SQLRESULTS_NAMESPACE", "from-this-process")
        seen_elsewhere: list[str] = []
        with use_settings(submitted) as active:
            assert active is submitted
            assert get_settings() is submitted
            thread = threading.Thread(
                target=lambda: seen_elsewhere.append(get_settings().namespace)
            )
            thread.start()
            thread.join()
        assert seen_elsewhere == ["from-this-process"]
        assert get_settings().namespace == "from-this-process"


class TestInvalidValues:
    def test_bad_variables_are_named_in_one_configuration_error(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """get_settings() with malformed variables raises ConfigurationError (a ValueError)
        naming every bad variable and what it accepts, and echoes no value (a secret set next
        to them, or the bad value itself, never appears)."""
        monkeypatch.setenv("SQLRESULTS_LOCK_HOLD_TIMEOUT", "abc")
        monkeypatch.setenv("SQLRESULTS_SQLITE_SYNCHRONOUS", "sometimes")
        monkeypatch.setenv("SQLRESULTS_SIGNING_KEY", "topsecret")
        with pytest.raises(ConfigurationError) as caught:
            get_settings()
        message = str(caught.value)
        assert isinstance(caught.value, ValueError)
        assert "SQLRESULTS_LOCK_HOLD_TIMEOUT" in message
        assert "SQLRESULTS_SQLITE_SYNCHRONOUS" in message
        assert "'NORMAL'" in message
        assert "topsecret" not in message
        assert "sometimes" not in message

    @pytest.mark.parametrize("key", ["", " ", "short", "fifteen-bytes!!", "ünï-ünï-ü"], ids=repr)
    def test_an_empty_or_short_signing_key_is_refused(
        self, key: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """SQLRESULTS_SIGNING_KEY shorter than 16 bytes (the empty string included: anyone
        could forge an HMAC made with it) is a ConfigurationError naming the variable and how
        to make a good key, without echoing the key."""
        monkeypatch.setenv("SQLRESULTS_SIGNING_KEY", key)
        with pytest.raises(ConfigurationError) as caught:
            get_settings()
        message = str(caught.value)
        assert "SQLRESULTS_SIGNING_KEY" in message
        assert "16 bytes" in message
        assert 'python -c "import secrets; print(secrets.token_hex(32))"' in message
        if key.strip():
            assert key not in message

    def test_signing_key_errors_never_echo_the_key(self) -> None:
        """Settings(...) built directly (not through get_settings) refuses a short key with a
        pydantic ValidationError that does not show the key either."""
        with pytest.raises(ValidationError) as caught:
            Settings(signing_key="tiny-secret")
        assert "tiny-secret" not in str(caught.value)
        assert "16 bytes" in str(caught.value)

    def test_a_sixteen_byte_signing_key_is_accepted(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """16 bytes in UTF-8 is enough (8 two-byte characters count as 16)."""
        for key in ("0123456789abcdef", "é" * 8):
            monkeypatch.setenv("SQLRESULTS_SIGNING_KEY", key)
            signing_key = get_settings().signing_key
            assert signing_key is not None
            assert signing_key.get_secret_value() == key

    def test_a_negative_lease_is_refused(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A lease must be positive: SQLRESULTS_LOCK_HOLD_TIMEOUT=0 is a ConfigurationError."""
        monkeypatch.setenv("SQLRESULTS_LOCK_HOLD_TIMEOUT", "0")
        with pytest.raises(ConfigurationError, match="SQLRESULTS_LOCK_HOLD_TIMEOUT"):
            get_settings()
