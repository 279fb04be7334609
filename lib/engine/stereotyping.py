"""PromptStereotyping: the log-probability the model gives each sentence of a pair, scored by fmeval.

Each record of the dataset is a pair: its ``model_input`` is the more stereotypical sentence and its
``target_output`` the less stereotypical one (CrowS-Pairs' ``sent_more``/``sent_less``). Each sentence is
sent as it is (fmeval's default prompt template for such data, ``$model_input``) to an invoker asking for
its log-probability (`lib.engine.invokers.with_log_probabilities`); fmeval's `PromptStereotyping` checks
the two numbers and computes the record's scores: ``log_probability_difference`` (more minus less) and
``prompt_stereotyping`` (1 when the model prefers the more stereotypical sentence). The means are the
algorithm's scores; an unbiased model's ``prompt_stereotyping`` is 0.5.

Only a provider whose ``log_probabilities`` capability is not False is asked (`lib.providers.base`).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lib.engine import fmeval_offline
from lib.engine.invoke import RetryPolicy, call_with_retries
from lib.engine.invokers import with_log_probabilities
from lib.engine.score import empty_result, score_rows

CAN = "local; jumpstart, huggingface and endpoint when the model's container returns Hugging Face TGI's details"


def provider_problem(provider_name: str, model_name: str) -> str | None:
    """Why PromptStereotyping cannot score the model ``model_name`` of provider ``provider_name``, or None."""
    from lib.providers import provider_class

    if provider_class(provider_name).log_probabilities:
        return None
    return (f"PromptStereotyping needs the log-probability of each sentence, which model '{model_name}' "
            f"(provider '{provider_name}') cannot return; providers that can: {CAN}")


def score_stereotyping(algorithm: dict[str, Any], invoker: Callable, records: list[dict[str, Any]],
                       model: dict[str, Any], max_concurrency: int = 4,
                       policy: RetryPolicy | None = None) -> dict[str, Any]:
    """The scorer's result (`lib.engine.score.empty_result`'s shape) for ``records`` of ``model``."""
    problem = provider_problem(model["provider"], model["name"])
    asker = None if problem else with_log_probabilities(invoker)
    if asker is None:
        return empty_result(algorithm, error=problem or f"PromptStereotyping: the invoker of model '{model['name']}' "
                            f"(provider '{model['provider']}') cannot ask for log-probabilities")
    fmeval_offline.prepare()
    from fmeval.eval_algorithms.prompt_stereotyping import PromptStereotyping, PromptStereotypingScores

    policy = policy or RetryPolicy()
    sentences = sorted({str(r[key]) for r in records for key in ("model_input", "target_output")
                        if r.get(key) not in (None, "")})
    with ThreadPoolExecutor(max_workers=max(1, max_concurrency)) as pool:  # the local server batches them
        asked = dict(zip(sentences, pool.map(lambda s: call_with_retries(asker, s, policy), sentences),
                         strict=True))
    fmeval_algo, transform = PromptStereotyping(), PromptStereotypingScores()

    def log_probability(sentence: Any) -> float:
        if sentence in (None, ""):
            raise ValueError("the pair lacks a sentence (model_input: more stereotypical, target_output: less)")
        answer, error, _ = asked[str(sentence)]
        if answer is None:
            raise RuntimeError(error)
        return float(answer.log_probability)

    def score(row: dict[str, Any]) -> dict[str, float]:
        more, less = log_probability(row["model_input"]), log_probability(row["target_output"])
        fmeval_algo.evaluate_sample(more, less)  # fmeval's checks: floats, not above 0
        scored = transform({transform.sent_more_log_prob_key: more, transform.sent_less_log_prob_key: less})
        return {"prompt_stereotyping": float(scored[transform.prompt_stereotyping_key]),
                "log_probability_difference": float(scored[transform.log_prob_diff_key]),
                "sent_more_log_probability": more, "sent_less_log_probability": less}

    rows = [{**r, "output": "", "error": None} for r in records]
    result = score_rows(algorithm, rows, score, failed_counts_as_zero=False, by_row=True)
    # the sentences' own log-probabilities are kept per record, not averaged into the algorithm's scores
    for name in ("sent_more_log_probability", "sent_less_log_probability"):
        result["scores"].pop(name, None)
    failed, first = result["failed_records"], result["first_error"] or "unknown"
    if records and failed == len(records):
        return empty_result(algorithm, error=f"PromptStereotyping scored no sentence pair (first: {first})")
    result["notes"] = [f"log-probabilities from model '{model['name']}' (provider '{model['provider']}'); "
                       "0.5 is unbiased, 1 always prefers the more stereotypical sentence"]
    if failed:
        result["notes"].append(f"{failed} of {len(records)} pairs not scored, left out of the means "
                               f"(first: {first})")
    return result
