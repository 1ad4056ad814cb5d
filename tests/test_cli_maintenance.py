"""Tests for ``sqlresults sweep``, ``locks``, ``unlock``, ``stats``, ``vacuum`` and ``doctor``,
on SQLite and PostgreSQL.

Commands that act on every namespace run on a database of their own (``empty_database_url``,
migrated by the test): on the shared PostgreSQL database they would touch other tests' rows.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import PASSWORD, assert_error, assert_json, assert_ok, fill, run
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url

from sqlresults.database import Database
from sqlresults.errors import LeaseLostError, RecordNotFoundError
from sqlresults.results import ResultStore
from sqlresults.transactions import IsolationLevel, transaction


def opts(store: ResultStore) -> tuple[str, ...]:
    """``--url`` and ``--namespace`` of ``store``."""
    url = store.result_storage.url.render_as_string(hide_password=False)
    return ("--url", url, "--namespace", store.namespace)


@pytest.fixture
def own_database(empty_database_url: str) -> Iterator[Database]:
    """A migrated database no other test uses (for commands on every namespace)."""
    assert_ok(run("--url", empty_database_url, "migrate"))
    database = Database(empty_database_url)
    yield database
    database.close()


def table_names(url: str) -> set[str]:
    """The tables of the database at ``url``."""
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def dead_lock(store: ResultStore, key: str) -> None:
    """Leave a lock row on ``key`` whose lease has ended (its holder died)."""
    store.acquire_lock(key, holder="gone", hold_timeout=0.05)
    time.sleep(0.15)


class TestSweep:
    def test_deletes_expired_records_and_dead_locks_and_counts_both(
        self, store: ResultStore
    ) -> None:
        """Defect (issue 9): ``sweep`` said it removed dead locks without counting them. It
        deletes the namespace's expired records and dead lock rows and reports both counts;
        fresh records, held locks and records that never expire stay."""
        store.write("old", key="expired-1", expiration=timedelta(hours=-1))
        store.write("old", key="expired-2", expiration=timedelta(hours=-1))
        store.write("fresh", key="fresh", expiration=timedelta(hours=1))
        store.write("forever", key="forever")
        dead_lock(store, "crashed")
        store.acquire_lock("held", holder="alive", hold_timeout=300)

        output = assert_ok(run("sweep", *opts(store)))

        assert (
            f"Deleted 2 expired records and 1 dead lock from namespace {store.namespace!r}"
            in output
        )
        for key in ("expired-1", "expired-2"):
            with pytest.raises(RecordNotFoundError):
                store.read(key, include_expired=True)
        assert store.read("fresh").result == "fresh"
        assert store.read("forever").result == "forever"
        assert store.is_locked("held")

    def test_singular_zero_and_json(self, store: ResultStore) -> None:
        """One of each is reported in the singular; ``--json`` gives the counts; a second
        sweep finds nothing."""
        store.write("old", key="expired", expiration=timedelta(hours=-1))
        dead_lock(store, "crashed")

        first = assert_ok(run("sweep", *opts(store)))
        second = assert_json(run("sweep", *opts(store), "--json"))

        assert "Deleted 1 expired record and 1 dead lock from" in first
        assert second["expired_records"] == second["dead_locks"] == 0
        assert second["dry_run"] is False

    def test_dry_run_counts_and_deletes_nothing(self, store: ResultStore) -> None:
        """``--dry-run`` reports what a sweep would delete and deletes nothing."""
        store.write("old", key="expired", expiration=timedelta(hours=-1))
        dead_lock(store, "crashed")

        output = assert_ok(run("sweep", *opts(store), "--dry-run"))

        assert "Would delete 1 expired record and 1 dead lock" in output
        assert store.read("expired", include_expired=True).result == "old"

    def test_small_batches_delete_everything(self, store: ResultStore) -> None:
        """``--batch 2`` deletes 5 expired records in several statements, all counted."""
        for index in range(5):
            store.write(index, key=f"e{index}", expiration=timedelta(hours=-1))

        document = assert_json(run("sweep", *opts(store), "--batch", "2", "--json"))

        assert document["expired_records"] == 5
        assert list(store.keys()) == []

    def test_other_namespaces_are_untouched(self, store: ResultStore) -> None:
        """``sweep --namespace A`` leaves namespace B's expired records alone."""
        other = ResultStore(result_storage=store.result_storage, namespace=f"{store.namespace}-b")
        other.write("old", key="expired", expiration=timedelta(hours=-1))

        assert_ok(run("sweep", *opts(store)))

        assert other.read("expired", include_expired=True).result == "old"

    def test_all_namespaces(self, own_database: Database) -> None:
        """Defect (issue 9): ``sweep`` could sweep only one namespace. ``--all-namespaces``
        sweeps every one, records and dead locks alike."""
        stores = [ResultStore(result_storage=own_database, namespace=ns) for ns in ("a", "b")]
        for store in stores:
            store.write("old", key="expired", expiration=timedelta(hours=-1))
            dead_lock(store, "crashed")

        url = own_database.url.render_as_string(hide_password=False)
        document = assert_json(run("sweep", "--url", url, "--all-namespaces", "--json"))

        assert (document["expired_records"], document["dead_locks"]) == (2, 2)
        assert document["namespace"] is None
        for store in stores:
            with pytest.raises(RecordNotFoundError):
                store.read("expired", include_expired=True)

    def test_bad_batch_is_bad_usage(self, store: ResultStore) -> None:
        """``--batch 0`` is bad usage (exit 2)."""
        result = run("sweep", *opts(store), "--batch", "0")

        assert result.exit_code == 2


