"""A stateful Hypothesis test: the result store behaves like a dictionary with expiry and locks.

:class:`ResultStoreMachine` drives two :class:`~sqlresults.results.ResultStore` objects that share
one database and one namespace (each with its own in-memory LRU, as two processes would have)
and compares every answer with a plain model:

- ``records``: key -> (value, expires | None, payload size);
- ``locks``: key -> (holder, lease end), one row per key as the lock table keeps it;
- ``granted``: the (key, holder) pairs whose lock this process acquired and has not released
  (the fence book): such a holder's writes are fenced, allowed only while the lock row is still
  its own (expired or not), and refused with LeaseLostError once it was re-taken or swept.

Time is the ``clock`` fixture (conftest's ``FakeClock``): only the ``advance_clock`` rule moves
it, and it decides expiry on both backends (``Database(clock=...)``). The boundary is exact: a
record is expired, and a lease has ended, when ``expires <= now``. Times move in quarter seconds,
so every instant is exactly representable as a float, in Python and in the database alike.

Each run uses a namespace of its own, so PostgreSQL runs (one shared database) never see each
other's rows. The pattern is zarr's ``ZarrStoreStateMachine``: the machine takes the store's
database in ``__init__`` and the test runs it with ``run_state_machine_as_test`` per backend.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Protocol

import pytest
from hypothesis import note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from sqlresults.database import Database
from sqlresults.errors import (
    InvalidArgumentError,
    LeaseLostError,
    LockHeldByOtherError,
    LockNotHeldError,
    RecordNotFoundError,
)
from sqlresults.results import ResultStore
from sqlresults.serializers import JSONSerializer

# A small pool, so that rules keep hitting the same keys: plain, nested with '/', non-ASCII
# (Cyrillic, CJK, an emoji outside the BMP), with a space and a dot, and two keys that differ
# only in case and in their last path segment.
KEYS = ["a", "A", "a/b", "a/b/c", "ключ", "日本/語", "🎉 party.v1"]
HOLDERS = ["h1", "h2"]

# Quarter seconds: exactly representable as floats next to an epoch of 1.8e9 seconds.
_QUARTER = 0.25


def _quarters(low: int, high: int) -> st.SearchStrategy[float]:
    return st.integers(min_value=low, max_value=high).map(lambda n: n * _QUARTER)


# JSON data the JSON serializer gives back equal (orjson's limits: 64-bit ints, finite floats,
# no lone surrogates; no tuples).
_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=8)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            _text.filter(lambda k: k not in {"__class__", "__exc_type__"}), children, max_size=3
        )
    ),
    max_leaves=6,
)

# (kind, seconds from now): None never expires; "delta" passes a timedelta, "utc" and "offset"
# an aware datetime (in UTC and in UTC+05:30). Zero and negative offsets make records that are
# expired from the moment they are written.
expirations = st.none() | st.tuples(st.sampled_from(["delta", "utc", "offset"]), _quarters(-20, 80))
hold_timeouts = st.sampled_from([0.25, 1.0, 5.0, 10.0, 30.0])


class Clock(Protocol):
    """The fake clock of conftest: ``now`` in seconds, moved by ``advance``."""

    now: float

    def __call__(self) -> float: ...

    def advance(self, seconds: float) -> None: ...


@dataclass
class ModelRecord:
    """What the model knows about one stored record."""

    value: Any
    expires: float | None
    size: int


@dataclass
class ModelLock:
    """One row of the lock table: who took the lock last, and when the lease ends."""

    holder: str
    lease_end: float


class ResultStoreMachine(RuleBasedStateMachine):
    """Compares two stores on one database and namespace with a dictionary model."""

    def __init__(self, database: Database, clock: Clock) -> None:
        super().__init__()
        self.clock = clock
        self.namespace = f"sm-{uuid.uuid4().hex[:16]}"
        self.serializer = JSONSerializer()
        self.stores = [
            ResultStore(result_storage=database, namespace=self.namespace, serializer="json")
            for _ in range(2)
        ]
        self.records: dict[str, ModelRecord] = {}
        self.locks: dict[str, ModelLock] = {}
        self.granted: set[tuple[str, str]] = set()
        note(f"namespace={self.namespace!r}, start={clock.now}")

    # -- model helpers -----------------------------------------------------------------------

    @property
    def now(self) -> float:
        return self.clock.now

    def is_live(self, record: ModelRecord) -> bool:
        return record.expires is None or record.expires > self.now

    def lock_holder(self, key: str) -> str | None:
        """The holder of the unexpired lock on ``key``, or None when it is free."""
        lock = self.locks.get(key)
        return lock.holder if lock is not None and lock.lease_end > self.now else None

    def held_by_other(self, key: str, holder: str) -> bool:
        return self.lock_holder(key) not in (None, holder)

    def live_keys(self) -> list[str]:
        return sorted(key for key, record in self.records.items() if self.is_live(record))

    def to_expiration(self, expiration: tuple[str, float] | None) -> datetime | timedelta | None:
        if expiration is None:
            return None
        kind, seconds = expiration
        if kind == "delta":
            return timedelta(seconds=seconds)
        zone = UTC if kind == "utc" else timezone(timedelta(hours=5, minutes=30))
        return datetime.fromtimestamp(self.now + seconds, zone)

    # -- records -----------------------------------------------------------------------------

    @initialize(
        contents=st.dictionaries(
            st.sampled_from(KEYS), st.tuples(json_values, expirations), min_size=1, max_size=5
        ),
        locks=st.dictionaries(st.sampled_from(KEYS), st.sampled_from(HOLDERS), max_size=2),
    )
    def populate(
        self, contents: dict[str, tuple[Any, tuple[str, float] | None]], locks: dict[str, str]
    ) -> None:
        """Start from a few records (some expired already) and a few locks with leases that
        run out within the first steps, so that reads, sweeps and lock rules find something."""
        for key, (value, expiration) in contents.items():
            self.write(0, key, value, expiration, "h1")
        for key, holder in locks.items():
            self.acquire_lock(key, holder, 10.0)

    @rule(
        store=st.sampled_from([0, 1]),
        key=st.sampled_from(KEYS),
        value=json_values,
        expiration=expirations,
        holder=st.sampled_from(HOLDERS),
    )
    def write(
        self,
        store: int,
        key: str,
        value: Any,
        expiration: tuple[str, float] | None,
        holder: str,
    ) -> None:
        """A write replaces the record, unless another holder has an unexpired lock, or the
        writer took the lock here and has lost it since (re-taken or swept: fenced)."""
        expires = None if expiration is None else self.now + expiration[1]
        note(f"write store={store} key={key!r} holder={holder} expires={expires} now={self.now}")
        lock = self.locks.get(key)
        if (key, holder) in self.granted and (lock is None or lock.holder != holder):
            with pytest.raises(LeaseLostError, match="was lost"):
                self.stores[store].write(value, key, self.to_expiration(expiration), holder)
            self.granted.discard((key, holder))
            self.read(1 - store, key, include_expired=True)  # the record is unchanged
            return
        if self.held_by_other(key, holder):
            with pytest.raises(LockHeldByOtherError, match="locked by another holder"):
                self.stores[store].write(value, key, self.to_expiration(expiration), holder)
            self.read(1 - store, key, include_expired=True)  # the record is unchanged
            return
        self.stores[store].write(value, key, self.to_expiration(expiration), holder)
        size = len(self.serializer.dumps(value))
        self.records[key] = ModelRecord(value, expires, size)

    @rule(
        store=st.sampled_from([0, 1]),
        key=st.sampled_from(KEYS),
        include_expired=st.booleans(),
    )
    def read(self, store: int, key: str, include_expired: bool) -> None:
        """A read returns the live record (or, with include_expired, an unswept expired one),
        and raises RecordNotFoundError otherwise, saying whether the record has expired."""
        # A reader waits while another holder has the lock (a computation is in progress), and
        # the fake clock never runs the lease out, so read as the holder if there is one.
        holder = self.lock_holder(key) or "h1"
        record = self.records.get(key)
        note(f"read store={store} key={key!r} include_expired={include_expired} now={self.now}")
        if record is None or not (include_expired or self.is_live(record)):
            with pytest.raises(RecordNotFoundError) as raised:
                self.stores[store].read(key, holder, include_expired=include_expired)
            assert isinstance(raised.value, KeyError)
            assert raised.value.expired is (record is not None)
            return
        result = self.stores[store].read(key, holder, include_expired=include_expired)
        assert result.result == record.value
        expected = None if record.expires is None else datetime.fromtimestamp(record.expires, UTC)
        assert result.metadata.expiration == expected
        assert result.metadata.storage_key == key

    @precondition(lambda self: self.records)
    @rule(store=st.sampled_from([0, 1]), include_expired=st.booleans(), data=st.data())
    def read_stored(self, store: int, include_expired: bool, data: st.DataObject) -> None:
        """Reads of keys the model holds (live or expired), which a key drawn from the whole
        pool would seldom hit."""
        key = data.draw(st.sampled_from(sorted(self.records)), label="key")
        self.read(store, key, include_expired)

    @rule(store=st.sampled_from([0, 1]), key=st.sampled_from(KEYS))
    def exists(self, store: int, key: str) -> None:
        """exists() is True exactly for live records."""
        record = self.records.get(key)
        assert self.stores[store].exists(key) is (record is not None and self.is_live(record))

    @rule(store=st.sampled_from([0, 1]), key=st.sampled_from(KEYS), holder=st.sampled_from(HOLDERS))
    def delete(self, store: int, key: str, holder: str) -> None:
        """delete() says whether a record (live or expired) was removed; another holder's
        unexpired lock refuses it and leaves the record alone, and so does the loss of the lock
        the deleting holder took here (fenced, like writes)."""
        note(f"delete store={store} key={key!r} holder={holder} now={self.now}")
        lock = self.locks.get(key)
        if (key, holder) in self.granted and (lock is None or lock.holder != holder):
            with pytest.raises(LeaseLostError, match="was lost"):
                self.stores[store].delete(key, holder)
            self.granted.discard((key, holder))
            self.read(1 - store, key, include_expired=True)  # the record is unchanged
            return
        if self.held_by_other(key, holder):
            with pytest.raises(LockHeldByOtherError):
                self.stores[store].delete(key, holder)
            self.read(1 - store, key, include_expired=True)  # the record is unchanged
            return
        assert self.stores[store].delete(key, holder) is (key in self.records)
        self.records.pop(key, None)

    @rule(prefix=st.sampled_from(["a", "a/", "日本/", "zz"]))
    def keys_with_prefix(self, prefix: str) -> None:
        """keys(prefix) lists the live keys that start with the prefix, and nothing else."""
        expected = [key for key in self.live_keys() if key.startswith(prefix)]
        assert sorted(self.stores[0].keys(prefix)) == expected

    @rule(store=st.sampled_from([0, 1]), batch_size=st.sampled_from([1, 2, 1000]))
    def sweep_expired(self, store: int, batch_size: int) -> None:
        """A sweep deletes exactly the expired records (and returns how many), and the lock rows
        whose lease has ended."""
        expired = [key for key, record in self.records.items() if not self.is_live(record)]
        note(f"sweep now={self.now} expecting {sorted(expired)}")
        assert self.stores[store].sweep_expired(batch_size=batch_size) == len(expired)
        for key in expired:
            del self.records[key]
        for key in [key for key, lock in self.locks.items() if lock.lease_end <= self.now]:
            del self.locks[key]

    @rule(seconds=_quarters(0, 120))
    def advance_clock(self, seconds: float) -> None:
        """Time passes (0 to 30 s)."""
        self.clock.advance(seconds)
        note(f"now={self.now}")

    # -- locks -------------------------------------------------------------------------------

    @rule(key=st.sampled_from(KEYS), holder=st.sampled_from(HOLDERS), hold=hold_timeouts)
    def acquire_lock(self, key: str, holder: str, hold: float) -> None:
        """With timeout=0, acquiring succeeds at once when the key is free, its lease has ended,
        or the caller already holds it (the lease then restarts), and fails at once otherwise."""
        expected = not self.held_by_other(key, holder)
        note(f"acquire key={key!r} holder={holder} hold={hold} now={self.now} -> {expected}")
        store = self.stores[0]
        assert store.acquire_lock(key, holder, timeout=0, hold_timeout=hold) is expected
        if expected:
            self.locks[key] = ModelLock(holder, self.now + hold)
            self.granted.add((key, holder))

    @rule(key=st.sampled_from(KEYS), holder=st.sampled_from(HOLDERS))
    def acquire_with_no_lease(self, key: str, holder: str) -> None:
        """A lease of zero seconds is bad input: refused before the database is touched, so
        the lock state stays as the model has it (the invariants check)."""
        note(f"acquire key={key!r} holder={holder} hold=0 -> InvalidArgumentError")
        with pytest.raises(InvalidArgumentError, match="hold_timeout"):
            self.stores[0].acquire_lock(key, holder, timeout=0, hold_timeout=0)

    @rule(key=st.sampled_from(KEYS), holder=st.sampled_from(HOLDERS))
    def release_lock(self, key: str, holder: str) -> None:
        """Releasing removes the caller's own lock row (even after its lease ended); releasing
        another holder's unexpired lock raises LockNotHeldError and leaves it; anything else is
        a no-op."""
        note(f"release key={key!r} holder={holder} now={self.now}")
        self.granted.discard((key, holder))  # released, or found not to be ours
        lock = self.locks.get(key)
        if lock is not None and lock.holder == holder:
            self.stores[1].release_lock(key, holder)
            del self.locks[key]
        elif self.held_by_other(key, holder):
            with pytest.raises(LockNotHeldError, match=f"No lock held by {holder}"):
                self.stores[1].release_lock(key, holder)
            assert self.stores[0].is_lock_holder(key, self.lock_holder(key))
        else:
            self.stores[1].release_lock(key, holder)

    @rule(key=st.sampled_from(KEYS), holder=st.sampled_from(HOLDERS), hold=hold_timeouts)
    def renew_lock(self, key: str, holder: str, hold: float) -> None:
        """Renewing extends the caller's own lock row (even one whose lease just ended, if nobody
        took it since) and returns True; without such a row it returns False."""
        lock = self.locks.get(key)
        expected = lock is not None and lock.holder == holder
        note(f"renew key={key!r} holder={holder} hold={hold} now={self.now} -> {expected}")
        assert self.stores[0].renew_lock(key, holder, hold_timeout=hold) is expected
        if expected:
            self.locks[key] = ModelLock(holder, self.now + hold)
        else:
            self.granted.discard((key, holder))  # found lost

    @rule(key=st.sampled_from(KEYS), holder=st.sampled_from(HOLDERS))
    def is_lock_holder(self, key: str, holder: str) -> None:
        """is_lock_holder() is True only for the holder of an unexpired lease."""
        assert self.stores[1].is_lock_holder(key, holder) is (self.lock_holder(key) == holder)

    # -- invariants --------------------------------------------------------------------------

    @invariant()
    def keys_are_the_live_records(self) -> None:
        """keys() lists exactly the live records."""
        assert sorted(self.stores[0].keys()) == self.live_keys()

    @invariant()
    def stats_match(self) -> None:
        """stats() counts every stored record, their payload bytes, the expired ones not swept
        yet, and the unexpired locks."""
        stats = self.stores[1].stats()
        live = [record for record in self.records.values() if self.is_live(record)]
        assert stats.records == len(self.records)
        assert stats.expired == len(self.records) - len(live)
        assert stats.payload_bytes == sum(record.size for record in self.records.values())
        assert stats.locks_held == sum(lock.lease_end > self.now for lock in self.locks.values())

    @invariant()
    def locks_match(self) -> None:
        """is_locked() is True exactly for the keys with an unexpired lease."""
        for key in KEYS:
            assert self.stores[0].is_locked(key) is (self.lock_holder(key) is not None), key


class TestResultStoreMachine:
    """The store agrees with the dictionary model on every backend."""

    def test_store_agrees_with_model(self, clocked_database: Database, clock: Clock) -> None:
        """Any sequence of writes, reads, deletes, sweeps, clock moves and lock operations
        leaves the store answering exactly as the model does."""
        run_state_machine_as_test(
            lambda: ResultStoreMachine(clocked_database, clock),
            settings=settings(max_examples=150, stateful_step_count=50),
        )
