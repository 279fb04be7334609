"""Custom scorers of your own, plugged in by import path (`scorer: examples.scorers:brevity`).

A scorer is a plain function of one record — ``model_input``, ``model_output``, ``target_output``,
``target_outputs`` (the accepted answers, split on ``<OR>``) and ``metadata`` (``id``, ``prompt``,
``latency_s``) — returning ``{score name: number}``, or one number named after the function. The run
reports the mean over the records in summary.json and each record's value in
``models/<model>/<name>.jsonl``. A class works too: it is built once with the entry's ``config`` as
keyword arguments, and its ``score(record)`` is called per record.

On SageMaker the module must be importable in the step image (put it in a package the image installs).
"""

from __future__ import annotations

from typing import Any


def brevity(record: dict[str, Any], max_words: int = 5) -> float:
    """1.0 when the answer is only the answer (at most ``max_words`` words), else 0.0: what the
    answer-only prompt asks for, and what the trivia answers are."""
    return 1.0 if len(str(record["model_output"]).split()) <= max_words else 0.0


brevity.score_names = ("brevity",)  # optional: lets `validate` check a selection metric's score name
