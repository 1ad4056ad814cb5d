"""Cache policies: what a task's cache key is made of (Prefect's ``prefect.cache_policies``).

A policy turns a task run into a key, or into None (no caching)::

    @task(cache_policy=INPUTS + TASK_SOURCE)            # same inputs and same code: a cache hit
    @task(cache_policy=INPUTS - "logger")               # the logger argument does not count
    @task(cache_policy=INPUTS.configure(isolation_level="SERIALIZABLE"))   # computed once

Names, arithmetic and conflict errors are Prefect's: ``INPUTS``, ``TASK_SOURCE``,
``FLOW_PARAMETERS``, ``RUN_ID``, ``NO_CACHE`` (alias ``NONE``), ``DEFAULT`` (``INPUTS +
TASK_SOURCE + RUN_ID``), :class:`CacheKeyFnPolicy`; ``a + b`` combines, ``policy - "name"`` leaves
an argument out, :meth:`CachePolicy.configure` sets the isolation level or lock manager.

What differs from Prefect, on purpose (DESIGN §2, §10):

- values are hashed by :mod:`sqlresults.hashing`: a canonical, type-tagged encoding, stable
  across processes, with no silent pickle fallback. An input that cannot be hashed raises
  :class:`~sqlresults.errors.UnhashableError` naming the argument and the ways out, instead of
  Prefect's "no key, not persisted" with a log line (#16042);
- ``TASK_SOURCE`` covers the task's closure values, defaults and the same-module functions it
  calls by name, transitively (Prefect hashes the source text only, #23062);
- a compound key fails as a whole: if any part cannot be computed there is no key (#15861);
- every key comes with its named components (:meth:`CachePolicy.key_components`), stored as the
  record's provenance, so a miss can be explained ("input `model` changed");
- ``key_storage`` (Prefect's separate place for cache metadata) is refused: a record and its
  metadata are one row.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any, Literal, Self

from sqlresults.context import TaskRunContext
from sqlresults.errors import ConfigurationError
from sqlresults.hashing import fingerprint, function_fingerprint, hash_objects
from sqlresults.locking import IsolationLevel, LockManager

__all__ = [
    "DEFAULT",
    "FLOW_PARAMETERS",
    "INPUTS",
    "NONE",
    "NO_CACHE",
    "RUN_ID",
    "TASK_SOURCE",
    "CacheKeyFnPolicy",
    "CachePolicy",
    "CompoundCachePolicy",
    "FlowParameters",
    "Inputs",
    "RunId",
    "TaskSource",
]

#: One named part of a key and its fingerprint, e.g. ``("inputs.model", "3f…")``.
Component = tuple[str, str]
IsolationLevelLike = Literal["READ_COMMITTED", "SERIALIZABLE"] | IsolationLevel | None
CacheKeyFn = Callable[[TaskRunContext, dict[str, Any]], str | None]


@dataclass
class CachePolicy:
    """Base class of every cache policy.

    Args:
        key_storage: Prefect's place for cache metadata; must be None here (a record and its
            metadata are one row in the result database).
        isolation_level: ``"SERIALIZABLE"`` makes concurrent runs with the same key compute
            once (the others get the record); ``"READ_COMMITTED"`` or None: no lock.
        lock_manager: Where the key's lock lives; default: the task's result database.

    Raises:
        ConfigurationError: ``key_storage`` is given, or ``isolation_level`` is no level.
    """

    key_storage: Any = None
    isolation_level: IsolationLevelLike = None
    lock_manager: LockManager | None = None

    def __post_init__(self) -> None:
        if self.key_storage is not None:
            raise ConfigurationError(
                "key_storage is not supported: sqlresults keeps a cached result and its key "
                "metadata in one row of the result database. Choose the database with the "
                "task's result_storage instead."
            )
        if self.isolation_level is not None:
            try:
                IsolationLevel(getattr(self.isolation_level, "value", self.isolation_level))
            except ValueError:
                raise ConfigurationError(
                    f"isolation_level must be 'READ_COMMITTED' or 'SERIALIZABLE', not "
                    f"{self.isolation_level!r}."
                ) from None

    @property
    def isolation(self) -> IsolationLevel | None:
        """``isolation_level`` as an :class:`~sqlresults.locking.IsolationLevel`, or None."""
        level = self.isolation_level
        if level is None:
            return None
        return IsolationLevel(getattr(level, "value", level))

    @classmethod
    def from_cache_key_fn(cls, cache_key_fn: CacheKeyFn) -> CacheKeyFnPolicy:
        """A policy whose key is ``cache_key_fn(task_run_context, parameters)``."""
        return CacheKeyFnPolicy(cache_key_fn=cache_key_fn)

    def configure(
        self,
        key_storage: Any = None,
        lock_manager: LockManager | None = None,
        isolation_level: IsolationLevelLike = None,
    ) -> Self:
        """A copy with the given settings changed (None leaves a setting as it is).

        Raises:
            ConfigurationError: ``key_storage`` is given, or ``isolation_level`` is no level.
        """
        new = deepcopy(self)
        if key_storage is not None:
            new.key_storage = key_storage
        if lock_manager is not None:
            new.lock_manager = lock_manager
        if isolation_level is not None:
            new.isolation_level = isolation_level
        new.__post_init__()
        return new

    def key_components(
        self,
        task_ctx: TaskRunContext | None,
        inputs: Mapping[str, Any],
        flow_parameters: Mapping[str, Any],
        **kwargs: Any,
    ) -> list[Component] | None:
        """The named parts of this run's key, or None when the policy gives no key.

        A subclass that only overrides :meth:`compute_key` (Prefect's way) gets one component,
        named after the class, holding that key.

        Raises:
            UnhashableError: A value the key depends on cannot be hashed.
        """
        if type(self).compute_key is CachePolicy.compute_key:
            raise NotImplementedError(f"{type(self).__name__} computes no key")
        key = self.compute_key(task_ctx, dict(inputs), dict(flow_parameters), **kwargs)
        return None if key is None else [(type(self).__name__, key)]

    def compute_key(
        self,
        task_ctx: TaskRunContext | None,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        """The cache key of a task run, or None (no caching).

        Args:
            task_ctx: The running task's context (None outside a task).
            inputs: The task's parameters, by name.
            flow_parameters: The flow run's parameters, by name.

        Returns:
            32 hex characters, or None.

        Raises:
            UnhashableError: A value the key depends on cannot be hashed.
        """
        return self.key_and_components(task_ctx, inputs, flow_parameters, **kwargs)[0]

    def key_and_components(
        self,
        task_ctx: TaskRunContext | None,
        inputs: Mapping[str, Any],
        flow_parameters: Mapping[str, Any],
        **kwargs: Any,
    ) -> tuple[str | None, list[Component]]:
        """The run's key and its named components, each computed once.

        Raises:
            UnhashableError: A value the key depends on cannot be hashed.
        """
        if type(self).compute_key is not CachePolicy.compute_key:
            # A policy written Prefect's way (compute_key only): its key is its own.
            key = self.compute_key(task_ctx, dict(inputs), dict(flow_parameters), **kwargs)
            return key, ([] if key is None else [(type(self).__name__, key)])
        components = self.key_components(task_ctx, inputs, flow_parameters, **kwargs)
        if components is None:
            return None, []
        return hash_objects(*components), components

    @property
    def description(self) -> str:
        """How the policy reads in Python (``"INPUTS + TASK_SOURCE"``), for provenance."""
        return type(self).__name__

    def __sub__(self, other: str) -> CachePolicy:
        """Leave the argument ``other`` out of the key (only input-based policies change)."""
        if not isinstance(other, str):
            raise TypeError("Can only subtract strings from key policies.")
        return self

    def __add__(self, other: CachePolicy) -> CachePolicy:
        """A policy whose key is made of both keys.

        Raises:
            ValueError: The two policies set different isolation levels or lock managers
                (Prefect's messages).
        """
        if isinstance(other, _None):
            return self
        _check_compatible(self, other)
        return CompoundCachePolicy(
            policies=[self, other],
            isolation_level=self.isolation_level or other.isolation_level,
            lock_manager=self.lock_manager or other.lock_manager,
        )


def _check_compatible(a: CachePolicy, b: CachePolicy) -> None:
    if (
        a.isolation_level is not None
        and b.isolation_level is not None
        and a.isolation != b.isolation
    ):
        raise ValueError("Cannot add CachePolicies with different isolation levels.")
    if (
        a.lock_manager is not None
        and b.lock_manager is not None
        and a.lock_manager != b.lock_manager
    ):
        raise ValueError("Cannot add CachePolicies with different lock implementations.")


@dataclass
class CacheKeyFnPolicy(CachePolicy):
    """A key computed by a function: ``cache_key_fn(task_run_context, parameters) -> str``
    (None: no caching). What ``@task(cache_key_fn=...)`` uses."""

    cache_key_fn: CacheKeyFn | None = None

    def key_components(
        self,
        task_ctx: TaskRunContext | None,
        inputs: Mapping[str, Any],
        flow_parameters: Mapping[str, Any],
        **kwargs: Any,
    ) -> list[Component] | None:
        if self.cache_key_fn is None:
            return None
        key = self.cache_key_fn(task_ctx, dict(inputs))  # type: ignore[arg-type]
        if key is None:
            return None
        if not isinstance(key, str):
            raise TypeError(
                f"cache_key_fn must return a str (or None for no caching), not "
                f"{type(key).__name__}: {key!r}."
            )
        return [("cache_key_fn", key)]

    @property
    def description(self) -> str:
        name = getattr(self.cache_key_fn, "__qualname__", repr(self.cache_key_fn))
        return f"cache_key_fn={name}"


@dataclass
class CompoundCachePolicy(CachePolicy):
    """A key made of several policies' keys, in order; parts that give None are left out,
    and if every part gives None there is no key.

    Nested compounds are flattened, and every :class:`Inputs` is merged into one, placed last,
    excluding the union of their exclusions (Prefect's rules).
    """

    policies: list[CachePolicy] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        flat = [
            policy
            for p in self.policies
            for policy in (p.policies if isinstance(p, CompoundCachePolicy) else [p])
        ]
        inputs = [p for p in flat if isinstance(p, Inputs)]
        self.policies = [p for p in flat if not isinstance(p, Inputs)]
        if inputs:
            excluded = sorted({name for policy in inputs for name in policy.exclude})
            self.policies.append(Inputs(exclude=excluded))

    def key_components(
        self,
        task_ctx: TaskRunContext | None,
        inputs: Mapping[str, Any],
        flow_parameters: Mapping[str, Any],
        **kwargs: Any,
    ) -> list[Component] | None:
        components: list[Component] = []
        found = False
        for policy in self.policies:
            part = policy.key_components(task_ctx, inputs, flow_parameters, **kwargs)
            if part is not None:
                found = True
                components.extend(part)
        return components if found else None

    @property
    def description(self) -> str:
        return " + ".join(policy.description for policy in self.policies)

    def __add__(self, other: CachePolicy) -> CachePolicy:
        if isinstance(other, _None):
            return self
        _check_compatible(self, other)
        extra = other.policies if isinstance(other, CompoundCachePolicy) else [other]
        return CompoundCachePolicy(
            policies=[*self.policies, *extra],
            isolation_level=self.isolation_level or other.isolation_level,
            lock_manager=self.lock_manager or other.lock_manager,
        )

    def __sub__(self, other: str) -> CachePolicy:
        if not isinstance(other, str):
            raise TypeError("Can only subtract strings from key policies.")
        if not any(isinstance(p, Inputs) for p in self.policies):
            return self  # no dependency on inputs already
        return dataclasses.replace(self, policies=[*self.policies, Inputs(exclude=[other])])


@dataclass
class _None(CachePolicy):
    """No key: nothing is cached (``NO_CACHE``)."""

    def key_components(
        self,
        task_ctx: TaskRunContext | None,
        inputs: Mapping[str, Any],
        flow_parameters: Mapping[str, Any],
        **kwargs: Any,
    ) -> list[Component] | None:
        return None

    @property
    def description(self) -> str:
        return "NO_CACHE"

    def __add__(self, other: CachePolicy) -> CachePolicy:
        return other


@dataclass
class TaskSource(CachePolicy):
    """The task's code: its qualified name, module, source, defaults and closure values, and
    the same-module functions it calls by name, transitively
    (:func:`~sqlresults.hashing.function_fingerprint`)."""

    def key_components(
        self,
        task_ctx: TaskRunContext | None,
        inputs: Mapping[str, Any],
        flow_parameters: Mapping[str, Any],
        **kwargs: Any,
    ) -> list[Component] | None:
        task = None if task_ctx is None else task_ctx.task
        if task is None:
            return None
        return [("task_source", function_fingerprint(task.fn))]

    @property
    def description(self) -> str:
        return "TASK_SOURCE"


@dataclass
class FlowParameters(CachePolicy):
    """The flow run's parameters (no key when the flow has none)."""

    def key_components(
        self,
        task_ctx: TaskRunContext | None,
        inputs: Mapping[str, Any],
        flow_parameters: Mapping[str, Any],
        **kwargs: Any,
    ) -> list[Component] | None:
        if not flow_parameters:
            return None
        return [
            (f"flow_parameters.{name}", fingerprint(value, argument=f"flow parameter {name}"))
            for name, value in sorted(flow_parameters.items())
        ]

    @property
    def description(self) -> str:
        return "FLOW_PARAMETERS"


@dataclass
class RunId(CachePolicy):
    """The flow run's id, or the task run's outside a flow: results are reused within one
    run only."""

    def key_components(
        self,
        task_ctx: TaskRunContext | None,
        inputs: Mapping[str, Any],
        flow_parameters: Mapping[str, Any],
        **kwargs: Any,
    ) -> list[Component] | None:
        task_run = None if task_ctx is None else task_ctx.task_run
        if task_run is None:
            return None
        run_id = task_run.flow_run_id if task_run.flow_run_id is not None else task_run.id
        return [("run_id", str(run_id))]

    @property
    def description(self) -> str:
        return "RUN_ID"


@dataclass
class Inputs(CachePolicy):
    """The task's parameters, each by its value's fingerprint; ``exclude`` leaves some out.

    No key when there are no parameters (left).

    Raises:
        UnhashableError: A parameter cannot be hashed; the message names it and the ways out
            (``INPUTS - "name"``, or a ``__sqlresults_hash__`` method).
    """

    exclude: list[str] = field(default_factory=list)

    def key_components(
        self,
        task_ctx: TaskRunContext | None,
        inputs: Mapping[str, Any],
        flow_parameters: Mapping[str, Any],
        **kwargs: Any,
    ) -> list[Component] | None:
        kept = sorted(name for name in inputs if name not in self.exclude)
        if not kept:
            return None
        return [(f"inputs.{name}", fingerprint(inputs[name], argument=name)) for name in kept]

    @property
    def description(self) -> str:
        return "INPUTS" + "".join(f" - {name!r}" for name in self.exclude)

    def __sub__(self, other: str) -> CachePolicy:
        if not isinstance(other, str):
            raise TypeError("Can only subtract strings from key policies.")
        return dataclasses.replace(self, exclude=[*self.exclude, other])


INPUTS = Inputs()
NONE = _None()
NO_CACHE = NONE
TASK_SOURCE = TaskSource()
FLOW_PARAMETERS = FlowParameters()
RUN_ID = RunId()
DEFAULT = INPUTS + TASK_SOURCE + RUN_ID
