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
                   help="a folder or an s3://bucket/prefix that relative data paths in the config resolve against "
                   "(default: the config's folder)")


def dataset_size(cfg: Any) -> int:
    """Records in the config's dataset (a local file or folder is counted; S3 is not read: 0)."""
    from pathlib import Path

    from lib.config import is_remote_uri

    dataset = cfg.evaluation["dataset"]
    known = (dataset.get("benchmark") or {}).get("records")
    if known is not None:  # a benchmark's local data was read at validate (its CSV folders too)
        return known
    uri = dataset["uri"]
    if is_remote_uri(uri):
        return 0
    p = Path(uri)
    files = sorted(p.glob("*.jsonl")) + sorted(p.glob("*.json")) if p.is_dir() else [p]
    count = 0
    for f in files:
        with open(f, "rb") as fh:
            count += sum(1 for line in fh if line.strip())
    return count


def cost_of(cfg: Any, on_sagemaker: bool, records: int | None = None) -> dict[str, Any]:
    """The cost estimate; ``records`` when the caller has counted the dataset already."""
    from lib.decide.cost import estimate

    return estimate(cfg.evaluation, cfg.settings, dataset_size(cfg) if records is None else records, on_sagemaker)


def refuse_over_budget(cfg: Any, on_sagemaker: bool) -> None:
    """Before anything starts: an estimate above ``budget.max_usd`` is refused (exit 2)."""
    from lib.decide.cost import over_budget
    from lib.errors import UserError

    why = over_budget(cfg.evaluation, cost_of(cfg, on_sagemaker))
    if why:
        raise UserError(f"{cfg.config_path}: not started: {why}")


def load(args: argparse.Namespace) -> Any:
    """Both configs, validated: nothing that talks to AWS or a model runs before this returns."""
    import sys

    from lib.config import load_config

    cfg = load_config(args.config, args.pipeline_config, args.input_data_path)
    for note in cfg.notes:
        print(f"note: {note}", file=sys.stderr)
    return cfg
