"""Subcommands that talk to SageMaker: definition, upsert, start, schedule, unschedule, cleanup.

Each validates the configs first: no AWS call is made for a config that does not validate.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from lib.errors import UserError
from pipelines.cli.common import add_config_args, load, refuse_over_budget


def _assemble(args: argparse.Namespace, cfg: Any = None):
    from pipelines.sagemaker_executor import build

    cfg = cfg or load(args)  # validation first: nothing below runs for a bad config
    return cfg, build(cfg)


def cmd_definition(args: argparse.Namespace) -> int:
    _, assembly = _assemble(args)
    text = json.dumps(json.loads(assembly.pipeline.definition()), indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
        print(f"wrote {args.out} ({len(json.loads(text)['Steps'])} steps)")
    else:
        print(text)
    return 0


def upload_inputs(uploads: list[tuple[str, str]]) -> None:
    from lib import storage

    for local, uri in uploads:
        storage.upload_file(local, uri)
        print(f"uploaded {local} -> {uri}")


def cmd_upsert(args: argparse.Namespace) -> int:
    from pipelines.sagemaker_executor import parallelism

    cfg, assembly = _assemble(args)
    upload_inputs(assembly.uploads)
    description = cfg.evaluation["pipeline"]["description"] or f"llm-eval-pipelines: {cfg.pipeline_name}"
    sm = cfg.settings["sagemaker"]
    response = assembly.pipeline.upsert(role_arn=sm["role_arn"], description=description,
                                        tags=assembly.tags, parallelism_config=parallelism(cfg.settings))
    print(f"upserted {response['PipelineArn']}")
    cloudwatch = (cfg.settings.get("tracking") or {}).get("cloudwatch")
    if cloudwatch and (cloudwatch["alarms"] or cloudwatch["dashboard"]):  # each run puts its metrics itself
        from lib.aws.cloudwatch import set_up

        alarms, dashboard = set_up(cloudwatch, cfg.evaluation)
        for arn in alarms:
            print(f"alarm {arn}")
        if dashboard:
            print(f"dashboard {dashboard} (CloudWatch, namespace {cloudwatch['namespace']})")
    if assembly.sweeper is not None:
        from lib.aws.failure_rule import put_failure_rule

        sweeper = assembly.sweeper.upsert(role_arn=sm["role_arn"], tags=assembly.tags,
                                          description=f"Sweeps what failed executions of {cfg.pipeline_name} left")
        rule = put_failure_rule(cfg.pipeline_name, response["PipelineArn"], sweeper["PipelineArn"], sm["role_arn"],
                                assembly.tags, sm.get("region"))
        print(f"upserted {sweeper['PipelineArn']}, started by {rule} when an execution fails or is stopped")
    return 0


def parse_params(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--param '{pair}': expected NAME=VALUE, e.g. EvaluateInstanceType=ml.g5.4xlarge")
        out[key] = value
    return out


def cmd_start(args: argparse.Namespace) -> int:
    from pipelines.sagemaker_executor import parallelism

    params = parse_params(args.param)
    cfg = load(args)
    refuse_over_budget(cfg, on_sagemaker=True)  # before any AWS call
    cfg, assembly = _assemble(args, cfg)
    known = {p.name for p in assembly.pipeline.parameters}
    unknown = sorted(set(params) - known)
    if unknown:
        raise UserError(f"--param {unknown[0]}: the pipeline has no such parameter; it has {', '.join(sorted(known))}")
    execution = assembly.pipeline.start(parameters=params or None, parallelism_config=parallelism(cfg.settings))
    arn = execution.arn
    print(f"started {arn}")
    if args.wait:
        code = wait_for(execution, args.poll_seconds)
        return verdict(assembly.root, arn) if code == 0 else code
    return 0


def verdict(pipeline_root: str, execution_arn: str) -> int:
    """A finished execution's exit code, the same table as `run`'s, from the summary it wrote."""
    from lib import storage
    from lib.decide import status
    from lib.run.layout import RunLayout, s3_root_template
    from lib.run.records import RunSummary

    layout = RunLayout.resolve(s3_root_template(pipeline_root), execution_arn.rsplit("/", 1)[-1])
    if not storage.exists(layout.summary):
        print(f"the execution succeeded but wrote no summary at {layout.summary}", file=sys.stderr)
        return status.EXIT_BROKEN
    summary = RunSummary.from_dict(storage.read_json(layout.summary))
    for line in status.problems(summary):
        print(f"problem: {line}", file=sys.stderr)
    code = status.exit_code(summary)
    print(f"verdict: exit code {code}" + (f" ({summary.selection.best} selected)" if summary.selection.best else ""))
    return code


def wait_for(execution: Any, poll_seconds: float) -> int:
    """Print each step's status as it changes until the execution ends."""
    seen: dict[str, str] = {}
    while True:
        try:
            desc = execution.describe()
        except Exception as exc:  # e.g. an emulator without DescribePipelineExecution
            print(f"cannot follow the execution here ({type(exc).__name__}); see SageMaker Studio")
            return 0
        try:
            for s in execution.list_steps():
                name, status = s.get("StepName"), s.get("StepStatus")
                if seen.get(name) != status:
                    seen[name] = status
                    reason = f" ({s['FailureReason']})" if s.get("FailureReason") else ""
                    print(f"{time.strftime('%H:%M:%S')} {name:<32} {status}{reason}")
        except Exception as exc:
            if not seen:
                print(f"step statuses are not available here ({type(exc).__name__}); polling the execution only")
                seen["-"] = "-"
        status = desc.get("PipelineExecutionStatus")
        if status in ("Succeeded", "Failed", "Stopped"):
            print(f"execution {status}")
            return 0 if status == "Succeeded" else 1
        time.sleep(poll_seconds)


