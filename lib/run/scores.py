"""Per-record scores of a run, read back from its files (for margins and the gate)."""

from __future__ import annotations

from collections.abc import Callable

from lib import storage
from lib.run.layout import RunLayout


def per_record_reader(layout: RunLayout, score_names: dict[str, list[str]]
                      ) -> Callable[[str, str], dict[str, float]]:
    """(model, score metric) -> {record id: value}, from the model's per-record scores in the run."""
    from lib.decide.metrics import score_name

    def read(model: str, metric: str) -> dict[str, float]:
        uri = layout.scores(model, metric.partition(".")[0])
        if not storage.exists(uri):
            return {}
        first = next(storage.iter_jsonl(uri), None)
        name = score_name(metric, score_names, {k: None for k in first or {} if k not in ("id", "failed", "error")})
        # only each record's value is held (a paired comparison needs them), never the rows themselves
        return {r["id"]: r.get(name) for r in storage.iter_jsonl(uri)} if name else {}

    return read
