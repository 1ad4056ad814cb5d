"""A small pipeline on sqlresults: a cache miss, a cache hit, then an expiration.

Run it with ``scripts/demo`` (which points ``SQLRESULTS_HOME`` at a temporary directory), or
directly: ``python examples/demo.py``. The results land in ``$SQLRESULTS_HOME/results.db``, a
SQLite file created and migrated on first use.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from sqlresults import IsolationLevel, ResultStore, transaction

EXPIRATION = timedelta(seconds=2)


def build_daily_report(day: str) -> dict[str, Any]:
    """The expensive step: pretend to crunch numbers for half a second."""
    time.sleep(0.5)
    return {"day": day, "rows": 42, "built_at": time.strftime("%H:%M:%S")}


def cached_report(store: ResultStore, day: str) -> dict[str, Any]:
    """Return the report for ``day``, computing it only when no unexpired result is stored.

    SERIALIZABLE makes concurrent runs of this function (threads, processes, machines sharing
    a PostgreSQL database) compute each key once: the first takes the key's lock, the others
    wait and then find its result.
    """
    key = f"daily-report/{day}"
    started = time.perf_counter()
    with transaction(key=key, store=store, isolation_level=IsolationLevel.SERIALIZABLE) as txn:
        if txn.is_committed():
            record = txn.read()
            assert record is not None
            report: dict[str, Any] = record.result
            outcome = "cache hit "
        else:
            report = build_daily_report(day)
            txn.stage(store.create_result_record(report, key=key, expiration=EXPIRATION))
            outcome = "cache miss"
    elapsed_ms = (time.perf_counter() - started) * 1000
    print(f"  {outcome}  {key:<24} {elapsed_ms:7.1f} ms  -> {report}")
    return report


def main() -> None:
    store = ResultStore(serializer="json")
    print(f"Result store: {store.result_storage.display_url}\n")

    print("1. First run computes the report and stores it (expires in 2 s):")
    first = cached_report(store, "2026-11-21")

    print("2. Second run finds it in the database:")
    second = cached_report(store, "2026-11-21")
    assert second == first, "a cache hit returns the stored result"

    print(f"3. Waiting {EXPIRATION.total_seconds():g} s for the result to expire...")
    time.sleep(EXPIRATION.total_seconds() + 0.1)
    print(f"   exists('daily-report/2026-11-21') -> {store.exists('daily-report/2026-11-21')}")

    print("4. Third run recomputes the expired report:")
    third = cached_report(store, "2026-11-21")
    assert third["built_at"] >= first["built_at"]

    swept = store.sweep_expired()
    stats = store.stats()
    print(
        f"\nStore: {stats.records} record(s), {stats.payload_bytes} payload bytes, "
        f"{stats.expired} expired, {stats.locks_held} lock(s) held; swept {swept}."
    )


if __name__ == "__main__":
    main()