def schedule_name(pipeline: str) -> str:
    return f"{pipeline}-schedule"[:64]


def cmd_schedule(args: argparse.Namespace) -> int:
    from sagemaker.workflow.triggers import PipelineSchedule

    from lib.config import validate_eventbridge_expression

    expr = f"cron({args.cron})" if args.cron and not args.cron.startswith("cron(") else args.cron
    expr = expr or (f"rate({args.rate})" if not args.rate.startswith("rate(") else args.rate)
    problem = validate_eventbridge_expression(expr)
    if problem:
        raise UserError(f"'{expr}' is not a valid EventBridge schedule expression: {problem}")
    cfg, assembly = _assemble(args)
    inner = expr[expr.index("(") + 1:-1]
    when = {"cron": inner} if expr.startswith("cron(") else {"rate": tuple(inner.split(" ", 1))}
    trigger = PipelineSchedule(name=schedule_name(cfg.pipeline_name), enabled=True, **when)
    arns = assembly.pipeline.put_triggers(triggers=[trigger], role_arn=args.scheduler_role or
                                          cfg.settings["sagemaker"]["role_arn"])
    print(f"scheduled {cfg.pipeline_name} {expr}: {', '.join(arns)}")
    return 0


def cmd_unschedule(args: argparse.Namespace) -> int:
    cfg, assembly = _assemble(args)
    assembly.pipeline.delete_triggers(trigger_names=[schedule_name(cfg.pipeline_name)])
    print(f"removed the schedule of {cfg.pipeline_name}")
    return 0


def cmd_cleanup(args: argparse.Namespace) -> int:
    """Delete endpoints, endpoint configs and models tagged with this pipeline (and execution)."""
    from lib.aws.cleanup_tagged import delete_finished, delete_tagged

    cfg = load(args)
    region = cfg.settings["sagemaker"].get("region")
    if args.finished:
        deleted = delete_finished(cfg.pipeline_name, region, dry_run=args.dry_run)
    else:
        deleted = delete_tagged(cfg.pipeline_name, args.execution_id, region, dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    print("\n".join(f"{verb} {d}" for d in deleted) or "nothing tagged with this pipeline is left")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("definition", help="print or write the SageMaker pipeline definition (JSON)")
    add_config_args(p)
    p.add_argument("--out", help="write the definition here instead of printing it")
    p.set_defaults(func=cmd_definition)

    p = sub.add_parser("upsert", help="create or update the SageMaker pipeline (uploads local data first)")
    add_config_args(p)
    p.set_defaults(func=cmd_upsert)

    p = sub.add_parser("start", help="start an execution of the upserted pipeline")
    add_config_args(p)
    p.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="override a pipeline parameter (DatasetUri, ModelApprovalStatus, EvaluateInstanceType, ...)")
    p.add_argument("--wait", action="store_true", help="follow the execution, printing each step's status")
    p.add_argument("--poll-seconds", type=float, default=30.0, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_start)

    p = sub.add_parser("schedule", help="run the pipeline on an EventBridge schedule")
    add_config_args(p)
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--cron", help="e.g. '0 6 ? * MON *' (UTC)")
    group.add_argument("--rate", help="e.g. '1 day'")
    p.add_argument("--scheduler-role", help="role EventBridge Scheduler assumes (default: sagemaker.role_arn)")
    p.set_defaults(func=cmd_schedule)

    p = sub.add_parser("unschedule", help="remove the pipeline's schedule")
    add_config_args(p)
    p.set_defaults(func=cmd_unschedule)

    p = sub.add_parser("cleanup", help="delete SageMaker endpoints/configs/models this tool created and tagged")
    add_config_args(p)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--execution-id", help="only what this execution created")
    group.add_argument("--finished", action="store_true",
                       help="only what executions no longer running left (what the sweep pipeline does)")
    p.add_argument("--dry-run", action="store_true", help="list, do not delete")
    p.set_defaults(func=cmd_cleanup)

