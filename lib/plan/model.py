"""The plan's data: steps, the values their arguments take, and the DAG they form.

A step's dependencies are declared once: every ``Ref`` in its arguments is one, and ``after``
adds order-only ones (a step that must wait for another without reading its result).
`Plan` refuses an unknown dependency and a cycle, and lists steps in a topological order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Ref:
    """The result of another step."""

    step: str


@dataclass(frozen=True)
class Param:
    """A value known only when the run starts (``run_root``, ``execution_id``, ``dataset_uri``...)."""

    name: str


class PlanError(ValueError):
    """The plan is not a DAG: a dependency names no step, or steps wait on each other."""


def _refs(value: Any) -> list[str]:
    if isinstance(value, Ref):
        return [value.step]
    if isinstance(value, dict):
        return [r for v in value.values() for r in _refs(v)]
    if isinstance(value, (list, tuple)):
        return [r for v in value for r in _refs(v)]
    return []


def _show(value: Any) -> Any:
    if isinstance(value, Ref):
        return {"ref": value.step}
    if isinstance(value, Param):
        return {"param": value.name}
    if isinstance(value, dict):
        return {k: _show(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_show(v) for v in value]
    return value


@dataclass
class Step:
    name: str
    kind: str
    function: str
    args: dict[str, Any]
    model: str | None = None
    compute: dict[str, Any] = field(default_factory=dict)  # hints each executor maps (see kinds.py)
    description: str = ""
    # extra positional arguments, each a Ref (select takes every evaluate result this way)
    varargs: list[Ref] = field(default_factory=list)
    after: list[str] = field(default_factory=list)  # order-only dependencies

    @property
    def reads(self) -> list[str]:
        """The steps whose results this step takes as arguments."""
        return list(dict.fromkeys(_refs(self.args) + _refs(self.varargs)))

    @property
    def depends_on(self) -> list[str]:
        return list(dict.fromkeys(self.reads + self.after))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "kind": self.kind, "model": self.model, "function": self.function,
            "depends_on": self.depends_on, "compute": self.compute, "description": self.description,
            "args": {k: _show(v) for k, v in self.args.items() if k not in ("model", "settings")},
            "varargs": [_show(v) for v in self.varargs],
        }


@dataclass
class Plan:
    pipeline: str
    steps: list[Step]
    # modules an executor imports once before it starts running steps in parallel
    preload: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.steps = self._topological(self.steps)

    @staticmethod
    def _topological(steps: list[Step]) -> list[Step]:
        """``steps`` in dependency order (stable: the given order where it is free)."""
        by_name: dict[str, Step] = {}
        for s in steps:
            if s.name in by_name:
                raise PlanError(f"two steps are named '{s.name}'")
            by_name[s.name] = s
        for s in steps:
            for d in s.depends_on:
                if d not in by_name:
                    raise PlanError(f"step '{s.name}' depends on '{d}', which is not a step of this plan")
        ordered: list[Step] = []
        placed: set[str] = set()
        remaining = list(steps)
        while remaining:
            # the first step (in the given order) whose dependencies are all placed
            ready = next((s for s in remaining if set(s.depends_on) <= placed), None)
            if ready is None:
                cycle = ", ".join(s.name for s in remaining)
                raise PlanError(f"these steps wait on each other (a cycle): {cycle}")
            ordered.append(ready)
            placed.add(ready.name)
            remaining.remove(ready)
        return ordered

    def step(self, name: str) -> Step:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)

    def levels(self) -> list[list[str]]:
        """Steps grouped by earliest start: everything in a group can run at the same time."""
        depth: dict[str, int] = {}
        for s in self.steps:  # topological order
            depth[s.name] = 1 + max((depth[d] for d in s.depends_on), default=-1)
        groups: list[list[str]] = [[] for _ in range(max(depth.values()) + 1)]
        for name, d in depth.items():
            groups[d].append(name)
        return groups

    def to_dict(self) -> dict[str, Any]:
        return {"pipeline": self.pipeline, "steps": [s.to_dict() for s in self.steps], "levels": self.levels(),
                "preload": self.preload}


def call_arguments(step: Step, fn: Any, resolve: Any) -> tuple[list[Any], dict[str, Any]]:
    """Positional and keyword arguments for ``fn``, each plan value passed through ``resolve``.

    With varargs (select takes every evaluate result), everything goes positionally in the
    function's parameter order: the SDK refuses pipeline variables nested in lists or dicts, so
    several upstream results travel as separate arguments.
    """
    kwargs = {k: resolve(v) for k, v in step.args.items()}
    if not step.varargs:
        return [], kwargs
    import inspect

    names = [p for p in inspect.signature(fn).parameters if p in kwargs]
    return [kwargs[n] for n in names] + [resolve(v) for v in step.varargs], {}