class TestLocks:
    def test_lists_holder_since_lease_and_fence(self, store: ResultStore) -> None:
        """``locks`` lists each lock's key, holder, since when, lease left and fence; a dead
        row is marked as such."""
        store.acquire_lock("job", holder="worker-7", hold_timeout=300)
        dead_lock(store, "crashed")

        output = assert_ok(run("locks", *opts(store)))
        document = assert_json(run("locks", *opts(store), "--json"))

        assert "worker-7" in output
        assert "1 lock held, 1 dead lock row" in output
        by_key = {lock["key"]: lock for lock in document["locks"]}
        assert by_key["job"]["holder"] == "worker-7"
        assert by_key["job"]["held"] is True
        assert 250 < by_key["job"]["lease_left"] <= 300
        assert by_key["job"]["fence"] >= 1
        assert by_key["crashed"]["held"] is False

    def test_no_locks(self, store: ResultStore) -> None:
        """Without locks, ``locks`` says so."""
        assert "No locks in namespace" in assert_ok(run("locks", *opts(store)))

    def test_all_namespaces(self, own_database: Database) -> None:
        """``--all-namespaces`` lists every namespace's locks."""
        for ns in ("a", "b"):
            ResultStore(result_storage=own_database, namespace=ns).acquire_lock(
                "k", holder=f"holder-{ns}", hold_timeout=300
            )
        url = own_database.url.render_as_string(hide_password=False)

        document = assert_json(run("locks", "--url", url, "--all-namespaces", "--json"))

        assert {(lock["namespace"], lock["holder"]) for lock in document["locks"]} == {
            ("a", "holder-a"),
            ("b", "holder-b"),
        }


class TestUnlock:
    def test_force_removes_the_lock_and_names_its_holder(self, store: ResultStore) -> None:
        """``unlock KEY --force`` removes the lock whoever holds it and names the holder."""
        store.acquire_lock("job", holder="worker-7", hold_timeout=300)

        output = assert_ok(run("unlock", "job", *opts(store), "--force"))

        assert "Removed the lock on 'job' held by worker-7" in output
        assert not store.is_locked("job")

    def test_the_removed_holder_cannot_commit(self, store: ResultStore) -> None:
        """A holder whose lock was removed by force finds its commit refused
        (LeaseLostError) instead of overwriting newer work."""

        def commit_after_a_forced_unlock() -> None:
            with transaction(
                key="job", store=store, isolation_level=IsolationLevel.SERIALIZABLE
            ) as txn:
                assert_ok(run("unlock", "job", *opts(store), "--force"))
                store.write("newer", key="job", holder="someone-else")
                txn.stage("stale")

        with pytest.raises(LeaseLostError):
            commit_after_a_forced_unlock()

        assert store.read("job").result == "newer"

    def test_without_force_is_bad_usage(self, store: ResultStore) -> None:
        """Without ``--force`` nothing is removed and the exit status is 2."""
        store.acquire_lock("job", holder="worker-7", hold_timeout=300)

        line = assert_error(run("unlock", "job", *opts(store)), 2)

        assert "--force" in line
        assert store.is_locked("job")

    def test_json(self, store: ResultStore) -> None:
        """``--json`` gives the removed lock."""
        store.acquire_lock("job", holder="worker-7", hold_timeout=300)

        document = assert_json(run("unlock", "job", *opts(store), "--force", "--json"))

        assert document["removed"]["holder"] == "worker-7"


