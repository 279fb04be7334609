"""The plan: a pure, inspectable DAG of steps built from a RunConfig, with no network access.

Both executors read it. A step names the function to call (``module:function``) and its arguments:
literals, ``Ref`` (another step's result) or ``Param`` (a run-time value such as the run's root
URI, which each executor supplies its own way).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lib.config import RunConfig

KINDS = ("preprocess", "finetune", "deploy", "evaluate", "select", "register", "cleanup")


@dataclass(frozen=True)
class Ref:
    """The result of another step."""

    step: str


@dataclass(frozen=True)
class Param:
    """A value known only when the run starts (``run_root``, ``execution_id``, ``dataset_uri``...)."""

    name: str


@dataclass
class Step:
    name: str
    kind: str
    function: str
    args: dict[str, Any]
    depends_on: list[str]
    model: str | None = None
    compute: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    # extra positional arguments, each a Ref (select takes every evaluate result this way)
    varargs: list[Ref] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        def show(value: Any) -> Any:
            if isinstance(value, Ref):
                return {"ref": value.step}
            if isinstance(value, Param):
                return {"param": value.name}
            if isinstance(value, dict):
                return {k: show(v) for k, v in value.items()}
            if isinstance(value, list):
                return [show(v) for v in value]
            return value

        return {
            "name": self.name, "kind": self.kind, "model": self.model, "function": self.function,
            "depends_on": self.depends_on, "compute": self.compute, "description": self.description,
            "args": {k: show(v) for k, v in self.args.items() if k not in ("model", "settings")},
            "varargs": [show(v) for v in self.varargs],
        }


@dataclass
class Plan:
    pipeline: str
    steps: list[Step]

    def step(self, name: str) -> Step:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)

    def levels(self) -> list[list[str]]:
        """Steps grouped by earliest start: everything in a group can run at the same time."""
        depth: dict[str, int] = {}
        for s in self.steps:  # steps are listed in a topological order
            depth[s.name] = 1 + max((depth[d] for d in s.depends_on), default=-1)
        groups: list[list[str]] = [[] for _ in range(max(depth.values()) + 1)]
        for name, d in depth.items():
            groups[d].append(name)
        return groups

    def to_dict(self) -> dict[str, Any]:
        return {"pipeline": self.pipeline, "steps": [s.to_dict() for s in self.steps], "levels": self.levels()}


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


def _compute(settings: dict[str, Any], kind: str, model: dict | None = None) -> dict[str, Any]:
    sm = settings["sagemaker"]
    compute: dict[str, Any] = {"instance_type": sm["instance_types"].get(kind, sm["step_instance_type"])}
    if kind == "finetune" and model is not None:
        # the step only starts the training job; the job runs on the model's own instance type
        compute["training_instance_type"] = model["finetune"]["parameters"]["instance_type"]
    if kind in ("finetune", "evaluate"):
        compute["keep_alive_period_in_seconds"] = sm["keep_alive_period_in_seconds"]
    return compute


def build_plan(config: RunConfig) -> Plan:
    """preprocess -> per model [finetune ->] deploy -> evaluate -> select -> register -> cleanup."""
    ev, settings = config.evaluation, config.settings
    run_root = Param("run_root")
    steps: list[Step] = [
        Step(
            "preprocess", "preprocess", "steps.preprocess:preprocess",
            {"dataset": ev["dataset"], "dataset_uri": Param("dataset_uri"), "run_root": run_root,
             "execution_id": Param("execution_id")},
            [], compute=_compute(settings, "preprocess"),
            description=f"Prepare the {ev['dataset']['dataset_name']} dataset for evaluation",
        )
    ]
    evaluates: list[str] = []
    for model in ev["models"]:
        name = model["name"]
        deploy_deps = []
        finetune_ref: Ref | None = None
        if model["finetune"]:
            steps.append(Step(
                f"finetune-{name}", "finetune", "steps.finetune:finetune",
                {"model": model, "run_root": run_root, "cache_root": Param("cache_root"),
                 "execution_id": Param("execution_id")}, [], model=name,
                compute=_compute(settings, "finetune", model),
                description=f"Fine-tune {model['model_id']} for {name}",
            ))
            finetune_ref = Ref(f"finetune-{name}")
            deploy_deps.append(f"finetune-{name}")
        steps.append(Step(
            f"deploy-{name}", "deploy", "steps.deploy:deploy",
            {"model": model, "finetune_result": finetune_ref, "run_root": run_root,
             "execution_id": Param("execution_id"), "cache_root": Param("cache_root")},
            deploy_deps, model=name, compute=_compute(settings, "deploy"),
            description=f"Deploy {name} ({model['provider']} {model['model_id']})"[:256],
        ))
        steps.append(Step(
            f"evaluate-{name}", "evaluate", "steps.evaluate:evaluate",
            {"model": model, "deployment": Ref(f"deploy-{name}"), "dataset": Ref("preprocess"),
             "algorithms": ev["algorithms"], "run_root": run_root, "cache_root": Param("cache_root"),
             "execution_id": Param("execution_id")},
            ["preprocess", f"deploy-{name}"], model=name, compute=_compute(settings, "evaluate"),
            description=f"Evaluate {name} with " + ", ".join(a["name"] for a in ev["algorithms"])[:200],
        ))
        evaluates.append(f"evaluate-{name}")
    steps.append(Step(
        "select", "select", "steps.select:select",
        {"selection": ev["selection"], "pipeline": config.pipeline_name, "execution_id": Param("execution_id"),
         "run_root": run_root, "score_names": {a["eval_name"]: a["score_names"] for a in ev["algorithms"]}},
        list(evaluates),
        compute=_compute(settings, "select"), varargs=[Ref(e) for e in evaluates],
        description=f"Pick the best model by {ev['selection']['metric']} ({ev['selection']['direction']})",
    ))
    steps.append(Step(
        "register", "register", "steps.register:register",
        {"registry": ev["model_registry"], "selection": Ref("select"), "pipeline": config.pipeline_name,
         "approval_status": Param("model_approval_status"), "run_root": run_root,
         "execution_id": Param("execution_id")},
        ["select"], compute=_compute(settings, "register"),
        description=f"Register the selected model in {ev['model_registry']['model_package_group_name']}",
    ))
    for model in ev["models"]:
        if model["creates_endpoint"] and model["cleanup_endpoint"]:
            name = model["name"]
            steps.append(Step(
                f"cleanup-{name}", "cleanup", "steps.cleanup:cleanup",
                {"model": model, "deployment": Ref(f"deploy-{name}"), "registered": Ref("register")},
                ["register"], model=name, compute=_compute(settings, "cleanup"),
                description=f"Remove what deploy-{name} created",
            ))
    return Plan(config.pipeline_name, steps)
