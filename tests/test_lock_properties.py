"""Property tests of the concurrency invariants (DESIGN §7), on SQLite and PostgreSQL.

- mutual exclusion: a Hypothesis state machine drives acquire/release/renew and a fake clock for
  three holders on two keys against a model: at most one unexpired holder per key; acquire
  succeeds exactly when the model says the key is free, expired or already ours; a wrong holder's
  release never frees a lock;
- compute-once: the README's SERIALIZABLE block computes each key exactly once across threads
  and across spawned processes sharing one database;
- crash recovery: a holder killed with SIGKILL blocks its key until its lease ends, not longer;
- fenced commits: a state machine drives holders through begin, stopping past their lease,
  another holder committing, sweeps, and resuming to commit; a commit writes exactly when the
  holder's own lock row is still there, so no stale holder overwrites a committed record (and a
  real SIGSTOPped process shows the same);
- no torn or lost records under concurrent writers, and no lock lost to racing wrong-holder
  releases;
- transaction trees (Hypothesis): states only move forward, rollback propagates up, each hook
  runs at most once and exactly when its state says so, records exist exactly for committed
  transactions, and no lock survives the outermost transaction.

Waits are bounded by generous hang guards; assertions are about orderings and outcomes only.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import multiprocessing
import random
import sys
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeClock
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import String, bindparam, select
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import Executable

from sqlresults.database import Database
from sqlresults.dialects import Dialect
from sqlresults.errors import LeaseLostError, LockNotHeldError, LockTimeoutError
from sqlresults.locking import SQLLockManager
from sqlresults.results import ResultStore
from sqlresults.schema import locks
from sqlresults.transactions import (
    CommitMode,
    IsolationLevel,
    Transaction,
    TransactionState,
    transaction,
)

# Spawned children unpickle their targets by module name and get the parent's sys.path: make
# sure it holds this directory, whatever import mode pytest uses.
TESTS_DIR = str(Path(__file__).resolve().parent)
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)

import lock_workers  # noqa: E402

SERIALIZABLE = IsolationLevel.SERIALIZABLE
JOIN_TIMEOUT = 120.0
PROCESS_TIMEOUT = 300.0
HOLDERS = ["h1", "h2", "h3"]
KEYS = ["k1", "k2"]

spawn = multiprocessing.get_context("spawn")


def modest(limit: int) -> int:
    """At most ``limit`` examples, fewer if the active profile asks for fewer."""
    return min(settings.default.max_examples, limit)


def start_threads(target: Any, args_list: list[tuple[Any, ...]]) -> list[threading.Thread]:
    threads = [threading.Thread(target=target, args=args, daemon=True) for args in args_list]
    for thread in threads:
        thread.start()
    return threads


def join_all(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
        assert not thread.is_alive(), "hang guard: a thread is still running"


def _lock_row(dialect: Dialect, now: ColumnElement[float]) -> Executable:
    """The raw lock row of (ns, key), expired or not: (holder, expires)."""
    return select(locks.c.holder, locks.c.expires).where(
        locks.c.namespace == bindparam("ns", type_=String()),
        locks.c.key == bindparam("key", type_=String()),
    )


# -- mutual exclusion: a state machine against a model ---------------------------------------


class TestMutualExclusion:
    def test_lock_manager_matches_the_model(
        self, clocked_database: Database, clock: FakeClock, namespace: str
    ) -> None:
        """At most one unexpired holder per key at any time; acquire(timeout=0) returns True
        exactly when the key is free, expired or already the caller's; a release by anyone but
        the holder never frees an unexpired lock (it raises LockNotHeldError); renew succeeds
        exactly for the row's holder. Leases run on a fake clock."""

        class LockMachine(RuleBasedStateMachine):
            def __init__(self) -> None:
                super().__init__()
                self.manager = SQLLockManager(
                    clocked_database, namespace=f"{namespace}-{uuid.uuid4().hex[:8]}"
                )
                # key -> (holder, lease end) of the lock row, expired or not
                self.model: dict[str, tuple[str, float]] = {}

            def owner(self, key: str) -> str | None:
                entry = self.model.get(key)
                return entry[0] if entry is not None and entry[1] > clock.now else None

            @rule(
                holder=st.sampled_from(HOLDERS),
                key=st.sampled_from(KEYS),
                hold=st.sampled_from([1.0, 2.5, 5.0]),
            )
            def acquire(self, holder: str, key: str, hold: float) -> None:
                owner = self.owner(key)
                expected = owner is None or owner == holder
                got = self.manager.acquire_lock(key, holder, acquire_timeout=0, hold_timeout=hold)
                assert got is expected
                if got:
                    self.model[key] = (holder, clock.now + hold)

            @rule(holder=st.sampled_from(HOLDERS), key=st.sampled_from(KEYS))
            def release(self, holder: str, key: str) -> None:
                entry = self.model.get(key)
                owner = self.owner(key)
                if entry is not None and entry[0] == holder:
                    self.manager.release_lock(key, holder)
                    del self.model[key]
                elif owner is not None:
                    with pytest.raises(LockNotHeldError):
                        self.manager.release_lock(key, holder)
                else:
                    self.manager.release_lock(key, holder)

            @rule(
                holder=st.sampled_from(HOLDERS),
                key=st.sampled_from(KEYS),
                hold=st.sampled_from([1.0, 2.5, 5.0]),
            )
            def renew(self, holder: str, key: str, hold: float) -> None:
                entry = self.model.get(key)
                expected = entry is not None and entry[0] == holder
                assert self.manager.renew_lock(key, holder, hold_timeout=hold) is expected
                if expected:
                    self.model[key] = (holder, clock.now + hold)

            @rule(seconds=st.sampled_from([0.5, 1.0, 2.5, 4.0]))
            def advance(self, seconds: float) -> None:
                clock.advance(seconds)

            @invariant()
            def one_holder_per_key(self) -> None:
                for key in KEYS:
                    owner = self.owner(key)
                    assert self.manager.lock_holder(key) == owner
                    holding = [h for h in HOLDERS if self.manager.is_lock_holder(key, h)]
                    assert holding == ([] if owner is None else [owner])

        run_state_machine_as_test(
            LockMachine,
            settings=settings(max_examples=modest(30), stateful_step_count=25),
        )


