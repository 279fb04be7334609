"""An evaluation algorithm of a user's own, plugged in by import path."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExactAnswerConfig:
    case_sensitive: bool = False


class ExactAnswer:
    eval_name = "exact_answer"

    def __init__(self, config: ExactAnswerConfig = ExactAnswerConfig()) -> None:
        self.config = config

    def evaluate_sample(self, target_output: str, model_output: str):
        from fmeval.eval_algorithms import EvalScore

        norm = (lambda s: s.strip()) if self.config.case_sensitive else (lambda s: s.strip().lower())
        hit = norm(model_output) in map(norm, target_output.split("<OR>"))
        return [EvalScore(name="exact_answer", value=float(hit))]
