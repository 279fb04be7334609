"""`run`: the whole plan on this machine."""

from __future__ import annotations

import argparse
import json
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
    from lib.gc_pace import collecting_every
    from lib.plan import build_plan
    from lib.run import interrupt
    from lib.run.layout import RunLayout, local_root_template
    from lib.run.lock import run_lock
    from lib.run.records import RunSummary
    from pipelines import local_executor

    cfg = load(args)
    refuse_over_budget(cfg, on_sagemaker=False)
    for model in cfg.models:  # before anything starts: a job of this run could not be given its S3 folder
        if model["invoke"].get("invocation") == "batch_transform" and not model["invoke"].get("transform_s3_uri"):
            from lib.errors import UserError

            raise UserError(f"{cfg.pipeline_config_path or 'pipeline_config.yaml'}: model '{model['name']}' is asked "
                            "by a batch transform job, which reads and writes S3: set sagemaker.bucket (and "
                            "optionally sagemaker.prefix) for a run on this machine")
    role = cfg.settings["sagemaker"].get("role_arn")
    if role:  # what SageMaker-hosted models deployed from here run as (lib/providers/sagemaker_base.py)
        os.environ["LLM_EVAL_ROLE_ARN"] = role
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
    started = time.perf_counter()
    local_executor.configure_threads(local["max_workers"])
    # a terminal gets one live table of the steps; a CI log or a pipe gets plain lines
    live = progress.LiveDisplay([s.name for s in plan.steps]) if progress.live_display_wanted() else None
    progress.use(live)
    try:
        # one run at a time in an output folder; the lock goes however the run ends
        # the collector at its default pace ran 440 times in a 10,000-record run, mostly over answer rows
        # that die young: 0.21-0.30 s; every 20,000 new objects, 0.14 s, 13 times, never a full scan
        with run_lock(layout.root), interrupt.handled(), collecting_every(20_000):
            # said once the folder is ours: a run refused it (a file there, another run in it) starts nothing
            progress.say("run", f"{cfg.pipeline_name} execution {execution_id}: {len(plan.steps)} steps into "
                                f"{layout.root}")
            local_executor.run_plan(plan, params, local["max_workers"])
    except (KeyboardInterrupt, interrupt.Interrupted) as exc:
        _end_display(live)
        code = getattr(exc, "exit_code", status.EXIT_SIGINT)
        partial = None
        try:  # how far each model got, and the first error of one that was failing
            if storage.exists(layout.summary):
                partial = RunSummary.from_dict(storage.read_json(layout.summary))
                partial = partial if partial.execution_id == execution_id else None  # not an earlier run's
        except Exception:  # the wind-down could not write it: the line below still says what to do
            pass
        for line in status.problems(partial) if partial else []:
            print(f"problem: {line}", file=sys.stderr)
        print(f"interrupted: what this run created was deleted; the partial summary is {layout.summary}; "
              f"run again with --output-dir {layout.root} to resume", file=sys.stderr)
        return code
    finally:
        _end_display(live)
    if not storage.exists(layout.summary):
        print(f"the run ended without a summary; see {layout.root}", file=sys.stderr)
        return status.EXIT_BROKEN
    summary = RunSummary.from_dict(storage.read_json(layout.summary))
    if args.json:  # the summary on stdout and nothing else, for a script to read
        print(json.dumps(summary.to_dict(), indent=2))
    elif args.quiet:
        print("\n".join(format_summary(summary, layout, time.perf_counter() - started).splitlines()[-2:]))
    else:
        print(format_summary(summary, layout, time.perf_counter() - started))
    code = status.exit_code(summary)
    for line in status.problems(summary):
        print(f"problem: {line}", file=sys.stderr)
    if code:
        print(f"exit code {code}: {EXIT_MEANING[code]}", file=sys.stderr)
    return code


def _end_display(live: Any) -> None:
    from lib import progress

    progress.use(None)
    if live is not None:
        live.close()


def format_summary(summary: RunSummary, layout: RunLayout, seconds: float) -> str:
    """The final table, ranked (the winner first, then the rest, then the excluded), and the verdict."""
    sel = summary.selection
    metric = sel.metric if len(sel.metric) <= 24 else sel.metric[:21] + "..."
    lines = [f"\n{summary.pipeline} {summary.execution_id} finished in {seconds:.0f}s",
             f"{'#':>2} {'model':<28} {'status':<11} {metric:>24} {'calls':>6} {'p50 s':>7} {'cost $':>8}"]
    ranking = {r["model"]: (i, r["value"]) for i, r in enumerate(sel.ranking)}
    order = sorted(summary.models, key=lambda n: ranking.get(n, (len(ranking), None))[0])
    for name in order:
        m = summary.models[name]
        rank, value = ranking.get(name, (None, None))
        calls, p50, cost = m.invocations, m.latency_p50_s, m.cost_usd
        lines.append(f"{'-' if rank is None else rank + 1:>2} {name:<28} {m.status:<11} "
                     f"{'-' if value is None else f'{value:.3f}':>24} {'-' if calls is None else calls:>6} "
                     f"{'-' if p50 is None else f'{p50:.2f}':>7} {'-' if cost is None else f'{cost:.2f}':>8}")
    from lib.sinks import outcome_lines

    lines += outcome_lines(summary)  # MLflow, CloudWatch: where to look, or why they failed
    verdict = f"best: {sel.best}"
    if summary.gate and summary.gate.decision:
        verdict += f"; gate: {summary.gate.decision} ({summary.gate.approval_status})"
    registry = summary.registry
    if registry and registry.version:
        verdict += f"; registered: version {registry.version}"
    lines.append(verdict)
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
    p.add_argument("--json", action="store_true", help="print the run's summary.json on stdout, nothing else")
    p.add_argument("--output-dir", default=None,
                   help="where the run is written (default: <local.output_dir>/<pipeline>/<execution-id>)")
    p.set_defaults(func=cmd_run)
