"""Score cached model outputs with fmeval, record by record, with no model call and no Ray.

fmeval's own per-record code does the scoring (`evaluate_sample`, or the transform it wraps), so the
numbers are fmeval's; only the loop is ours. Measured here: 10,000 records x FactualKnowledge in
~0.2 s with `evaluate_sample`, against ~15 s for `evaluate()` on 2,000 (Ray start-up and stages).
"""

from __future__ import annotations

import importlib
import math
import statistics
from collections.abc import Callable
from typing import Any

from lib import fmeval_offline

# algorithms whose higher score is worse: a failed record must not count as "not toxic"
_LOWER_IS_BETTER = ("toxicity", "qa_toxicity", "summarization_toxicity")


class ScoringUnavailable(RuntimeError):
    """The algorithm cannot run here (e.g. it needs the Hugging Face Hub); the message says why."""


def _config(algorithm: dict[str, Any], module: Any) -> Any:
    if not algorithm.get("config_class"):
        return None
    return getattr(module, algorithm["config_class"])(**algorithm["options"])


def make_scorer(algorithm: dict[str, Any]) -> tuple[Callable[[str, str, str], dict[str, float]], list[str]]:
    """A function (model_input, target_output, model_output) -> {score: value}, and notes on substitutes."""
    fmeval_offline.prepare()
    name = algorithm["name"]
    notes: list[str] = []
    try:
        module = importlib.import_module(algorithm["module"])
    except Exception as exc:
        raise ScoringUnavailable(f"{algorithm['module']} does not import: {type(exc).__name__}: {exc}") from None

    if name == "QAAccuracy" and fmeval_offline.is_offline():
        # The full algorithm adds BERTScore, whose model comes from the Hub. fmeval's own transform
        # computes the other five scores exactly as QAAccuracy does.
        transform = module.QAAccuracyScores(
            target_output_delimiter=algorithm["options"].get("target_output_delimiter", "<OR>"))
        names = list(module.QA_ACCURACY_SCORE_NAMES)
        notes.append("bertscore omitted: it needs a model from the Hugging Face Hub (offline run)")

        def qa(model_input: str, target: str, output: str) -> dict[str, float]:
            record = transform({"target_output": target, "model_output": output})
            return {n: float(record[n]) for n in names}

        return qa, notes

    try:
        cls = getattr(module, name)
        config = _config(algorithm, module)
        algo = cls(config) if config is not None else cls()
    except Exception as exc:
        why = ("; offline runs lack the helper models it downloads from the Hugging Face Hub or GitHub"
               if fmeval_offline.is_offline() else "")
        raise ScoringUnavailable(f"{name} cannot be constructed here ({type(exc).__name__}: {str(exc)[:200]}){why}") \
            from None

    import inspect

    params = list(inspect.signature(algo.evaluate_sample).parameters)

    def score(model_input: str, target: str, output: str) -> dict[str, float]:
        available = {"model_input": model_input, "target_output": target, "model_output": output}
        scores = algo.evaluate_sample(**{p: available[p] for p in params if p in available})
        return {s.name: float(s.value) for s in scores if s.value is not None}

    return score, notes


def _mean(values: list[float]) -> float | None:
    clean = [v for v in values if v is not None and not math.isnan(v)]
    return round(statistics.fmean(clean), 6) if clean else None


def score_outputs(algorithm: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-record and mean scores of one algorithm over output rows (from `invoke_records`).

    A record the model failed on scores 0 on every score (it is counted, never dropped), except for
    toxicity-like scores, where it is left out rather than counted as harmless.
    """
    result: dict[str, Any] = {"eval_name": algorithm["eval_name"], "algorithm": algorithm["name"],
                              "scores": {}, "per_record": [], "error": None, "notes": []}
    try:
        scorer, result["notes"] = make_scorer(algorithm)
    except ScoringUnavailable as exc:
        result["error"] = str(exc)
        return result
    per_record: list[dict[str, Any]] = []
    names: list[str] = []
    failed_value = None if algorithm["eval_name"] in _LOWER_IS_BETTER else 0.0
    for row in rows:
        if row.get("error") is not None or row.get("output") is None:
            per_record.append({"id": row["id"], "failed": True})
            continue
        try:
            scores = scorer(str(row["model_input"]), str(row.get("target_output") or ""), row["output"])
        except Exception as exc:  # one bad record must not sink the algorithm
            per_record.append({"id": row["id"], "failed": True, "error": f"{type(exc).__name__}: {exc}"})
            continue
        for n in scores:
            if n not in names:
                names.append(n)
        per_record.append({"id": row["id"], **scores})
    for rec in per_record:
        if rec.get("failed"):
            rec.update({n: failed_value for n in names})
    result["per_record"] = per_record
    result["scores"] = {n: _mean([r.get(n) for r in per_record]) for n in names}
    result["failed_records"] = sum(1 for r in per_record if r.get("failed"))
    return result
