"""Benchmark harness for sqlresults: the DESIGN.md §8 targets, measured as ratios in one run.

Run it through ``scripts/bench`` (which bootstraps the virtualenv and can start a throwaway
PostgreSQL server with ``--postgres``); ``scripts/bench --help`` lists the options.

Method
------
Every benchmark pits sqlresults against one or more baselines that do the same job with no
library in between. A *round* sets each contender up from scratch (a fresh SQLite file copied
from a template migrated once, a fresh diskcache directory, a fresh PostgreSQL namespace), warms
it up (connection opened, statements compiled, pages cached, key space written), then times N
operations one by one with ``time.perf_counter_ns``. Contenders take turns inside each round and
the order rotates from round to round, so drift on the machine (page cache, CPU frequency, other
load) hits everyone alike. From each round we keep p50, p99 and max latency and the throughput
(operations, or MB, per second of the timed loop); the tables show the **median over rounds** of
each figure. Ratios are computed per round from the paired measurements, then the median is
taken. A ratio is always "sqlresults relative to the baseline" with >1 meaning sqlresults is
faster: throughput ratio ``our_ops_per_s / their_ops_per_s`` (= ``their_time / our_time``), or
``their_p50 / our_p50`` where DESIGN states the target on p50 (locks), or ``their_wall /
our_wall`` for the multi-process compute-once race. Targets are printed next to each ratio with
PASS or MISS; they are information, never an exit status (the script exits non-zero only when
something fails to run or a correctness check fails).

Writes cycle over a fixed key space (1,000 keys for small records) and each pass over it stores
different bytes than the last, so every timed write replaces a record with new content: SQLite
can skip rewriting overflow pages whose bytes did not change, which would flatter whichever
contender happens to keep a row's size constant. Reads and ``exists`` run over a key space
written during set-up. Before each timed loop the harness calls ``os.sync()`` (so that one
contender's dirty pages are not flushed during another's fsyncs) and collects garbage; the
garbage collector then stays on, as it does for users. p99 is shown only for loops of 100
operations or more. On SQLite, write p99s sit close to the WAL checkpoint frequency (one
checkpoint, with its fsyncs, every few hundred small writes), so they swing between ~0.1 and a
few ms from run to run; compare p50 and throughput first.

Baselines, and why each is a fair floor
----------------------------------------
- **plain kv table** (THE baseline the targets are stated against, DESIGN §8): the simplest
  store a user could write instead, ``kv(key TEXT PRIMARY KEY, payload BLOB, expires REAL)`` in
  raw ``sqlite3`` (WAL, ``synchronous=NORMAL``, autocommit), one statement per operation and
  ``pickle``: an upsert per write, ``SELECT payload … WHERE key = ? AND (expires IS NULL OR
  expires > ?)`` then ``pickle.loads`` per read, the same with ``SELECT 1`` per exists. It
  checks no lock, no checksum and no serializer, and keeps no metadata: everything between it
  and sqlresults is what those guarantees and the library cost.
- **raw sqlite3, same SQL** (reference): the ``sqlite3`` module on its own copy of the same
  migrated schema, with the same durability settings, running the very statements sqlresults
  runs, taken from ``Database.sql(queries.…)``: the lock-checking upsert with RETURNING for
  writes, the record read (then ``pickle.loads`` of the payload) for reads, the indexed
  ``SELECT 1`` for ``exists``. Its Python side is the minimum that stores the same row:
  ``pickle.dumps``, a parameter dict, the record's checksum and a counter for the version (8
  bytes wide like the store's random versions). The row must match byte for byte in layout:
  SQLite overwrites a row in place only when its size is unchanged, and a checksum stored as 0
  instead of a 4-byte integer would hand the baseline that fast path on every rewrite (a large
  effect on rows with long overflow chains, such as 10 MB payloads). The gap between it and the
  kv table is the schema's cost; between it and sqlresults, the library's Python.
- **diskcache**: ``diskcache.Cache`` with its defaults (SQLite WAL, ``synchronous=NORMAL``,
  values over 32 KB in side files written without fsync) doing ``set``, ``get`` and ``in``. It
  stores ``bytes`` values raw, without pickling, a small edge over the store, which pickles
  every result.
- **Prefect ResultStore**: Prefect 3.9.1's ``ResultStore(result_storage=LocalFileSystem(...),
  lock_manager=FileSystemLockManager(...), cache_result_in_memory=False)``, its default
  (cloudpickle) serializer, doing ``write``, ``read``, ``exists``, ``acquire_lock`` +
  ``release_lock`` and SERIALIZABLE ``transaction()`` races. It runs from its own virtualenv
  (``.venv-prefect/``, as the tasks group's Prefect does) in a process of its own
  (``scripts/bench_prefect.py --store``: no flow run, no API server, which the store needs
  neither of), timing one round per request, so rounds still alternate. It is left out when
  the venv cannot be made (no network) or with ``--no-prefect``.
- **locks**: an ``INSERT`` then a ``DELETE`` of a row in a plain ``locks(key PRIMARY KEY,
  holder, expires)`` table, each in autocommit (the kv store's lock cycle); the library's own
  acquire and release statements run raw are shown too, to separate SQL cost from Python cost.
- **compute-once**: 2 and 4 spawned processes race over the same 200 keys in different orders.
  sqlresults runs a SERIALIZABLE ``transaction()`` per key (check; on a miss, lock, check again,
  then compute and commit); the baseline runs the cheapest correct compute-once on SQLite per
  key: ``BEGIN IMMEDIATE; SELECT 1 …; INSERT … (if absent); COMMIT`` with sqlite3's default 5 s
  busy timeout (it does not read the value back on a hit, which makes it a strict floor). Both
  verify that each key was computed exactly once and stored. Wall time runs from a shared start
  barrier (after every process has opened its connection) to the last process finishing. A
  full run adds a race where each computation takes 2 ms: the baseline keeps SQLite's only
  write lock across its computation, so it computes one key at a time across all processes,
  while sqlresults holds a lock per key and computes different keys in parallel (the target:
  ≥2.5x faster, with 4 processes; 2 could at best halve the time). Prefect's store races with
  2 processes; a round in which it computed a key twice, lost one or failed a transaction is
  counted and reported, not raised.
- **startup**: the wall time of a new interpreter running ``import sqlresults``, and of
  ``sqlresults --help``: what every CLI call and every worker process pays, interpreter start
  included (``python -c pass`` is shown), beside diskcache's and (full runs) Prefect's import.
- **async**: a batch of 200 concurrent ``aread`` coroutines on one event loop, beside 200
  threads each calling ``read``; no target, the threads each side used are noted.
- **contention**: 4 spawned processes each write small records to one SQLite file as fast as
  they can; per-write latency across all processes, compared with the absolute DESIGN targets
  (p99 ≤ 20 ms, max ≤ 200 ms). Raw sqlite3 (same upsert, 5 s busy timeout) and diskcache are
  shown for reference.
- **tasks**: a trivial function (``x * 2``) as a sqlresults ``@task``, beside the bare function and
  Prefect 3.9.1's ``@task`` doing the same: a cache hit (``cache_policy=INPUTS``, persisted, the
  same input every call), an uncached persisted call (a new input every call: key, run, write) and
  an unpersisted call (``persist_result=False``). sqlresults uses its default store (a SQLite file
  in a scratch ``SQLRESULTS_HOME``), Prefect its default local storage (one file per result in a
  scratch ``PREFECT_HOME``) and its ephemeral API server; both pickle. Each side keeps one store for
  the whole group (uncached calls take inputs never seen in any round, so every round's misses are
  real) and makes its calls inside one flow run, each library's faster way (outside a flow, a
  Prefect call took 30-40 ms here, reporting its run to the API before returning; a sqlresults call
  ~170 µs instead of ~90). Prefect runs from the project's virtualenv when its dev extra
  installed it (else from ``.venv-prefect/``, made on first use), in a subprocess
  (``scripts/bench_prefect.py``) that stays up for the group and times one round per request, so
  rounds still alternate. It waits, after its warm-up and after its timed loop, until its API server
  has recorded the runs (its processes use ~20 ms of CPU per call in all; the notes report it, the
  figures do not count it), so that this work never lands in a timed loop. sqlresults times more
  calls per round than Prefect: its calls are ~20x shorter, and a loop of a few ms would swing by a
  descheduled tick. Key computation: ``fingerprint`` and ``INPUTS.compute_key`` against Prefect's
  ``hash_objects`` and ``INPUTS.compute_key``, on an 8 MB float64 array and a 100,000-row DataFrame
  (three numeric columns, one string column) generated from one seed in both processes (checked
  equal by digest; both venvs have the same numpy and pandas).
- **postgres**: a plain ``psycopg.connect(...)`` connection in autocommit mode running the same
  SQL (``Database.sql(queries.…)``) with the same parameters and the same ``execute()`` options
  the store passes (``Database.execute_options``: ``binary=True``, so a bytea payload arrives as
  bytes rather than hex text). Both use the same tables in a fresh namespace per round; rows are
  deleted at the end. PostgreSQL has no DESIGN target; the ratios are information.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import itertools
import json
import math
import multiprocessing as mp
import multiprocessing.connection as mp_connection
import os
import pickle
import platform
import random
import select
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import bench_prefect
from rich.console import Console
from rich.table import Table
from rich.text import Text

GROUPS = (
    "sqlite-small",
    "sqlite-large",
    "locks",
    "compute-once",
    "startup",
    "async",
    "contention",
    "tasks",
    "postgres",
)
# What --quick runs unless --only says otherwise: the groups with the speed issue's targets.
QUICK_GROUPS = ("sqlite-small", "sqlite-large", "locks", "compute-once", "startup")

SMALL = 100  # bytes in a "small" payload, before pickling
KEY_SPACE = 1_000  # keys that small writes cycle over
MB = 1_000_000
WORKERS = 4  # processes in the multi-process groups
HOLDER = "bench-holder"
DESIGN_KEYS = 200  # the key count DESIGN.md §8 states the compute-once target for
COMPUTE_MS = 2.0  # the compute-once race with work: each computation takes this long
COMPUTE_TARGET = 2.5  # ...where sqlresults must beat the BEGIN IMMEDIATE baseline by this much
BARRIER_TIMEOUT = 120.0  # seconds a worker waits for its siblings at the start barrier
TASK_TIMEOUT = 600.0  # seconds the parent waits for one multi-process round

console = Console()
progress = Console(stderr=True)


# -- sizes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    """How many operations each benchmark times per contender and round (warm-up excluded)."""

    small_write: int
    small_read: int
    large_10mb: int
    large_100kb_write: int
    large_100kb_read: int
    locks: int
    contention_writes: int
    postgres: int
    warmup: int
    task_calls: int
    prefect_calls: int  # Prefect's calls take ~2 ms each: fewer of them per round
    task_warmup: int
    key_ops: int
    key_warmup: int
    prefect_store_ops: int  # Prefect's store takes 0.1-0.5 ms per operation
    prefect_store_warmup: int
    startup_runs: int  # interpreter starts per contender and round
    async_batches: int  # batches of 200 concurrent reads per contender and round


FULL = Sizes(
    small_write=5_000,
    small_read=20_000,
    large_10mb=10,
    large_100kb_write=500,
    large_100kb_read=2_000,
    locks=5_000,
    contention_writes=2_000,
    postgres=2_000,
    warmup=300,
    task_calls=5_000,
    # Prefect's API server records each task run ~10 ms behind the call (on another core), and
    # the Prefect side waits for it after every round: that wait grows with the calls.
    prefect_calls=300,
    task_warmup=50,
    key_ops=30,
    key_warmup=3,
    prefect_store_ops=1_000,
    prefect_store_warmup=100,
    startup_runs=5,
    async_batches=30,
)
QUICK = Sizes(
    # Small operations stay in the thousands even here: a WAL checkpoint lands every few hundred
    # writes, and one descheduled tick (~4 ms) in a 10 ms loop of reads would swing throughput
    # by 40 %; the loops must be long enough to absorb such events.
    small_write=2_000,
    small_read=5_000,
    large_10mb=3,
    large_100kb_write=100,
    large_100kb_read=200,
    locks=1_000,
    contention_writes=300,
    postgres=200,
    warmup=100,
    task_calls=2_000,
    # Prefect's task calls take milliseconds each (plus the wait for its API server after each
    # round), and its process needs ~6 s to start.
    prefect_calls=40,
    task_warmup=10,
    key_ops=4,
    key_warmup=1,
    prefect_store_ops=200,
    prefect_store_warmup=20,
    startup_runs=2,
    async_batches=10,
)


# -- statistics -----------------------------------------------------------------------------


def percentile(ordered: Sequence[int], q: float) -> int:
    """Nearest-rank percentile of an ascending sequence (q in [0, 1])."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass
