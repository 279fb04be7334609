"""What every command shares: the config arguments, loading both configs, the error contract."""

from __future__ import annotations

import argparse
from typing import Any


def add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="evaluation_config.yaml",
                   help="the evaluation config (what to evaluate); default: evaluation_config.yaml")
    p.add_argument("--pipeline-config", default=None,
                   help="where and how to run; default: pipeline_config.yaml beside --config, if present")
    p.add_argument("--input-data-path", default=None,
                   help="folder that relative data paths in the config resolve against (default: the config's folder)")


def load(args: argparse.Namespace) -> Any:
    """Both configs, validated: nothing that talks to AWS or a model runs before this returns."""
    from lib.config import load_config

    return load_config(args.config, args.pipeline_config, args.input_data_path)
