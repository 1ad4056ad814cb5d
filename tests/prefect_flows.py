"""Real Prefect flows on sqlresults, run by ``tests/test_prefect_flows.py`` in subprocesses.

Each process starts Prefect's ephemeral API server (a local uvicorn on 127.0.0.1, the cost of a
Prefect process: several seconds), so one process runs a whole batch of scenarios:

    python tests/prefect_flows.py SCENARIO [ARG]

prints ``RESULT: {json}`` as its last line. The environment says where everything goes:

- ``INTEROP_URL`` and ``INTEROP_NAMESPACE``: the sqlresults database and namespace of the
  flows' results (:class:`~sqlresults.prefect.SQLResultStorage`) and locks
  (:class:`~sqlresults.prefect.SQLLockManager`);
- ``INTEROP_MARKS``: a directory where every computation leaves a file ``<task>-<pid>-<n>``, so
  the test counts how often each task body really ran, across processes;
- ``INTEROP_PROCESSES``: how many processes meet at the barrier of the ``once`` scenario;
- ``PREFECT_HOME`` (a copy of a migrated home) and the other ``PREFECT_*`` settings.

Scenarios:

- ``first`` / ``second``: the caching flow (``cache_policy``, ``cache_expiration``,
  ``refresh_cache``, ``result_storage_key``), run by two processes one after the other; ``first``
  also saves a storage block and runs a flow on it by slug, whose run id ``second`` gets as ARG
  to read the result back through Prefect's API, in another process;
- ``once``: SERIALIZABLE compute-once: the processes meet at a barrier, then call one task on
  one key at the same moment;
- ``hold``: take a SERIALIZABLE key and keep it (sleep) until killed; ``after-kill``: the same
  key, which must free once the killed holder's lease runs out.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import INPUTS, CacheKeyFnPolicy

from sqlresults.prefect import SQLLockManager, SQLResultStorage

URL = os.environ["INTEROP_URL"]
NAMESPACE = os.environ["INTEROP_NAMESPACE"]
MARKS = Path(os.environ["INTEROP_MARKS"])

storage = SQLResultStorage(url=URL, namespace=NAMESPACE)
locks = SQLLockManager(URL, namespace=NAMESPACE)
SERIALIZABLE = INPUTS.configure(isolation_level="SERIALIZABLE", lock_manager=locks)

REPORT_DAY = "2026-11-21"
HELD_KEY = "held-by-a-process-that-dies"


def mark(name: str) -> None:
    """Leave a file that says ``name``'s body ran once more, in this process."""
    MARKS.mkdir(parents=True, exist_ok=True)
    (MARKS / f"{name}-{os.getpid()}-{uuid.uuid4().hex}").touch()


def value(name: str, x: Any) -> dict[str, Any]:
    """What the tasks return: who computed it, and when."""
    return {"task": name, "x": x, "pid": os.getpid(), "at": time.time()}


@task(cache_policy=INPUTS, persist_result=True)
def square(x: int) -> dict[str, Any]:
    mark("square")
    return {**value("square", x), "square": x * x}


@task(cache_policy=INPUTS, cache_expiration=timedelta(hours=1))
def lasting(x: int) -> dict[str, Any]:
    mark("lasting")
    return value("lasting", x)


@task(cache_policy=INPUTS, cache_expiration=timedelta(seconds=-5))
def expired(x: int) -> dict[str, Any]:
    mark("expired")
    return value("expired", x)


@task(cache_policy=INPUTS, refresh_cache=True)
def refreshed(x: int) -> dict[str, Any]:
    mark("refreshed")
    return value("refreshed", x)


@task(result_storage_key="report-{parameters[day]}.json")
def report(day: str) -> dict[str, Any]:
    mark("report")
    return value("report", day)


@task(cache_policy=SERIALIZABLE)
def once(x: int) -> dict[str, Any]:
    mark("once")
    time.sleep(1.0)  # long enough that the others are waiting on the lock meanwhile
    return value("once", x)


