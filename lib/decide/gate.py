"""The quality gate, as a plain function: may the winner ship?

Approved only when every floor holds and, when there is a champion (the latest Approved package of the
registry group), the winner beats it on the first objective by ``min_improvement`` at ``confidence``:
the lower end of the paired bootstrap interval of (winner − champion), over the records both were
scored on, is at least ``min_improvement``. Otherwise the gate's ``on_fail`` status (Rejected, or
PendingManualApproval for a person to decide), with every reason.
"""

from __future__ import annotations

from typing import Any

from lib.decide.bootstrap import paired_difference
from lib.decide.metrics import value_of
from lib.run.records import SKIPPED, SUCCEEDED, Gate, RunSummary


def scored_on_other_data(champion: dict[str, Any], summary: RunSummary) -> bool:
    """The champion's per-record scores are of another dataset than this run's: they cannot be paired."""
    return bool(champion.get("dataset_hash") and summary.dataset_hash
                and champion["dataset_hash"] != summary.dataset_hash)


def decide(gate: dict[str, Any] | None, summary: RunSummary, score_names: dict[str, list[str]],
           winner_per_record: dict[str, float | None], champion: dict[str, Any] | None) -> Gate:
    """``champion``: {"model", "version", "per_record", "dataset_hash", "package"?} or None."""
    best = summary.selection.best
    if gate is None:
        return Gate(status=SKIPPED, reasons=["no gate configured"], model=best)
    if not best:
        return Gate(status=SKIPPED, reasons=["no model was selected"])
    winner = summary.models[best]
    reasons: list[str] = []
    for metric, floor in gate["min"].items():
        value = value_of(winner, metric, score_names)
        if value is None or value < floor:
            reasons.append(f"{metric} = {'none' if value is None else f'{value:.4g}'} is below the floor {floor:g}")
    comparison = None
    if gate["champion"] == "registry" and champion is not None:
        objective = summary.selection.objectives[0] if summary.selection.objectives else {
            "metric": summary.selection.metric, "direction": summary.selection.direction}
        if scored_on_other_data(champion, summary):
            reasons.append(f"the champion (version {champion.get('version')}) was scored on another dataset "
                           f"and could not be evaluated on this one ({champion.get('not_evaluated') or 'not tried'}):"
                           " no paired comparison is possible")
        else:
            paired = paired_difference(winner_per_record, champion.get("per_record") or {}, objective["metric"],
                                       gate["confidence"], lower_is_better=objective["direction"] == "min")
            if paired is None:
                reasons.append(f"no records in common with the champion (version {champion.get('version')})")
            else:
                comparison = paired.to_dict()
                if paired.low < gate["min_improvement"]:
                    reasons.append(
                        f"{best} does not beat the champion {champion.get('model')} "
                        f"(version {champion.get('version')}) "
                        f"by {gate['min_improvement']:g} at {gate['confidence']:.0%}: difference "
                        f"{paired.difference:+.4f}, interval [{paired.low:+.4f}, {paired.high:+.4f}] over {paired.n} "
                        "records")
    approved = not reasons
    return Gate(status=SUCCEEDED, decision="approved" if approved else "rejected",
                approval_status="Approved" if approved else gate["on_fail"],
                reasons=reasons or ["every floor holds" + (" and it beats the champion" if comparison else
                                                          "; no champion yet" if gate["champion"] == "registry"
                                                          else "")],
                model=best, comparison=comparison,
                champion=_shown(champion) if champion else None)


def _shown(champion: dict[str, Any]) -> dict[str, Any]:
    """What the gate record says about the champion; ``evaluated_here`` when this run evaluated it on its
    own dataset (the champion's scores then, beside its outputs in the run's files)."""
    shown = {k: champion.get(k) for k in ("model", "version", "package")}
    here = champion.get("evaluated_here")
    if here:
        shown["evaluated_here"] = {"as": here["model"], "scores": here.get("scores"), "records": here.get("records"),
                                   "errors": here.get("errors"), "cost_usd": here.get("cost_usd")}
    return shown
