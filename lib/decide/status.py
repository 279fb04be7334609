"""A model's status from its record counts, and a run's exit code from its summary: the contract an
unattended caller (CI/CD, a schedule) gates on.

| exit | meaning |
|---|---|
| 0 | every model was evaluated (`succeeded`) and one was selected |
| 3 | a model was selected, but at least one model is `failed` or `partial` |
| 4 | nothing could be selected (every model failed, or none had the metric) |
| 5 | a model was selected, but registering it failed |
| 6 | a model was selected, but the gate rejected it (floors, or it does not beat the champion) |
| 130 / 143 | interrupted by SIGINT (Ctrl-C) / SIGTERM; what the run created was deleted |
| 2 | bad input (a config, a flag, a file): nothing was run |
| 1 | the run itself broke (no summary was written; an environment fault such as a full disk) |
"""

from __future__ import annotations

from lib.run.records import FAILED, INTERRUPTED, PARTIAL, SUCCEEDED, RunSummary

EXIT_OK = 0
EXIT_BROKEN = 1
EXIT_SOME_FAILED = 3
EXIT_NOTHING_SELECTED = 4
EXIT_NOT_REGISTERED = 5
EXIT_GATE_REJECTED = 6
EXIT_SIGINT = 130
EXIT_SIGTERM = 143

DEFAULT_MAX_ERROR_RATE = 0.1  # up to 10% of records may fail before a model counts as failed


def model_status(records: int, errors: int, max_error_rate: float = DEFAULT_MAX_ERROR_RATE) -> str:
    """``succeeded`` with no failed record, ``partial`` within the error budget, else ``failed``."""
    if errors == 0:
        return SUCCEEDED
    if records and errors < records and errors / records <= max_error_rate:
        return PARTIAL
    return FAILED


def exit_code(summary: RunSummary, signal_exit: int | None = None) -> int:
    if summary.status == INTERRUPTED:
        return signal_exit or EXIT_SIGINT
    if not summary.selection.best:
        return EXIT_NOTHING_SELECTED
    if summary.registry is not None and summary.registry.status == FAILED:
        return EXIT_NOT_REGISTERED
    if summary.gate is not None and summary.gate.decision == "rejected":
        return EXIT_GATE_REJECTED
    if any(m.status != SUCCEEDED for m in summary.models.values()):
        return EXIT_SOME_FAILED
    return EXIT_OK


def problems(summary: RunSummary) -> list[str]:
    """One line per model that is not `succeeded`: its status and why."""
    out = []
    for name, m in summary.models.items():
        if m.status == SUCCEEDED:
            continue
        why = m.error or "no reason recorded"
        if m.first_error and m.first_error not in why:
            why += f" (first error: {m.first_error})"
        out.append(f"{name}: {m.status}: {why}")
    if summary.gate is not None and summary.gate.decision == "rejected":
        out.append(f"the gate rejected {summary.gate.model} ({summary.gate.approval_status}): "
                   + "; ".join(summary.gate.reasons))
    if summary.registry is not None and summary.registry.status == FAILED:
        out.append(f"registering {summary.registry.model} failed: {summary.registry.error}")
    if not summary.selection.best and summary.status != INTERRUPTED:
        out.append("no model was selected" + (": " + "; ".join(f"{k}: {v}" for k, v in
                                                             summary.selection.excluded.items())
                                              if summary.selection.excluded else ""))
    return out


__all__ = ["DEFAULT_MAX_ERROR_RATE", "EXIT_BROKEN", "EXIT_GATE_REJECTED", "EXIT_NOT_REGISTERED",
           "EXIT_NOTHING_SELECTED", "EXIT_OK", "EXIT_SIGINT", "EXIT_SIGTERM", "EXIT_SOME_FAILED", "FAILED",
           "INTERRUPTED", "PARTIAL", "exit_code", "model_status", "problems"]
