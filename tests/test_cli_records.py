"""Tests for ``sqlresults ls``, ``show``, ``explain`` and ``rm``, on SQLite and PostgreSQL."""

from __future__ import annotations

import pickle
import subprocess
import sys
from datetime import timedelta

import pytest
from cli_helpers import assert_error, assert_json, assert_ok, fill, run, task_provenance

from sqlresults.errors import RecordNotFoundError
from sqlresults.results import ResultStore


@pytest.fixture
def filled(store: ResultStore) -> ResultStore:
    """The test's store holding :func:`cli_helpers.fill`'s records."""
    fill(store)
    return store


def opts(store: ResultStore) -> tuple[str, ...]:
    """``--url`` and ``--namespace`` of ``store``."""
    url = store.result_storage.url.render_as_string(hide_password=False)
    return ("--url", url, "--namespace", store.namespace)


class TestLs:
    def test_lists_unexpired_records_with_their_metadata(self, filled: ResultStore) -> None:
        """``ls`` shows key, size, serializer, expiry, lock holder and task of each unexpired
        record, and a count."""
        output = assert_ok(run("ls", *opts(filled)))

        for key in ("reports/daily", "reports/weekly", "big", "embed/1"):
            assert key in output
        assert "stale" not in output
        assert "worker-7" in output
        assert "pipeline.embed" in output
        assert "1.0 kB" in output
        assert "4 records of 4 in namespace" in output

    def test_json_lists_records_as_objects(self, filled: ResultStore) -> None:
        """``ls --json`` is one JSON document: the records with their metadata and counts."""
        document = assert_json(run("ls", *opts(filled), "--json"))

        by_key = {record["key"]: record for record in document["records"]}
        assert set(by_key) == {"reports/daily", "reports/weekly", "big", "embed/1"}
        assert by_key["reports/weekly"]["locked_by"] == "worker-7"
        assert by_key["embed/1"]["task"] == "pipeline.embed"
        assert by_key["big"]["expires"] is not None
        assert by_key["reports/daily"]["serializer"] == "pickle"
        assert document["shown"] == document["total"] == 4
        assert document["namespace"] == filled.namespace

    @pytest.mark.parametrize(
        ("flags", "keys"),
        [
            (("--expired",), {"stale"}),
            (("--all",), {"reports/daily", "reports/weekly", "big", "embed/1", "stale"}),
            (("--prefix", "reports/"), {"reports/daily", "reports/weekly"}),
        ],
        ids=["expired", "all", "prefix"],
    )
    def test_filters(self, filled: ResultStore, flags: tuple[str, ...], keys: set[str]) -> None:
        """``--expired`` lists only expired records, ``--all`` both, ``--prefix`` narrows."""
        document = assert_json(run("ls", *opts(filled), *flags, "--json"))

        assert {record["key"] for record in document["records"]} == keys

    def test_limit_and_sort_page_through_the_records(self, store: ResultStore) -> None:
        """``--limit`` shows the first records in ``--sort`` order and says how many there are
        in all; ``--sort size`` orders by payload size, key order breaking ties."""
        for index in range(5):
            store.write(b"x" * (100 * (5 - index)), key=f"k{index}")

        by_key = assert_json(run("ls", *opts(store), "--limit", "2", "--json"))
        by_size = assert_json(run("ls", *opts(store), "--sort", "size", "--json", "--limit", "0"))
        table = assert_ok(run("ls", *opts(store), "--limit", "2"))

        assert [r["key"] for r in by_key["records"]] == ["k0", "k1"]
        assert (by_key["shown"], by_key["total"]) == (2, 5)
        assert [r["key"] for r in by_size["records"]] == ["k4", "k3", "k2", "k1", "k0"]
        assert "2 records of 5" in table
        assert "--limit 0 lists all" in table

    def test_expired_and_all_exclude_each_other(self, filled: ResultStore) -> None:
        """``--expired --all`` is bad usage (exit 2), in one line."""
        line = assert_error(run("ls", *opts(filled), "--expired", "--all"), 2)

        assert "--expired and --all" in line

    def test_all_namespaces(self, filled: ResultStore, namespace: str) -> None:
        """``--all-namespaces`` lists every namespace's records, with a namespace column."""
        other = ResultStore(result_storage=filled.result_storage, namespace=f"{namespace}-2")
        other.write(1, key="elsewhere")

        document = assert_json(
            run("ls", *opts(filled), "--all-namespaces", "--limit", "0", "--json")
        )
        table = assert_ok(run("ls", *opts(filled), "--all-namespaces", "--prefix", "elsewhere"))

        mine = {(r["namespace"], r["key"]) for r in document["records"]}
        assert (namespace, "reports/daily") in mine
        assert (f"{namespace}-2", "elsewhere") in mine
        assert document["namespace"] is None
        assert f"{namespace}-2" in table

    def test_empty(self, store: ResultStore) -> None:
        """With nothing to list, ``ls`` says so."""
        assert "No records in namespace" in assert_ok(run("ls", *opts(store)))

    @pytest.mark.parametrize("output", ["table", "json"])
    def test_a_reader_that_stops_early_is_not_an_error(
        self, store: ResultStore, output: str
    ) -> None:
        """``sqlresults ls | head``: when the reader closes the pipe after the first lines,
        ``ls`` stops quietly with exit status 0 (as ripgrep does), so that a script under
        ``set -o pipefail`` does not fail and nothing is printed on stderr."""
        for i in range(3000):  # far more than a pipe holds (64 KiB)
            store.write(i, key=f"key-{i:05}-{'x' * 40}")
        flags = ["--json"] if output == "json" else []
        with subprocess.Popen(
            [sys.executable, "-m", "sqlresults", "ls", *opts(store), "--limit", "0", *flags],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        ) as process:
            assert process.stdout is not None
            assert process.stderr is not None
            first = process.stdout.read(100)
            process.stdout.close()
            stderr = process.stderr.read()
            status = process.wait(timeout=120)

        assert first
        assert stderr == b""
        assert status == 0


