"""Choose the best model by the configured metric; models that failed or lack the metric are excluded."""

from __future__ import annotations

from lib.run.records import ModelResult, Selection


def metric_value(result: ModelResult, metric: str, score_names: dict[str, list[str]]) -> float | None:
    """``eval_name`` means that algorithm's first score; ``eval_name.score`` names one score."""
    eval_name, _, score = metric.partition(".")
    scores = result.scores.get(eval_name)
    if not scores:
        return None
    if not score:
        known = score_names.get(eval_name) or list(scores)
        score = next((n for n in known if n in scores), next(iter(scores)))
    return scores.get(score)


def choose(results: list[ModelResult], metric: str, direction: str,
           score_names: dict[str, list[str]] | None = None) -> Selection:
    ranking, excluded = [], {}
    for r in results:
        if not r.selectable:
            excluded[r.model] = r.error or "failed"
            continue
        value = metric_value(r, metric, score_names or {})
        if value is None:
            excluded[r.model] = f"no value for {metric}"
            continue
        ranking.append({"model": r.model, "value": value})
    # ties keep config order (sorted is stable), so the choice is reproducible
    ranking.sort(key=lambda x: x["value"], reverse=(direction == "max"))
    return Selection(metric=metric, direction=direction, best=ranking[0]["model"] if ranking else None,
                     best_value=ranking[0]["value"] if ranking else None, ranking=ranking, excluded=excluded)
