#!/usr/bin/env python
"""Measure the extra memory a ResultStore needs to read one large record.

Usage:
    .venv/bin/python scripts/measure_memory.py [--size-mb 100] [--url URL]

DESIGN.md §8 sets the target: reading a 100 MB record needs at most 2.5x the payload in extra
memory. This script measures it; the test suite never asserts on memory or time.

Method. Each step runs in a fresh Python process, so nothing the parent allocated counts:

1. write: a ``bytes`` payload of ``--size-mb`` MiB (random, so nothing compresses it) is
   written with the default serializer (pickle) into a temporary SQLite file, or into
   ``--url`` (e.g. a PostgreSQL database already migrated with ``sqlresults migrate``);
2. read: a new process imports sqlresults, opens the store with
   ``cache_result_in_memory=False`` and warms it up (``exists()`` opens the connection and
   checks the schema), then records its resident set size (VmRSS in /proc/self/status) as the
   baseline, resets the peak, calls ``store.read(key)``, checks the value's length, and reads
   the peak resident set size;
3. raw: a new process does the same with the bare driver: ``SELECT payload`` through
   ``sqlite3`` (or psycopg with the binary protocol for a PostgreSQL URL), the floor any read
   through that driver costs.

The peak. Linux keeps the high-water mark of the resident set (VmHWM), and writing "5" to
/proc/self/clear_refs resets it to the current RSS. Where that is not permitted, the script
falls back on ``getrusage(RUSAGE_SELF).ru_maxrss``, which cannot be reset: the baseline is then
the larger of the RSS and the peak so far before the read, so earlier peaks (imports) can only
make the extra look smaller, and the output says which method was used.

Output: payload size, baseline RSS, peak RSS, extra = peak - baseline, extra / payload, and the
memory still held after the read while the value is alive (retained), for both readers.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

MIB = 1024 * 1024
TARGET_RATIO = 2.5


# -- memory probes ---------------------------------------------------------------------------


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _rss() -> int:
    """Current resident set size, in bytes."""
    return _status_kib("VmRSS") * 1024


def _reset_peak() -> str:
    """Reset the RSS high-water mark if the kernel lets us; say which peak will be used."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return "ru_maxrss"
    return "VmHWM"


def _peak(method: str) -> int:
    """Peak resident set size, in bytes, by ``method``."""
    if method == "VmHWM":
        return _status_kib("VmHWM") * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _measure(read: Any, size: int) -> dict[str, Any]:
    """Run ``read()``, which returns a ``bytes`` value, between two memory probes; the value
    stays alive until the probes are done."""
    baseline = _rss()
    method = _reset_peak()
    if method == "ru_maxrss":
        baseline = max(baseline, _peak(method))
    value = read()
    peak = _peak(method)
    retained = _rss() - baseline
    if len(value) != size:
        raise SystemExit(f"read {len(value)} bytes, expected {size}")
    del value
    return {
        "method": method,
        "baseline": baseline,
        "peak": peak,
        "extra": peak - baseline,
        "retained": retained,
    }


# -- the child processes ---------------------------------------------------------------------


def _store(url: str, namespace: str) -> Any:
    from sqlresults.database import Database
    from sqlresults.results import ResultStore

    return ResultStore(
        result_storage=Database(url, auto_migrate=url.startswith("sqlite")),
        namespace=namespace,
        cache_result_in_memory=False,
    )


def child_write(url: str, namespace: str, key: str, size: int) -> dict[str, Any]:
    store = _store(url, namespace)
    store.write(os.urandom(size), key)
    return {"stored_bytes": store.stats().payload_bytes}


def child_read(url: str, namespace: str, key: str, size: int) -> dict[str, Any]:
    store = _store(url, namespace)
    if not store.exists(key):  # warm-up: connect and check the schema before the baseline
        raise SystemExit(f"no record {key!r}")
    return _measure(lambda: store.read(key).result, size)