# -- fenced commits: a state machine of holders that stop past their lease -------------------

# Leases of the machine's transactions, in (fake) seconds: long enough in real time that the
# process's lease keeper never renews one during an example (it would renew after a third of
# this many real seconds), so a lease ends only when the test moves the clock past it.
MACHINE_LEASE = 600.0


@dataclass
class OpenHolder:
    """A holder with an open SERIALIZABLE transaction: its own context, and the grant (the
    model's count of acquires) its lock was taken with."""

    txn: Transaction
    context: contextvars.Context
    key: str
    grant: int


class TestFencedCommits:
    def test_no_stale_holder_ever_overwrites_a_committed_record(
        self, clocked_database: Database, clock: FakeClock, namespace: str
    ) -> None:
        """Holders open SERIALIZABLE transactions, stop past their lease (the clock moves on
        while they do nothing), lose their keys to other holders that commit, get their dead
        lock rows swept, resume and commit. A commit succeeds exactly when the holder's own
        lock row (the one it was granted) is still there, expired or not; otherwise it raises
        LeaseLostError and the record under the key is untouched. So no committed record is
        ever overwritten by a holder whose lease ran out and whose key was taken since."""

        class StaleHolderMachine(RuleBasedStateMachine):
            def __init__(self) -> None:
                super().__init__()
                self.store = ResultStore(
                    result_storage=clocked_database,
                    namespace=f"{namespace}-{uuid.uuid4().hex[:8]}",
                    serializer="json",
                )
                self.open: dict[str, OpenHolder] = {}
                # key -> (holder, lease end, grant) of the lock row; key -> committed value
                self.rows: dict[str, tuple[str, float, int]] = {}
                self.records: dict[str, str] = {}
                self.grants = 0

            def lock_is_free_for(self, key: str) -> bool:
                row = self.rows.get(key)
                return row is None or row[1] <= clock.now

            @rule(holder=st.sampled_from(HOLDERS), key=st.sampled_from(KEYS))
            def begin(self, holder: str, key: str) -> None:
                """A holder without an open transaction opens one (without waiting)."""
                if holder in self.open:
                    return
                txn = Transaction(
                    key,
                    self.store,
                    isolation_level=SERIALIZABLE,
                    overwrite=True,
                    lock_timeout=0,
                    hold_timeout=MACHINE_LEASE,
                )
                context = contextvars.Context()  # each holder is its own caller
                if not self.lock_is_free_for(key):
                    with pytest.raises(LockTimeoutError):
                        context.run(txn.__enter__)
                    return
                context.run(txn.__enter__)
                self.grants += 1
                self.rows[key] = (holder, clock.now + MACHINE_LEASE, self.grants)
                self.open[holder] = OpenHolder(txn, context, key, self.grants)

            @rule(holder=st.sampled_from(HOLDERS), value=st.text(max_size=5))
            def commit(self, holder: str, value: str) -> None:
                """An open holder resumes and commits: it writes exactly when its own lock row
                is still there; otherwise LeaseLostError, and the record stays."""
                opened = self.open.pop(holder, None)
                if opened is None:
                    return
                key = opened.key
                opened.txn.stage(f"{holder}:{value}")
                row = self.rows.get(key)
                if row is not None and (row[0], row[2]) == (holder, opened.grant):
                    opened.context.run(opened.txn.__exit__, None, None, None)
                    assert opened.txn.is_committed()
                    self.records[key] = f"{holder}:{value}"
                    del self.rows[key]
                else:
                    with pytest.raises(LeaseLostError):
                        opened.context.run(opened.txn.__exit__, None, None, None)
                    assert opened.txn.is_rolled_back()

            @rule(holder=st.sampled_from(HOLDERS))
            def give_up(self, holder: str) -> None:
                """An open holder's body fails: it rolls back, releasing its lock if it still
                has it, and writes nothing."""
                opened = self.open.pop(holder, None)
                if opened is None:
                    return
                error = RuntimeError("the body failed")
                opened.context.run(opened.txn.__exit__, RuntimeError, error, None)
                assert opened.txn.is_rolled_back()
                row = self.rows.get(opened.key)
                if row is not None and (row[0], row[2]) == (holder, opened.grant):
                    del self.rows[opened.key]

            @rule(seconds=st.sampled_from([1.0, MACHINE_LEASE / 2, MACHINE_LEASE + 1]))
            def time_passes(self, seconds: float) -> None:
                """Time passes while every open holder is stopped (nobody renews)."""
                clock.advance(seconds)

            @rule()
            def sweep(self) -> None:
                """An admin sweeps expired records and dead lock rows."""
                self.store.sweep_expired()
                self.rows = {k: row for k, row in self.rows.items() if row[1] > clock.now}

            @invariant()
            def records_are_the_committed_values(self) -> None:
                for key in KEYS:
                    expected = self.records.get(key)
                    reader = f"reader-{uuid.uuid4().hex}"
                    if expected is None:
                        assert not self.store.exists(key)
                        continue
                    # Read as the lock holder, if any: a reader would otherwise wait for it.
                    row = self.rows.get(key)
                    holder = self.open[row[0]].txn.holder if row and row[0] in self.open else reader
                    assert self.store.read(key, holder=holder).result == expected

            @invariant()
            def locks_are_the_models(self) -> None:
                for key in KEYS:
                    row = self.rows.get(key)
                    live = row is not None and row[1] > clock.now
                    assert self.store.is_locked(key) is live

            def teardown(self) -> None:
                for opened in self.open.values():
                    opened.context.run(opened.txn.__exit__, RuntimeError, RuntimeError(), None)

        run_state_machine_as_test(
            StaleHolderMachine,
            settings=settings(max_examples=modest(40), stateful_step_count=30),
        )


