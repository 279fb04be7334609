"""`validate` and `plan`: read the configs, touch nothing."""

from __future__ import annotations

import argparse
import json
from typing import Any

from lib.plan import Plan
from pipelines.cli.common import add_config_args, load


def cmd_validate(args: argparse.Namespace) -> int:
    cfg = load(args)
    models = cfg.evaluation["models"]
    print(f"{args.config}: valid — pipeline '{cfg.pipeline_name}', {len(models)} model(s) "
          f"({', '.join(m['name'] for m in models)}), "
          f"{len(cfg.evaluation['algorithms'])} algorithm(s)"
          + (f"; settings from {cfg.pipeline_config_path}" if cfg.pipeline_config_path else "; default settings"))
    return 0


def format_plan(plan: Plan, settings: dict[str, Any]) -> str:
    """The plan as a table; compute is shown as the SageMaker executor would map it."""
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
    for r in rows:
        deps = r[2] if len(r[2]) <= 48 else r[2][:45] + "..."
        lines.append(f"  {r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {deps:<{widths[2]}}  {r[3]}")
    lines.append("Runs in parallel (each stage starts when the steps it depends on finish):")
    for i, group in enumerate(plan.levels(), 1):
        lines.append(f"  stage {i}: {', '.join(group)}")
    return "\n".join(lines)


def cmd_plan(args: argparse.Namespace) -> int:
    from lib.plan import build_plan

    cfg = load(args)
    plan = build_plan(cfg)
    print(json.dumps(plan.to_dict(), indent=2) if args.json else format_plan(plan, cfg.settings))
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("validate", help="check the configs; exit 0 if valid, 2 if not")
    add_config_args(p)
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("plan", help="show the steps, their dependencies and what runs in parallel")
    add_config_args(p)
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(func=cmd_plan)
