"""The metrics a selection policy, a constraint or a gate can name, read from a `ModelResult`.

Every score (``<eval_name>`` for an algorithm's first score, or ``<eval_name>.<score>``), plus the run
metrics below. Plain functions of records: no model, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable

from lib.run.records import ModelResult

# run metric -> (how to read it, which way is better)
RUN_METRICS: dict[str, tuple[Callable[[ModelResult], float | None], str]] = {
    "error_rate": (lambda r: (r.errors / r.records) if r.records and r.errors is not None else None, "min"),
    "latency_p50_s": (lambda r: r.latency_p50_s, "min"),
    "latency_p95_s": (lambda r: r.latency_p95_s, "min"),
    "cost_usd": (lambda r: r.cost_usd, "min"),
    "cost_per_1k_records_usd": (lambda r: (1000 * r.cost_usd / r.records) if r.cost_usd is not None and r.records
                                else None, "min"),
    "tokens_per_s": (lambda r: r.tokens_per_s, "max"),
}


def is_run_metric(metric: str) -> bool:
    return metric in RUN_METRICS


def better(metric: str) -> str:
    """``max`` or ``min``: scores are better higher, run metrics as listed."""
    return RUN_METRICS[metric][1] if metric in RUN_METRICS else "max"


def score_name(metric: str, score_names: dict[str, list[str]], available: dict[str, float | None]) -> str | None:
    """The score a score metric means: the named one, or the algorithm's first."""
    eval_name, _, score = metric.partition(".")
    if score:
        return score
    known = score_names.get(eval_name) or list(available)
    return next((n for n in known if n in available), next(iter(available), None))


def value_of(result: ModelResult, metric: str, score_names: dict[str, list[str]] | None = None) -> float | None:
    if metric in RUN_METRICS:
        value = RUN_METRICS[metric][0](result)
        return None if value is None else float(value)
    eval_name = metric.partition(".")[0]
    scores = result.scores.get(eval_name)
    if not scores:
        return None
    name = score_name(metric, score_names or {}, scores)
    return scores.get(name) if name else None
