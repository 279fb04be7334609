"""Step `select`: rank the evaluated models, write selection.json, publish the run's summary."""

from __future__ import annotations

from typing import Any

from lib import progress, sinks, storage
from lib.decide.selection import choose
from lib.run.layout import RunLayout
from lib.run.records import COMPLETED, INTERRUPTED, SUCCEEDED, ModelResult, RunSummary
from steps._common import guarded


def per_record_reader(layout: RunLayout, score_names: dict[str, list[str]]):
    """(model, score metric) -> {record id: value}, from the model's per-record scores in the run."""
    from lib.decide.metrics import score_name

    def read(model: str, metric: str) -> dict[str, float]:
        uri = layout.scores(model, metric.partition(".")[0])
        if not storage.exists(uri):
            return {}
        rows = storage.read_jsonl(uri)
        name = score_name(metric, score_names, {k: None for r in rows[:1] for k in r if k not in
                                                ("id", "failed", "error")})
        return {r["id"]: r.get(name) for r in rows if name}

    return read


def select(selection: dict[str, Any], pipeline: str, execution_id: str, run_root: str,
           score_names: dict[str, list[str]], *evaluations: dict[str, Any]) -> dict[str, Any]:
    # a failure here (storage, a bug) is data, as in every step: register then records why it skipped
    return guarded("select", lambda: _select(selection, pipeline, execution_id, run_root, score_names,
                                             list(evaluations)))


def _select(selection: dict[str, Any], pipeline: str, execution_id: str, run_root: str,
            score_names: dict[str, list[str]], evaluations: list[dict[str, Any]]) -> dict[str, Any]:
    layout = RunLayout.resolve(run_root, execution_id)
    results = [ModelResult.from_dict(e) for e in evaluations]
    chosen = choose(results, selection, score_names, per_record_reader(layout, score_names))
    interrupted = any(r.status == INTERRUPTED for r in results)
    if interrupted:  # a choice among the models that happened to finish is no choice
        chosen.best, chosen.best_value = None, None
    storage.write_json(layout.selection, chosen.to_dict())
    summary = RunSummary(pipeline, execution_id, {r.model: r for r in results}, chosen,
                         status=INTERRUPTED if interrupted else COMPLETED)
    sinks.publish(summary, layout)
    if chosen.best:
        progress.say("select", f"best: {chosen.best} ({chosen.metric} = {chosen.best_value:.3f})")
    elif not interrupted:
        progress.say("select", "no model can be selected: " + "; ".join(f"{k}: {v}" for k, v in
                                                                            chosen.excluded.items()))
    # register reads the summary from here: the same record, not a file it would have to re-read
    return {"status": SUCCEEDED, "error": None, "summary": summary.to_dict()}