class TestShow:
    def test_shows_metadata_seals_lock_and_a_json_value(self, store: ResultStore) -> None:
        """``show`` prints the metadata, checksum and signature status, the lock, and a JSON
        record's value."""
        json_store = ResultStore(
            result_storage=store.result_storage, namespace=store.namespace, serializer="json"
        )
        json_store.write({"rows": 42, "name": "daily"}, key="report")
        store.acquire_lock("report", holder="worker-7", hold_timeout=300)

        output = assert_ok(run("show", "report", *opts(store)))

        assert '"rows": 42' in output
        assert "checksum    ok" in output
        assert "signature   unsigned" in output
        assert "held by worker-7" in output
        assert "serializer  json" in output

    def test_json_includes_json_values_whole(self, store: ResultStore) -> None:
        """``show --json`` is one document with the metadata and, for a JSON record, the value
        itself."""
        ResultStore(
            result_storage=store.result_storage, namespace=store.namespace, serializer="json"
        ).write({"rows": [1, 2, 3]}, key="report", provenance=task_provenance())

        document = assert_json(run("show", "report", *opts(store), "--json"))

        assert document["value"] == {"rows": [1, 2, 3]}
        assert document["checksum"] == "ok"
        assert document["serializer_spec"]["type"] == "json"
        assert document["provenance"]["task"] == "pipeline.embed"
        assert document["lock"] is None

    def test_compressed_json_is_previewed(self, store: ResultStore) -> None:
        """A compressed JSON record is decompressed (standard libraries only) and shown."""
        ResultStore(
            result_storage=store.result_storage,
            namespace=store.namespace,
            serializer="compressed/json",
        ).write(["a", "b"], key="packed")

        document = assert_json(run("show", "packed", *opts(store), "--json"))

        assert document["value"] == ["a", "b"]

    def test_pickles_are_not_loaded_without_unpickle(self, store: ResultStore) -> None:
        """A pickled value is not loaded by default (unpickling runs code): ``show`` says so
        and how to load it."""
        store.write({"secret": "value"}, key="p")

        output = assert_ok(run("show", "p", *opts(store)))
        document = assert_json(run("show", "p", *opts(store), "--json"))

        assert "--unpickle" in output
        assert "'secret'" not in output
        assert "value" not in document

    def test_unpickle_warns_on_stderr_and_shows_the_value(self, store: ResultStore) -> None:
        """``--unpickle`` loads the value after a warning on stderr that unpickling runs
        code; the value's repr is on stdout."""
        store.write({"secret": "value"}, key="p")

        result = run("show", "p", *opts(store), "--unpickle")

        output = assert_ok(result)
        assert "{'secret': 'value'}" in output
        assert "runs whatever code the pickle holds" in result.stderr
        assert "Warning" not in output

    def test_raw_writes_the_payload_bytes(self, store: ResultStore) -> None:
        """``--raw`` writes exactly the stored payload bytes to stdout."""
        store.write({"a": 1}, key="p")

        result = run("show", "p", *opts(store), "--raw")

        assert result.exit_code == 0
        assert pickle.loads(result.stdout_bytes) == {"a": 1}

    def test_expired_records_are_shown_as_expired(self, store: ResultStore) -> None:
        """An expired record (not swept yet) is shown, marked expired."""
        store.write("old", key="stale", expiration=timedelta(hours=-1))

        document = assert_json(run("show", "stale", *opts(store), "--json"))

        assert document["expired"] is True

    def test_raw_with_json_is_bad_usage(self, store: ResultStore) -> None:
        """``--raw`` with ``--json`` is bad usage (exit 2)."""
        store.write(1, key="p")

        assert_error(run("show", "p", *opts(store), "--raw", "--json"), 2)

    def test_damaged_record_is_reported_not_decoded(self, store: ResultStore) -> None:
        """A record whose payload fails its checksum is shown with the mismatch, and its
        value is neither decoded nor unpickled."""
        store.write({"a": 1}, key="p")
        database = store.result_storage
        with database.admin_connection() as connection:
            connection.exec_driver_sql(
                "UPDATE sqlresults_records SET checksum = checksum + 1 WHERE key = 'p'"
            )

        result = run("show", "p", *opts(store), "--unpickle", "--json")

        document = assert_json(result)
        assert document["checksum"] == "mismatch"
        assert "value" not in document
        assert "fails its seals" in document["preview"]
        assert "Warning" not in result.stderr


