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


def version() -> str:
    try:
        from importlib.metadata import version as installed

        return installed("llm-eval-pipelines")
    except Exception:  # run from a clone without installing
        return "unknown (not installed)"


class _Version(argparse.Action):
    """``--version``: the installed version, looked up only when asked (importing the package metadata
    reader is a few hundredths of a second of every command otherwise)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS) -> None:
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0,
                         help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        print(f"llm-eval-pipelines {version()}")
        parser.exit()


def _output_flags(p: argparse.ArgumentParser, default: object) -> None:
    p.add_argument("-q", "--quiet", action="store_true", default=default,
                   help="only errors and the final lines (no progress)")
    p.add_argument("-v", "--verbose", action="store_true", default=default,
                   help="also the SageMaker SDK's and botocore's own log lines")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="build_pipeline.py",
        description="Evaluate, fine-tune, select and register LLMs from one YAML file.",
    )
    parser.add_argument("--version", action=_Version)
    _output_flags(parser, False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(sub)
    for command in sub.choices.values():  # accepted after the command too; SUPPRESS keeps the global value
        _output_flags(command, argparse.SUPPRESS)
    return parser


def configure_output(verbose: bool, quiet: bool) -> None:
    """Libraries' own logging stays out of the user's terminal unless --verbose."""
    import logging
    import warnings

    from lib import progress

    progress.set_quiet(quiet)
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s %(message)s")
        return
    for name in ("sagemaker", "botocore", "boto3", "urllib3", "s3transfer", "ray", "fmeval", "datasets",
                 "transformers", "accelerate", "filelock"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*[Tt]elemetry.*")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_output(args.verbose, args.quiet)
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
    import os

    try:
        code = main()
        sys.stdout.flush()
    except KeyboardInterrupt:  # before a command began (reading the arguments): nothing to undo
        print("interrupted", file=sys.stderr)
        code = 130
    except BrokenPipeError:
        # the reader went away (`plan --json | head`): nothing more to say, and no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    if code in (130, 143):
        # interrupted: every endpoint is already stopped; do not wait for a worker thread still inside
        # a long generate or training step (the interpreter would join it at exit)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    leave(code)


def leave(code: int) -> None:
    """Exit with ``code`` as `sys.exit` does, without the interpreter's teardown of every module it loaded
    (0.12-0.17 s after a run): what exit runs that matters here still runs (the exit handlers: finalizers
    such as temporary folders' removal, logging's flush), then the output is flushed. With a thread still
    at work, a profiler or debugger attached (cProfile writes its file after the script), or a Python
    without the handlers' runner, it is `sys.exit`, which waits for the thread."""
    import atexit
    import os
    import threading

    run_handlers = getattr(atexit, "_run_exitfuncs", None)
    if threading.active_count() > 1 or run_handlers is None or sys.getprofile() or sys.gettrace():
        sys.exit(code)
    run_handlers()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader gone, or closed: as exit would, nothing more to say
            pass
    os._exit(code)