# -- compute once ----------------------------------------------------------------------------


def compute_once_block(store: ResultStore, key: str, compute: Any) -> Any:
    """The README's block: compute under the key's lock unless someone already did."""
    with transaction(key, store, isolation_level=SERIALIZABLE) as txn:
        if txn.is_committed():
            record = txn.read()
            assert record is not None
            return record.result
        value = compute(key)
        txn.stage(value)
        return value


class TestComputeOnce:
    def test_threads(self, store: ResultStore) -> None:
        """8 threads run the SERIALIZABLE compute-once block over the same 25 keys in different
        orders: exactly one computation per key, and every thread sees the same value per key,
        which is the stored one. No lock is left."""
        n_threads, keys = 8, [f"key-{i}" for i in range(25)]
        computations: list[tuple[str, int]] = []
        seen: dict[int, dict[str, Any]] = {i: {} for i in range(n_threads)}
        barrier = threading.Barrier(n_threads)

        def worker(index: int) -> None:
            def compute(key: str) -> str:
                computations.append((key, index))
                return f"{key}|thread-{index}|{uuid.uuid4().hex}"

            order = list(keys)
            random.Random(index).shuffle(order)
            barrier.wait(JOIN_TIMEOUT)
            for key in order:
                seen[index][key] = compute_once_block(store, key, compute)

        join_all(start_threads(worker, [(i,) for i in range(n_threads)]))
        assert Counter(key for key, _ in computations) == Counter(keys)
        for key in keys:
            values = {seen[i][key] for i in range(n_threads)}
            assert values == {store.read(key).result}
        assert not any(store.is_locked(key) for key in keys)

    @pytest.mark.slow
    def test_processes(
        self, backend: str, database_url: str, namespace: str, tmp_path: Path
    ) -> None:
        """4 spawned processes, each with its own Database on one database, run the compute-once
        block over the same 500 keys in different orders: exactly 500 computations in total,
        and all processes read the same value per key."""
        n_processes, keys = 4, [f"key-{i:04d}" for i in range(500)]
        start = spawn.Event()
        processes = [
            spawn.Process(
                target=lock_workers.compute_once,
                args=(database_url, namespace, keys, index, str(tmp_path), start),
            )
            for index in range(n_processes)
        ]
        for process in processes:
            process.start()
        start.set()
        try:
            for process in processes:
                process.join(PROCESS_TIMEOUT)
                assert process.exitcode == 0, f"worker exit code {process.exitcode}"
        finally:
            for process in processes:
                if process.is_alive():
                    process.kill()
                    process.join()

        computed: list[tuple[str, str]] = []
        for index in range(n_processes):
            text = lock_workers.computed_file(tmp_path, index).read_text(encoding="utf-8")
            computed += [tuple(line.split("\t")) for line in text.splitlines()]  # type: ignore[misc]
        assert len(computed) == len(keys)
        assert Counter(key for key, _ in computed) == Counter(keys)
        expected = dict(computed)
        for index in range(n_processes):
            seen = json.loads(lock_workers.seen_file(tmp_path, index).read_text(encoding="utf-8"))
            assert seen == expected
        store = ResultStore(result_storage=Database(database_url), namespace=namespace)
        try:
            assert {key: store.read(key).result for key in keys} == expected
            assert store.stats().locks_held == 0
        finally:
            store.result_storage.close()


