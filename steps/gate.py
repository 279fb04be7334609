"""Step `gate`: may the selected model ship? Floors, and the registry's champion to beat by more than
noise (`lib.decide.gate`). Its decision sets the approval status register records; on SageMaker its
outcome is a step of its own in Studio."""

from __future__ import annotations

from typing import Any

from lib import progress, registry
from lib.decide.gate import decide
from lib.registry.champion import find_champion
from lib.run.layout import RunLayout
from lib.run.records import SKIPPED, SUCCEEDED, Gate, RunSummary
from lib.run.scores import per_record_reader
from steps._common import failed, guarded


def gate(gate_config: dict[str, Any] | None, selection: dict[str, Any], registry_config: dict[str, Any],
         score_names: dict[str, list[str]], run_root: str, execution_id: str) -> dict[str, Any]:
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
