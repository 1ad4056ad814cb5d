"""Task runs on a dask.distributed cluster: :class:`DaskTaskRunner` (the ``dask`` extra).

Import it from :mod:`sqlresults.task_runners`, which loads this module (and dask) only when
the name is asked for, so ``import sqlresults`` never imports dask::

    from sqlresults.task_runners import DaskTaskRunner

    @flow(result_storage="postgresql+psycopg://ci@db/results",
          task_runner=DaskTaskRunner(address="tcp://scheduler:8786"))
    def backfill(days: list[str]) -> list[bytes]:
        return featurize.map(days).result()

dask.distributed schedules; the result database coordinates. How a run travels:

- **The cache decides first.** ``Task.submit()`` answers a key already committed on the
  submitting side (:mod:`sqlresults.tasks`), so a cached run never reaches the cluster.
- **The call** (the task, its parameters, the flow's context with its
  :class:`~sqlresults.results.ResultStore`) is cloudpickled on the submitting side and run on a
  worker by the same engine as on a thread, inside the submitter's
  :class:`~sqlresults.settings.Settings` (:func:`~sqlresults.settings.use_settings`): the
  database URL, namespace, serializer, signing key and lease length travel with the run, not
  through the worker's environment. They travel inside the pickled call only: a Dask key is
  ``<run name>-<run id>`` and no log line of this module shows a URL.
- **Futures passed as arguments become Dask dependencies.** While the call is pickled, each
  future of this runner inside it is replaced by a placeholder and its Dask future is handed
  to ``Client.submit`` as an argument; Dask starts the run once those are done and moves
  their replies worker to worker; the worker puts finished futures back in place of the
  placeholders, and the engine resolves them as it does on a thread (a failed upstream fails
  the run without running it). Other futures are waited for first, as the process pool does.
- **Replies.** A worker answers with the run's pickled final state. A persisted result whose
  pickled state is larger than ``large_result_bytes`` is not sent through Dask: the reply
  names its record, and the receiving side (the flow, or a downstream worker) reads it from
  the database. Unpersisted results always travel through Dask.
- **SQLite** files cannot be shared between machines: a call that carries a SQLite database
  is refused (:class:`~sqlresults.errors.ConfigurationError`, raised by ``submit``) unless the
  cluster is a ``LocalCluster`` this runner started, or its scheduler and every worker are on
  this machine. A relative SQLite path is sent as the absolute path the submitter means.
- **Faults.** A worker that dies mid-run leaves its key's lock to run out its lease
  (``SQLRESULTS_LOCK_HOLD_TIMEOUT``); Dask runs the task again on another worker, which
  waits for the lease, then computes and commits once. A run whose workers keep dying gets a
  ``Crashed`` state. A scheduler that cannot be reached, or goes away, gives
  :class:`~sqlresults.errors.ClusterUnavailableError` naming its address: raised when the
  runner is entered, or held by the ``Failed`` state of every unfinished run.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import io
import ipaddress
import logging
import os
import pickle
import queue
import socket
import threading
import time
import traceback
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

try:
    import distributed
except ImportError as exc:  # pragma: no cover - the dev extra installs dask
    raise ImportError(
        'DaskTaskRunner needs dask.distributed: pip install "sqlresults[dask]"'
    ) from exc
import cloudpickle

from sqlresults.database import Database
from sqlresults.errors import (
    ClusterUnavailableError,
    ConfigurationError,
    CrashedRun,
    InvalidArgumentError,
    SerializationError,
)
from sqlresults.futures import TaskRunFuture
from sqlresults.records import ResultRecord
from sqlresults.settings import Settings, get_settings, use_settings
from sqlresults.states import Cancelled, Failed, State
from sqlresults.task_runners import (
    Call,
    TaskRunner,
    _failed,
    _RemoteTraceback,
    _run_call,
    _Submission,
)

__all__ = ["DEFAULT_LARGE_RESULT_BYTES", "DaskTaskRunner"]

logger = logging.getLogger("sqlresults.task_runners")

DEFAULT_LARGE_RESULT_BYTES = 1 << 20
"""Pickled states larger than this (1 MiB) come back through the database when persisted."""

# A worker's reply: the pickled (state, remote traceback, store) and, when the result travels
# through the database, the record's key (the state then has no data; the store says where).
_Reply = tuple[bytes, str | None]

# The upstream replies of the call being unpickled on this worker thread.
_unpickling = threading.local()

# How long closing the client may take, in seconds, when the scheduler is gone.
_CLOSE_TIMEOUT = 10.0
# How long the runner trusts what it learnt of the cluster's hosts, in seconds.
_HOSTS_REFRESH = 2.0


# -- the worker's side -----------------------------------------------------------------------


def _run_on_worker(
    settings_payload: bytes, call_payload: bytes, upstream: list[_Reply], large: int
) -> _Reply:
    """Run one call on a Dask worker; never raises (every failure becomes a state).

    Args:
        settings_payload: The submitter's pickled :class:`Settings`.
        call_payload: The pickled call; its upstream futures are placeholders.
        upstream: The replies of the runs those placeholders stand for (Dask resolved them).
        large: ``large_result_bytes`` of the runner.

    Returns:
        The reply (see :func:`_reply`).
    """
    try:
        settings = cloudpickle.loads(settings_payload)
    except BaseException as exc:
        return _reply(_unloadable("its settings", exc), None, large)
    with use_settings(settings):
        _unpickling.replies = upstream
        try:
            call = cloudpickle.loads(call_payload)
        except BaseException as exc:
            return _reply(_unloadable("the call", exc), None, large)
        finally:
            _unpickling.replies = None
        return _reply(_run_call(call), call, large)


def _unloadable(what: str, exc: BaseException) -> State[Any]:
    message = f"The Dask worker could not unpickle {what}: {exc!r}"
    return Failed(SerializationError(message), message=message)


def _upstream_future(index: int, task_run_id: uuid.UUID, name: str) -> TaskRunFuture[Any]:
    """Unpickle a placeholder: the finished future of the run whose reply Dask delivered."""
    replies: list[_Reply] = _unpickling.replies
    state = _state_from_reply(replies[index])
    return TaskRunFuture.completed(state.copy(task_run_id=task_run_id), name=name)


def _reply(state: State[Any], call: object, large: int) -> _Reply:
    """Pack a run's final state for the trip back (see the module docstring)."""
    data = state.data
    error = data if isinstance(data, BaseException) else None
    remote = "".join(traceback.format_exception(error)) if error is not None else None
    problem: Exception | None = None
    try:
        payload: bytes | None = cloudpickle.dumps((state, remote, None))
    except Exception as exc:
        payload, problem = None, exc
    if payload is None or len(payload) > large:
        stored = _stored_reply(state, call)
        if stored is not None:
            return stored
    if payload is None:
        message = (
            f"The state of the run ({state.name}) could not be pickled to send it back from "
            f"the Dask worker: {problem!r}"
        )
        payload = cloudpickle.dumps(
            (Failed(SerializationError(message), message=message), remote, None)
        )
    return payload, None