# -- crash recovery --------------------------------------------------------------------------


class TestCrashRecovery:
    def test_killed_holder_frees_its_key_within_one_lease(
        self, database: Database, database_url: str, namespace: str, tmp_path: Path
    ) -> None:
        """A process holding a SERIALIZABLE transaction (hold_timeout=1.5, renewed while alive)
        is killed with SIGKILL. Right after, another holder cannot take the key before the dead
        holder's last lease ends (by the database clock); a blocking acquire then succeeds, not
        earlier than that lease end; and a transaction on the key finds it uncomputed."""
        store = ResultStore(result_storage=database, namespace=namespace)
        manager = store.lock_manager
        assert isinstance(manager, SQLLockManager)
        ready = spawn.Event()
        holder_path = tmp_path / "holder.txt"
        process = spawn.Process(
            target=lock_workers.crash_holder,
            args=(database_url, namespace, "crash-key", 1.5, str(holder_path), ready),
        )
        process.start()
        try:
            assert ready.wait(JOIN_TIMEOUT), "the worker never took the lock"
            dead_holder = holder_path.read_text(encoding="utf-8")
            assert store.is_lock_holder("crash-key", dead_holder)
        finally:
            process.kill()
            process.join(JOIN_TIMEOUT)
        assert process.exitcode is not None
        assert process.exitcode < 0  # killed by a signal

        # The dead process can no longer renew: its lease end is now fixed.
        row = database.fetchone(_lock_row, {"ns": namespace, "key": "crash-key"})
        assert row is not None
        assert row[0] == dead_holder
        lease_end = float(row[1])

        got_early = store.acquire_lock("crash-key", holder="rescuer", timeout=0)
        checked_at = database.now()
        # Taking the key before the dead holder's lease ends would be a violation. Judged by the
        # database clock, so a machine that stalled until after the lease cannot fail the test.
        assert not got_early or checked_at >= lease_end

        assert store.acquire_lock("crash-key", holder="rescuer", timeout=10)
        assert database.now() >= lease_end
        assert store.is_lock_holder("crash-key", "rescuer")
        store.release_lock("crash-key", holder="rescuer")

        with transaction("crash-key", store, isolation_level=SERIALIZABLE) as txn:
            assert not txn.is_committed()
            txn.stage("recomputed")
        assert store.read("crash-key").result == "recomputed"
        assert not store.is_locked("crash-key")


