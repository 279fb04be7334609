"""`validate` and `plan`: read the configs, touch nothing."""

from __future__ import annotations

import argparse
import json
from typing import Any

from lib.plan import Plan
from pipelines.cli.common import add_config_args, cost_of, dataset_size, load


def cmd_validate(args: argparse.Namespace) -> int:
    cfg = load(args)
    models = cfg.evaluation["models"]
    files = settings_files(cfg.settings)
    if cfg.pipeline_config_path:  # read, even where it only repeats the defaults
        from lib.config.sagemaker_defaults import shown_path

        files = list(dict.fromkeys([*files, shown_path(cfg.pipeline_config_path)]))
    print(f"{args.config}: valid — pipeline '{cfg.pipeline_name}', {len(models)} model(s) "
          f"({', '.join(m['name'] for m in models)}), "
          f"{len(cfg.evaluation['algorithms'])} algorithm(s)"
          + (f"; settings from {' and '.join(files)}" if files else "; default settings"))
    return 0


def settings_files(settings: dict[str, Any]) -> list[str]:
    """The files the settings came from, in the order they were read (SageMaker defaults first)."""
    return list(dict.fromkeys(f for files in settings.get("sources", {}).values() for f in files))


def aws_names(cfg: Any) -> dict[str, str]:
    """Model names that AWS names carry differently (an underscore becomes a hyphen)."""
    from lib.aws import aws_name

    return {m["name"]: aws_name(m["name"]) for m in cfg.models if aws_name(m["name"]) != m["name"]}


def format_settings(cfg: Any) -> str:
    """Where each setting that is not a default came from, what a SageMaker defaults file says that is not
    used, and the model names AWS carries differently."""
    lines = []
    sources = cfg.settings.get("sources", {})
    if sources:
        groups: dict[tuple[str, ...], list[str]] = {}  # keys that came from the same files, together
        for key, files in sources.items():
            groups.setdefault(tuple(files), []).append(key.removeprefix("sagemaker."))
        lines.append("settings: " + "; ".join(f"{', '.join(keys)} from {' + '.join(files)}"
                                              for files, keys in groups.items())
                     + "; every other setting is a default")
    else:
        lines.append("settings: all defaults (no pipeline_config.yaml, no SageMaker defaults file)")
    for name, keys in cfg.settings.get("unused", {}).items():
        lines.append(f"not used from {name}: {', '.join(keys)} (the step image carries this project's code "
                     "and its dependencies)")
    for name, aws in aws_names(cfg).items():
        model = next(m for m in cfg.models if m["name"] == name)
        lines.append(f"names on AWS: {name} -> {aws} (steps *-{aws}, tags"
                     + (f", endpoint {model['endpoint_name']})" if model.get("creates_endpoint") else ")"))
    tracking = cfg.settings.get("tracking") or {}
    if tracking.get("mlflow"):
        lines.append(f"tracking: MLflow {tracking['mlflow']['uri']} (experiment {tracking['mlflow']['experiment']})")
    if tracking.get("cloudwatch"):
        cw = tracking["cloudwatch"]
        lines.append(f"tracking: CloudWatch namespace {cw['namespace']}, {len(cw['alarms'])} alarm(s)"
                     + (f", dashboard {cw['dashboard']}" if cw["dashboard"] else ""))
    return "\n".join(lines)


def format_plan(plan: Plan, settings: dict[str, Any], shards: dict[str, Any] | None = None) -> str:
    """The plan as a table; compute is shown as the SageMaker executor would map it; ``shards``: the
    plan's `shard_choice`, said when `auto` made it."""
    from pipelines.sagemaker_executor import step_compute

    rows = [("step", "kind", "depends on", "compute")]
    for s in plan.steps:
        sm = step_compute(s, settings)
        compute = sm["instance_type"]
        if "training_instance_type" in sm:
            compute += f" (training job: {sm['training_instance_type']})"
        if "keep_alive_period_in_seconds" in sm:
            compute += f", warm pool {sm['keep_alive_period_in_seconds']}s"
        rows.append((s.name, s.kind, ", ".join(s.depends_on) or "-", compute))
    widths = [min(max(len(r[i]) for r in rows), 48) for i in range(3)]
    lines = [f"Pipeline {plan.pipeline}: {len(plan.steps)} steps"]
    if shards and shards["auto"]:
        lines.append(f"Shards per model (dataset.shards): {shards['why']}")
    for r in rows:
        deps = r[2] if len(r[2]) <= 48 else r[2][:45] + "..."
        lines.append(f"  {r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {deps:<{widths[2]}}  {r[3]}")
    lines.append("Runs in parallel (each stage starts when the steps it depends on finish):")
    for i, group in enumerate(plan.levels(), 1):
        lines.append(f"  stage {i}: {', '.join(group)}")
    return "\n".join(lines)