def _held_key(context: Any, parameters: dict[str, Any]) -> str:
    return HELD_KEY


@task(
    cache_policy=CacheKeyFnPolicy(cache_key_fn=_held_key).configure(
        isolation_level="SERIALIZABLE", lock_manager=locks
    )
)
def held(sleep: float) -> dict[str, Any]:
    mark("held")
    time.sleep(sleep)
    return value("held", sleep)


def outcome(state: Any) -> dict[str, Any]:
    """A task run's final state, as the test sees it."""
    return {"state": state.name, "value": state.result()}


@flow(result_storage=storage, persist_result=True)
def caching_flow() -> dict[str, Any]:
    return {
        # INPUTS keys depend on the arguments only: each task gets its own.
        "square": outcome(square(3, return_state=True)),
        "lasting": outcome(lasting(4, return_state=True)),
        "expired": outcome(expired(5, return_state=True)),
        "refreshed": outcome(refreshed(6, return_state=True)),
        "report": outcome(report(REPORT_DAY, return_state=True)),
    }


@flow(result_storage=storage, persist_result=True)
def once_flow(processes: int) -> dict[str, Any]:
    barrier = MARKS / "barrier"
    barrier.mkdir(parents=True, exist_ok=True)
    (barrier / str(os.getpid())).touch()
    deadline = time.monotonic() + 180
    while len(list(barrier.iterdir())) < processes:
        if time.monotonic() > deadline:
            raise TimeoutError("the other processes never reached the barrier")
        time.sleep(0.01)
    return outcome(once(7, return_state=True))


@flow(result_storage=storage, persist_result=True)
def held_flow(sleep: float) -> dict[str, Any]:
    return outcome(held(sleep, return_state=True))


def run_first() -> dict[str, Any]:
    state = caching_flow(return_state=True)
    saved = SQLResultStorage(url=URL, namespace=NAMESPACE)
    name = f"interop-{NAMESPACE}".lower()
    saved.save(name)

    @flow(result_storage=f"sqlresults-storage/{name}", persist_result=True)
    def on_saved_block() -> dict[str, Any]:
        return value("on_saved_block", 1)

    saved_state = on_saved_block(return_state=True)
    return {
        "flow": {"state": state.name, "value": state.result()},
        "flow_result_key": state.data.metadata.storage_key,
        "provisional_id": str(storage._block_document_id),
        "saved_id": str(saved._block_document_id),
        "saved_block_id_in_metadata": str(saved_state.data.metadata.storage_block_id),
        "saved_value": saved_state.result(),
        "saved_flow_run_id": str(saved_state.state_details.flow_run_id),
    }


def run_second(saved_flow_run_id: str) -> dict[str, Any]:
    from prefect.client.orchestration import get_client

    state = caching_flow(return_state=True)
    with get_client(sync_client=True) as client:
        api_state = client.read_flow_run(uuid.UUID(saved_flow_run_id)).state
    assert api_state is not None
    return {
        "flow": {"state": state.name, "value": state.result()},
        # A state from the API holds only the result's metadata: Prefect loads the saved block
        # by its id and reads the result through it.
        "api_state_data": type(api_state.data).__name__,
        "api_value": api_state.result(),
    }


def run_once() -> dict[str, Any]:
    return once_flow(int(os.environ["INTEROP_PROCESSES"]))


def run_hold() -> dict[str, Any]:
    return held_flow(3600.0)


def run_after_kill() -> dict[str, Any]:
    return held_flow(0.0)


SCENARIOS = {
    "first": lambda args: run_first(),
    "second": lambda args: run_second(args[0]),
    "once": lambda args: run_once(),
    "hold": lambda args: run_hold(),
    "after-kill": lambda args: run_after_kill(),
}


if __name__ == "__main__":
    scenario, *arguments = sys.argv[1:]
    result = SCENARIOS[scenario](arguments)
    print("RESULT: " + json.dumps(result, default=str), flush=True)