class TestStaleHolder:
    def test_a_stopped_holder_never_overwrites_newer_work(
        self, database: Database, database_url: str, namespace: str, tmp_path: Path
    ) -> None:
        """Process A opens a SERIALIZABLE transaction (hold_timeout=1) and stages "A"; the test
        stops it with SIGSTOP until its lease has run out by the database clock; B takes the
        key and commits "B"; A is resumed and commits: A's commit raises LeaseLostError and
        the record stays "B"."""
        import os
        import signal

        store = ResultStore(result_storage=database, namespace=namespace)
        ready, go = spawn.Event(), spawn.Event()
        outcome_path = tmp_path / "outcome.txt"
        process = spawn.Process(
            target=lock_workers.stale_committer,
            args=(database_url, namespace, "k", 1.0, str(outcome_path), ready, go),
        )
        process.start()
        try:
            assert ready.wait(JOIN_TIMEOUT), "the worker never took the lock"
            assert process.pid is not None
            os.kill(process.pid, signal.SIGSTOP)
            # A stopped process renews nothing: wait (as B would) until its lease ends.
            assert store.wait_for_lock("k", timeout=JOIN_TIMEOUT)
            with transaction("k", store, isolation_level=SERIALIZABLE) as txn:
                assert not txn.is_committed()
                txn.stage("B")
            assert txn.is_committed()
            os.kill(process.pid, signal.SIGCONT)
            go.set()
            process.join(JOIN_TIMEOUT)
        finally:
            if process.is_alive():
                os.kill(process.pid, signal.SIGCONT)  # type: ignore[arg-type]
                process.kill()
                process.join(JOIN_TIMEOUT)
        assert process.exitcode == 0
        assert outcome_path.read_text(encoding="utf-8") == "LeaseLostError"
        assert store.read("k").result == "B"
        assert not store.is_locked("k")


# -- concurrent writers and releases ----------------------------------------------------------