class TestExplain:
    def test_names_the_task_components_and_what_differs_from_the_nearest(
        self, store: ResultStore
    ) -> None:
        """``explain KEY`` shows the task, its policy and its components' fingerprints, and
        compares them with the nearest other record of the task (fewest differences): the
        answer to "why did this call miss?"."""
        store.write(
            1, key="old-far", provenance=task_provenance(task_source="a0", **{"inputs.doc": "d0"})
        )
        store.write(
            2, key="old-near", provenance=task_provenance(task_source="a1", **{"inputs.doc": "d0"})
        )
        store.write(3, key="other-task", provenance=task_provenance(task="pipeline.other"))
        store.write(
            4, key="new", provenance=task_provenance(task_source="a1", **{"inputs.doc": "d1"})
        )

        output = assert_ok(run("explain", "new", *opts(store)))
        document = assert_json(run("explain", "new", *opts(store), "--json"))

        assert "pipeline.embed" in output
        assert "INPUTS + TASK_SOURCE" in output
        assert "inputs.doc" in output
        assert "Nearest other record of pipeline.embed: old-near" in output
        assert "What differs: input `doc` changed." in output
        assert document["nearest"]["key"] == "old-near"
        assert document["nearest"]["differences"] == ["input `doc` changed"]
        assert document["provenance"]["components"] == {"task_source": "a1", "inputs.doc": "d1"}

    def test_task_option_compares_with_another_task(self, store: ResultStore) -> None:
        """``--task NAME`` compares with the records of that task (a renamed task, say)."""
        store.write(1, key="renamed", provenance=task_provenance(task="pipeline.embed_v2"))
        store.write(2, key="new", provenance=task_provenance())

        document = assert_json(
            run("explain", "new", *opts(store), "--task", "pipeline.embed_v2", "--json")
        )

        assert document["nearest"]["key"] == "renamed"
        assert document["nearest"]["differences"] == [
            "task changed from `pipeline.embed_v2` to `pipeline.embed`"
        ]

    def test_alone_and_without_provenance(self, store: ResultStore) -> None:
        """A task's only record has nothing to compare with; a record no task wrote has
        nothing to explain; both say so (exit 0)."""
        store.write(1, key="only", provenance=task_provenance())
        store.write(2, key="plain")

        alone = assert_ok(run("explain", "only", *opts(store)))
        plain = assert_json(run("explain", "plain", *opts(store), "--json"))

        assert "No other record of pipeline.embed" in alone
        assert plain["provenance"] is None
        assert "no provenance" in plain["note"]


