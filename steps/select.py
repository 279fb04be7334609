"""Step `select`: rank the evaluated models, write selection.json, publish the run's summary."""

from __future__ import annotations

from typing import Any

from lib import progress, sinks, storage
from lib.decide.selection import choose
from lib.run.layout import RunLayout
from lib.run.records import COMPLETED, INTERRUPTED, SUCCEEDED, ModelResult, RunSummary
from lib.run.scores import per_record_reader
from steps._common import guarded


def select(selection: dict[str, Any], pipeline: str, execution_id: str, run_root: str,
           score_names: dict[str, list[str]], dataset: dict[str, Any] | None, tracking: dict[str, Any] | None,
           *evaluations: dict[str, Any]) -> dict[str, Any]:
    """``tracking``: the sinks' settings and the config's hash (`lib.sinks.context.tracking_args`)."""
    # a failure here (storage, a bug) is data, as in every step: register then records why it skipped
    return guarded("select", lambda: _select(selection, pipeline, execution_id, run_root, score_names,
                                             dataset or {}, tracking or {}, list(evaluations)))


def _select(selection: dict[str, Any], pipeline: str, execution_id: str, run_root: str,
            score_names: dict[str, list[str]], dataset: dict[str, Any], tracking: dict[str, Any],
            evaluations: list[dict[str, Any]]) -> dict[str, Any]:
    layout = RunLayout.resolve(run_root, execution_id)
    results = [ModelResult.from_dict(e) for e in evaluations]
    chosen = choose(results, selection, score_names, per_record_reader(layout, score_names))
    interrupted = any(r.status == INTERRUPTED for r in results)
    if interrupted:  # a choice among the models that happened to finish is no choice
        chosen.best, chosen.best_value = None, None
    storage.write_json(layout.selection, chosen.to_dict())
    summary = RunSummary(pipeline, execution_id, {r.model: r for r in results}, chosen,
                         status=INTERRUPTED if interrupted else COMPLETED, dataset_hash=dataset.get("dataset_hash"),
                         dataset_uri=dataset.get("source"), config_hash=tracking.get("config_hash"))
    sinks.publish(summary, layout, tracking=tracking)
    if chosen.best:
        progress.say("select", f"best: {chosen.best} ({chosen.metric} = {chosen.best_value:.3f})")
    elif not interrupted:
        progress.say("select", "no model can be selected: " + "; ".join(f"{k}: {v}" for k, v in
                                                                            chosen.excluded.items()))
    # gate and register read the summary from here: the same record, not a file to re-read
    return {"status": SUCCEEDED, "error": None, "summary": summary.to_dict()}
