"""Step `select`: rank the evaluated models, write selection.json, summary.json and report.html."""

from __future__ import annotations

from typing import Any

from lib import progress, reports, storage
from lib.selection import choose


def build_summary(pipeline: str, execution_id: str, evaluations: list[dict[str, Any]],
                  selection: dict[str, Any]) -> dict[str, Any]:
    models = {}
    for r in evaluations:
        models[r.get("model", "?")] = {
            "status": r.get("status"), "error": r.get("error"),
            **{k: r.get(k) for k in ("provider", "model_id", "records", "invocations", "attempts", "errors",
                                     "cache_hits", "resumed", "latency_p50_s", "latency_p95_s",
                                     "prompt_tokens", "generated_tokens")},
            "scores": r.get("scores") or {}, "algorithm_errors": r.get("algorithm_errors") or {},
            "notes": r.get("notes") or {},
        }
    return {"pipeline": pipeline, "execution_id": execution_id, "models": models, "selection": selection,
            "registry": None}


def select(selection: dict[str, Any], pipeline: str, execution_id: str, run_root: str,
           score_names: dict[str, list[str]], *evaluations: dict[str, Any]) -> dict[str, Any]:
    run_root = storage.run_root(run_root, execution_id)
    chosen = choose(list(evaluations), selection["metric"], selection.get("direction", "max"), score_names)
    storage.write_json(storage.join(run_root, "selection.json"), chosen)
    summary = build_summary(pipeline, execution_id, list(evaluations), chosen)
    storage.write_json(storage.join(run_root, "summary.json"), summary)
    storage.write_text(storage.join(run_root, "report.html"), reports.run_report_html(summary, run_root),
                       "text/html; charset=utf-8")
    if chosen["best"]:
        progress.say("select", f"best: {chosen['best']} ({chosen['metric']} = {chosen['best_value']:.3f})")
    else:
        progress.say("select", "no model can be selected: " + "; ".join(f"{k}: {v}" for k, v in
                                                                            chosen["excluded"].items()))
    return {"status": "succeeded", **chosen, "candidates": {
        r.get("model"): {"model_id": r.get("model_id"), "provider": r.get("provider"), "scores": r.get("scores"),
                         "deployment": r.get("deployment"), "register": r.get("register")}
        for r in evaluations}}