def payload(key: str, seq: int) -> dict[str, Any]:
    """A value whose parts must all agree: a torn record would not."""
    return {"key": key, "seq": seq, "blob": (f"{key}:{seq};" * 200).encode()}


class TestConcurrentWriters:
    def test_no_torn_or_lost_records(self, store: ResultStore) -> None:
        """Writers on different keys each take their key's lock, write a new version and
        release it (half through persist_result_record(release_lock=True)), while readers read
        all keys: every read is a whole record of its key, a reader never sees a key's version
        go backwards, and each key ends with its last version."""
        writers, versions = 4, 25
        keys = [f"w{i}" for i in range(writers)]
        done = threading.Event()
        problems: list[str] = []

        def writer(key: str) -> None:
            holder = f"writer-{key}"
            for seq in range(versions):
                assert store.acquire_lock(key, holder=holder, timeout=JOIN_TIMEOUT)
                if seq % 2:
                    record = store.create_result_record(payload(key, seq), key=key)
                    store.persist_result_record(record, holder=holder, release_lock=True)
                else:
                    store.write(payload(key, seq), key=key, holder=holder)
                    store.release_lock(key, holder=holder)

        def reader(index: int) -> None:
            last = dict.fromkeys(keys, -1)
            rng = random.Random(index)
            while not done.is_set():
                key = rng.choice(keys)
                if not store.exists(key):
                    continue
                value = store.read(key).result
                if value != payload(key, value["seq"]):
                    problems.append(f"torn record under {key}: seq {value['seq']}")
                if value["seq"] < last[key]:
                    problems.append(f"{key} went back from {last[key]} to {value['seq']}")
                last[key] = value["seq"]

        readers = start_threads(reader, [(i,) for i in range(2)])
        join_all(start_threads(writer, [(key,) for key in keys]))
        done.set()
        join_all(readers)
        assert problems == []
        for key in keys:
            assert store.read(key).result == payload(key, versions - 1)
        assert store.stats().records == writers
        assert store.stats().locks_held == 0

    def test_racing_wrong_holder_releases_never_free_the_lock(self, store: ResultStore) -> None:
        """While the owner holds a key (and keeps renewing and re-acquiring it), threads racing
        to release it as other holders all get LockNotHeldError, and the owner still holds the
        key at the end."""
        manager = store.lock_manager
        assert isinstance(manager, SQLLockManager)
        assert store.acquire_lock("k", holder="owner")
        outcomes: list[str] = []
        barrier = threading.Barrier(7)

        def intruder(index: int) -> None:
            barrier.wait(JOIN_TIMEOUT)
            for _ in range(30):
                try:
                    store.release_lock("k", holder=f"intruder-{index}")
                    outcomes.append("released")
                except LockNotHeldError:
                    outcomes.append("refused")

        def owner() -> None:
            barrier.wait(JOIN_TIMEOUT)
            for i in range(30):
                if i % 2:
                    assert store.renew_lock("k", holder="owner")
                else:
                    assert store.acquire_lock("k", holder="owner", timeout=0)

        join_all(start_threads(intruder, [(i,) for i in range(6)]) + start_threads(owner, [()]))
        assert outcomes == ["refused"] * 180
        assert manager.lock_holder("k") == "owner"


# -- transaction trees -----------------------------------------------------------------------


@dataclass
class Node:
    """One transaction of a generated tree, and what its body does."""

    mode: CommitMode | None
    level: IsolationLevel | None
    stage: bool
    action: str  # after the children: "exit", "raise", "rollback" or "commit"
    catch: bool  # whether the body catches a child's failure and goes on
    children: list[Node] = field(default_factory=list)


class Recorded(Transaction):
    """A Transaction that remembers every state it was given."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "state":
            self.__dict__.setdefault("history", []).append(value)
        super().__setattr__(name, value)


@dataclass
class Run:
    """What happened to one node's transaction."""

    node: Node
    path: str
    parent: str | None
    key: str
    txn: Recorded | None = None
    failed: bool = False  # its body raised or rolled back on purpose
    commits: int = 0
    rollbacks: int = 0