class RoundStats:
    """One contender's figures in one round. Latencies in nanoseconds."""

    n: int
    p50_ns: int
    p99_ns: int
    max_ns: int
    total_ns: int
    ops_per_s: float
    mb_per_s: float | None = None

    @classmethod
    def from_latencies(
        cls, latencies: list[int], total_ns: int, payload_bytes: int | None = None
    ) -> RoundStats:
        ordered = sorted(latencies)
        seconds = total_ns / 1e9
        return cls(
            n=len(ordered),
            p50_ns=percentile(ordered, 0.50),
            p99_ns=percentile(ordered, 0.99),
            max_ns=ordered[-1],
            total_ns=total_ns,
            ops_per_s=len(ordered) / seconds,
            mb_per_s=None if payload_bytes is None else len(ordered) * payload_bytes / MB / seconds,
        )


def median_stats(rounds: list[RoundStats]) -> RoundStats:
    """The median over rounds of every figure."""

    def med(values: list[float]) -> float:
        return float(statistics.median(values))

    mb = [r.mb_per_s for r in rounds if r.mb_per_s is not None]
    return RoundStats(
        n=rounds[0].n,
        p50_ns=int(med([r.p50_ns for r in rounds])),
        p99_ns=int(med([r.p99_ns for r in rounds])),
        max_ns=int(med([r.max_ns for r in rounds])),
        total_ns=int(med([r.total_ns for r in rounds])),
        ops_per_s=med([r.ops_per_s for r in rounds]),
        mb_per_s=med(mb) if mb else None,
    )


@dataclass
class Target:
    """A DESIGN §8 target on the ratio "sqlresults vs this baseline" (>1 = sqlresults faster)."""

    minimum: float
    text: str  # how DESIGN states it, e.g. "≥0.5x raw"

    def passed(self, ratio: float) -> bool:
        return ratio >= self.minimum


@dataclass
class Comparison:
    """sqlresults against one baseline in one benchmark."""

    baseline: str
    basis: str  # "throughput", "p50" or "wall"
    ratio: float
    ratio_rounds: list[float]
    target: str | None
    passed: bool | None


@dataclass
class ContenderResult:
    label: str
    role: str  # "sqlresults", "baseline" or "reference"
    median: RoundStats
    rounds: list[RoundStats]


@dataclass
class BenchResult:
    group: str
    name: str
    ops: int
    warmup: int
    unit: str  # "op/s" or "MB/s"
    contenders: list[ContenderResult]
    comparisons: list[Comparison]
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def paired_ratio(
    ours: list[RoundStats], theirs: list[RoundStats], basis: str
) -> tuple[float, list[float]]:
    """Median over rounds of the per-round ratio (>1 = sqlresults faster)."""
    if basis == "p50":
        per_round = [t.p50_ns / o.p50_ns for o, t in zip(ours, theirs, strict=True)]
    else:
        per_round = [o.ops_per_s / t.ops_per_s for o, t in zip(ours, theirs, strict=True)]
    return float(statistics.median(per_round)), per_round


# -- contenders -----------------------------------------------------------------------------


@dataclass
class Runner:
    """A contender set up for one round: ``op(i)`` does the i-th operation."""

    op: Callable[[int], object]
    close: Callable[[], None]


@dataclass
class Contender:
    """One way of doing a benchmark's operation. ``setup(directory)`` builds fresh state in an
    empty directory and returns a :class:`Runner`; ``target`` is DESIGN's target for sqlresults
    against this contender (None: shown for reference).

    ``measure(bench, round_no)``, when given instead of ``setup``, runs a whole round itself
    (warm-up, :func:`settle`, the timed loop) and returns its figures: for loops that must run
    inside a flow run, or in another process (the Prefect contender)."""

    label: str
    setup: Callable[[Path], Runner] | None
    role: str = "baseline"
    target: Target | None = None
    measure: Callable[[Bench, int], RoundStats] | None = None


@dataclass
class Bench:
    """A single-process latency benchmark: ``ops`` timed operations after ``warmup`` untimed
    ones, per contender and round. The first contender is sqlresults."""

    group: str
    name: str
    contenders: list[Contender]
    ops: int
    warmup: int
    payload_bytes: int | None = None  # set for MB/s benchmarks
    basis: str = "throughput"
    note: str = ""


class Context:
    """What every benchmark needs: the scratch directory, the migrated template database, the
    compiled SQL, options."""

    def __init__(self, args: argparse.Namespace, sizes: Sizes, tmp: Path) -> None:
        from sqlresults import queries
        from sqlresults.database import Database
        from sqlresults.results import ResultStore
        from sqlresults.serializers import Serializer

        self.args = args
        self.sizes = sizes
        self.postgres_settings: dict[str, str] | None = None
        self.prefect_info: dict[str, Any] | None = None  # the Prefect process's hello
        self.prefect_store_info: dict[str, Any] | None = None  # the store process's hello
        self.rounds: int = args.rounds
        self.tmp = tmp
        self.run_id = uuid.uuid4().hex[:12]
        self._dirs = itertools.count()
        # A SQLite file migrated once; each round's stores and raw baselines get copies of it.
        self.template = tmp / "template.db"
        database = Database(f"sqlite:///{self.template}", auto_migrate=True)
        ResultStore(result_storage=database, namespace="bench").exists("warm")
        self.sqlite_sql = {name: database.sql(getattr(queries, name)) for name in _STATEMENTS}
        database.close()
        with contextlib.closing(sqlite3.connect(self.template)) as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        # The serializer spec the store writes next to every pickle; raw baselines reuse it.
        self.pickle_spec = Serializer.from_spec("pickle").spec_json()
        self._prefect_store: PrefectProcess | None = None
        self._prefect_store_tried = False

    def prefect_store(self) -> PrefectProcess | None:
        """The process serving Prefect's local store (``bench_prefect.py --store``), started on
        first use; None, said once, when Prefect cannot run here or --no-prefect was given."""
        if self._prefect_store_tried:
            return self._prefect_store
        self._prefect_store_tried = True
        self._prefect_store = start_prefect_store(self)
        return self._prefect_store

    def close(self) -> None:
        if self._prefect_store is not None:
            self._prefect_store.close()
            self._prefect_store = None

    def fresh_dir(self, label: str) -> Path:
        """A new empty directory under the scratch directory."""
        slug = "".join(c if c.isalnum() else "-" for c in label)[:40]
        path = self.tmp / f"{next(self._dirs):04d}-{slug}"
        path.mkdir()
        return path

    def fresh_db(self, directory: Path) -> Path:
        """A copy of the migrated template in ``directory``."""
        path = directory / "results.db"
        shutil.copyfile(self.template, path)
        return path


_STATEMENTS = (
    "record_upsert",
    "record_read",
    "record_exists",
    "lock_acquire",
    "lock_release",
)


def raw_sqlite_connection(path: Path, timeout: float = 5.0) -> sqlite3.Connection:
    """An autocommit sqlite3 connection with sqlresults' durability settings (WAL, NORMAL);
    ``timeout`` is SQLite's busy timeout (5 s is sqlite3's default)."""
    connection = sqlite3.connect(path, isolation_level=None, timeout=timeout)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = NORMAL")
    return connection


def keys_for(count: int, prefix: str = "key") -> list[str]:
    return [f"{prefix}-{i:05d}" for i in range(count)]


def ours_store(ctx: Context, directory: Path, *, cache: bool = False) -> tuple[Any, Any]:
    """A ResultStore on a fresh copy of the template, and its Database (to close)."""
    from sqlresults.database import Database
    from sqlresults.results import ResultStore

    database = Database(f"sqlite:///{ctx.fresh_db(directory)}")
    store = ResultStore(result_storage=database, namespace="bench", cache_result_in_memory=cache)
    return store, database


class RawRecords:
    """The raw-driver twin of the store: the store's own SQL with minimal Python around it.

    Works on any DBAPI connection whose paramstyle matches the compiled SQL (sqlite3 with named
    parameters, psycopg with pyformat).
    """

    def __init__(
        self,
        connection: Any,
        sql: dict[str, str],
        spec: str,
        namespace: str,
        first_version: int = 1 << 62,
        options: dict[str, Any] | None = None,
    ) -> None:
        from sqlresults.integrity import record_checksum

        self.sql = sql
        self.spec = spec
        self.namespace = namespace
        self._checksum = record_checksum
        # Versions as wide as the store's random 63-bit ones, so rows keep the same size.
        self._version = itertools.count(first_version)
        # The driver's execute() options the store uses too (psycopg: binary=True).
        if options:
            self.execute: Callable[..., Any] = functools.partial(connection.execute, **options)
        else:
            self.execute = connection.execute

    def write(self, key: str, obj: Any) -> None:
        payload = pickle.dumps(obj)
        params = {
            "ns": self.namespace,
            "key": key,
            "payload": payload,
            "serializer": self.spec,
            # The store's checksum covers the whole record, so the twin computes it too.
            "checksum": self._checksum(self.namespace, key, self.spec, None, payload),
            "signature": None,
            "size": len(payload),
            "expires": None,
            "version": next(self._version),
            "provenance": None,  # a plain write, as store.write() without provenance
            "holder": HOLDER,
            "fence": None,
            "now": time.time(),
        }
        if self.execute(self.sql["record_upsert"], params).rowcount != 1:
            raise RuntimeError(f"raw upsert of {key!r} was refused")

    def read(self, key: str) -> Any:
        params = {
            "ns": self.namespace,
            "key": key,
            "now": time.time(),
            "known_version": None,
            "include_expired": 0,
        }
        return pickle.loads(self.execute(self.sql["record_read"], params).fetchone()[0])

    def exists(self, key: str) -> bool:
        params = {"ns": self.namespace, "key": key, "now": time.time()}
        return self.execute(self.sql["record_exists"], params).fetchone() is not None

    def lock_cycle(self, key: str) -> None:
        params = {"ns": self.namespace, "key": key, "holder": HOLDER, "hold": 60.0, "fence": None}
        params["now"] = time.time()
        if self.execute(self.sql["lock_acquire"], params).fetchone() is None:
            raise RuntimeError(f"raw lock acquire of {key!r} was refused")
        params["now"] = time.time()
        if self.execute(self.sql["lock_release"], params).fetchone() is None:
            raise RuntimeError(f"raw lock release of {key!r} found no lock")