def cmd_plan(args: argparse.Namespace) -> int:
    from lib.plan import build_plan
    from lib.plan.build import shard_choice

    cfg = load(args)
    shards = shard_choice(cfg)
    plan = build_plan(cfg, shards)
    from lib.providers import provider_class

    on_sagemaker = all(provider_class(m["provider"]).runs_on_sagemaker for m in cfg.models)
    # read once for both estimates; `shards: auto` has counted the records already (an S3 dataset's too)
    records = shards["records"] if shards["records"] is not None else dataset_size(cfg)
    costs = {"sagemaker": cost_of(cfg, True, records) if on_sagemaker else None,
             "local": cost_of(cfg, False, records)}
    for where, cost in costs.items():  # how long, given how many steps may run at once there
        if cost is not None:
            cost["schedule"] = schedule_of(plan, cfg.settings, cost, where == "sagemaker")
    if args.json:
        print(json.dumps({**plan.to_dict(), "shards": shards, "cost": costs,
                          "settings_sources": cfg.settings.get("sources", {}), "aws_names": aws_names(cfg)}, indent=2))
    else:
        print(format_plan(plan, cfg.settings, shards))
        print(format_settings(cfg))
        print(format_cost(costs, cfg.evaluation.get("budget")))
    return 0


def schedule_of(plan: Any, settings: dict[str, Any], cost: dict[str, Any], on_sagemaker: bool) -> dict[str, Any]:
    from lib.plan.schedule import expected_wall_seconds, step_seconds

    parallel = settings["sagemaker"]["max_parallel_steps"] if on_sagemaker else settings["local"]["max_workers"]
    durations = {s.name: step_seconds(s, cost["records"], cost["assumptions"], on_sagemaker) for s in plan.steps}
    return {"parallel": parallel, **expected_wall_seconds(plan, durations, parallel)}


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60 + (seconds % 60 >= 30))
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min" if minutes else \
        f"{seconds:.0f} s"


def format_cost(costs: dict[str, Any], budget: dict[str, Any] | None) -> str:
    local = costs["local"]
    sm = costs["sagemaker"] or local
    lines = [f"Estimated cost ({sm['records']} records, prices as of {sm['prices_as_of']}):"]
    if costs["sagemaker"]:
        lines.append(f"  on SageMaker: ${sm['total_usd']:.2f} (models ${sm['total_usd'] - sm['steps_usd']:.2f}, "
                     f"step jobs and warm pools ${sm['steps_usd']:.2f})")
    else:
        lines.append("  on SageMaker: not possible (a model runs only on this machine)")
    lines.append(f"  `run` on this machine: ${local['total_usd']:.2f} (only models hosted on AWS cost money)")
    for name, m in sm["models"].items():
        parts = ", ".join(f"{k} ${v:.2f}" for k, v in m["parts"].items()) or "no AWS cost"
        alternative = (f"; through a real-time endpoint: ${m['endpoint_alternative_usd']:.2f}"
                       if "endpoint_alternative_usd" in m else "")
        lines.append(f"    {name}: ${m['usd']:.2f} ({parts}{alternative})")
    if sm["unknown"]:
        lines.append(f"  no price known for: {', '.join(sm['unknown'])} (add it under `prices:` in the settings)")
    for where, cost in costs.items():
        sched = (cost or {}).get("schedule")
        if sched:
            lines.append(f"  expected wall time {'on SageMaker' if where == 'sagemaker' else 'with `run`'}: "
                         f"{_duration(sched['wall_s'])} with up to {sched['parallel']} steps at once (longest chain "
                         f"{_duration(sched['critical_path_s'])}; {_duration(sched['busy_s'])} of step time in all)")
    a = sm["assumptions"]
    lines.append(f"  assuming {a['seconds_per_record']:g} s per answer, {a['endpoint_startup_minutes']:g} min endpoint "
                 f"start-up, {a['training_hours_per_epoch']:g} h per training epoch (`cost:` in the settings)")
    if budget:
        lines.append(f"  budget: ${budget['max_usd']:g}" + (" — over budget: `run` and `start` will refuse"
                                                           if sm["total_usd"] > budget["max_usd"] else ""))
    return "\n".join(lines)


def register(sub: Any) -> None:
    p = sub.add_parser("validate", help="check the configs; exit 0 if valid, 2 if not")
    add_config_args(p)
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("plan", help="show the steps, their dependencies, what runs in parallel and the cost")
    add_config_args(p)
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(func=cmd_plan)
