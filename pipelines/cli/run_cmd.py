"""`run`: the whole plan on this machine."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from pipelines.cli.common import add_config_args, load, refuse_over_budget

if TYPE_CHECKING:
    from lib.run.layout import RunLayout
    from lib.run.records import RunSummary


def cmd_run(args: argparse.Namespace) -> int:
    import os
    import time
    from pathlib import Path

    from lib import progress, storage
    from lib.decide import status
    from lib.plan import build_plan
    from lib.run import interrupt
    from lib.run.layout import RunLayout, local_root_template
    from lib.run.lock import run_lock
    from lib.run.records import RunSummary
    from pipelines import local_executor

    cfg = load(args)
    refuse_over_budget(cfg, on_sagemaker=False)
    plan = build_plan(cfg)
    local = cfg.settings["local"]
    execution_id = local_executor.new_execution_id()
    root = str(Path(args.output_dir).resolve()) if args.output_dir else local_root_template(
        local["output_dir"], cfg.pipeline_name)
    layout = RunLayout.resolve(root, execution_id)
    params = {
        "run_root": layout.root, "execution_id": execution_id, "dataset_uri": None,
        "cache_root": local["model_cache_dir"],
        "model_approval_status": cfg.settings["sagemaker"]["model_approval_status"],
    }
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    progress.say("run", f"{cfg.pipeline_name} execution {execution_id}: {len(plan.steps)} steps into {layout.root}")
    started = time.perf_counter()
    local_executor.configure_threads(local["max_workers"])
    try:
        # one run at a time in an output folder; the lock goes however the run ends
        with run_lock(layout.root), interrupt.handled():
            local_executor.run_plan(plan, params, local["max_workers"])
    except (KeyboardInterrupt, interrupt.Interrupted) as exc:
        code = getattr(exc, "exit_code", status.EXIT_SIGINT)
        print(f"interrupted: what this run created was deleted; the partial summary is {layout.summary}; "
              f"run again with --output-dir {layout.root} to resume", file=sys.stderr)
        return code
    if not storage.exists(layout.summary):
        print(f"the run ended without a summary; see {layout.root}", file=sys.stderr)
        return status.EXIT_BROKEN
    summary = RunSummary.from_dict(storage.read_json(layout.summary))
    print(format_summary(summary, layout, time.perf_counter() - started))
    code = status.exit_code(summary)
    for line in status.problems(summary):
        print(f"problem: {line}", file=sys.stderr)
    if code:
        print(f"exit code {code}: {EXIT_MEANING[code]}", file=sys.stderr)
    return code


def format_summary(summary: RunSummary, layout: RunLayout, seconds: float) -> str:
    sel = summary.selection
    lines = [f"\n{summary.pipeline} {summary.execution_id} finished in {seconds:.0f}s",
             f"{'model':<28} {'status':<10} {sel.metric:>20} {'calls':>6} {'p50 s':>7}"]
    ranking = {r["model"]: r["value"] for r in sel.ranking}
    for name, m in summary.models.items():
        value, calls, p50 = ranking.get(name), m.invocations, m.latency_p50_s
        lines.append(f"{name:<28} {m.status:<10} {'-' if value is None else f'{value:.3f}':>20} "
                     f"{'-' if calls is None else calls:>6} {'-' if p50 is None else f'{p50:.2f}':>7}")
    registry = summary.registry
    lines.append(f"best: {sel.best}" + (f"; registered: version {registry.version}"
                                       if registry and registry.version else ""))
    lines.append(f"report: {layout.report}")
    return "\n".join(lines)


EXIT_MEANING = {
    0: "every model was evaluated and one was selected",
    3: "a model was selected, but some models failed or are partial",
    4: "nothing could be selected",
    5: "a model was selected but could not be registered",
    6: "a model was selected, but the gate rejected it",
    130: "interrupted (SIGINT); what the run created was deleted",
    143: "interrupted (SIGTERM); what the run created was deleted",
    1: "the run broke before it could write its summary",
    2: "bad input: nothing was run",
}
EPILOG = "exit codes:\n" + "\n".join(f"  {code:>3}  {meaning}" for code, meaning in EXIT_MEANING.items())


def register(sub: Any) -> None:
    p = sub.add_parser("run", help="run the whole pipeline on this machine", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(p)
    p.add_argument("--output-dir", default=None,
                   help="where the run is written (default: <local.output_dir>/<pipeline>/<execution-id>)")
    p.set_defaults(func=cmd_run)