def _stored_reply(state: State[Any], call: object) -> _Reply | None:
    """A reply naming the run's record instead of carrying it, when the record is persisted
    and the call says which store holds it."""
    record = state.data
    if not isinstance(record, ResultRecord) or not record.is_persisted:
        return None
    key = record.metadata.storage_key
    where = getattr(call, "result_store", None)
    if key is None or where is None:
        return None
    try:
        store = where()
        payload = cloudpickle.dumps((state.copy(data=None), None, store))
    except Exception:
        logger.warning("A large result could not be sent by reference", exc_info=True)
        return None
    return payload, key


def _state_from_reply(reply: _Reply) -> State[Any]:
    """Unpack a reply into the run's final state; a result sent by reference is read from
    its store. Never raises: a reply that cannot be read gives a ``Failed`` state."""
    payload, key = reply
    try:
        state, remote, store = cloudpickle.loads(payload)
    except Exception as exc:
        message = f"The state sent back by the Dask worker could not be unpickled: {exc!r}"
        failure = SerializationError(message)
        failure.__cause__ = exc
        return Failed(failure, message=message)
    if key is not None:
        try:
            record = store.read(key, include_expired=True)
        except Exception as exc:
            message = (
                f"The run's result was written under key {key!r}, but reading it back from "
                f"the result database failed: {exc!r}"
            )
            return Failed(exc, message=message, task_run_id=state.task_run_id)
        state = state.copy(data=record)
    if remote is not None and isinstance(state.data, BaseException):
        state.data.__cause__ = _RemoteTraceback(remote)
    assert isinstance(state, State)
    return state


