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
        rows = storage.read_jsonl(uri)
        name = score_name(metric, score_names, {k: None for r in rows[:1] for k in r if k not in
                                                ("id", "failed", "error")})
        return {r["id"]: r.get(name) for r in rows if name}

    return read