def child_raw(url: str, namespace: str, key: str, size: int) -> dict[str, Any]:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    sql = "SELECT payload FROM sqlresults_records WHERE namespace = {p} AND key = {p}"
    if parsed.get_backend_name() == "sqlite":
        import sqlite3

        connection: Any = sqlite3.connect(parsed.database or "")
        sql = sql.format(p="?")
        fetch_options: dict[str, Any] = {}
    else:
        import psycopg

        parts = {
            "dbname": parsed.database,
            "user": parsed.username,
            "password": parsed.password,
            "host": parsed.query.get("host") or parsed.host,
            "port": parsed.query.get("port") or parsed.port,
        }
        connection = psycopg.connect(" ".join(f"{k}={v}" for k, v in parts.items() if v))
        sql = sql.format(p="%s")
        # The binary protocol: a bytea arrives as its bytes, not as hex text twice its size.
        fetch_options = {"binary": True}
    connection.execute("SELECT 1").fetchone()  # warm-up: the connection is open

    def read() -> Any:
        (payload,) = connection.execute(sql, (namespace, key), **fetch_options).fetchone()
        return payload

    return _measure(read, size)  # here size is the stored (pickled) payload's length


def child_delete(url: str, namespace: str, key: str, size: int) -> dict[str, Any]:
    return {"deleted": _store(url, namespace).delete(key)}


CHILDREN = {"write": child_write, "read": child_read, "raw": child_raw, "delete": child_delete}


def _run_child(step: str, url: str, namespace: str, key: str, size: int) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", step, url, namespace, key, str(size)]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        sys.stderr.write(completed.stderr)
        raise SystemExit(f"the {step} process failed (exit status {completed.returncode})")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


# -- the report ------------------------------------------------------------------------------


def _mib(value: int) -> str:
    return f"{value / MIB:8.1f} MiB"


def _report(title: str, size: int, measured: dict[str, Any]) -> None:
    print(f"{title}")
    print(f"  baseline RSS        {_mib(measured['baseline'])}")
    print(f"  peak RSS            {_mib(measured['peak'])}   (peak by {measured['method']})")
    print(f"  extra = peak - base {_mib(measured['extra'])}")
    print(f"  extra / payload     {measured['extra'] / size:8.2f} x")
    print(f"  retained after read {_mib(measured['retained'])}   (the value is still alive)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=float, default=100.0, help="payload size in MiB")
    parser.add_argument(
        "--url", help="database URL (default: a temporary SQLite file); must be migrated"
    )
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        step, url, namespace, key, size = args.child
        print(json.dumps(CHILDREN[step](url, namespace, key, int(size))))
        return 0

    size = int(args.size_mb * MIB)
    namespace = f"measure-memory-{uuid.uuid4().hex[:12]}"
    key = "large-record"
    with tempfile.TemporaryDirectory(prefix="sqlresults-memory-") as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'results.db'}"
        shown = url if args.url is None else url.split("@")[-1]
        print(f"database: {shown}")
        print(f"payload:  {size / MIB:.1f} MiB of random bytes, default (pickle) serializer")
        print("method:   fresh process per step; baseline = VmRSS after opening the store; peak")
        print("          = VmHWM after resetting it via /proc/self/clear_refs (else ru_maxrss)")
        print()
        try:
            stored = _run_child("write", url, namespace, key, size)["stored_bytes"]
            print(f"stored payload: {stored / MIB:.1f} MiB ({stored} bytes)")
            store_read = _run_child("read", url, namespace, key, size)
            raw_read = _run_child("raw", url, namespace, key, stored)
        finally:
            if args.url:
                _run_child("delete", url, namespace, key, size)
        print()
        _report("ResultStore.read(key), cache_result_in_memory=False", size, store_read)
        driver = "sqlite3" if url.startswith("sqlite") else "psycopg (binary protocol)"
        _report(f"raw {driver} SELECT payload (the floor)", size, raw_read)
        print()
        ratio = store_read["extra"] / size
        summary = f"store extra {ratio:.2f}x vs raw {raw_read['extra'] / size:.2f}x the payload"
        if url.startswith("sqlite"):
            verdict = "meets" if ratio <= TARGET_RATIO else "misses"
            print(f"{summary}: {verdict} the target of <= {TARGET_RATIO}x (DESIGN.md §8)")
        else:
            print(f"{summary} (DESIGN.md §8 states its {TARGET_RATIO}x target for SQLite)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