# -- where the cluster is --------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _this_machine() -> frozenset[str]:
    """The names and addresses of this machine."""
    names = {"localhost", socket.gethostname(), socket.getfqdn()}
    for name in list(names):
        try:
            names.update(str(info[4][0]) for info in socket.getaddrinfo(name, None))
        except OSError:
            continue
    return frozenset(names)


def _on_this_machine(address: str) -> bool:
    """Whether a Dask address (``tcp://host:port``, ``inproc://…``) is on this machine."""
    if address.startswith("inproc://"):
        return True
    try:
        host = distributed.comm.get_address_host(address)
    except Exception:
        return False
    try:
        if ipaddress.ip_address(host).is_loopback:
            return True
    except ValueError:
        pass
    return host in _this_machine()


# -- pickling a call -------------------------------------------------------------------------


class _CallPickler(cloudpickle.Pickler):  # type: ignore[misc]
    """Pickles a call for a worker: futures of the runner become placeholders (and Dask
    dependencies), databases are checked against the cluster."""

    def __init__(self, file: io.BytesIO, runner: DaskTaskRunner) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._runner = runner
        self.upstream: dict[TaskRunFuture[Any], int] = {}
        self.dependencies: list[distributed.Future] = []

    def reducer_override(self, obj: Any) -> Any:
        kind = type(obj)
        if kind is TaskRunFuture:
            dask_future = self._runner._dask_future(obj)
            if dask_future is None:
                return NotImplemented  # a finished future pickles; an unfinished one refuses
            return _upstream_future, (
                self.depend(obj, dask_future),
                obj.task_run_id,
                obj.task_run.name,
            )
        if kind is Database:
            return self._runner._reduce_database(obj)
        return super().reducer_override(obj)

    def depend(self, future: TaskRunFuture[Any], dask_future: distributed.Future) -> int:
        """The index of ``future`` among the call's Dask dependencies (added if new)."""
        index = self.upstream.get(future)
        if index is None:
            index = self.upstream[future] = len(self.dependencies)
            self.dependencies.append(dask_future)
        return index


# -- the runner ------------------------------------------------------------------------------


class _DaskSubmission(_Submission):
    """A submission and every upstream future it names (Dask's or not)."""

    def __init__(
        self,
        call: Call,
        future: Any,
        task_run_id: uuid.UUID,
        name: str | None,
        upstream: tuple[TaskRunFuture[Any], ...],
        foreign: tuple[TaskRunFuture[Any], ...],
        settings: Settings,
    ) -> None:
        super().__init__(call, future, task_run_id, name, foreign)
        self.upstream = upstream
        self.settings = settings
        self.key = f"{name or 'task-run'}-{task_run_id.hex}"


