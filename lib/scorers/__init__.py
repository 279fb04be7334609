"""Everything that turns a model's answers into scores, behind one interface and in one table.

A scorer either scores stored answers (``score(rows)``: one call per record was already made and
cached by the engine) or, when ``needs_model`` is set, calls the model itself
(``score_with_model``: perturbation algorithms). Both return the same result shape
(`lib.engine.score.empty_result`). A new kind of scorer is one module here plus one line in
`SCORER_KINDS`; `SCORERS` is the table of named scorers that config validation, `plan` and the
report read.

A kind may own config keys of its own (`LLMJudge`'s rubrics, `CustomScorer`'s import path): its class
then has ``config_keys`` and a classmethod ``check_config(raw) -> dict`` that raises `ScorerConfigError`,
and ``model_keys``, the keys holding a model of any provider (a judge), which config loading normalises
as it does a candidate's. A class with ``takes_context`` is built with the evaluate step's context:
``model`` (the candidate), ``layout``, ``cache_root`` and ``progress``. A classmethod
``check_models(algorithm, models)`` raising `ScorerConfigError` refuses, at validate, candidates the
scorer cannot score (PromptStereotyping: a provider without log-probabilities).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from lib.scorers.fmeval_algorithms import BUILTIN, AlgorithmLookupError, AlgorithmSpec
from lib.scorers.fmeval_algorithms import resolve as _resolve_fmeval

# kind -> the class that runs a configured scorer of that kind
SCORER_KINDS: dict[str, str] = {
    "fmeval": "lib.scorers.fmeval_scorer:FmevalScorer",
    "llm_judge": "lib.scorers.judge:JudgeScorer",
    "custom": "lib.scorers.custom:CustomScorer",
    "benchmark": "lib.scorers.benchmark:BenchmarkScorer",  # made from dataset.benchmark, not named in algorithms
}

# every scorer a config can name without an import path
SCORERS: dict[str, AlgorithmSpec] = {
    **BUILTIN,
    "LLMJudge": AlgorithmSpec("LLMJudge", "lib.scorers.judge", None, "llm_judge", kind="llm_judge"),
    "CustomScorer": AlgorithmSpec("CustomScorer", "lib.scorers.custom", None, "custom", kind="custom"),
}


class ScorerConfigError(ValueError):
    """An `algorithms[]` entry is wrong for its kind. ``where`` is the YAML path below the entry."""

    def __init__(self, where: list[str | int], message: str) -> None:
        super().__init__(message)
        self.where = where


class Scorer(Protocol):
    kind: str
    needs_model: bool
    lower_is_better: bool

    def score(self, rows: Iterable[dict[str, Any]], out: str | None = None) -> dict[str, Any]:
        """Score stored answers, taken one at a time (``rows`` may be iterated more than once): means,
        per-record rows, error, notes. With ``out``, the per-record rows are written to that JSON Lines
        file as they are scored and not kept in the result."""

    def score_with_model(self, invoker: Callable, dataset: dict[str, Any], invoke: dict[str, Any],
                         limit: int) -> dict[str, Any]:
        """Score by calling the model (only when ``needs_model``)."""


def scorer_class(kind: str) -> type:
    module, _, cls = SCORER_KINDS[kind].partition(":")
    return getattr(importlib.import_module(module), cls)


def scorer_for(algorithm: dict[str, Any], context: dict[str, Any] | None = None) -> Scorer:
    """The scorer that runs one normalised `algorithms[]` entry of a config; ``context`` is the evaluate
    step's, for the kinds that take it."""
    cls = scorer_class(algorithm.get("kind", "fmeval"))
    return cls(algorithm, context or {}) if getattr(cls, "takes_context", False) else cls(algorithm)


def score_outputs(algorithm: dict[str, Any], rows: Iterable[dict[str, Any]],
                  out: str | None = None) -> dict[str, Any]:
    """Score stored answers with the scorer ``algorithm`` names."""
    return scorer_for(algorithm).score(rows, out)


def lower_is_better(eval_name: str) -> bool:
    return any(s.eval_name == eval_name and s.lower_is_better for s in SCORERS.values())


def resolve(name: str, module: str | None = None, config: str | dict | None = None) -> AlgorithmSpec:
    """The spec of the scorer a config names: from `SCORERS`, or a class by import path.
    Raises `AlgorithmLookupError` saying what is wrong."""
    spec = SCORERS.get(name)
    if spec is not None and spec.kind != "fmeval":
        return spec
    if spec is None and module is None:
        from lib.errors import did_you_mean

        raise AlgorithmLookupError(
            f"unknown algorithm '{name}'{did_you_mean(name, SCORERS)}; built-in algorithms are "
            f"{', '.join(SCORERS)}, or give 'module' with the import path of your own")
    return _resolve_fmeval(name, module, config)


__all__ = ["SCORERS", "SCORER_KINDS", "AlgorithmLookupError", "AlgorithmSpec", "Scorer", "ScorerConfigError",
           "lower_is_better", "resolve", "score_outputs", "scorer_class", "scorer_for"]
