"""The command line: one module per command group, assembled here.

    llm-eval-pipelines validate|plan|run|definition|upsert|start|schedule|unschedule|cleanup --config FILE

Heavy libraries (sagemaker, torch, fmeval) are imported only by the subcommands that need them,
so `validate` and `plan` answer in about a second.
"""

from __future__ import annotations

import argparse
import sys

from lib.errors import UserError
from pipelines.cli import config_cmds, run_cmd, sagemaker_cmds

COMMAND_GROUPS = (config_cmds, run_cmd, sagemaker_cmds)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="build_pipeline.py",
        description="Evaluate, fine-tune, select and register LLMs from one YAML file.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(sub)
    return parser


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


def entry() -> None:
    """The console script and `python pipelines/build_pipeline.py`."""
    code = main()
    if code in (130, 143):
        # interrupted: every endpoint is already stopped; do not wait for a worker thread still inside
        # a long generate or training step (the interpreter would join it at exit)
        sys.stdout.flush()
        sys.stderr.flush()
        import os

        os._exit(code)
    sys.exit(code)