class _ClusterLink:
    """An entered runner's link to its cluster: the :class:`distributed.Client` and, when the
    runner has no address, the cluster it started (closed with the link); what the scheduler
    says about the machines it spans.

    Args:
        runner: The runner whose options say where the cluster is or how to start it.

    Raises:
        ClusterUnavailableError: The scheduler cannot be reached.
        ConfigurationError: ``cluster_class`` names something that cannot be imported.
    """

    def __init__(self, runner: DaskTaskRunner) -> None:
        self.address = runner.address
        self.cluster: Any = None
        self._hosts_seen: tuple[float, set[str]] | None = None
        self._stack = contextlib.ExitStack()
        try:
            target: Any = self.address
            if not target:
                cluster_class = _cluster_class(runner.cluster_class)
                self.cluster = self._stack.enter_context(cluster_class(**runner.cluster_kwargs))
                if runner.adapt_kwargs:
                    self.cluster.adapt(**runner.adapt_kwargs)
                target = self.cluster
            try:
                self.client: distributed.Client = distributed.Client(target, **runner.client_kwargs)
            except (OSError, TimeoutError) as exc:
                raise ClusterUnavailableError(
                    f"Cannot reach the Dask scheduler at {self.describe()}: {exc}"
                ) from exc
        except BaseException:
            self._stack.close()
            raise

    def describe(self) -> str:
        """The scheduler's address, for messages (never carries a secret)."""
        return _describe_scheduler(self.address, self.cluster)

    def scheduler_info(self) -> dict[str, Any]:
        """What the scheduler says of itself and its workers.

        Raises:
            ClusterUnavailableError: The scheduler cannot be reached (dask raises an
                ``OSError``, e.g. ``CommClosedError``, once it is gone).
        """
        try:
            info: dict[str, Any] = self.client.scheduler_info()
        except (OSError, TimeoutError) as exc:
            raise ClusterUnavailableError(
                f"Cannot reach the Dask scheduler at {self.describe()}: {exc}"
            ) from exc
        return info

    def worker_threads(self) -> int:
        """The worker threads of the cluster now.

        Raises:
            ClusterUnavailableError: The scheduler cannot be reached.
        """
        workers = self.scheduler_info().get("workers", {})
        return sum(int(info.get("nthreads", 0)) for info in workers.values())

    def remote_hosts(self) -> set[str]:
        """The hosts of the scheduler and workers that are not this machine (none for a
        LocalCluster the runner started). Asking the scheduler is a round trip, so the
        answer is kept for ``_HOSTS_REFRESH`` seconds (Dask refreshes its own view of the
        workers as often)."""
        if isinstance(self.cluster, distributed.LocalCluster):
            return set()
        now = time.monotonic()
        known = self._hosts_seen
        if known is not None and now - known[0] < _HOSTS_REFRESH:
            return known[1]
        info = self.scheduler_info()
        addresses = [str(info.get("address") or self.describe())]
        addresses.extend(str(address) for address in info.get("workers", {}))
        remote = set()
        for address in addresses:
            if not _on_this_machine(address):
                try:
                    remote.add(distributed.comm.get_address_host(address))
                except Exception:
                    remote.add(address)
        self._hosts_seen = (now, remote)
        return remote

    def close(self) -> None:
        """Close the client, then the cluster the runner started (if any); never raises for a
        scheduler that is already gone."""
        try:
            with contextlib.suppress(Exception):
                self.client.close(timeout=_CLOSE_TIMEOUT)
        finally:
            self._stack.close()


def _describe_scheduler(address: str | None, cluster: Any) -> str:
    if address:
        return address
    scheduler_address = getattr(cluster, "scheduler_address", None)
    return str(scheduler_address) if scheduler_address else "the runner's own cluster"


def _cluster_class(cluster_class: str | Callable[..., Any] | None) -> Callable[..., Any]:
    """The cluster class a runner's ``cluster_class`` option names (default LocalCluster).

    Raises:
        ConfigurationError: A dotted name that cannot be imported.
    """
    if cluster_class is None:
        return distributed.LocalCluster  # type: ignore[no-any-return]
    if isinstance(cluster_class, str):
        import importlib

        module, _, name = cluster_class.rpartition(".")
        try:
            found: Callable[..., Any] = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError) as exc:
            raise ConfigurationError(
                f"cluster_class {cluster_class!r} cannot be imported: {exc}"
            ) from exc
        return found
    return cluster_class


