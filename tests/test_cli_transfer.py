"""Tests for ``sqlresults export DIR`` and ``sqlresults import DIR`` (Prefect's local-storage
format: one file per record, named by its key, holding its JSON envelope), on SQLite and
PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cli_helpers import assert_json, assert_ok, run, task_provenance

from sqlresults.records import ResultRecord, ResultRecordMetadata
from sqlresults.results import ResultStore
from sqlresults.serializers import JSONSerializer, PickleSerializer


def opts(store: ResultStore) -> tuple[str, ...]:
    """``--url`` and ``--namespace`` of ``store``."""
    url = store.result_storage.url.render_as_string(hide_password=False)
    return ("--url", url, "--namespace", store.namespace)


class TestExport:
    def test_writes_prefect_envelopes_named_by_key(
        self, store: ResultStore, tmp_path: Path
    ) -> None:
        """Each record becomes DIR/<key> (a ``/`` makes subdirectories) holding exactly the
        envelope ``ResultRecord.serialize()`` writes, which Prefect's reader loads; expired
        records are left out."""
        store.write({"rows": 42}, key="reports/daily", expiration=timedelta(hours=1))
        store.write([1, 2], key="flat", provenance=task_provenance())
        store.write("old", key="stale", expiration=timedelta(hours=-1))
        out = tmp_path / "out"

        output = assert_ok(run("export", str(out), *opts(store)))

        assert "Exported 2 records" in output
        assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
            "flat",
            "reports/daily",
        ]
        for key in ("reports/daily", "flat"):
            data = (out / key).read_bytes()
            assert data == store.read(key).serialize()
            assert ResultRecord.deserialize(data).result == store.read(key).result
        envelope = json.loads((out / "flat").read_bytes())
        assert envelope["metadata"]["provenance"]["task"] == "pipeline.embed"

    def test_prefix_all_and_json(self, store: ResultStore, tmp_path: Path) -> None:
        """``--prefix`` chooses keys, ``--all`` adds expired records, ``--json`` reports."""
        store.write(1, key="a/1")
        store.write(2, key="b/1")
        store.write(3, key="a/old", expiration=timedelta(hours=-1))

        document = assert_json(
            run("export", str(tmp_path / "o"), *opts(store), "--prefix", "a/", "--all", "--json")
        )

        assert document["exported"] == 2
        assert document["failed"] == []
        assert (tmp_path / "o" / "a" / "old").is_file()
        assert not (tmp_path / "o" / "b").exists()

    def test_a_failing_record_is_reported_and_the_rest_go_on(
        self, store: ResultStore, tmp_path: Path
    ) -> None:
        """A record that cannot be a file (a key with a ``..`` part), and one that fails its
        checksum, are reported on stderr; the others are exported; the exit status is 1."""
        store.write(1, key="good")
        store.write(2, key="../escape")
        store.write(3, key="damaged")
        with store.result_storage.admin_connection() as connection:
            connection.exec_driver_sql(
                "UPDATE sqlresults_records SET checksum = checksum + 1 WHERE key = 'damaged'"
            )
        out = tmp_path / "out"

        result = run("export", str(out), *opts(store), "--json")

        assert result.exit_code == 1
        document = json.loads(result.stdout)
        assert document["exported"] == 1
        assert {failure["key"] for failure in document["failed"]} == {"../escape", "damaged"}
        assert "'../escape'" in result.stderr
        assert "2 records could not be exported" in result.stderr
        assert (out / "good").is_file()
        assert not (tmp_path / "escape").exists()

    def test_many_records_stream_in_batches(self, store: ResultStore, tmp_path: Path) -> None:
        """Records larger than a batch and more records than a page are all exported, in
        order, each once."""
        store.write(b"x" * 9_000_000, key="huge")
        for index in range(1100):
            store.write(index, key=f"k/{index:05d}")

        document = assert_json(run("export", str(tmp_path / "o"), *opts(store), "--json"))

        assert document["exported"] == 1101
        assert len(list((tmp_path / "o" / "k").iterdir())) == 1100


class TestImport:
    def test_round_trip_through_prefect_files(
        self, store: ResultStore, namespace: str, tmp_path: Path
    ) -> None:
        """What export writes, import reads back into another namespace: values, serializer,
        expiration and provenance survive, without anything being deserialized on the way."""
        expires = datetime.now(UTC) + timedelta(hours=3)
        store.write({"rows": 42}, key="reports/daily", expiration=expires)
        ResultStore(
            result_storage=store.result_storage, namespace=namespace, serializer="json"
        ).write([1, 2], key="j", provenance=task_provenance())
        out = tmp_path / "out"
        assert_ok(run("export", str(out), *opts(store)))
        target = ResultStore(result_storage=store.result_storage, namespace=f"{namespace}-copy")

        output = assert_ok(run("import", str(out), *opts(target)))

        assert "Imported 2 records" in output
        daily = target.read("reports/daily")
        assert daily.result == {"rows": 42}
        assert daily.metadata.expiration is not None
        assert abs((daily.metadata.expiration - expires).total_seconds()) < 0.01
        copied = target.read("j")
        assert copied.result == [1, 2]
        assert isinstance(copied.serializer, JSONSerializer)
        assert copied.metadata.provenance == task_provenance()

    def test_reads_what_prefect_writes(self, store: ResultStore, tmp_path: Path) -> None:
        """A file Prefect's local storage holds (an envelope whose storage_key is an absolute
        path) is stored under its path relative to DIR."""
        record = ResultRecord(
            metadata=ResultRecordMetadata(
                storage_key="/home/u/.prefect/storage/abc123", serializer=PickleSerializer()
            ),
            result={"from": "prefect"},
        )
        (tmp_path / "storage").mkdir()
        (tmp_path / "storage" / "abc123").write_bytes(record.serialize())

        document = assert_json(run("import", str(tmp_path / "storage"), *opts(store), "--json"))

        assert document["imported"] == 1
        assert store.read("abc123").result == {"from": "prefect"}

    def test_bad_files_are_reported_and_the_rest_go_on(
        self, store: ResultStore, tmp_path: Path
    ) -> None:
        """A file that is no envelope, and one whose key another holder has locked, are
        reported; the rest are imported; expired ones are skipped; the exit status is 1."""
        source = tmp_path / "in"
        (source / "sub").mkdir(parents=True)

        def envelope(value: object, expiration: datetime | None = None) -> bytes:
            metadata = ResultRecordMetadata(expiration=expiration)
            return ResultRecord(metadata=metadata, result=value).serialize()

        (source / "ok").write_bytes(envelope(1))
        (source / "sub" / "nested").write_bytes(envelope(2))
        (source / "garbage").write_bytes(b"not json at all")
        (source / "locked").write_bytes(envelope(3))
        (source / "old").write_bytes(envelope(4, datetime.now(UTC) - timedelta(hours=1)))
        store.acquire_lock("locked", holder="worker-7", hold_timeout=300)

        result = run("import", str(source), *opts(store), "--json")

        assert result.exit_code == 1
        document = json.loads(result.stdout)
        assert document["imported"] == 2
        assert document["expired_skipped"] == 1
        assert {failure["key"] for failure in document["failed"]} == {"garbage", "locked"}
        assert "'garbage'" in result.stderr
        assert store.read("sub/nested").result == 2
        assert not store.exists("old")

    def test_missing_directory_is_bad_usage(self, store: ResultStore, tmp_path: Path) -> None:
        """A DIRECTORY that does not exist is bad usage (exit 2)."""
        result = run("import", str(tmp_path / "nope"), *opts(store))

        assert result.exit_code == 2


@pytest.mark.parametrize("key", ["/abs", "a//b", "./a", "a/../b", "a/b.sqlresults-partial"])
def test_unsafe_keys_never_leave_the_directory(key: str, tmp_path: Path) -> None:
    """Keys that are absolute or have an empty, ``.`` or ``..`` part have no file under DIR."""
    from sqlresults.cli.transfer import _file_for

    assert _file_for(tmp_path, key) is None
    assert _file_for(tmp_path, "a/b.c") == tmp_path / "a" / "b.c"


class TestFileSystemFailures:
    def test_a_directory_that_cannot_be_listed_is_reported(
        self, store: ResultStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A subdirectory import cannot list (permissions) is reported as a failure with exit
        status 1, not silently left out; the readable files are imported. (The tests run as
        root, which ignores permissions, so listing is made to fail.)"""
        import os

        source = tmp_path / "in"
        (source / "locked").mkdir(parents=True)
        (source / "ok").write_bytes(
            ResultRecord(metadata=ResultRecordMetadata(), result=1).serialize()
        )
        (source / "locked" / "hidden").write_bytes(b"never read")
        real_scandir = os.scandir

        def scandir(path: object) -> object:
            if Path(str(path)) == source / "locked":
                raise PermissionError(13, "Permission denied", str(path))
            return real_scandir(path)  # type: ignore[arg-type]

        monkeypatch.setattr(os, "scandir", scandir)

        result = run("import", str(source), *opts(store), "--json")

        assert result.exit_code == 1
        document = json.loads(result.stdout)
        assert document["imported"] == 1
        assert document["failed"] == [{"key": "locked", "error": "Permission denied"}]
        assert "'locked'" in result.stderr
        assert store.read("ok").result == 1

    def test_a_key_named_like_an_export_leftover_is_refused_not_lost(
        self, store: ResultStore, tmp_path: Path
    ) -> None:
        """Import skips files ending in ``.sqlresults-partial`` (an interrupted export's
        leftovers), so export refuses a record whose key ends so instead of writing a file
        that would silently vanish on the way back."""
        store.write(1, key="fine")
        store.write(2, key="odd.sqlresults-partial")

        result = run("export", str(tmp_path / "out"), *opts(store), "--json")

        assert result.exit_code == 1
        document = json.loads(result.stdout)
        assert document["exported"] == 1
        assert [failure["key"] for failure in document["failed"]] == ["odd.sqlresults-partial"]
        assert not (tmp_path / "out" / "odd.sqlresults-partial").exists()
