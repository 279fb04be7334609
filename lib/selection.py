"""Choose the best model by the configured metric; models that failed or lack the metric are excluded."""

from __future__ import annotations

from typing import Any


def metric_value(result: dict[str, Any], metric: str, score_names: dict[str, list[str]]) -> float | None:
    """``eval_name`` means that algorithm's first score; ``eval_name.score`` names one score."""
    eval_name, _, score = metric.partition(".")
    scores = (result.get("scores") or {}).get(eval_name)
    if not scores:
        return None
    if not score:
        known = score_names.get(eval_name) or list(scores)
        score = next((n for n in known if n in scores), next(iter(scores)))
    return scores.get(score)


def choose(results: list[dict[str, Any]], metric: str, direction: str,
           score_names: dict[str, list[str]] | None = None) -> dict[str, Any]:
    ranking, excluded = [], {}
    for r in results:
        name = r.get("model") or "?"
        if r.get("status") != "succeeded":
            excluded[name] = r.get("error") or "failed"
            continue
        value = metric_value(r, metric, score_names or {})
        if value is None:
            excluded[name] = f"no value for {metric}"
            continue
        ranking.append({"model": name, "value": value})
    # ties keep config order (sorted is stable), so the choice is reproducible
    ranking.sort(key=lambda x: x["value"], reverse=(direction == "max"))
    return {"metric": metric, "direction": direction, "best": ranking[0]["model"] if ranking else None,
            "best_value": ranking[0]["value"] if ranking else None, "ranking": ranking, "excluded": excluded}
