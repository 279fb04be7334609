"""Everything that turns a model's answers into scores, behind one interface and in one table.

A scorer either scores stored answers (``score(rows)``: one call per record was already made and
cached by the engine) or, when ``needs_model`` is set, calls the model itself
(``score_with_model``: perturbation algorithms). Both return the same result shape
(`lib.engine.score.empty_result`). A new kind of scorer is one module here plus one line in
`SCORER_KINDS`; `SCORERS` is the table of named scorers that config validation, `plan` and the
report read.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Protocol

from lib.scorers.fmeval_algorithms import BUILTIN, AlgorithmLookupError, AlgorithmSpec
from lib.scorers.fmeval_algorithms import resolve as _resolve_fmeval

# kind -> the class that runs a configured scorer of that kind
SCORER_KINDS: dict[str, str] = {
    "fmeval": "lib.scorers.fmeval_scorer:FmevalScorer",
}

# every scorer a config can name without an import path
SCORERS: dict[str, AlgorithmSpec] = dict(BUILTIN)


class Scorer(Protocol):
    kind: str
    needs_model: bool
    lower_is_better: bool

    def score(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """Score stored answers: means, per-record rows, error, notes."""

    def score_with_model(self, invoker: Callable, dataset: dict[str, Any], invoke: dict[str, Any],
                         limit: int) -> dict[str, Any]:
        """Score by calling the model (only when ``needs_model``)."""


def scorer_for(algorithm: dict[str, Any]) -> Scorer:
    """The scorer that runs one normalised `algorithms[]` entry of a config."""
    module, _, cls = SCORER_KINDS[algorithm.get("kind", "fmeval")].partition(":")
    return getattr(importlib.import_module(module), cls)(algorithm)


def score_outputs(algorithm: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Score stored answers with the scorer ``algorithm`` names."""
    return scorer_for(algorithm).score(rows)


def lower_is_better(eval_name: str) -> bool:
    return any(s.eval_name == eval_name and s.lower_is_better for s in SCORERS.values())


def resolve(name: str, module: str | None = None, config: str | dict | None = None) -> AlgorithmSpec:
    """The spec of the scorer a config names: from `SCORERS`, or a class by import path.
    Raises `AlgorithmLookupError` saying what is wrong."""
    return _resolve_fmeval(name, module, config)


__all__ = ["SCORERS", "SCORER_KINDS", "AlgorithmLookupError", "AlgorithmSpec", "Scorer", "lower_is_better",
           "resolve", "score_outputs", "scorer_for"]