class TreeFailureError(Exception):
    """Raised by a body whose action is "raise"."""


def trees() -> st.SearchStrategy[Node]:
    modes = st.sampled_from([None, CommitMode.LAZY, CommitMode.EAGER, CommitMode.OFF])
    levels = st.sampled_from([None, IsolationLevel.READ_COMMITTED, SERIALIZABLE])
    actions = st.sampled_from(["exit", "exit", "raise", "rollback", "commit"])

    def node(children: st.SearchStrategy[list[Node]]) -> st.SearchStrategy[Node]:
        return st.builds(
            Node,
            mode=modes,
            level=levels,
            stage=st.booleans(),
            action=actions,
            catch=st.booleans(),
            children=children,
        )

    return st.recursive(
        node(st.just([])), lambda kids: node(st.lists(kids, max_size=3)), max_leaves=7
    )


def run_tree(root: Node, store: ResultStore, prefix: str) -> dict[str, Run]:
    runs: dict[str, Run] = {}

    def run(node: Node, path: str, parent: str | None) -> None:
        info = runs[path] = Run(node, path, parent, key=f"{prefix}/{path}")

        def on_commit(txn: Transaction) -> None:
            info.commits += 1

        def on_rollback(txn: Transaction) -> None:
            info.rollbacks += 1

        with Recorded(
            key=info.key, store=store, commit_mode=node.mode, isolation_level=node.level
        ) as txn:
            info.txn = txn
            if node.stage:
                txn.stage(path, on_commit_hooks=[on_commit], on_rollback_hooks=[on_rollback])
            for index, child in enumerate(node.children):
                try:
                    run(child, f"{path}.{index}", path)
                except TreeFailureError:
                    if not node.catch:
                        raise
            if node.action == "raise":
                info.failed = True
                raise TreeFailureError(path)
            if node.action == "rollback":
                info.failed = True
                txn.rollback()
            elif node.action == "commit":
                txn.commit()

    with contextlib.suppress(TreeFailureError):
        run(root, "0", None)
    return runs


TERMINAL = {TransactionState.COMMITTED, TransactionState.ROLLED_BACK}


class TestTransactionTrees:
    @settings(max_examples=modest(40))
    @given(tree=trees())
    def test_transaction_tree_invariants(self, store: ResultStore, tree: Node) -> None:
        """Random trees of nested transactions (random commit modes, isolation levels,
        stages, failures and caught failures): a committed transaction never rolls back and a
        rolled-back one never commits; every transaction ends committed or rolled back; a
        failure rolls back the transaction and all its ancestors; each hook runs at most once,
        the commit hook exactly for committed and the rollback hook exactly for rolled-back
        staged transactions; a record exists exactly for committed transactions; no lock is
        held once the outermost transaction has exited."""
        runs = run_tree(tree, store, uuid.uuid4().hex)
        entered = {path: info for path, info in runs.items() if info.txn is not None}
        for path, info in entered.items():
            txn = info.txn
            assert txn is not None
            terminal = [s for s in txn.__dict__["history"] if s in TERMINAL]
            assert len(set(terminal)) <= 1, f"{path} went {terminal}"
            assert txn.state in TERMINAL, f"{path} ended {txn.state.name}"
            committed = txn.state is TransactionState.COMMITTED
            assert info.commits == (1 if info.node.stage and committed else 0), path
            assert info.rollbacks == (1 if info.node.stage and not committed else 0), path
            assert store.exists(info.key) is committed, path
            if committed:
                assert store.read(info.key).result == (path if info.node.stage else None)
            assert not store.is_locked(info.key), f"{path} still locked"
        for info in entered.values():
            if not info.failed:
                continue
            ancestor: str | None = info.path
            while ancestor is not None:
                txn = runs[ancestor].txn
                assert txn is not None
                assert txn.is_rolled_back(), f"{ancestor} not rolled back after {info.path}"
                ancestor = runs[ancestor].parent