@dataclass(frozen=True)
class Workload:
    """Which key and value the i-th operation uses.

    Operation i touches ``keys[i % K]``; a write stores ``values[(i // K) % V]``, so every pass
    over the key space overwrites each record with different bytes. (Rewriting identical bytes
    would let SQLite skip the unchanged overflow pages of an in-place overwrite, which flatters
    whoever happens to keep the row's size constant.)
    """

    keys: list[str]
    values: list[Any]

    def key(self, i: int) -> str:
        return self.keys[i % len(self.keys)]

    def value(self, i: int) -> Any:
        return self.values[(i // len(self.keys)) % len(self.values)]

    def populate(self, write: Callable[[str, Any], object]) -> None:
        """Write every key once (before timing reads)."""
        for key in self.keys:
            write(key, self.values[0])


def workload(keys: list[str], size: int, variants: int = 3) -> Workload:
    """``keys`` with ``variants`` different random payloads of ``size`` bytes."""
    return Workload(keys, [os.urandom(size) for _ in range(variants)])


# Contender factories: each returns setup(directory) -> Runner with fresh state in `directory`.
# Every op(i) picks its key and value through work.key(i) / work.value(i), so the harness's own
# per-operation cost is the same for every contender.


def ours_factory(
    ctx: Context, work: Workload, operation: str, *, cache: bool = False
) -> Callable[[Path], Runner]:
    """sqlresults: store.write / store.read(...).result / store.exists."""

    def setup(directory: Path) -> Runner:
        store, database = ours_store(ctx, directory, cache=cache)
        key, value = work.key, work.value
        if operation == "write":
            write = store.write
            return Runner(lambda i: write(value(i), key=key(i)), database.close)
        work.populate(lambda k, v: store.write(v, key=k))
        if operation == "read":
            read = store.read
            return Runner(lambda i: read(key(i)).result, database.close)
        exists = store.exists
        return Runner(lambda i: exists(key(i)), database.close)

    return setup


def raw_factory(ctx: Context, work: Workload, operation: str) -> Callable[[Path], Runner]:
    """Raw sqlite3 running the store's SQL: ``operation`` is "write", "read" or "exists"."""

    def setup(directory: Path) -> Runner:
        connection = raw_sqlite_connection(ctx.fresh_db(directory))
        raw = RawRecords(connection, ctx.sqlite_sql, ctx.pickle_spec, "bench")
        key, value = work.key, work.value
        if operation == "write":
            write = raw.write
            return Runner(lambda i: write(key(i), value(i)), connection.close)
        work.populate(raw.write)
        method = raw.read if operation == "read" else raw.exists
        return Runner(lambda i: method(key(i)), connection.close)

    return setup


# The plain kv table: the simplest store a user could write instead (DESIGN §8's floor). One
# autocommit statement per operation, pickle, an expiry checked on read.
_KV_SCHEMA = "CREATE TABLE kv (key TEXT PRIMARY KEY, payload BLOB NOT NULL, expires REAL)"
_KV_WRITE = (
    "INSERT INTO kv VALUES (?, ?, ?) "
    "ON CONFLICT(key) DO UPDATE SET payload = excluded.payload, expires = excluded.expires"
)
_KV_READ = "SELECT payload FROM kv WHERE key = ? AND (expires IS NULL OR expires > ?)"
_KV_EXISTS = "SELECT 1 FROM kv WHERE key = ? AND (expires IS NULL OR expires > ?)"


def kv_factory(work: Workload, operation: str) -> Callable[[Path], Runner]:
    """The plain kv table: ``kv(key PRIMARY KEY, payload BLOB, expires REAL)`` in raw sqlite3
    (WAL, ``synchronous=NORMAL``, autocommit), one statement per operation, ``pickle``."""

    def setup(directory: Path) -> Runner:
        connection = raw_sqlite_connection(directory / "kv.db")
        connection.execute(_KV_SCHEMA)
        execute = connection.execute
        key, value = work.key, work.value
        clock, dumps, loads = time.time, pickle.dumps, pickle.loads

        def write(k: str, obj: Any) -> None:
            execute(_KV_WRITE, (k, dumps(obj), None))

        def read(k: str) -> Any:
            row = execute(_KV_READ, (k, clock())).fetchone()
            if row is None:
                raise KeyError(k)
            return loads(row[0])

        def exists(k: str) -> bool:
            return execute(_KV_EXISTS, (k, clock())).fetchone() is not None

        if operation == "write":
            return Runner(lambda i: write(key(i), value(i)), connection.close)
        work.populate(write)
        method = read if operation == "read" else exists
        return Runner(lambda i: method(key(i)), connection.close)

    return setup


def diskcache_factory(work: Workload, operation: str) -> Callable[[Path], Runner]:
    """diskcache.Cache with its defaults: set / get / ``in``."""

    def setup(directory: Path) -> Runner:
        import diskcache

        cache = diskcache.Cache(str(directory / "diskcache"))
        key, value = work.key, work.value
        if operation == "write":
            cache_set = cache.set
            return Runner(lambda i: cache_set(key(i), value(i)), cache.close)
        work.populate(cache.set)
        if operation == "read":
            cache_get = cache.get
            return Runner(lambda i: cache_get(key(i)), cache.close)
        return Runner(lambda i: key(i) in cache, cache.close)

    return setup


# -- single-process runner ------------------------------------------------------------------


def settle() -> None:
    """Quiet the machine before a timed loop: flush dirty pages to disk (so that one
    contender's writeback is not paid during another's fsyncs) and collect garbage."""
    if hasattr(os, "sync"):
        os.sync()
    gc.collect()


def time_loop(op: Callable[[int], object], start: int, count: int) -> tuple[list[int], int]:
    """Run ``op(start) … op(start + count - 1)``, timing each call; return the latencies (ns)
    and the loop's total time (ns)."""
    clock = time.perf_counter_ns
    latencies = [0] * count
    begin = clock()
    for n in range(count):
        t0 = clock()
        op(start + n)
        latencies[n] = clock() - t0
    return latencies, clock() - begin


def run_bench(ctx: Context, bench: Bench) -> BenchResult:
    """Run every contender of ``bench`` for ``ctx.rounds`` rounds, rotating their order."""
    contenders = bench.contenders
    per_contender: dict[str, list[RoundStats]] = {c.label: [] for c in contenders}
    for round_no in range(ctx.rounds):
        shift = round_no % len(contenders)
        for contender in contenders[shift:] + contenders[:shift]:
            if contender.measure is not None:
                per_contender[contender.label].append(contender.measure(bench, round_no))
                continue
            if contender.setup is None:
                raise ValueError(f"contender {contender.label!r} has neither setup nor measure")
            directory = ctx.fresh_dir(f"{bench.name}-{contender.label}")
            runner = contender.setup(directory)
            try:
                time_loop(runner.op, 0, bench.warmup)
                settle()
                latencies, total = time_loop(runner.op, bench.warmup, bench.ops)
            finally:
                runner.close()
                shutil.rmtree(directory, ignore_errors=True)
            stats = RoundStats.from_latencies(latencies, total, bench.payload_bytes)
            per_contender[contender.label].append(stats)
    ours = contenders[0]
    comparisons = []
    for contender in contenders[1:]:
        ratio, per_round = paired_ratio(
            per_contender[ours.label], per_contender[contender.label], bench.basis
        )
        target = contender.target
        comparisons.append(
            Comparison(
                baseline=contender.label,
                basis=bench.basis,
                ratio=ratio,
                ratio_rounds=per_round,
                target=None if target is None else target.text,
                passed=None if target is None else target.passed(ratio),
            )
        )
    return BenchResult(
        group=bench.group,
        name=bench.name,
        ops=bench.ops,
        warmup=bench.warmup,
        unit="MB/s" if bench.payload_bytes else "op/s",
        contenders=[
            ContenderResult(
                c.label, c.role, median_stats(per_contender[c.label]), per_contender[c.label]
            )
            for c in contenders
        ],
        comparisons=comparisons,
        note=bench.note,
    )


# -- groups: single process -----------------------------------------------------------------

OURS = "sqlresults"
KV = "plain kv table"
RAW = "raw sqlite3, same SQL"
DC = "diskcache"
PREFECT_STORE = "Prefect ResultStore"  # 3.9.1, LocalFileSystem + FileSystemLockManager


def prefect_store_contenders(
    ctx: Context, bench: str, keys: int, size: int, target: Target | None
) -> list[Contender]:
    """Prefect's local store doing ``bench`` ("write", "read", "exists", "lock") in the Prefect
    process (``scripts/bench_prefect.py --store``), or nothing when Prefect is not at hand."""
    side = ctx.prefect_store()
    if side is None:
        return []
    sizes = ctx.sizes

    def measure(_bench: Bench, _round_no: int) -> RoundStats:
        assert side is not None
        reply = side.request(
            "store",
            bench=bench,
            keys=keys,
            size=size,
            warmup=sizes.prefect_store_warmup,
            ops=sizes.prefect_store_ops,
        )
        return RoundStats.from_latencies(reply["latencies"], reply["total_ns"])

    return [Contender(PREFECT_STORE, None, target=target, measure=measure)]


def group_sqlite_small(ctx: Context) -> list[BenchResult]:
    """~100 B payloads over 1,000 keys: write (upsert), read, exists; against the plain kv
    table, the same SQL run raw, diskcache and Prefect's local store."""
    sizes = ctx.sizes
    work = workload(keys_for(KEY_SPACE), SMALL)
    # Writes warm up over the whole key space, so the timed writes are all updates.
    write_warmup = max(sizes.warmup, KEY_SPACE)
    ten_x_prefect = Target(10.0, "≥10x Prefect")

    def contenders(
        operation: str, kv: float | None, dc: float | None, cache: bool = False
    ) -> list[Contender]:
        out = [
            Contender(OURS, ours_factory(ctx, work, operation, cache=cache), "sqlresults"),
            Contender(
                KV,
                kv_factory(work, operation),
                "baseline" if kv else "reference",
                None if kv is None else Target(kv, f"≥{kv:g}x kv"),
            ),
            Contender(RAW, raw_factory(ctx, work, operation), "reference"),
            Contender(
                DC,
                diskcache_factory(work, operation),
                "baseline" if dc else "reference",
                None if dc is None else Target(dc, f"≥{dc:g}x diskcache"),
            ),
        ]
        if not cache:
            out += prefect_store_contenders(ctx, operation, KEY_SPACE, SMALL, ten_x_prefect)
        return out

    benches = [
        Bench(
            "sqlite-small",
            "write 100 B",
            contenders("write", kv=0.6, dc=2.0),
            ops=sizes.small_write,
            warmup=write_warmup,
        ),
        Bench(
            "sqlite-small",
            "read 100 B (no memory cache)",
            contenders("read", kv=0.6, dc=1.2),
            ops=sizes.small_read,
            warmup=sizes.warmup,
            note="store.read(key) with cache_result_in_memory=False: query (lock holder, "
            "expiry), checksum, unpickle; every peer hits storage",
        ),
        Bench(
            "sqlite-small",
            "read 100 B (memory cache on)",
            contenders("read", kv=None, dc=None, cache=True),
            ops=sizes.small_read,
            warmup=sizes.warmup,
            note="the default: a query confirms the cached version, the payload is not fetched",
        ),
        Bench(
            "sqlite-small",
            "exists",
            contenders("exists", kv=0.8, dc=None),
            ops=sizes.small_read,
            warmup=sizes.warmup,
        ),
    ]
    return [run_bench(ctx, bench) for bench in announce(benches)]


def group_sqlite_large(ctx: Context) -> list[BenchResult]:
    """10 MB payloads (MB/s) and 100 KB payloads (latency)."""
    sizes = ctx.sizes
    big = workload(keys_for(4, "big"), 10 * MB)
    mid = workload(keys_for(100, "mid"), 100_000)
    ratio_09 = Target(0.9, "≥0.9x kv")

    def contenders(work: Workload, operation: str, target: Target | None) -> list[Contender]:
        return [
            Contender(OURS, ours_factory(ctx, work, operation), "sqlresults"),
            Contender(
                KV, kv_factory(work, operation), "baseline" if target else "reference", target
            ),
            Contender(RAW, raw_factory(ctx, work, operation), "reference"),
            Contender(DC, diskcache_factory(work, operation), "reference"),
        ]

    benches = [
        Bench(
            "sqlite-large",
            "write 10 MB",
            contenders(big, "write", ratio_09),
            ops=sizes.large_10mb,
            warmup=len(big.keys),
            payload_bytes=10 * MB,
            note="diskcache writes values over 32 KB to side files, unsynced; sqlresults and "
            "the kv table keep them in the database file (one transaction, WAL)",
        ),
        Bench(
            "sqlite-large",
            "read 10 MB (no memory cache)",
            contenders(big, "read", ratio_09),
            ops=sizes.large_10mb,
            warmup=2,
            payload_bytes=10 * MB,
        ),
        Bench(
            "sqlite-large",
            "write 100 KB",
            contenders(mid, "write", None),
            ops=sizes.large_100kb_write,
            warmup=len(mid.keys),
        ),
        Bench(
            "sqlite-large",
            "read 100 KB (no memory cache)",
            contenders(mid, "read", None),
            ops=sizes.large_100kb_read,
            warmup=sizes.warmup // 3,
        ),
    ]
    return [run_bench(ctx, bench) for bench in announce(benches)]


_KV_LOCKS_SCHEMA = "CREATE TABLE locks (key TEXT PRIMARY KEY, holder TEXT NOT NULL, expires REAL)"
_KV_LOCK_INSERT = "INSERT INTO locks VALUES (?, ?, ?)"
_KV_LOCK_DELETE = "DELETE FROM locks WHERE key = ?"


def group_locks(ctx: Context) -> list[BenchResult]:
    """Uncontended acquire(timeout=0) + release, against an INSERT + DELETE on a plain kv
    table, the store's own statements run raw, and Prefect's FileSystemLockManager."""
    keys = keys_for(KEY_SPACE)

    def ours(directory: Path) -> Runner:
        store, database = ours_store(ctx, directory)
        acquire, release = store.acquire_lock, store.release_lock
        count = len(keys)

        def cycle(i: int) -> None:
            key = keys[i % count]
            if not acquire(key, HOLDER, timeout=0):
                raise RuntimeError(f"uncontended acquire of {key!r} failed")
            release(key, HOLDER)

        return Runner(cycle, database.close)

    def insert_delete(directory: Path) -> Runner:
        connection = raw_sqlite_connection(directory / "kv.db")
        connection.execute(_KV_LOCKS_SCHEMA)
        execute = connection.execute
        count = len(keys)

        def cycle(i: int) -> None:
            key = keys[i % count]
            execute(_KV_LOCK_INSERT, (key, HOLDER, time.time() + 60.0))
            execute(_KV_LOCK_DELETE, (key,))

        return Runner(cycle, connection.close)

    def same_sql(directory: Path) -> Runner:
        connection = raw_sqlite_connection(ctx.fresh_db(directory))
        raw = RawRecords(connection, ctx.sqlite_sql, ctx.pickle_spec, "bench")
        count = len(keys)
        return Runner(lambda i: raw.lock_cycle(keys[i % count]), connection.close)

    bench = Bench(
        "locks",
        "acquire + release",
        [
            Contender(OURS, ours, "sqlresults"),
            Contender("kv INSERT + DELETE", insert_delete, target=Target(0.5, "p50 ≤2x kv")),
            Contender(RAW, same_sql, "reference"),
            *prefect_store_contenders(ctx, "lock", KEY_SPACE, SMALL, Target(10.0, "≥10x Prefect")),
        ],
        ops=ctx.sizes.locks,
        warmup=ctx.sizes.warmup,
        basis="p50",
        note="store.acquire_lock(key, holder, timeout=0) + store.release_lock(key, holder); "
        "Prefect: the same calls on its store with FileSystemLockManager",
    )
    return [run_bench(ctx, b) for b in announce([bench])]


# -- group: startup ---------------------------------------------------------------------------

IMPORT_TARGET_MS = 250
HELP_TARGET_MS = 400


def group_startup(ctx: Context) -> list[BenchResult]:
    """Wall time of a new interpreter that imports sqlresults, and of ``sqlresults --help``:
    what every CLI call and every worker process pays (interpreter start included, as a user
    sees it); the bare interpreter, diskcache and Prefect beside them."""
    python = sys.executable
    env = {k: v for k, v in os.environ.items() if not k.startswith("SQLRESULTS_")}
    env["SQLRESULTS_HOME"] = str(ctx.fresh_dir("startup-home"))  # --help reads settings only

    def command(*argv: str | Path, environment: dict[str, str] = env) -> Callable[[Path], Runner]:
        args = [str(a) for a in argv]

        def setup(_directory: Path) -> Runner:
            def run(_i: int) -> None:
                subprocess.run(
                    args, env=environment, stdout=subprocess.DEVNULL, check=True, timeout=120
                )

            return Runner(run, lambda: None)

        return setup

    bare = Contender("python -c pass", command(python, "-c", "pass"), "reference")
    imports = [
        Contender(OURS, command(python, "-c", "import sqlresults"), "sqlresults"),
        bare,
        Contender(DC, command(python, "-c", "import diskcache"), "reference"),
    ]
    # Prefect's import (~1 s a run) is shown in full runs only: --quick must stay under a minute.
    prefect_python = (
        Path(sys.executable) if project_has_prefect() else PREFECT_VENV / "bin" / "python"
    )
    if not ctx.args.no_prefect and not ctx.args.quick and prefect_python.exists():
        home = ctx.fresh_dir("startup-prefect-home")
        imports.append(
            Contender(
                PREFECT,
                command(prefect_python, "-c", "import prefect", environment=prefect_env(home)),
                "reference",
            )
        )
    cli = Path(python).parent / "sqlresults"
    runs = ctx.sizes.startup_runs
    benches = [
        Bench("startup", "import sqlresults", imports, ops=runs, warmup=1),
        Bench(
            "startup",
            "sqlresults --help",
            [Contender(OURS, command(cli, "--help"), "sqlresults"), bare],
            ops=runs,
            warmup=1,
        ),
    ]
    results = [run_bench(ctx, bench) for bench in announce(benches)]
    for result, limit in zip(results, (IMPORT_TARGET_MS, HELP_TARGET_MS), strict=True):
        p50_ms = result.contenders[0].median.p50_ns / 1e6
        result.extra["targets"] = {f"p50 ≤ {limit} ms ({p50_ms:.0f} ms)": p50_ms <= limit}
    return results


# -- group: async ---------------------------------------------------------------------------

CONCURRENT_READS = 200


def group_async(ctx: Context) -> list[BenchResult]:
    """A batch of 200 concurrent reads: 200 ``aread`` coroutines on one event loop, beside 200
    threads each doing ``read``; one operation is the whole batch."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    work = workload(keys_for(KEY_SPACE), SMALL)
    threads_used: dict[str, int] = {}

    def ours_async(directory: Path) -> Runner:
        store, database = ours_store(ctx, directory)
        work.populate(lambda k, v: store.write(v, key=k))
        loop = asyncio.new_event_loop()

        async def batch(i: int) -> None:
            base = i * CONCURRENT_READS
            await asyncio.gather(
                *(store.aread(work.key(base + n)) for n in range(CONCURRENT_READS))
            )

        def close() -> None:
            executor = getattr(loop, "_default_executor", None)
            threads_used["async"] = len(getattr(executor, "_threads", ()))
            loop.close()
            database.close()

        return Runner(lambda i: loop.run_until_complete(batch(i)), close)

    def ours_threads(directory: Path) -> Runner:
        store, database = ours_store(ctx, directory)
        work.populate(lambda k, v: store.write(v, key=k))
        pool = ThreadPoolExecutor(max_workers=CONCURRENT_READS)
        read = store.read

        def batch(i: int) -> None:
            base = i * CONCURRENT_READS
            futures = [pool.submit(read, work.key(base + n)) for n in range(CONCURRENT_READS)]
            for future in futures:
                future.result()

        def close() -> None:
            threads_used["threads"] = len(pool._threads)
            pool.shutdown()
            database.close()

        return Runner(batch, close)

    bench = Bench(
        "async",
        f"{CONCURRENT_READS} concurrent reads of 100 B",
        [
            Contender(f"{OURS} aread x {CONCURRENT_READS}", ours_async, "sqlresults"),
            Contender(f"{OURS} read, {CONCURRENT_READS} threads", ours_threads, "reference"),
        ],
        ops=ctx.sizes.async_batches,
        warmup=3,
    )
    result = run_bench(ctx, bench)
    result.note = (
        "one operation = one batch (SQLite, memory cache on); threads in use: "
        f"aread {threads_used.get('async', '?')}, threads {threads_used.get('threads', '?')}"
    )
    return [result]


# -- multi-process workers ------------------------------------------------------------------
#
# Workers are spawned once per group and reused across rounds. Each task opens its own
# connection, waits at the shared barrier, does its work, closes, and reports perf_counter_ns
# timestamps (CLOCK_MONOTONIC on Linux: comparable across processes).


def _compute(key: str, compute_ms: float) -> str:
    if compute_ms:
        time.sleep(compute_ms / 1000)  # stands for real work (which holds no database lock)
    return f"value of {key}"


def _process_versions() -> int:
    """First record version of a raw writer process: 8 bytes wide, unique per process."""
    return (1 << 62) + (os.getpid() << 32)


def task_compute_once_ours(
    barrier: Any, url: str, keys: list[str], compute_ms: float = 0.0
) -> dict[str, Any]:
    """SERIALIZABLE transaction per key: read it if committed, else compute and stage it."""
    from sqlresults.database import Database
    from sqlresults.results import ResultStore
    from sqlresults.transactions import IsolationLevel, transaction

    database = Database(url)
    try:
        store = ResultStore(result_storage=database, namespace="bench")
        store.exists("warm")  # open the connection and check the schema before the clock starts
        computed: list[str] = []
        barrier.wait(BARRIER_TIMEOUT)
        start = time.perf_counter_ns()
        for key in keys:
            with transaction(
                key=key, store=store, isolation_level=IsolationLevel.SERIALIZABLE
            ) as txn:
                if txn.is_committed():
                    txn.read()
                else:
                    computed.append(key)
                    txn.stage(_compute(key, compute_ms))
        end = time.perf_counter_ns()
    finally:
        database.close()
    return {"start": start, "end": end, "computed": computed}


_RAW_RECORD_INSERT = (
    "INSERT INTO sqlresults_records (namespace, key, payload, serializer, checksum, signature, "
    "size, created, updated, expires, version) VALUES (:ns, :key, :payload, :serializer, "
    ":checksum, NULL, :size, :now, :now, NULL, :version)"
)


def task_compute_once_raw(
    barrier: Any, path: str, keys: list[str], exists_sql: str, spec: str, compute_ms: float = 0.0
) -> dict[str, Any]:
    """BEGIN IMMEDIATE; SELECT 1; INSERT if absent; COMMIT, per key."""
    connection = raw_sqlite_connection(Path(path))
    execute = connection.execute
    computed: list[str] = []
    version = itertools.count(_process_versions())
    barrier.wait(BARRIER_TIMEOUT)
    start = time.perf_counter_ns()
    for key in keys:
        execute("BEGIN IMMEDIATE")
        try:
            now = time.time()
            if execute(exists_sql, {"ns": "bench", "key": key, "now": now}).fetchone() is None:
                computed.append(key)
                payload = pickle.dumps(_compute(key, compute_ms))
                execute(
                    _RAW_RECORD_INSERT,
                    {
                        "ns": "bench",
                        "key": key,
                        "payload": payload,
                        "serializer": spec,
                        "checksum": zlib.crc32(payload),
                        "size": len(payload),
                        "now": now,
                        "version": next(version),
                    },
                )
            execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                execute("ROLLBACK")
            connection.close()
            raise
    end = time.perf_counter_ns()
    connection.close()
    return {"start": start, "end": end, "computed": computed}


def _timed_writes(
    barrier: Any, write: Callable[[str, bytes], object], keys: list[str], values: list[bytes]
) -> dict[str, Any]:
    clock = time.perf_counter_ns
    latencies = [0] * len(keys)
    variants = len(values)
    barrier.wait(BARRIER_TIMEOUT)
    start = clock()
    for n, key in enumerate(keys):
        value = values[n % variants]
        t0 = clock()
        write(key, value)
        latencies[n] = clock() - t0
    return {"start": start, "end": clock(), "latencies": latencies}


def task_contention_ours(
    barrier: Any, url: str, keys: list[str], values: list[bytes]
) -> dict[str, Any]:
    from sqlresults.database import Database
    from sqlresults.results import ResultStore

    database = Database(url)
    store = ResultStore(result_storage=database, namespace="bench")
    store.exists("warm")
    try:
        return _timed_writes(barrier, lambda k, v: store.write(v, key=k), keys, values)
    finally:
        database.close()


def task_contention_raw(
    barrier: Any, path: str, keys: list[str], values: list[bytes], sql: dict[str, str], spec: str
) -> dict[str, Any]:
    connection = raw_sqlite_connection(Path(path))
    raw = RawRecords(connection, sql, spec, "bench", first_version=_process_versions())
    try:
        return _timed_writes(barrier, raw.write, keys, values)
    finally:
        connection.close()


def task_contention_diskcache(
    barrier: Any, directory: str, keys: list[str], values: list[bytes]
) -> dict[str, Any]:
    import diskcache

    cache = diskcache.Cache(directory)
    cache.get("warm")
    try:
        return _timed_writes(barrier, cache.set, keys, values)
    finally:
        cache.close()


_TASKS: dict[str, Callable[..., dict[str, Any]]] = {
    "compute_once_ours": task_compute_once_ours,
    "compute_once_raw": task_compute_once_raw,
    "contention_ours": task_contention_ours,
    "contention_raw": task_contention_raw,
    "contention_diskcache": task_contention_diskcache,
}


def _worker_main(connection: Any, barrier: Any) -> None:
    """A worker process: run tasks from the pipe until told to stop."""
    while True:
        task = connection.recv()
        if task is None:
            return
        name, kwargs = task
        try:
            connection.send(("ok", _TASKS[name](barrier=barrier, **kwargs)))
        except BaseException:
            connection.send(("error", traceback.format_exc()))


class WorkerPool:
    """``WORKERS`` spawned processes sharing a start barrier."""

    def __init__(self, size: int = WORKERS) -> None:
        context = mp.get_context("spawn")
        self.barrier = context.Barrier(size)
        self.pipes = []
        self.processes = []
        for n in range(size):
            parent_end, child_end = context.Pipe()
            process = context.Process(
                target=_worker_main,
                args=(child_end, self.barrier),
                name=f"bench-worker-{n}",
                daemon=True,
            )
            process.start()
            child_end.close()
            self.pipes.append(parent_end)
            self.processes.append(process)

    def run(self, name: str, per_worker: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run task ``name`` on every worker (one kwargs dict each) and return their results,
        in worker order. A failure in one worker breaks the barrier, so the others stop too."""
        for pipe, kwargs in zip(self.pipes, per_worker, strict=True):
            pipe.send((name, kwargs))
        replies: dict[int, tuple[str, Any]] = {}
        deadline = time.monotonic() + TASK_TIMEOUT
        while len(replies) < len(self.pipes):
            pending = [pipe for n, pipe in enumerate(self.pipes) if n not in replies]
            for ready in mp_connection.wait(pending, timeout=0.5):
                n = self.pipes.index(ready)  # type: ignore[arg-type]
                replies[n] = self.pipes[n].recv()
                if replies[n][0] != "ok":
                    self.barrier.abort()  # release siblings still waiting at the barrier
            for n, process in enumerate(self.processes):
                if n not in replies and not process.is_alive():
                    raise RuntimeError(f"{process.name} died (exit code {process.exitcode})")
            if time.monotonic() > deadline:
                raise RuntimeError(f"task {name} did not finish within {TASK_TIMEOUT:g} s")
        errors = [payload for status, payload in replies.values() if status != "ok"]
        if errors:
            raise RuntimeError(f"task {name} failed in a worker:\n" + "\n".join(errors))
        return [replies[n][1] for n in range(len(self.pipes))]

    def close(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(None)
        for process in self.processes:
            process.join(10)
            if process.is_alive():
                process.terminate()
                process.join(5)


def wall_ns(results: list[dict[str, Any]]) -> int:
    """From the first process leaving the start barrier to the last one finishing."""
    return int(max(r["end"] for r in results) - min(r["start"] for r in results))


# -- groups: multi-process ------------------------------------------------------------------


def compute_once_round(
    ctx: Context,
    pool: WorkerPool,
    contender: str,
    keys: list[str],
    round_no: int,
    compute_ms: float = 0.0,
) -> dict[str, Any]:
    """One race of the pool's processes over ``keys``; verifies each key was computed once."""
    directory = ctx.fresh_dir(f"compute-once-{contender}")
    path = ctx.fresh_db(directory)
    orders = []
    for worker in range(len(pool.processes)):
        order = list(keys)
        random.Random(f"{round_no}-{worker}").shuffle(order)
        orders.append(order)
    settle()
    if contender == OURS:
        kwargs = [
            {"url": f"sqlite:///{path}", "keys": order, "compute_ms": compute_ms}
            for order in orders
        ]
        results = pool.run("compute_once_ours", kwargs)
    else:
        sql, spec = ctx.sqlite_sql["record_exists"], ctx.pickle_spec
        kwargs = [
            {
                "path": str(path),
                "keys": order,
                "exists_sql": sql,
                "spec": spec,
                "compute_ms": compute_ms,
            }
            for order in orders
        ]
        results = pool.run("compute_once_raw", kwargs)
    computed = [key for r in results for key in r["computed"]]
    with contextlib.closing(sqlite3.connect(path)) as connection:
        stored = connection.execute("SELECT count(*) FROM sqlresults_records").fetchone()[0]
    shutil.rmtree(directory, ignore_errors=True)
    ok = sorted(computed) == sorted(keys) and stored == len(keys)
    if not ok:
        raise RuntimeError(
            f"compute-once ({contender}, {len(keys)} keys): computed {len(computed)} times "
            f"({len(set(computed))} distinct), {stored} records stored"
        )
    return {"wall_ns": wall_ns(results), "computed": len(computed), "stored": stored}


def group_compute_once(ctx: Context, pools: dict[int, WorkerPool]) -> list[BenchResult]:
    """Races of 2 and 4 processes over the same keys, sqlresults' SERIALIZABLE transaction
    against a BEGIN IMMEDIATE transaction per key (and Prefect's store, 2 processes)."""
    keys_count = ctx.args.keys
    # (processes, keys, milliseconds each computation takes). With work, the baseline's BEGIN
    # IMMEDIATE holds SQLite's only write lock across every computation, serializing all keys;
    # sqlresults holds a per-key lock and computes different keys in parallel.
    races = [(2, keys_count, 0.0), (WORKERS, keys_count, 0.0)]
    if not ctx.args.quick:
        races.append((WORKERS, keys_count, COMPUTE_MS))
    baseline = "raw sqlite3 BEGIN IMMEDIATE"
    contenders = [OURS, baseline]
    prefect = ctx.prefect_store()
    # Warm-up race per pool and contender (imports, page cache, first-connection costs).
    for pool in pools.values():
        for contender in contenders:
            compute_once_round(ctx, pool, contender, keys_for(20, "warm"), 0)
    out = []
    for processes, count, compute_ms in races:
        pool = pools[processes]
        name = f"{processes} processes x {count} keys"
        if compute_ms:
            name += f", {compute_ms:g} ms compute"
        progress.print(f"[dim]  compute-once: {name}[/dim]")
        keys = keys_for(count)
        with_prefect = prefect is not None and processes == 2 and not compute_ms
        labels = contenders + ([PREFECT_STORE] if with_prefect else [])
        rounds: dict[str, list[dict[str, Any]]] = {c: [] for c in labels}
        for round_no in range(ctx.rounds):
            shift = round_no % len(labels)
            for contender in labels[shift:] + labels[:shift]:
                if contender == PREFECT_STORE:
                    assert prefect is not None
                    reply = prefect.request(
                        "compute_once",
                        processes=processes,
                        keys=count,
                        compute_ms=compute_ms,
                        round=round_no,
                    )
                    reply["correct"] = not reply["failed"] and (
                        reply["computed"] == reply["distinct"] == reply["stored"] == count
                    )
                    rounds[contender].append(reply)
                    continue
                rounds[contender].append(
                    compute_once_round(ctx, pool, contender, keys, round_no, compute_ms)
                )
        target = (
            Target(COMPUTE_TARGET, f"wall ≥{COMPUTE_TARGET:g}x faster")
            if compute_ms
            else Target(0.5, "wall ≤2x raw")
        )
        comparisons = []
        for other, other_target in ((baseline, target), (PREFECT_STORE, Target(10.0, "≥10x"))):
            if other not in rounds:
                continue
            per_round = [
                b["wall_ns"] / o["wall_ns"]
                for o, b in zip(rounds[OURS], rounds[other], strict=True)
            ]
            ratio = float(statistics.median(per_round))
            comparisons.append(
                Comparison(
                    other,
                    "wall",
                    ratio,
                    per_round,
                    other_target.text,
                    other_target.passed(ratio),
                )
            )
        note = (
            f"each computation sleeps {compute_ms:g} ms; the baseline holds SQLite's write "
            "lock across it, sqlresults only the key's lock"
            if compute_ms
            else ""
        )
        if with_prefect:
            wrong = sum(1 for r in rounds[PREFECT_STORE] if not r["correct"])
            note = (
                f"Prefect: SERIALIZABLE transaction() on its local store; "
                f"wrong (a key computed twice, lost, or its transaction failed) in {wrong} of "
                f"{ctx.rounds} rounds"
            )
        result = BenchResult(
            group="compute-once",
            name=name,
            ops=count,
            warmup=20,
            unit="txn/s",
            contenders=[],
            comparisons=comparisons,
            note=note,
            extra={
                c: {
                    "processes": processes,
                    "wall_ms_median": statistics.median(r["wall_ns"] for r in rounds[c]) / 1e6,
                    "rounds": rounds[c],
                }
                for c in labels
            },
        )
        out.append(result)
    return out


def group_contention(ctx: Context, pool: WorkerPool) -> list[BenchResult]:
    writes = ctx.sizes.contention_writes
    values = [os.urandom(SMALL) for _ in range(3)]
    contenders = [OURS, "raw sqlite3, same SQL", DC]

    def one_round(contender: str, count: int) -> RoundStats:
        directory = ctx.fresh_dir(f"contention-{contender}")
        keyset = keys_for(KEY_SPACE)
        # Each process strides through the key space from its own starting point.
        orders = [
            [keyset[(n * 7 + worker * 251) % KEY_SPACE] for n in range(count)]
            for worker in range(WORKERS)
        ]
        settle()
        kwargs: list[dict[str, Any]]
        if contender == OURS:
            url = f"sqlite:///{ctx.fresh_db(directory)}"
            kwargs = [{"url": url, "keys": o, "values": values} for o in orders]
            results = pool.run("contention_ours", kwargs)
        elif contender == DC:
            path = str(directory / "diskcache")
            kwargs = [{"directory": path, "keys": o, "values": values} for o in orders]
            results = pool.run("contention_diskcache", kwargs)
        else:
            path = str(ctx.fresh_db(directory))
            kwargs = [
                {
                    "path": path,
                    "keys": o,
                    "values": values,
                    "sql": ctx.sqlite_sql,
                    "spec": ctx.pickle_spec,
                }
                for o in orders
            ]
            results = pool.run("contention_raw", kwargs)
        shutil.rmtree(directory, ignore_errors=True)
        latencies = [lat for r in results for lat in r["latencies"]]
        return RoundStats.from_latencies(latencies, wall_ns(results))

    for contender in contenders:
        one_round(contender, 50)  # warm-up
    name = f"{WORKERS} writer processes x {writes} writes of 100 B"
    progress.print(f"[dim]  contention: {name}[/dim]")
    per_contender: dict[str, list[RoundStats]] = {c: [] for c in contenders}
    for round_no in range(ctx.rounds):
        shift = round_no % len(contenders)
        for contender in contenders[shift:] + contenders[:shift]:
            per_contender[contender].append(one_round(contender, writes))
    ours = median_stats(per_contender[OURS])
    return [
        BenchResult(
            group="contention",
            name=name,
            ops=writes * WORKERS,
            warmup=50,
            unit="op/s",
            contenders=[
                ContenderResult(c, "sqlresults" if c == OURS else "reference", median_stats(r), r)
                for c, r in per_contender.items()
            ],
            comparisons=[],
            extra={
                "targets": {
                    "p99 ≤ 20 ms": ours.p99_ns <= 20_000_000,
                    "max ≤ 200 ms": ours.max_ns <= 200_000_000,
                },
                "worst_max_ns": {
                    c: max(r.max_ns for r in rounds) for c, rounds in per_contender.items()
                },
            },
        )
    ]


# -- group: tasks (sqlresults' @task beside the bare function and Prefect 3.9.1's @task) -------

ROOT = Path(__file__).resolve().parent.parent
PREFECT_VENV = ROOT / ".venv-prefect"
PREFECT_SCRIPT = Path(__file__).resolve().parent / "bench_prefect.py"
PREFECT = f"Prefect {bench_prefect.PREFECT_VERSION}"
_VENV_STAMP = "sqlresults-bench.json"
_INSTALL_TIMEOUT = 1800.0  # seconds for one pip command


def prefect_requirements() -> list[str]:
    """What the Prefect venv holds: Prefect, and the project venv's numpy and pandas (the data
    and its hashing must be the same on both sides)."""
    import numpy
    import pandas

    return [
        f"prefect=={bench_prefect.PREFECT_VERSION}",
        f"numpy=={numpy.__version__}",
        f"pandas=={pandas.__version__}",
    ]


def project_has_prefect() -> bool:
    """Whether this interpreter has the Prefect release the bench compares with (the project's
    dev extra installs it, for the tests of sqlresults.prefect)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("prefect") == bench_prefect.PREFECT_VERSION
    except PackageNotFoundError:
        return False


def ensure_prefect_venv() -> tuple[Path | None, str]:
    """A Python that runs the Prefect contender: this one when it has the right Prefect (the dev
    extra), else that of ``.venv-prefect``, created and filled the first time and whenever the
    requirements change; or None and the reason when it cannot be made (no network, no such
    release)."""
    if project_has_prefect():
        return Path(sys.executable), ""
    python = PREFECT_VENV / "bin" / "python"
    stamp = PREFECT_VENV / _VENV_STAMP
    requirements = prefect_requirements()
    want: dict[str, Any] = {"python": platform.python_version(), "requirements": requirements}
    try:
        have = json.loads(stamp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        have = None
    if have == want and python.exists():
        return python, ""
    progress.print(
        f"[bold]  making {PREFECT_VENV.name}/ for the Prefect contender "
        f"({', '.join(requirements)}); the first time takes about a minute[/bold]"
    )
    fresh = not isinstance(have, dict) or have.get("python") != want["python"]
    if fresh or not python.exists():
        shutil.rmtree(PREFECT_VENV, ignore_errors=True)
    PREFECT_VENV.mkdir(exist_ok=True)
    stamp.unlink(missing_ok=True)
    log_path = PREFECT_VENV / "bench-install.log"
    with log_path.open("a", encoding="utf-8") as log:

        def run(*command: str | Path) -> bool:
            log.write(f"\n$ {' '.join(map(str, command))}\n")
            log.flush()
            try:
                done = subprocess.run(
                    [str(part) for part in command],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=_INSTALL_TIMEOUT,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                log.write(f"{exc}\n")
                return False
            return done.returncode == 0

        if not python.exists() and not run(sys.executable, "-m", "venv", PREFECT_VENV):
            return None, f"python -m venv failed (see {log_path})"
        pip = (python, "-m", "pip", "--disable-pip-version-check")
        if not run(*pip, "install", *requirements) and not _install_prefect_unpinned(
            run, pip, requirements
        ):
            return None, f"pip could not install {requirements[0]} (see {log_path})"
        if not run(python, "-c", "import prefect, numpy, pandas"):
            return None, f"prefect does not import in {PREFECT_VENV} (see {log_path})"
    stamp.write_text(json.dumps(want, indent=2) + "\n", encoding="utf-8")
    return python, ""


def _install_prefect_unpinned(
    run: Callable[..., bool], pip: tuple[str | Path, ...], requirements: list[str]
) -> bool:
    """The workaround of reference/prefect-semantics.md for an index that lacks a release
    Prefect pins (certifi): the wheel with --no-deps, then its Requires-Dist with certifi
    unpinned."""
    import zipfile

    with tempfile.TemporaryDirectory(prefix="sqlresults-bench-prefect-") as scratch:
        if not run(*pip, "download", "--no-deps", "--dest", scratch, requirements[0]):
            return False
        wheels = sorted(Path(scratch).glob("prefect-*.whl"))
        if not wheels:
            return False
        with zipfile.ZipFile(wheels[0]) as wheel:
            name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
            metadata = wheel.read(name).decode("utf-8")
        needs = []
        for line in metadata.splitlines():
            if not line.startswith("Requires-Dist:"):
                continue
            need = line.partition(":")[2].strip()
            if "extra ==" in need:
                continue
            spec, _, marker = need.partition(";")
            if spec.strip().lower().startswith("certifi"):
                need = "certifi" + (f"; {marker.strip()}" if marker else "")
            needs.append(need)
        return run(*pip, "install", "--no-deps", wheels[0]) and run(
            *pip, "install", *needs, *requirements[1:]
        )


def prefect_env(home: Path) -> dict[str, str]:
    """The environment of a Prefect process: ``PREFECT_HOME`` (its settings, local result storage
    and the API server's database) in ``home``, the ephemeral API server, warnings only; none of
    the caller's PREFECT_* or SQLRESULTS_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SQLRESULTS_"))}
    for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
        env.pop(name, None)
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ALLOW_EPHEMERAL_MODE="true",
        PREFECT_LOGGING_LEVEL="WARNING",
        PREFECT_SERVER_LOGGING_LEVEL="WARNING",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_ENABLED="false",
    )
    return env


def prefect_home(python: Path, home: Path) -> None:
    """Put a migrated API database in the empty scratch ``home``, copied from a template made
    once (``prefect server database upgrade``, ~5 s) so that the ephemeral server does not
    migrate a new database on every run; without a template the server migrates one itself."""
    # Kept under .venv-prefect/ (git-ignored) whichever Python runs Prefect.
    template = PREFECT_VENV / "home-template" / "prefect.db"
    if not template.exists():
        template.parent.mkdir(parents=True, exist_ok=True)
        with (PREFECT_VENV / "bench-install.log").open("a", encoding="utf-8") as log:
            done = subprocess.run(
                [str(python.parent / "prefect"), "server", "database", "upgrade", "-y"],
                env=prefect_env(template.parent),
                cwd=template.parent,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=_INSTALL_TIMEOUT,
                check=False,
            )
        if done.returncode != 0 or not template.exists():
            shutil.rmtree(template.parent, ignore_errors=True)
            return
    shutil.copyfile(template, home / "prefect.db")


class PrefectProcess:
    """``scripts/bench_prefect.py`` under the Prefect venv's Python, with a scratch
    ``PREFECT_HOME``: one JSON request and one JSON reply per line (see that file)."""

    def __init__(self, python: Path, home: Path, log_path: Path, *options: str) -> None:
        env = prefect_env(home)
        self.log_path = log_path
        self.log = log_path.open("w", encoding="utf-8")
        self.process = subprocess.Popen(
            [str(python), str(PREFECT_SCRIPT), *options],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=env,
            cwd=home,
            text=True,
            encoding="utf-8",
        )

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send one request and return the reply (without its "ok").

        Raises:
            RuntimeError: The process failed, died or did not answer within TASK_TIMEOUT.
        """
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None
        assert stdout is not None
        try:
            stdin.write(json.dumps({"op": op, **fields}) + "\n")
            stdin.flush()
        except BrokenPipeError:
            pass  # it exited; the read below says how
        ready, _, _ = select.select([stdout], [], [], TASK_TIMEOUT)
        line = stdout.readline() if ready else ""
        if not line:
            state = "did not answer" if ready == [] else f"exited ({self.process.poll()})"
            raise RuntimeError(f"the Prefect process {state} on {op!r}:\n{self.log_tail()}")
        reply: dict[str, Any] = json.loads(line)
        if not reply.pop("ok", False):
            raise RuntimeError(f"the Prefect process failed on {op!r}:\n{reply.get('error')}")
        return reply

    def log_tail(self, lines: int = 25) -> str:
        self.log.flush()
        text = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(text[-lines:]) or "(its log is empty)"

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            assert self.process.stdin is not None
            self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.process.stdin.close()
        try:
            self.process.wait(60)  # Prefect stops its API server on the way out
        except subprocess.TimeoutExpired:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.log.close()


def start_prefect(ctx: Context) -> PrefectProcess | None:
    """The Prefect contender's process, said hello to; None (with a line saying why) when
    Prefect cannot run here."""
    if ctx.args.no_prefect:
        console.print("[yellow]tasks: --no-prefect: the sqlresults side runs alone[/yellow]")
        return None
    python, reason = ensure_prefect_venv()
    if python is None:
        console.print(
            f"[yellow]tasks: {PREFECT} is not available: {reason}. The sqlresults side runs "
            "alone.[/yellow]"
        )
        return None
    progress.print(f"[dim]  starting {PREFECT} (ephemeral API server)[/dim]")
    home = ctx.fresh_dir("prefect-home")
    prefect_home(python, home)
    side = PrefectProcess(python, home, ctx.tmp / "prefect.log")
    try:
        ctx.prefect_info = side.request("hello")
    except RuntimeError as exc:
        side.close()
        console.print(
            f"[yellow]tasks: {PREFECT} did not start, so the sqlresults side runs alone:[/yellow]"
        )
        console.print(Text(str(exc), style="dim"))
        return None
    return side


def start_prefect_store(ctx: Context) -> PrefectProcess | None:
    """The process serving Prefect's ResultStore contender (no flow run, no API server); None
    (with a line saying why) when Prefect cannot run here."""
    if ctx.args.no_prefect:
        console.print(f"[yellow]--no-prefect: no {PREFECT_STORE} contender[/yellow]")
        return None
    python, reason = ensure_prefect_venv()
    if python is None:
        console.print(
            f"[yellow]{PREFECT} is not available ({reason}): no {PREFECT_STORE} contender[/yellow]"
        )
        return None
    progress.print(f"[dim]  starting {PREFECT} for the {PREFECT_STORE} contender[/dim]")
    home = ctx.fresh_dir("prefect-store-home")
    side = PrefectProcess(python, home, ctx.tmp / "prefect-store.log", "--store")
    try:
        ctx.prefect_store_info = side.request("hello")
    except RuntimeError as exc:
        side.close()
        console.print(f"[yellow]{PREFECT} did not start: no {PREFECT_STORE} contender[/yellow]")
        console.print(Text(str(exc), style="dim"))
        return None
    return side


def group_tasks(ctx: Context) -> list[BenchResult]:
    """Per-call overhead of @task (cache hit, uncached persisted call, unpersisted call) beside
    the bare function and Prefect's @task; cache-key computation for large inputs beside
    Prefect's hash_objects."""
    from sqlresults import flow

    data = {kind: bench_prefect.make_data(kind) for kind in ("array", "frame")}
    prefect = start_prefect(ctx)
    saved_home = os.environ.get("SQLRESULTS_HOME")
    try:
        if prefect is not None and ctx.prefect_info is not None:
            ours = {kind: bench_prefect.describe_data(value) for kind, value in data.items()}
            if ctx.prefect_info["data"] != ours:
                raise RuntimeError(
                    "the Prefect process generated other data from the same seed:\n"
                    f"  ours:   {ours}\n  theirs: {ctx.prefect_info['data']}"
                )
        # sqlresults' default store: a SQLite file in a scratch SQLRESULTS_HOME.
        os.environ["SQLRESULTS_HOME"] = str(ctx.fresh_dir("sqlresults-home"))
        storage = {"sqlresults": _default_storage()}
        if prefect is not None and ctx.prefect_info is not None:
            storage["prefect"] = (
                f"LocalFileSystem {ctx.prefect_info['storage']} (one file per result, "
                f"{ctx.prefect_info['serializer']} serializer), ephemeral API server"
            )
        benches, prefect_cpu = task_call_benches(ctx, prefect)
        benches += key_benches(ctx, prefect, data)

        # Every round runs inside one flow run, as the Prefect side serves inside one of its
        # own: calls inside a flow are both libraries' faster way (no per-round flow runs).
        @flow(name="bench-tasks", persist_result=False)
        def bench_tasks() -> list[BenchResult]:
            return [run_bench(ctx, bench) for bench in announce(benches)]

        results = bench_tasks()
    finally:
        if prefect is not None:
            prefect.close()
        _close_default_database()
        if saved_home is None:
            os.environ.pop("SQLRESULTS_HOME", None)
        else:
            os.environ["SQLRESULTS_HOME"] = saved_home
    bare = results[0].contenders[0].median.p50_ns
    for result, cpu in zip(results[1:4], prefect_cpu.values(), strict=True):
        result.extra["table"] = "calls"
        overheads = ", ".join(
            f"{c.label} {us(c.median.p50_ns - bare)} µs" for c in result.contenders
        )
        result.note = f"{result.note}; p50 over the bare call: {overheads}"
        if cpu:
            per_call = statistics.median(cpu)
            result.extra["prefect_cpu_s_per_call"] = cpu
            result.note += (
                f"; Prefect's processes used {per_call * 1000:,.1f} ms of CPU per call, "
                "its API server's recording of the run included"
            )
    results[0].extra["table"] = "calls"
    results[0].extra["storage"] = storage
    for result in results[4:]:
        result.extra["table"] = "keys"
    return results


def _default_storage() -> str:
    """What sqlresults' default store is, in words."""
    from sqlresults.results import get_default_result_storage
    from sqlresults.settings import get_settings

    database = get_default_result_storage()
    settings = get_settings()
    if database.dialect.name != "sqlite":
        return f"{database.dialect.name} (SQLRESULTS_DATABASE_URL)"
    path = database.url.database
    return (
        f"default store, SQLite {path} (WAL, synchronous={settings.sqlite_synchronous}), "
        f"{settings.results_default_serializer} serializer"
    )


def _close_default_database() -> None:
    from sqlresults.results import get_default_result_storage

    with contextlib.suppress(Exception):
        get_default_result_storage().close()


def task_call_benches(
    ctx: Context, prefect: PrefectProcess | None
) -> tuple[list[Bench], dict[str, list[float]]]:
    """The bare function, then a cache hit, an uncached persisted call and an unpersisted
    call, each a sqlresults @task beside a Prefect @task doing the same; and where the
    Prefect contender's rounds will put the CPU time per call of its processes."""
    from sqlresults import task
    from sqlresults.cache_policies import INPUTS

    sizes = ctx.sizes
    work, call_input = bench_prefect.work, bench_prefect.call_input
    base = random.randrange(1 << 40)  # uncached inputs never seen before, on either side
    tasks = {
        "hit": task(name="bench-hit", cache_policy=INPUTS)(work),
        "miss": task(name="bench-miss", cache_policy=INPUTS)(work),
        "unpersisted": task(name="bench-unpersisted", persist_result=False)(work),
    }

    rounds = itertools.count()  # the round of each setup (inputs are fresh in every round)
    # CPU seconds per call of Prefect's processes, API server included, per kind and round.
    prefect_cpu: dict[str, list[float]] = {kind: [] for kind in tasks}

    def ours(kind: str) -> Callable[[Path], Runner]:
        call = tasks[kind]

        def setup(_directory: Path) -> Runner:
            round_no = next(rounds)
            return Runner(lambda i: call(call_input(kind, round_no, base, i)), lambda: None)

        return setup

    def theirs(kind: str) -> Callable[[Bench, int], RoundStats]:
        def measure(bench: Bench, round_no: int) -> RoundStats:
            assert prefect is not None
            reply = prefect.request(
                "calls",
                bench=kind,
                round=round_no,
                base=base,
                warmup=bench.warmup,
                ops=sizes.prefect_calls,
            )
            if reply.get("cpu_s") is not None:
                prefect_cpu[kind].append(reply["cpu_s"] / sizes.prefect_calls)
            return RoundStats.from_latencies(reply["latencies"], reply["total_ns"])

        return measure

    def bare(_directory: Path) -> Runner:
        return Runner(lambda i: work(call_input("unpersisted", 0, base, i)), lambda: None)

    benches = [
        Bench(
            "tasks",
            "bare function",
            [Contender("work(x), no library", bare, "reference")],
            ops=sizes.task_calls,
            warmup=sizes.task_warmup,
            note="the function every task wraps: return x * 2",
        )
    ]
    for kind, name, note, target in (
        (
            "hit",
            "cache hit",
            "cache_policy=INPUTS, persisted; the same input every call",
            Target(10.0, "≥10x Prefect"),
        ),
        (
            "miss",
            "uncached call, persisted",
            "cache_policy=INPUTS; a new input every call: key, run, write",
            None,
        ),
        ("unpersisted", "call, not persisted", "persist_result=False (no key, no write)", None),
    ):
        contenders = [Contender("sqlresults @task", ours(kind), "sqlresults")]
        if prefect is not None:
            contenders.append(
                Contender(f"{PREFECT} @task", None, target=target, measure=theirs(kind))
            )
        benches.append(
            Bench(
                "tasks",
                name,
                contenders,
                ops=sizes.task_calls,
                warmup=sizes.task_warmup,
                note=note,
            )
        )
    return benches, prefect_cpu


def key_benches(ctx: Context, prefect: PrefectProcess | None, data: dict[str, Any]) -> list[Bench]:
    """Cache keys of an 8 MB array and a 100k-row DataFrame: sqlresults' fingerprint and
    INPUTS.compute_key beside Prefect's hash_objects and INPUTS.compute_key."""
    from sqlresults.cache_policies import INPUTS
    from sqlresults.hashing import fingerprint

    sizes = ctx.sizes
    target = Target(1.0, "≥1x Prefect")

    def ours(kind: str, fn: str) -> Callable[[Path], Runner]:
        value = data[kind]

        def setup(_directory: Path) -> Runner:
            if fn == "hash_objects":
                return Runner(lambda i: fingerprint(value), lambda: None)
            compute_key = INPUTS.compute_key
            return Runner(lambda i: compute_key(None, {"data": value}, {}), lambda: None)

        return setup

    def theirs(kind: str, fn: str) -> Callable[[Bench, int], RoundStats]:
        def measure(bench: Bench, round_no: int) -> RoundStats:
            assert prefect is not None
            reply = prefect.request("keys", data=kind, fn=fn, warmup=bench.warmup, ops=bench.ops)
            return RoundStats.from_latencies(reply["latencies"], reply["total_ns"])

        return measure

    array_mb = data["array"].nbytes / MB
    names = {
        "array": f"{array_mb:.0f} MB float64 array",
        "frame": f"{len(data['frame']):,}-row DataFrame",
    }
    benches = []
    for kind in ("array", "frame"):
        for fn, ours_label, their_label in (
            ("hash_objects", "sqlresults fingerprint", "Prefect hash_objects"),
            ("compute_key", "sqlresults INPUTS.compute_key", "Prefect INPUTS.compute_key"),
        ):
            contenders = [Contender(ours_label, ours(kind, fn), "sqlresults")]
            if prefect is not None:
                contenders.append(
                    Contender(their_label, None, target=target, measure=theirs(kind, fn))
                )
            benches.append(
                Bench(
                    "tasks",
                    f"{names[kind]}: {'hash' if fn == 'hash_objects' else 'INPUTS key'}",
                    contenders,
                    ops=sizes.key_ops,
                    warmup=sizes.key_warmup,
                )
            )
    return benches


# -- group: postgres ------------------------------------------------------------------------


def psycopg_connect_args(url: str) -> dict[str, Any]:
    """psycopg.connect() keyword arguments for a ``postgresql+psycopg://`` SQLAlchemy URL."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    kwargs: dict[str, Any] = parsed.translate_connect_args(username="user", database="dbname")
    kwargs.update({k: v for k, v in parsed.query.items() if isinstance(v, str)})
    return kwargs


def group_postgres(ctx: Context, url: str) -> list[BenchResult]:
    import psycopg

    from sqlresults import queries
    from sqlresults.database import Database
    from sqlresults.results import ResultStore

    database = Database(url, auto_migrate=True)
    database.ensure_schema()
    sql = {name: database.sql(getattr(queries, name)) for name in _STATEMENTS}
    # Whatever result format the store asks psycopg for (binary=True), the baseline asks too.
    options: dict[str, Any] = dict(getattr(database, "execute_options", None) or {})
    prefix = f"sqlresults-bench-{ctx.run_id}"
    names = (f"{prefix}-{n}" for n in itertools.count())
    work = workload(keys_for(KEY_SPACE), SMALL)
    key, value = work.key, work.value
    connect_args = psycopg_connect_args(url)

    def ours(operation: str) -> Callable[[Path], Runner]:
        def setup(_directory: Path) -> Runner:
            store = ResultStore(
                result_storage=database, namespace=next(names), cache_result_in_memory=False
            )
            if operation == "write":
                return Runner(lambda i: store.write(value(i), key=key(i)), lambda: None)
            if operation == "lock":

                def cycle(i: int) -> None:
                    k = key(i)
                    if not store.acquire_lock(k, HOLDER, timeout=0):
                        raise RuntimeError(f"uncontended acquire of {k!r} failed")
                    store.release_lock(k, HOLDER)

                return Runner(cycle, lambda: None)
            work.populate(lambda k, v: store.write(v, key=k))
            if operation == "read":
                return Runner(lambda i: store.read(key(i)).result, lambda: None)
            return Runner(lambda i: store.exists(key(i)), lambda: None)

        return setup

    def raw(operation: str) -> Callable[[Path], Runner]:
        def setup(_directory: Path) -> Runner:
            connection = psycopg.connect(**connect_args, autocommit=True)
            records = RawRecords(connection, sql, ctx.pickle_spec, next(names), options=options)
            if operation == "write":
                return Runner(lambda i: records.write(key(i), value(i)), connection.close)
            if operation == "lock":
                return Runner(lambda i: records.lock_cycle(key(i)), connection.close)
            work.populate(records.write)
            method = records.read if operation == "read" else records.exists
            return Runner(lambda i: method(key(i)), connection.close)

        return setup

    ops, warmup = ctx.sizes.postgres, ctx.sizes.warmup
    raw_label = "raw psycopg, same SQL"
    benches = [
        Bench(
            "postgres",
            name,
            [Contender(OURS, ours(op), "sqlresults"), Contender(raw_label, raw(op))],
            ops=ops,
            warmup=warmup if op != "write" else max(warmup, KEY_SPACE),
        )
        for name, op in (
            ("write 100 B", "write"),
            ("read 100 B (no memory cache)", "read"),
            ("exists", "exists"),
            ("lock acquire + release", "lock"),
        )
    ]
    try:
        with contextlib.closing(psycopg.connect(**connect_args, autocommit=True)) as connection:
            settings = {}
            for name in ("server_version", "fsync", "synchronous_commit"):
                row = connection.execute(f"SHOW {name}").fetchone()
                settings[name] = "?" if row is None else str(row[0])
        ctx.postgres_settings = settings
        return [run_bench(ctx, bench) for bench in announce(benches)]
    finally:
        with contextlib.closing(psycopg.connect(**connect_args, autocommit=True)) as connection:
            for table in ("sqlresults_records", "sqlresults_locks"):
                connection.execute(f"DELETE FROM {table} WHERE namespace LIKE %s", (f"{prefix}-%",))
        database.close()


# -- output ---------------------------------------------------------------------------------


def announce(benches: list[Bench]) -> Iterator[Bench]:
    for bench in benches:
        progress.print(f"[dim]  {bench.group}: {bench.name}[/dim]")
        yield bench


def us(ns: float) -> str:
    value = ns / 1000
    if value < 100:
        return f"{value:.1f}"
    return f"{value:,.0f}"


def ms(ns: float) -> str:
    return f"{ns / 1e6:,.1f}"


def mark(passed: bool | None) -> Text:
    if passed is None:
        return Text("info", style="dim")
    return Text("PASS", style="bold green") if passed else Text("MISS", style="bold red")


def latency_table(title: str, results: list[BenchResult]) -> Table:
    table = Table(title=title, title_justify="left", show_lines=False, header_style="bold")
    table.add_column("benchmark")
    table.add_column("contender")
    table.add_column("p50 µs", justify="right")
    table.add_column("p99 µs", justify="right")
    table.add_column("max µs", justify="right")
    table.add_column("throughput", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("target", justify="right")
    table.add_column("", justify="left")
    for n, result in enumerate(results):
        comparisons = {c.baseline: c for c in result.comparisons}
        for row, contender in enumerate(result.contenders):
            stats = contender.median
            if result.unit == "MB/s":
                throughput = f"{stats.mb_per_s:,.0f} MB/s"
            else:
                throughput = f"{stats.ops_per_s:,.0f} op/s"
            comparison = comparisons.get(contender.label)
            if comparison is None:
                ratio, target, status = "", "", Text("")
            else:
                basis = " p50" if comparison.basis == "p50" else ""
                ratio = f"{comparison.ratio:.2f}x{basis}"
                target = comparison.target or "—"
                status = mark(comparison.passed)
            label = Text(contender.label, style="bold cyan" if row == 0 else "")
            table.add_row(
                result.name if row == 0 else "",
                label,
                us(stats.p50_ns),
                us(stats.p99_ns) if stats.n >= 100 else "—",
                us(stats.max_ns),
                throughput,
                ratio,
                target,
                status,
                end_section=row == len(result.contenders) - 1 and n < len(results) - 1,
            )
    return table


def print_tasks(ctx: Context, results: list[BenchResult]) -> None:
    """The tasks group: task calls, then key computation, each with its notes."""
    with_prefect = any(c.role == "baseline" for r in results for c in r.contenders)
    side = f"beside {PREFECT}" if with_prefect else "sqlresults only"
    calls = [r for r in results if r.extra.get("table") == "calls"]
    keys = [r for r in results if r.extra.get("table") == "keys"]
    counts = f"{ctx.sizes.task_calls:,} calls a round"
    if with_prefect:
        counts += f", Prefect {ctx.sizes.prefect_calls:,}"
    for title, group in (
        (
            f"tasks — per call, inside one flow run, {side} "
            f"(median of {ctx.rounds} rounds; {counts})",
            calls,
        ),
        (
            f"tasks — cache-key computation of one large input, {side} "
            f"(median of {ctx.rounds} rounds)",
            keys,
        ),
    ):
        console.print()
        console.print(latency_table(title, group))
        for result in group:
            if result.note:
                console.print(f"[dim]  {result.name}: {result.note}[/dim]")
    for name, text in calls[0].extra.get("storage", {}).items():
        console.print(f"[dim]  storage, {name}: {text}[/dim]")


def compute_once_table(ctx: Context, results: list[BenchResult]) -> Table:
    table = Table(
        title="compute-once — SERIALIZABLE transaction per key, spawned processes, one SQLite "
        f"file (median of {ctx.rounds} rounds)",
        title_justify="left",
        header_style="bold",
    )
    for column in ("benchmark", "contender"):
        table.add_column(column)
    for column in ("wall ms", "txn/s", "computed", "ratio", "target"):
        table.add_column(column, justify="right")
    table.add_column("")
    for n, result in enumerate(results):
        comparisons = {c.baseline: c for c in result.comparisons}
        rows = list(result.extra.items())
        for row, (label, data) in enumerate(rows):
            wall = data["wall_ms_median"]
            txns = data["processes"] * result.ops / (wall / 1000)
            computed = statistics.median(r["computed"] for r in data["rounds"])
            correct = all(r.get("correct", True) for r in data["rounds"])
            comparison = comparisons.get(label)
            table.add_row(
                result.name if row == 0 else "",
                Text(label, style="bold cyan" if row == 0 else ""),
                f"{wall:,.1f}",
                f"{txns:,.0f}",
                f"{computed:.0f} of {result.ops} {'✓' if correct else '✗ (some rounds)'}",
                "" if comparison is None else f"{comparison.ratio:.2f}x wall",
                "" if comparison is None else (comparison.target or ""),
                Text("") if comparison is None else mark(comparison.passed),
                end_section=row == len(rows) - 1 and n < len(results) - 1,
            )
    return table


def contention_table(ctx: Context, result: BenchResult) -> Table:
    table = Table(
        title=f"contention — {result.name}, one SQLite file, per-write latency across all "
        f"processes (median of {ctx.rounds} rounds)",
        title_justify="left",
        header_style="bold",
    )
    for column in ("contender", "p50 µs", "p99 ms", "max ms", "worst max ms", "writes/s"):
        table.add_column(column, justify="left" if column == "contender" else "right")
    table.add_column("targets (DESIGN §8)")
    worst = result.extra["worst_max_ns"]
    for row, contender in enumerate(result.contenders):
        stats = contender.median
        targets = Text("")
        if row == 0:
            for n, (text, passed) in enumerate(result.extra["targets"].items()):
                if n:
                    targets.append("  ")
                targets.append(f"{text} ")
                targets.append_text(mark(passed))
        table.add_row(
            Text(contender.label, style="bold cyan" if row == 0 else ""),
            us(stats.p50_ns),
            ms(stats.p99_ns),
            ms(stats.max_ns),
            ms(worst[contender.label]),
            f"{stats.ops_per_s:,.0f}",
            targets,
        )
    return table


def summary_table(results: list[BenchResult]) -> Table:
    table = Table(title="DESIGN §8 targets", title_justify="left", header_style="bold")
    for column in ("group", "benchmark", "sqlresults vs", "ratio", "target", ""):
        table.add_column(column, justify="right" if column == "ratio" else "left")
    for result in results:
        for comparison in result.comparisons:
            if comparison.target is None:
                continue
            table.add_row(
                result.group,
                result.name,
                comparison.baseline,
                f"{comparison.ratio:.2f}x",
                comparison.target,
                mark(comparison.passed),
            )
        for text, passed in result.extra.get("targets", {}).items():
            table.add_row(result.group, result.name, "absolute", "", text, mark(passed))
    return table


def environment(ctx: Context) -> dict[str, Any]:
    import diskcache

    import sqlresults

    info: dict[str, Any] = {
        "sqlresults": getattr(sqlresults, "__version__", "?"),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "diskcache": diskcache.__version__,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "rounds": ctx.rounds,
        "quick": bool(ctx.args.quick),
    }
    with contextlib.suppress(ImportError):
        import psycopg

        info["psycopg"] = f"{psycopg.__version__} ({psycopg.pq.__impl__})"
    return info


def settings_overrides() -> list[str]:
    """SQLRESULTS_* settings in the environment (DESIGN measures with default settings)."""
    ignored = {"SQLRESULTS_TEST_POSTGRES_URL", "SQLRESULTS_PG_DIR", "SQLRESULTS_REQUIRE_POSTGRES"}
    return sorted(k for k in os.environ if k.startswith("SQLRESULTS_") and k not in ignored)


# -- main -----------------------------------------------------------------------------------


# -- profiling ------------------------------------------------------------------------------

PROFILES = ("write", "read", "read-cached", "exists", "lock", "compute-once")


def profile(path: str, ops: int) -> None:
    """Run ``ops`` operations of one hot path on a fresh SQLite store under pyinstrument (the
    ``bench`` extra) and print where the time goes."""
    from pyinstrument import Profiler

    from sqlresults.database import Database
    from sqlresults.results import ResultStore
    from sqlresults.transactions import IsolationLevel, transaction

    with tempfile.TemporaryDirectory(prefix="sqlresults-profile-") as scratch:
        database = Database(Path(scratch) / "results.db")
        store = ResultStore(
            result_storage=database, namespace="bench", cache_result_in_memory=path == "read-cached"
        )
        work = workload(keys_for(KEY_SPACE), SMALL)
        work.populate(lambda k, v: store.write(v, key=k))
        operations: dict[str, Callable[[int], object]] = {
            "write": lambda i: store.write(work.value(i), key=work.key(i)),
            "read": lambda i: store.read(work.key(i)).result,
            "read-cached": lambda i: store.read(work.key(i)).result,
            "exists": lambda i: store.exists(work.key(i)),
            "lock": lambda i: (
                store.acquire_lock(work.key(i), HOLDER, timeout=0),
                store.release_lock(work.key(i), HOLDER),
            ),
        }

        def compute_once(i: int) -> None:
            key = f"fresh-{i}"
            with transaction(
                key=key, store=store, isolation_level=IsolationLevel.SERIALIZABLE
            ) as txn:
                if txn.is_committed():
                    txn.read()
                else:
                    txn.stage(_compute(key, 0.0))

        operations["compute-once"] = compute_once
        op = operations[path]
        time_loop(op, 0, min(ops, 1000))  # warm up
        profiler = Profiler(interval=0.0001)
        profiler.start()
        time_loop(op, 1000, ops)
        profiler.stop()
        database.close()
    console.print(profiler.output_text(unicode=True, color=console.is_terminal))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench",
        description="Measure sqlresults against raw sqlite3 / psycopg, diskcache and Prefect, "
        "side by side in one run, and print the DESIGN.md §8 ratios with PASS/MISS "
        "(information only).",
        epilog=f"Groups: {', '.join(GROUPS)}. The postgres group runs when a URL is given "
        "(--postgres-url or SQLRESULTS_TEST_POSTGRES_URL); the shell wrapper's --postgres "
        "starts a throwaway server for it. The tasks group runs Prefect "
        f"{bench_prefect.PREFECT_VERSION} from .venv-prefect/, made the first time (about a "
        "minute; without network the sqlresults side runs alone).",
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="rounds per benchmark (default 5; 3 with --quick)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer operations, and only the groups with targets "
        f"({', '.join(QUICK_GROUPS)}) unless --only names others: under a minute",
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="GROUP",
        help="run only these groups (repeat, or separate with commas)",
    )
    parser.add_argument(
        "--keys",
        type=int,
        default=None,
        help=f"keys in the compute-once races (default {DESIGN_KEYS}, the count the target is "
        "stated for)",
    )
    parser.add_argument(
        "--postgres-url",
        default=None,
        help="SQLAlchemy URL (postgresql+psycopg://…) for the postgres group "
        "(default: $SQLRESULTS_TEST_POSTGRES_URL)",
    )
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="require the postgres group (fail without a URL)",
    )
    parser.add_argument(
        "--no-prefect",
        action="store_true",
        help="run the tasks group without its Prefect contender (no Prefect venv needed)",
    )
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write JSON")
    parser.add_argument(
        "--profile",
        choices=PROFILES,
        default=None,
        help="instead of benchmarking, profile one hot path with pyinstrument (the bench "
        "extra) and print the call tree",
    )
    parser.add_argument(
        "--profile-ops", type=int, default=20_000, help="operations to profile (default 20,000)"
    )
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 3 if args.quick else 5
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.keys is None:
        args.keys = DESIGN_KEYS
    if args.keys < 1:
        parser.error("--keys must be at least 1")
    selected: list[str] = []
    for item in args.only or []:
        for name in filter(None, (part.strip() for part in item.split(","))):
            if name not in GROUPS:
                parser.error(f"unknown group {name!r}; choose from {', '.join(GROUPS)}")
            selected.append(name)
    default = QUICK_GROUPS if args.quick else GROUPS
    args.groups = [g for g in GROUPS if g in selected or (not selected and g in default)]
    args.postgres_url = args.postgres_url or os.environ.get("SQLRESULTS_TEST_POSTGRES_URL")
    wants_postgres = args.postgres or (selected and "postgres" in selected)
    if wants_postgres and not args.postgres_url:
        parser.error(
            "the postgres group needs a PostgreSQL URL: pass --postgres-url, set "
            "SQLRESULTS_TEST_POSTGRES_URL, or run `scripts/bench --postgres` to start a server"
        )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.profile is not None:
        profile(args.profile, args.profile_ops)
        return 0
    sizes = QUICK if args.quick else FULL
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="sqlresults-bench-"))
    results: list[BenchResult] = []
    pools: dict[int, WorkerPool] = {}
    ctx: Context | None = None
    try:
        ctx = Context(args, sizes, tmp)
        env = environment(ctx)
        console.print(
            "[bold]sqlresults benchmarks[/bold]  "
            + "  ".join(f"{k}=[cyan]{v}[/cyan]" for k, v in env.items())
        )
        console.print(
            "[dim]Medians over rounds; contenders alternate within each round. ratio = "
            "sqlresults relative to that baseline, >1 = sqlresults faster (throughput ratio "
            "unless marked p50/wall). Targets are DESIGN §8's, information only.[/dim]"
        )
        overrides = settings_overrides()
        if overrides:
            console.print(
                f"[yellow]warning: {', '.join(overrides)} set; DESIGN §8 measures with "
                "default settings[/yellow]"
            )
        for group in args.groups:
            progress.print(f"[bold]running {group}[/bold]")
            if group == "sqlite-small":
                group_results = group_sqlite_small(ctx)
                table = latency_table(
                    f"sqlite-small — ~100 B payload, {KEY_SPACE:,} keys "
                    f"(median of {ctx.rounds} rounds)",
                    group_results,
                )
            elif group == "sqlite-large":
                group_results = group_sqlite_large(ctx)
                table = latency_table(
                    f"sqlite-large — 10 MB (4 keys) and 100 KB (100 keys) payloads "
                    f"(median of {ctx.rounds} rounds)",
                    group_results,
                )
            elif group == "locks":
                group_results = group_locks(ctx)
                table = latency_table(
                    f"locks — uncontended, {KEY_SPACE:,} keys, ratio on p50 as DESIGN states it "
                    f"(median of {ctx.rounds} rounds)",
                    group_results,
                )
            elif group == "tasks":
                group_results = group_tasks(ctx)
                results.extend(group_results)
                print_tasks(ctx, group_results)
                continue
            elif group == "startup":
                group_results = group_startup(ctx)
                table = latency_table(
                    f"startup — a new interpreter, wall time (median of {ctx.rounds} rounds)",
                    group_results,
                )
            elif group == "async":
                group_results = group_async(ctx)
                table = latency_table(
                    f"async — {CONCURRENT_READS} concurrent reads, SQLite (median of "
                    f"{ctx.rounds} rounds; no target)",
                    group_results,
                )
            elif group in ("compute-once", "contention"):
                sizes_wanted = (2, WORKERS) if group == "compute-once" else (WORKERS,)
                for size in sizes_wanted:
                    if size not in pools:
                        progress.print(f"[dim]  starting {size} worker processes (spawn)[/dim]")
                        pools[size] = WorkerPool(size)
                if group == "compute-once":
                    group_results = group_compute_once(ctx, pools)
                    table = compute_once_table(ctx, group_results)
                else:
                    group_results = group_contention(ctx, pools[WORKERS])
                    table = contention_table(ctx, group_results[0])
            else:
                if not args.postgres_url:
                    console.print(
                        "[dim]postgres: skipped (no URL; pass --postgres-url, set "
                        "SQLRESULTS_TEST_POSTGRES_URL, or use scripts/bench --postgres)[/dim]"
                    )
                    continue
                group_results = group_postgres(ctx, args.postgres_url)
                pg = ctx.postgres_settings or {}
                table = latency_table(
                    f"postgres — ~100 B payload, {KEY_SPACE:,} keys, unix socket; server "
                    f"{pg.get('server_version', '?')}, fsync={pg.get('fsync', '?')}, "
                    f"synchronous_commit={pg.get('synchronous_commit', '?')} "
                    f"(median of {ctx.rounds} rounds; no DESIGN targets)",
                    group_results,
                )
            results.extend(group_results)
            console.print()
            console.print(table)
            for result in group_results:
                if result.note:
                    console.print(f"[dim]  {result.name}: {result.note}[/dim]")
        marks = [c.passed for r in results for c in r.comparisons if c.passed is not None]
        marks += [passed for r in results for passed in r.extra.get("targets", {}).values()]
        console.print()
        if marks:
            console.print(summary_table(results))
            console.print(
                f"targets: [bold green]{marks.count(True)} PASS[/bold green], "
                f"[bold red]{marks.count(False)} MISS[/bold red] (information only)"
            )
        else:
            console.print("[dim]no DESIGN §8 targets in the groups run[/dim]")
        elapsed = time.monotonic() - started
        console.print(f"[dim]finished in {elapsed:.0f} s[/dim]")
        if args.json is not None:
            document = {
                "environment": env,
                "postgres": ctx.postgres_settings,
                "prefect": ctx.prefect_info,
                "prefect_store": ctx.prefect_store_info,
                "elapsed_s": elapsed,
                "sizes": asdict(sizes),
                "results": [asdict(r) for r in results],
            }
            args.json.write_text(
                json.dumps(document, indent=2, default=str, ensure_ascii=False) + "\n",
                encoding="utf-8",
            )
            console.print(f"[dim]wrote {args.json}[/dim]")
        return 0
    finally:
        for pool in pools.values():
            pool.close()
        if ctx is not None:
            ctx.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if sys.stdout.isatty() is False and "COLUMNS" not in os.environ:
        console = Console(width=150)
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
