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
from lib.plan import Plan  # noqa: E402


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


def format_plan(plan: Plan) -> str:
    rows = [("step", "kind", "depends on", "compute")]
    for s in plan.steps:
        compute = s.compute.get("instance_type", "")
        if "training_instance_type" in s.compute:
            compute += f" (training job: {s.compute['training_instance_type']})"
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
    except Exception as exc:
        # AWS refusing a call (credentials, permissions, quotas) is not a bug: say what AWS said
        if type(exc).__module__.startswith(("botocore", "boto3")):
            print(f"error: AWS refused the call: {' '.join(str(exc).split())}", file=sys.stderr)
            return 1
        raise



def cmd_run(args: argparse.Namespace) -> int:
    import os
    import time
    from pathlib import Path

    from lib import progress, storage
    from lib.plan import build_plan
    from pipelines import local_executor

    cfg = _load(args)
    plan = build_plan(cfg)
    local = cfg.settings["local"]
    execution_id = local_executor.new_execution_id()
    run_root = str(Path(args.output_dir).resolve()) if args.output_dir else storage.join(
        local["output_dir"], cfg.pipeline_name, execution_id)
    params = {
        "run_root": run_root, "execution_id": execution_id, "dataset_uri": None,
        "cache_root": local["model_cache_dir"],
        "model_approval_status": cfg.settings["sagemaker"]["model_approval_status"],
    }
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    progress.say("run", f"{cfg.pipeline_name} execution {execution_id}: {len(plan.steps)} steps into {run_root}")
    started = time.perf_counter()
    local_executor.configure_threads(local["max_workers"])
    local_executor.run_plan(plan, params, local["max_workers"])
    summary_uri = storage.join(run_root, "summary.json")
    if not storage.exists(summary_uri):
        print(f"the run ended without a summary; see {run_root}", file=sys.stderr)
        return 1
    summary = storage.read_json(summary_uri)
    print(format_summary(summary, run_root, time.perf_counter() - started))
    ok = any(m["status"] == "succeeded" for m in summary["models"].values())
    return 0 if ok else 1


def format_summary(summary: dict, run_root: str, seconds: float) -> str:
    sel = summary["selection"]
    lines = [f"\n{summary['pipeline']} {summary['execution_id']} finished in {seconds:.0f}s",
             f"{'model':<28} {'status':<10} {sel['metric']:>20} {'calls':>6} {'p50 s':>7}"]
    ranking = {r["model"]: r["value"] for r in sel.get("ranking", [])}
    for name, m in summary["models"].items():
        value, calls, p50 = ranking.get(name), m.get("invocations"), m.get("latency_p50_s")
        lines.append(f"{name:<28} {m['status']:<10} {'-' if value is None else f'{value:.3f}':>20} "
                     f"{'-' if calls is None else calls:>6} {'-' if p50 is None else f'{p50:.2f}':>7}")
    lines.append(f"best: {sel['best']}" + (f"; registered: version {summary['registry'].get('version')}"
                                          if summary.get("registry") and summary["registry"].get("version") else ""))
    lines.append(f"report: {run_root}/report.html")
    return "\n".join(lines)


def _register_run(sub, add_config_args) -> None:
    p = sub.add_parser("run", help="run the whole pipeline on this machine")
    add_config_args(p)
    p.add_argument("--output-dir", default=None,
                   help="where the run is written (default: <local.output_dir>/<pipeline>/<execution-id>)")
    p.set_defaults(func=cmd_run)


def _register_sagemaker(sub, add_config_args) -> None:
    from pipelines.sagemaker_cli import register

    register(sub, add_config_args)


_EXTRA_COMMANDS.extend([_register_run, _register_sagemaker])


if __name__ == "__main__":
    code = main()
    if code == 130:
        # Ctrl-C: every endpoint is already stopped; do not wait for a worker thread still inside a
        # long generate or training step (the interpreter would join it at exit)
        sys.stdout.flush()
        sys.stderr.flush()
        import os

        os._exit(code)
    sys.exit(code)
