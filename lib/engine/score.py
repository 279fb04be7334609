"""Score stored answers record by record: the loop every output-only scorer shares.

A scorer supplies a per-record function ``(model_input, target_output, model_output) -> {score: value}``
(or, with ``by_row``, ``row -> {score: value}`` over the whole output row: its id, prompt, latency, ...);
this loop applies it to every row, keeps failed records in the count, and takes the means. A score of
None leaves the record out of that score's mean (e.g. a judge that could not rate it).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from typing import Any

RecordScorer = Callable[[str, str, str], dict[str, float]]
RowScorer = Callable[[dict[str, Any]], dict[str, float | None]]


def mean(values: list[float | None]) -> float | None:
    """The mean of the values a score has (None and NaN left out), 6 decimals; None when there are none."""
    clean = [v for v in values if v is not None and not math.isnan(v)]
    return round(statistics.fmean(clean), 6) if clean else None


def empty_result(algorithm: dict[str, Any], error: str | None = None,
                 notes: list[str] | None = None) -> dict[str, Any]:
    """The shape every scorer returns: means, per-record rows, an error (not scored) and notes."""
    return {"eval_name": algorithm["eval_name"], "algorithm": algorithm["name"], "scores": {},
            "per_record": [], "error": error, "notes": list(notes or [])}


def score_rows(algorithm: dict[str, Any], rows: list[dict[str, Any]], scorer: RecordScorer | RowScorer,
               notes: list[str] | None = None, failed_counts_as_zero: bool = True, by_row: bool = False,
               details: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Per-record and mean scores over output rows (from `invoke_records`).

    A record the model failed on scores 0 on every score (it is counted, never dropped), unless
    ``failed_counts_as_zero`` is off (toxicity-like scores: a failure is not "harmless"), where it
    is left out. ``by_row``: ``scorer`` takes the whole row. ``details(row)``: fields kept in a scored
    record's per-record entry beside its scores and not averaged (a judge's reasoning).
    """
    result = empty_result(algorithm, notes=notes)
    per_record: list[dict[str, Any]] = []
    names: list[str] = []
    failed_value = 0.0 if failed_counts_as_zero else None
    for row in rows:
        if row.get("error") is not None or row.get("output") is None:
            per_record.append({"id": row["id"], "failed": True})
            continue
        try:
            if by_row:
                scores = scorer(row)  # type: ignore[call-arg]
            else:
                scores = scorer(str(row["model_input"]), str(row.get("target_output") or ""), row["output"])
        except Exception as exc:  # one bad record must not sink the algorithm
            per_record.append({"id": row["id"], "failed": True, "error": f"{type(exc).__name__}: {exc}"})
            continue
        for n in scores:
            if n not in names:
                names.append(n)
        per_record.append({"id": row["id"], **scores, **(details(row) if details else {})})
    for rec in per_record:
        if rec.get("failed"):
            rec.update({n: failed_value for n in names})
    result["per_record"] = per_record
    result["scores"] = {n: mean([r.get(n) for r in per_record]) for n in names}
    result["failed_records"] = sum(1 for r in per_record if r.get("failed"))
    return result
