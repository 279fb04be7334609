"""Paired bootstrap over records: is model A better than model B by more than noise?

Both were asked the same records; resampling record ids with replacement and taking the mean of the
per-record differences gives the distribution of the difference of means. Seeded: the same inputs
give the same interval.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

DEFAULT_RESAMPLES = 2000


@dataclass
class PairedDifference:
    metric: str
    n: int  # records both were scored on
    difference: float  # mean(a) - mean(b), in the metric's own direction of "better"
    low: float  # the confidence interval of the difference
    high: float
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def paired_difference(a: dict[str, float], b: dict[str, float], metric: str, confidence: float = 0.95,
                      resamples: int = DEFAULT_RESAMPLES, seed: int = 0, lower_is_better: bool = False
                      ) -> PairedDifference | None:
    """``a - b`` over the records both scored (per-record values by record id); None without any."""
    ids = sorted(set(a) & set(b))
    values = [(a[i], b[i]) for i in ids if a[i] is not None and b[i] is not None]
    if not values:
        return None
    import numpy as np  # here: only a run with a runner-up compares (0.09 s to import)

    diffs = np.array([x - y for x, y in values], dtype=float)
    if lower_is_better:
        diffs = -diffs
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, len(diffs), size=(resamples, len(diffs)))].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return PairedDifference(metric, len(diffs), round(float(diffs.mean()), 6), round(float(low), 6),
                            round(float(high), 6), confidence)
