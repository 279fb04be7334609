"""Step `gate`: may the selected model ship? Floors, and the registry's champion to beat by more than
noise (`lib.decide.gate`). Its decision sets the approval status register records; on SageMaker its
outcome is a step of its own in Studio."""

from __future__ import annotations

from typing import Any

from lib import progress, registry
from lib.decide.gate import decide, scored_on_other_data
from lib.registry.champion import find_champion
from lib.run.layout import RunLayout
from lib.run.records import SKIPPED, SUCCEEDED, Gate, RunSummary
from lib.run.scores import per_record_reader
from steps._common import failed, guarded
from steps.evaluate import evaluate_again


def gate(gate_config: dict[str, Any] | None, selection: dict[str, Any], registry_config: dict[str, Any],
         score_names: dict[str, list[str]], run_root: str, execution_id: str,
         dataset: dict[str, Any] | None = None, algorithms: list[dict[str, Any]] | None = None,
         cache_root: str | None = None) -> dict[str, Any]:
    """``dataset``, ``algorithms``: this run's, to evaluate a champion that was scored on other data."""
    if failed(selection):
        return {"status": SUCCEEDED, "error": None, "summary": None,
                "gate": Gate(status=SKIPPED, reasons=[f"select failed: {selection['error']}"]).to_dict()}
    summary = RunSummary.from_dict(selection["summary"])
    layout = RunLayout.resolve(run_root, execution_id)

    def judge() -> dict[str, Any]:
        best = summary.selection.best
        champion = None
        winner_per_record: dict[str, Any] = {}
        if gate_config and best:
            would_be = registry.registration_for(summary, registry_config, None)
            if gate_config["champion"] == "registry":
                champion = find_champion(would_be.model_package_group_name, layout)
                if champion and champion.get("fingerprint") == would_be.fingerprint:
                    # the same model, data and scores as the champion: nothing changed, nothing to judge
                    return Gate(status=SUCCEEDED, decision="approved", approval_status="Approved", model=best,
                                reasons=[f"it is the champion already (version {champion.get('version')}): "
                                         "same model, data and scores"],
                                champion={k: champion.get(k) for k in ("model", "version", "package")}).to_dict()
            winner_per_record = per_record_reader(layout, score_names)(best, summary.selection.metric)
            if champion and scored_on_other_data(champion, summary):
                champion = _evaluated_here(champion, summary, dataset, algorithms or [], score_names, layout,
                                           cache_root)
        return decide(gate_config, summary, score_names, winner_per_record, champion).to_dict()

    outcome = guarded("gate", judge)
    decision = Gate.from_dict(outcome) if outcome.get("status") != "failed" else Gate(
        status="failed", error=outcome["error"], model=summary.selection.best,
        decision="rejected", approval_status=(gate_config or {}).get("on_fail", "Rejected"),
        reasons=[f"the gate could not decide: {outcome['error']}"])
    if decision.decision:
        progress.say("gate", f"{decision.model}: {decision.decision} ({decision.approval_status}): "
                             + "; ".join(decision.reasons))
    summary.gate = decision
    return {"status": SUCCEEDED, "error": None, "gate": decision.to_dict(), "summary": summary.to_dict()}


def _evaluated_here(champion: dict[str, Any], summary: RunSummary, dataset: dict[str, Any] | None,
                    algorithms: list[dict[str, Any]], score_names: dict[str, list[str]], layout: RunLayout,
                    cache_root: str | None) -> dict[str, Any]:
    """The champion scored on another dataset: deploy it from its recipe and evaluate it on this run's,
    with the algorithm of the first objective, so the gate compares the two on the same records. When it
    cannot be, the champion is returned as it was, with the reason (the gate then says no comparison was
    possible, and why)."""
    version = champion.get("version")
    name = f"champion-v{version}"
    step = f"gate-{name}"
    metric = summary.selection.objectives[0]["metric"] if summary.selection.objectives else summary.selection.metric
    eval_name = metric.split(".")[0]
    chosen = [a for a in algorithms if a["eval_name"] == eval_name]
    why = None
    if not champion.get("recipe"):
        why = "its version keeps no recipe to deploy it again (registered before recipes were kept)"
    elif not dataset or dataset.get("status") == "failed" or not chosen:
        why = f"this run has no dataset or no {eval_name} algorithm to evaluate it with"
    if why:
        return {**champion, "not_evaluated": why}
    progress.say("gate", f"the champion (version {version}, {champion.get('model')}) was scored on another dataset: "
                         f"evaluating it on this one as {name}")
    try:
        result = evaluate_again(step, champion["recipe"], name, dataset, chosen, layout, cache_root)
    except Exception as exc:
        from lib.redact import redact

        return {**champion, "not_evaluated": redact(f"evaluating it failed: {type(exc).__name__}: {exc}")}
    if not result.selectable or eval_name not in result.scores:
        return {**champion, "not_evaluated": f"evaluating it failed: {result.error or 'no scores'}"}
    return {**champion, "per_record": per_record_reader(layout, score_names)(name, metric),
            "dataset_hash": summary.dataset_hash, "evaluated_here": result.to_dict()}
