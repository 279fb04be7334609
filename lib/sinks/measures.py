"""The numbers of one model's evaluation that tracking sinks send: every score, the run metrics a policy
can name (`lib.decide.metrics.RUN_METRICS`), and the counts behind them."""

from __future__ import annotations

import math
from typing import Any

from lib.run.records import ModelResult

# beside the run metrics: what a dashboard or an MLflow comparison wants too
COUNTS = ("latency_mean_s", "wall_s", "prompt_tokens", "generated_tokens", "records", "errors", "invocations",
          "cache_hits", "scoring_cost_usd")


def number(value: Any) -> float | None:
    """``value`` as a finite float, or None (CloudWatch and MLflow refuse NaN; a bool is no measure)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


def scores(result: ModelResult) -> list[tuple[str, str, float]]:
    """(eval name, score name, mean) for every score ``result`` has."""
    out = []
    for eval_name, values in sorted(result.scores.items()):
        for score, value in sorted((values or {}).items()):
            mean = number(value)
            if mean is not None:
                out.append((eval_name, score, mean))
    return out


def run_metrics(result: ModelResult) -> dict[str, float]:
    from lib.decide.metrics import RUN_METRICS

    values = {name: number(read(result)) for name, (read, _) in RUN_METRICS.items()}
    return {k: v for k, v in values.items() if v is not None}


def counts(result: ModelResult) -> dict[str, float]:
    values = {name: number(getattr(result, name, None)) for name in COUNTS}
    return {k: v for k, v in values.items() if v is not None}