class DaskTaskRunner(TaskRunner):
    """Runs task runs on a dask.distributed cluster (needs the ``dask`` extra).

    Entering the runner connects a :class:`distributed.Client` to the scheduler at
    ``address``, or, without one, starts a cluster of ``cluster_class`` (default
    :class:`distributed.LocalCluster`) for as long as the runner is entered (a flow's run).
    Futures it returns are :class:`~sqlresults.futures.TaskRunFuture` objects with the
    contract of the thread and process runners. See the module docstring for how runs,
    futures, settings and results travel.

    The option names are prefect-dask's.

    Args:
        address: The scheduler's address (``tcp://host:8786``) of a running cluster.
        cluster_class: The class (or its dotted name, ``"distributed.LocalCluster"``) of the
            cluster to start when there is no ``address``.
        cluster_kwargs: Keyword arguments of ``cluster_class``.
        client_kwargs: Keyword arguments of :class:`distributed.Client` (``timeout`` bounds
            the connection, in seconds; ``set_as_default`` is False unless given).
        adapt_kwargs: When given, ``cluster.adapt(**adapt_kwargs)`` makes a started cluster
            adaptive.
        large_result_bytes: A persisted result whose pickled state is larger than this many
            bytes comes back through the result database instead of Dask's messages
            (default 1 MiB).

    Raises:
        InvalidArgumentError: ``address`` with a cluster option; ``asynchronous`` in
            ``client_kwargs`` or ``cluster_kwargs``; a negative ``large_result_bytes``.
    """

    crosses_processes: ClassVar[bool] = True

    def __init__(
        self,
        address: str | None = None,
        cluster_class: str | Callable[..., Any] | None = None,
        cluster_kwargs: Mapping[str, Any] | None = None,
        client_kwargs: Mapping[str, Any] | None = None,
        adapt_kwargs: Mapping[str, Any] | None = None,
        *,
        large_result_bytes: int = DEFAULT_LARGE_RESULT_BYTES,
    ) -> None:
        if address and (cluster_class or cluster_kwargs or adapt_kwargs):
            raise InvalidArgumentError(
                "Cannot specify `address` and `cluster_class`/`cluster_kwargs`/`adapt_kwargs`: "
                "the cluster at the address is already running."
            )
        for label, options in (
            ("client_kwargs", client_kwargs),
            ("cluster_kwargs", cluster_kwargs),
        ):
            if options and "asynchronous" in options:
                raise InvalidArgumentError(
                    f"`{label}` cannot set `asynchronous`: the runner manages it."
                )
        if (
            isinstance(large_result_bytes, bool)
            or not isinstance(large_result_bytes, int)
            or large_result_bytes < 0
        ):
            raise InvalidArgumentError(
                f"large_result_bytes must be a non-negative integer, not {large_result_bytes!r}."
            )
        super().__init__(max_workers=1)
        self.address = address
        self.cluster_class = cluster_class
        self.cluster_kwargs: dict[str, Any] = dict(cluster_kwargs or {})
        self.client_kwargs: dict[str, Any] = dict(client_kwargs or {})
        self.client_kwargs.setdefault("set_as_default", False)
        self.adapt_kwargs: dict[str, Any] = dict(adapt_kwargs or {})
        self.large_result_bytes = large_result_bytes
        self._link: _ClusterLink | None = None
        # The client while entered (None otherwise), read by the collector thread too.
        self._client: distributed.Client | None = None
        self._lock = threading.Lock()
        self._futures: weakref.WeakKeyDictionary[TaskRunFuture[Any], distributed.Future] = (
            weakref.WeakKeyDictionary()
        )
        self._arrivals: queue.SimpleQueue[tuple[_DaskSubmission, distributed.Future] | None] = (
            queue.SimpleQueue()
        )
        self._collector: threading.Thread | None = None
        self._cancelling = False
        self._settings_payload: tuple[Settings, bytes] | None = None

    # -- configuration ---------------------------------------------------------------------

    def _configuration(self) -> tuple[Any, ...]:
        return (
            self.address,
            self.cluster_class,
            self.cluster_kwargs,
            self.client_kwargs,
            self.adapt_kwargs,
            self.large_result_bytes,
        )

    def duplicate(self) -> DaskTaskRunner:
        """A new, unentered runner with the same configuration (for a flow run)."""
        return _restore_runner(self._configuration())

    @property
    def max_workers(self) -> int:
        """The worker threads of the cluster now (0 when the runner is not entered).

        Raises:
            ClusterUnavailableError: The scheduler cannot be reached.
        """
        link = self._link
        return 0 if link is None else link.worker_threads()

    @property
    def client(self) -> distributed.Client:
        """The :class:`distributed.Client` of the entered runner.

        Raises:
            RuntimeError: The runner is not entered.
        """
        self._check_started()
        assert self._client is not None
        return self._client

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DaskTaskRunner):
            return NotImplemented
        return self._configuration() == other._configuration()

    def __hash__(self) -> int:
        return hash((type(self), self.address, self.large_result_bytes))

    def __reduce__(self) -> tuple[Any, ...]:
        return _restore_runner, (self._configuration(),)

    def __repr__(self) -> str:
        where = f"address={self.address!r}" if self.address else "a cluster of its own"
        return f"DaskTaskRunner({where})"

    # -- starting and stopping -------------------------------------------------------------

    def _describe_scheduler(self) -> str:
        link = self._link
        return _describe_scheduler(self.address, None) if link is None else link.describe()

    def _start(self) -> None:
        self._link = _ClusterLink(self)
        self._client = self._link.client
        self._cancelling = False
        self._collector = threading.Thread(
            target=self._collect, name="sqlresults-dask-collector", daemon=True
        )
        self._collector.start()

    def _stop(self, cancel: bool) -> None:
        client = self._client
        try:
            if cancel:
                self._cancelling = True
                self._cancel_unstarted()
                with self._lock:
                    running = list(self._futures.values())
                if running and client is not None:
                    with contextlib.suppress(Exception):
                        client.cancel(running)
            self._wait_for_pending()
        finally:
            self._arrivals.put(None)
            if self._collector is not None:
                self._collector.join()
            self._collector = None
            with self._lock:
                self._futures = weakref.WeakKeyDictionary()
            self._client = None
            link, self._link = self._link, None
            if link is not None:
                link.close()

    # -- submitting ------------------------------------------------------------------------

    def submit(
        self,
        call: Call,
        *,
        task_run_id: uuid.UUID,
        name: str | None = None,
        wait_for: Iterable[TaskRunFuture[Any]] = (),
    ) -> TaskRunFuture[Any]:
        """Run ``call`` on a Dask worker once every future in ``wait_for`` is final (see
        :meth:`TaskRunner.submit`).

        Futures of this runner in ``wait_for`` or inside the call become Dask dependencies;
        other unfinished ones are waited for here before the call is sent.

        Raises:
            RuntimeError: The runner is not entered.
            ConfigurationError: The call carries a SQLite database and the cluster spans
                machines (see the module docstring).
        """
        self._check_started()
        future: concurrent.futures.Future[State[Any]] = concurrent.futures.Future()
        upstream = tuple(dict.fromkeys(wait_for))
        foreign = tuple(f for f in upstream if self._dask_future(f) is None and not f.done())
        submission = _DaskSubmission(
            call, future, task_run_id, name, upstream, foreign, get_settings()
        )
        run_future: TaskRunFuture[Any] = TaskRunFuture(task_run_id, future, name=name)
        # Without foreign upstreams, _track sends the call from here, so a refused database
        # raises from submit; otherwise it is sent from the last upstream's done callback.
        self._track(
            submission,
            functools.partial(self._send, run_future=run_future, raise_refusal=not foreign),
        )
        return run_future

    def _send(
        self, submission: _DaskSubmission, *, run_future: TaskRunFuture[Any], raise_refusal: bool
    ) -> None:
        """Pickle the call and hand it to the scheduler."""
        if not submission.claim() or not submission.future.set_running_or_notify_cancel():
            return
        client = self._client
        if client is None or self._cancelling:
            submission.future.set_result(
                Cancelled(message="Task run was cancelled before it started.")
            )
            return
        try:
            call_payload, dependencies = self._pickle_call(submission)
        except ClusterUnavailableError as exc:  # asking where the workers are failed
            self._finish(submission, self._unreachable(exc))
            return
        except ConfigurationError as exc:
            submission.future.set_result(Failed(exc, message=str(exc)))
            if raise_refusal:
                raise
            return
        except Exception as exc:
            message = (
                f"Task run {submission.label} cannot be sent to the Dask cluster: its call "
                f"could not be pickled with cloudpickle: {exc!r}"
            )
            failure = SerializationError(message)
            failure.__cause__ = exc
            submission.future.set_result(Failed(failure, message=message))
            return
        if client.status != "running":
            self._finish(submission, self._unreachable(None))
            return
        try:
            dask_future = client.submit(
                _run_on_worker,
                self._pickled_settings(submission.settings),
                call_payload,
                dependencies,
                self.large_result_bytes,
                key=submission.key,
                pure=False,
            )
        except Exception as exc:
            self._finish(submission, self._unreachable(exc))
            return
        with self._lock:
            self._futures[run_future] = dask_future
        dask_future.add_done_callback(lambda done: self._arrivals.put((submission, done)))

    def _pickle_call(self, submission: _DaskSubmission) -> tuple[bytes, list[distributed.Future]]:
        buffer = io.BytesIO()
        pickler = _CallPickler(buffer, self)
        pickler.dump(submission.call)
        # wait_for futures of this runner that the call does not carry are dependencies too.
        for upstream in submission.upstream:
            dask_future = self._dask_future(upstream)
            if dask_future is not None:
                pickler.depend(upstream, dask_future)
        return buffer.getvalue(), pickler.dependencies

    def _pickled_settings(self, settings: Settings) -> bytes:
        cached = self._settings_payload
        if cached is not None and cached[0] is settings:
            return cached[1]
        payload: bytes = cloudpickle.dumps(settings)
        self._settings_payload = (settings, payload)
        return payload

    def _dask_future(self, future: TaskRunFuture[Any]) -> distributed.Future | None:
        with self._lock:
            return self._futures.get(future)

    def _reduce_database(self, database: Database) -> Any:
        """How a database in a call travels: refused when it is a SQLite file and the cluster
        spans machines; a relative SQLite path made absolute."""
        path = database.dialect.sqlite_path
        if not database.dialect.is_sqlite:
            return NotImplemented
        assert self._link is not None  # calls are pickled by an entered runner only
        remote = self._link.remote_hosts()
        if remote:
            raise ConfigurationError(
                f"The result database {database.display_url} is a SQLite file, which cannot "
                f"be shared between machines, and the Dask cluster at "
                f"{self._describe_scheduler()} has workers on other machines "
                f"({', '.join(sorted(remote))}). Use PostgreSQL "
                "(postgresql+psycopg://user@host/db) on a cluster that spans machines, or a "
                "LocalCluster (DaskTaskRunner() without an address) with SQLite."
            )
        reduced = database.__reduce__()
        if path is None or path.is_absolute() or str(database.url.database).startswith("file:"):
            return reduced
        # A relative path means the submitter's working directory; a worker has its own.
        absolute = database.url.set(database=os.path.abspath(path))
        restore, args = reduced[0], reduced[1]
        return (restore, (absolute.render_as_string(hide_password=False), *args[1:]))

    # -- results ---------------------------------------------------------------------------

    def _collect(self) -> None:
        """Complete futures as their Dask futures finish (on the collector thread), fetching
        finished replies in batches."""
        while True:
            item = self._arrivals.get()
            batch = [] if item is None else [item]
            stop = item is None
            while not stop:
                try:
                    more = self._arrivals.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                else:
                    batch.append(more)
            if batch:
                self._complete(batch)
            if stop:
                return

    def _complete(self, batch: list[tuple[_DaskSubmission, distributed.Future]]) -> None:
        finished = [(s, f) for s, f in batch if f.status == "finished"]
        replies: dict[int, _Reply] = {}
        client = self._client
        if finished and client is not None:
            try:
                gathered = client.gather([f for _, f in finished])
                replies = {id(f): r for (_, f), r in zip(finished, gathered, strict=True)}
            except Exception:
                replies = {}  # each one is fetched (or explained) below
        for submission, dask_future in batch:
            try:
                if id(dask_future) in replies:
                    state = _state_from_reply(replies[id(dask_future)])
                else:
                    state = self._outcome(submission, dask_future)
            except Exception as exc:  # never leave a future unfinished
                state = _failed(exc)
            self._finish(submission, state)

    def _outcome(self, submission: _DaskSubmission, dask_future: distributed.Future) -> State[Any]:
        """The state of a run whose Dask future did not simply finish."""
        try:
            reply = dask_future.result()
        except distributed.client.FutureCancelledError as exc:
            if self._cancelling and exc.reason != "scheduler-connection-lost":
                return Cancelled(message="Task run was cancelled before it finished.")
            return self._unreachable(exc)
        except distributed.scheduler.KilledWorker as exc:
            message = (
                f"Task run {submission.label} crashed: the Dask workers running it died "
                f"({exc}). Its key's lock, if it took one, frees when its lease runs out."
            )
            crash = CrashedRun(message)
            crash.__cause__ = exc
            return Failed(crash, name="Crashed", message=message)
        except Exception as exc:
            if self._client is None or self._client.status != "running":
                return self._unreachable(exc)
            return _failed(exc)
        return _state_from_reply(reply)

    def _unreachable(self, exc: BaseException | None) -> State[Any]:
        reason = f": {exc}" if exc is not None else ""
        message = (
            f"The Dask scheduler at {self._describe_scheduler()} cannot be reached (it went "
            f"away or refused the connection), so this task run did not finish{reason}"
        )
        error = ClusterUnavailableError(message)
        if exc is not None:
            error.__cause__ = exc
        return Failed(error, message=message)

    @staticmethod
    def _finish(submission: _DaskSubmission, state: State[Any]) -> None:
        if not submission.future.done():
            submission.future.set_result(state)


def _restore_runner(configuration: tuple[Any, ...]) -> DaskTaskRunner:
    address, cluster_class, cluster_kwargs, client_kwargs, adapt_kwargs, large = configuration
    return DaskTaskRunner(
        address=address,
        cluster_class=cluster_class,
        cluster_kwargs=cluster_kwargs,
        client_kwargs=client_kwargs,
        adapt_kwargs=adapt_kwargs,
        large_result_bytes=large,
    )
