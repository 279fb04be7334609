"""Precision, recall and F-measure of two sets, as `nltk.metrics.scores` defines them: the same
arithmetic, so the same floats (tests/test_fmeval_offline.py holds them to nltk's on random sets).

fmeval's QAAccuracy takes these three from nltk, and importing `nltk.metrics.scores` imports the whole of
nltk first (0.23 s of a run here, and its memory) for three one-line functions.
"""

from __future__ import annotations

from collections.abc import Set


def precision(reference: Set, test: Set) -> float | None:
    """The share of ``test`` that is in ``reference``; None when ``test`` is empty."""
    return None if len(test) == 0 else len(reference.intersection(test)) / len(test)


def recall(reference: Set, test: Set) -> float | None:
    """The share of ``reference`` that is in ``test``; None when ``reference`` is empty."""
    return None if len(reference) == 0 else len(reference.intersection(test)) / len(reference)


def f_measure(reference: Set, test: Set, alpha: float = 0.5) -> float | None:
    """The weighted harmonic mean of precision and recall (0 when either is 0, None when either is None)."""
    p, r = precision(reference, test), recall(reference, test)
    if p is None or r is None:
        return None
    if p == 0 or r == 0:
        return 0
    return 1.0 / (alpha / p + (1 - alpha) / r)
