"""llm-eval-pipelines command line: validate, plan, run locally, and drive SageMaker.

    python pipelines/build_pipeline.py validate --config evaluation_config.yaml
    python pipelines/build_pipeline.py plan --config evaluation_config.yaml [--json]
    python pipelines/build_pipeline.py run --config evaluation_config.yaml [--output-dir DIR]

Heavy libraries (sagemaker, torch, fmeval) are imported only by the subcommands that need them,
so `validate` and `plan` answer in about a second.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lib.errors import UserError  # noqa: E402


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="evaluation_config.yaml",
                   help="the evaluation config (what to evaluate); default: evaluation_config.yaml")
    p.add_argument("--pipeline-config", default=None,
                   help="where and how to run; default: pipeline_config.yaml beside --config, if present")
    p.add_argument("--input-data-path", default=None,
                   help="folder that relative data paths in the config resolve against (default: the config's folder)")


def _load(args: argparse.Namespace):
    from lib.config import load_config

    return load_config(args.config, args.pipeline_config, args.input_data_path)


def cmd_validate(args: argparse.Namespace) -> int:
    cfg = _load(args)
    models = cfg.evaluation["models"]
    print(f"{args.config}: valid — pipeline '{cfg.pipeline_name}', {len(models)} model(s) "
          f"({', '.join(m['name'] for m in models)}), "
          f"{len(cfg.evaluation['algorithms'])} algorithm(s)"
          + (f"; settings from {cfg.pipeline_config_path}" if cfg.pipeline_config_path else "; default settings"))
    return 0


def format_plan(plan) -> str:
    rows = [("step", "kind", "depends on", "compute")]
    for s in plan.steps:
        compute = s.compute.get("instance_type", "")
        if "keep_alive_period_in_seconds" in s.compute:
            compute += f", warm pool {s.compute['keep_alive_period_in_seconds']}s"
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

    plan = build_plan(_load(args))
    print(json.dumps(plan.to_dict(), indent=2) if args.json else format_plan(plan))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="build_pipeline.py",
        description="Evaluate, fine-tune, select and register LLMs from one YAML file.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("validate", help="check the configs; exit 0 if valid, 2 if not")
    _add_config_args(p)
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("plan", help="show the steps, their dependencies and what runs in parallel")
    _add_config_args(p)
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(func=cmd_plan)
    for register in _EXTRA_COMMANDS:
        register(sub, _add_config_args)
    return parser


# Later subcommands register themselves here (run, definition, upsert, ...).
_EXTRA_COMMANDS: list = []


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
