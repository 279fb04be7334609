"""Choose the best model by a policy: weighted objectives, each normalised across the candidates, and
constraints that exclude a candidate (with the reason). The single ``metric``/``direction`` form is one
objective of weight 1. Ties keep config order, so the choice is reproducible. The margin of the winner
over the runner-up on the first objective comes with a paired bootstrap interval over records.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lib.decide.bootstrap import paired_difference
from lib.decide.metrics import is_run_metric, value_of
from lib.run.records import ModelResult, Selection

PerRecord = Callable[[str, str], dict[str, float]]  # (model, metric) -> {record id: value}


def policy_of(selection: dict[str, Any]) -> dict[str, Any]:
    """A normalised policy from the config's ``selection`` (either form)."""
    objectives = selection.get("objectives") or [
        {"metric": selection["metric"], "weight": 1.0, "direction": selection.get("direction", "max")}]
    return {"objectives": objectives, "constraints": selection.get("constraints") or [],
            "confidence": selection.get("confidence", 0.95),
            "metric": objectives[0]["metric"], "direction": objectives[0]["direction"]}


def _broken(value: float | None, constraint: dict[str, Any]) -> str | None:
    metric = constraint["metric"]
    if value is None:
        return f"no value for {metric} (constraint)"
    if constraint.get("max") is not None and value > constraint["max"]:
        return f"{metric} = {value:.4g} is above the maximum {constraint['max']:g}"
    if constraint.get("min") is not None and value < constraint["min"]:
        return f"{metric} = {value:.4g} is below the minimum {constraint['min']:g}"
    return None


def choose(results: list[ModelResult], selection: dict[str, Any], score_names: dict[str, list[str]] | None = None,
           per_record: PerRecord | None = None) -> Selection:
    policy = policy_of(selection)
    objectives, constraints = policy["objectives"], policy["constraints"]
    names = score_names or {}
    candidates: dict[str, dict[str, Any]] = {}
    excluded: dict[str, str] = {}
    eligible: list[ModelResult] = []
    for r in results:
        if not r.selectable:
            excluded[r.model] = r.error or r.status
            continue
        values = {o["metric"]: value_of(r, o["metric"], names) for o in objectives}
        values.update({c["metric"]: value_of(r, c["metric"], names) for c in constraints})
        candidates[r.model] = {"values": values}
        missing = next((o["metric"] for o in objectives if values[o["metric"]] is None), None)
        if missing:
            excluded[r.model] = f"no value for {missing}"
            continue
        broke = next((why for c in constraints if (why := _broken(values[c["metric"]], c))), None)
        if broke:
            candidates[r.model]["broke"] = broke
            excluded[r.model] = broke
            continue
        eligible.append(r)

    weights = sum(o["weight"] for o in objectives) or 1.0
    for o in objectives:
        metric = o["metric"]
        column = [candidates[r.model]["values"][metric] for r in eligible]
        lo, hi = (min(column), max(column)) if column else (0.0, 0.0)
        for r in eligible:
            v = candidates[r.model]["values"][metric]
            norm = 1.0 if hi == lo else (v - lo) / (hi - lo)
            if o["direction"] == "min" and hi != lo:
                norm = 1.0 - norm
            candidates[r.model].setdefault("normalised", {})[metric] = round(norm, 6)
    for r in eligible:
        c = candidates[r.model]
        c["weighted"] = round(sum(o["weight"] * c["normalised"][o["metric"]] for o in objectives) / weights, 6)

    first = objectives[0]["metric"]
    ranking = [{"model": r.model, "value": candidates[r.model]["values"][first],
                "score": candidates[r.model]["weighted"]} for r in eligible]
    ranking.sort(key=lambda x: x["score"], reverse=True)  # stable: ties keep config order
    chosen = Selection(metric=first, direction=objectives[0]["direction"], objectives=objectives,
                       constraints=constraints, candidates=candidates, ranking=ranking, excluded=excluded)
    if ranking:
        chosen.best, chosen.best_value = ranking[0]["model"], ranking[0]["value"]
    if len(ranking) > 1:
        chosen.margin = margin(ranking[0]["model"], ranking[1]["model"], candidates, objectives[0],
                               policy["confidence"], per_record)
    return chosen


def margin(best: str, second: str, candidates: dict[str, dict[str, Any]], objective: dict[str, Any],
           confidence: float, per_record: PerRecord | None) -> dict[str, Any]:
    """How far ``best`` is ahead of ``second`` on the first objective, with an interval when the
    per-record values are there (scores; run metrics have none)."""
    metric = objective["metric"]
    a, b = candidates[best]["values"][metric], candidates[second]["values"][metric]
    out: dict[str, Any] = {"metric": metric, "over": second,
                           "difference": round((b - a) if objective["direction"] == "min" else (a - b), 6)}
    if per_record is not None and not is_run_metric(metric):
        paired = paired_difference(per_record(best, metric), per_record(second, metric), metric, confidence,
                                   lower_is_better=objective["direction"] == "min")
        if paired is not None:
            out.update(n=paired.n, low=paired.low, high=paired.high, confidence=confidence,
                       significant=paired.low > 0)
    return out