class TestRm:
    def test_deletes_one_record_without_asking(self, filled: ResultStore) -> None:
        """``rm KEY`` deletes one record without a prompt."""
        output = assert_ok(run("rm", "reports/daily", *opts(filled)))

        assert "Deleted 1 record." in output
        with pytest.raises(RecordNotFoundError):
            filled.read("reports/daily")

    @pytest.mark.parametrize("answer", ["", "n\n"], ids=["no-answer", "n"])
    def test_asks_before_deleting_several(self, filled: ResultStore, answer: str) -> None:
        """Deleting more than one record asks first; no answer (or "n") deletes nothing and
        exits 1."""
        result = run("rm", "reports/daily", "big", *opts(filled), input=answer)

        assert result.exit_code == 1
        assert "Delete 2 records" in result.stderr
        assert "Nothing deleted." in result.stderr
        assert filled.exists("reports/daily")
        assert filled.exists("big")

    def test_yes_or_y_deletes_several(self, filled: ResultStore) -> None:
        """``--yes`` skips the question; answering "y" does the same."""
        assert_ok(run("rm", "reports/daily", "big", *opts(filled), "--yes"))
        assert_ok(run("rm", "embed/1", "stale", *opts(filled), input="y\n"))

        assert [k for k in ("reports/daily", "big", "embed/1") if filled.exists(k)] == []
        with pytest.raises(RecordNotFoundError):
            filled.read("stale", include_expired=True)

    def test_refuses_a_key_another_holder_locked(self, filled: ResultStore) -> None:
        """A key another holder has locked is kept and named with its holder (exit 1)."""
        result = run("rm", "reports/weekly", *opts(filled), "--json")

        assert result.exit_code == 1
        assert '"holder": "worker-7"' in result.stdout
        assert "1 record not deleted: locked by another holder" in result.stderr
        assert filled.exists("reports/weekly")

    def test_missing_keys_exit_3_after_deleting_the_rest(self, filled: ResultStore) -> None:
        """Keys with no record are reported and the exit status is 3; the others go."""
        result = run("rm", "big", "nope", *opts(filled), "--json", "--yes")

        assert result.exit_code == 3
        assert '"not_found": ["nope"]' in result.stdout
        assert not filled.exists("big")

    def test_prefix_deletes_matching_records_and_keeps_locked_ones(
        self, filled: ResultStore
    ) -> None:
        """``rm --prefix P`` deletes every matching record (after asking), keeping those
        another holder has locked (exit 1)."""
        result = run("rm", "--prefix", "reports/", *opts(filled), input="y\n")

        assert result.exit_code == 1
        assert "Deleted 1 record from namespace" in result.stdout
        assert "1 record kept: locked by another holder" in result.stderr
        assert not filled.exists("reports/daily")
        assert filled.exists("reports/weekly")
        assert filled.exists("big")

    def test_expired_deletes_only_expired_records(self, filled: ResultStore) -> None:
        """``rm --expired`` deletes the namespace's expired records only."""
        document = assert_json(run("rm", "--expired", *opts(filled), "--json"))

        assert document == {"deleted": 1, "locked": 0}
        with pytest.raises(RecordNotFoundError):
            filled.read("stale", include_expired=True)
        assert filled.exists("big")

    def test_keys_and_prefix_exclude_each_other(self, filled: ResultStore) -> None:
        """KEYs with ``--prefix`` is bad usage (exit 2)."""
        assert_error(run("rm", "big", "--prefix", "b", *opts(filled)), 2)