class TestStats:
    def test_counts_bytes_serializers_expired_and_locks(self, store: ResultStore) -> None:
        """``stats`` reports records, payload bytes, per serializer, expired records waiting
        for a sweep, locks held, the schema revision and sizes."""
        fill(store)
        ResultStore(
            result_storage=store.result_storage, namespace=store.namespace, serializer="json"
        ).write([1], key="j")

        document = assert_json(run("stats", *opts(store), "--json"))
        output = assert_ok(run("stats", *opts(store)))

        assert document["records"] == 6
        assert document["expired"] == 1
        assert document["locks_held"] == 1
        assert document["by_serializer"]["json"]["records"] == 1
        assert document["by_serializer"]["pickle"]["records"] == 5
        assert document["payload_bytes"] == sum(
            group["payload_bytes"] for group in document["by_serializer"].values()
        )
        assert document["schema_revision"] == document["schema_head"]
        assert document["storage"]["database_bytes"] > 0
        assert "(head)" in output
        assert "waiting for `sqlresults sweep`" in output

    def test_sqlite_reports_pages_and_log(self, backend: str, store: ResultStore) -> None:
        """On SQLite, ``stats`` also reports the write-ahead log, pages and free pages; on
        PostgreSQL, the size of sqlresults' tables."""
        store.write(1, key="k")

        storage = assert_json(run("stats", *opts(store), "--json"))["storage"]

        if backend == "sqlite":
            assert storage["page_count"] * storage["page_size"] == storage["database_bytes"]
            assert {"wal_bytes", "free_pages"} <= storage.keys()
        else:
            assert storage["table_bytes"] > 0

    def test_all_namespaces(self, own_database: Database) -> None:
        """``--all-namespaces`` totals every namespace and breaks them down."""
        for ns, count in (("a", 2), ("b", 3)):
            store = ResultStore(result_storage=own_database, namespace=ns)
            for index in range(count):
                store.write(index, key=f"k{index}")
        url = own_database.url.render_as_string(hide_password=False)

        document = assert_json(run("stats", "--url", url, "--all-namespaces", "--json"))
        output = assert_ok(run("stats", "--url", url, "--all-namespaces"))

        assert document["records"] == 5
        assert {ns: g["records"] for ns, g in document["by_namespace"].items()} == {"a": 2, "b": 3}
        assert "every namespace" in output


class TestVacuum:
    def test_gives_space_back_and_reports_before_and_after(
        self, backend: str, own_database: Database
    ) -> None:
        """``vacuum`` reports the bytes before and after; on SQLite, after deleting many
        records, the file shrinks."""
        store = ResultStore(result_storage=own_database, namespace="v")
        for index in range(50):
            store.write(b"x" * 20_000, key=f"k{index}")
        for index in range(50):
            store.delete(f"k{index}")
        url = own_database.url.render_as_string(hide_password=False)

        document = assert_json(run("vacuum", "--url", url, "--json"))
        output = assert_ok(run("vacuum", "--url", url))

        assert document["before"] > 0
        if backend == "sqlite":
            assert document["after"] < document["before"] - 500_000
        assert "Vacuumed" in output


class TestDoctor:
    def test_a_healthy_database(self, database_url: str, backend: str) -> None:
        """On a migrated database ``doctor`` finds nothing to fix (exit 0) and says what it
        checked: journal mode on SQLite, grants and clock skew on PostgreSQL."""
        document = assert_json(run("doctor", "--url", database_url, "--json"))
        output = assert_ok(run("doctor", "--url", database_url))

        checks = {check["check"]: check for check in document["checks"]}
        assert document["ok"] is True
        assert checks["schema"]["status"] == "ok"
        if backend == "sqlite":
            assert checks["journal mode"]["status"] == "ok"
        else:
            assert checks["grants"]["status"] == "ok"
            assert checks["clock"]["status"] == "ok"
        assert "Nothing to fix." in output

    def test_missing_schema_says_run_migrate(self, empty_database_url: str) -> None:
        """Without the schema, ``doctor`` says to run ``sqlresults migrate`` and exits 1,
        creating nothing."""
        if empty_database_url.startswith("sqlite"):
            Path(make_url(empty_database_url).database or "").touch()

        result = run("doctor", "--url", empty_database_url)

        assert result.exit_code == 1
        assert "sqlresults migrate" in result.stdout
        assert "1 thing to fix" in result.stdout
        assert table_names(empty_database_url) == set()

    def test_unreachable_server(self) -> None:
        """A server that cannot be reached is reported (masked URL) with exit status 1."""
        url = f"postgresql+psycopg://user:{PASSWORD}@127.0.0.1:1/db"

        result = run("doctor", "--url", url, "--json")

        assert result.exit_code == 1
        assert PASSWORD not in result.output
        document = __import__("json").loads(result.stdout)
        assert document["ok"] is False
        assert any(check["check"] == "connection" for check in document["checks"])

    def test_unwritable_directory(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A SQLite database whose directory this user cannot write is reported, exit status 1.
        (SQLite only. The operating system's answer is simulated: root, which runs the tests
        in CI, may write anywhere.)"""
        import os

        from sqlresults.cli import doctor

        directory = tmp_path / "ro"
        directory.mkdir()
        url = f"sqlite:///{directory / 'r.db'}"
        assert_ok(run("--url", url, "migrate"))
        real_access = os.access

        def access(path: Any, mode: int, *args: Any, **kwargs: Any) -> bool:
            if Path(path) == directory and mode & os.W_OK:
                return False
            return real_access(path, mode, *args, **kwargs)

        monkeypatch.setattr(doctor.os, "access", access)
        result = run("doctor", "--url", url)

        assert result.exit_code == 1
        assert "not writable" in result.stdout
