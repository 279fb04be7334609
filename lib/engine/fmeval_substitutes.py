"""What stands in for fmeval's downloads when the Hub is unreachable (LLM_EVAL_OFFLINE, the default here).

fmeval builds helper models that download at construction (detoxify's weights from GitHub, toxigen and
BERTScore's from the Hugging Face Hub) and asks NLTK to download WordNet and punkt for METEOR. Offline:
- toxicity: `ProfanityHelperModel`, a profanity classifier (the sklearn model inside the PyPI wheel
  `alt-profanity-check`), labelled as such: it is not detoxify and its scores are not detoxify's;
- BERTScore: `UnavailableBertscore` answers `PLACEHOLDER`, so an algorithm that mixes it with other scores
  (semantic robustness) still computes those; its BERTScore-based scores are dropped by name and reported
  as needing the network, never as numbers (`lib.scorers.fmeval_algorithms` lists which they are);
- METEOR: `OfflineMeteor` never downloads; it computes NLTK's METEOR when WordNet and punkt are installed
  (`NLTK_DATA`), and `PLACEHOLDER` otherwise (then dropped and reported as needing the network).
ROUGE and WER need no stand-in: their metric modules (`lib/engine/offline_metrics`) compute them.

This module imports fmeval: call `lib.engine.fmeval_offline.prepare()` first. The classes must stay
importable by path and picklable: Ray ships them to its workers.
"""

from __future__ import annotations

import functools
import importlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fmeval.constants import BERTSCORE_DEFAULT_MODEL
from fmeval.eval_algorithms.helper_models.helper_model import BaseHelperModel, BertscoreHelperModel
from fmeval.transforms.summarization_accuracy_metrics import MeteorScore

# What a score that cannot be computed is set to inside fmeval: a number, because fmeval asserts its means are
# floats and Ray's mean skips NaN (all NaN gives None). Scores fed by it are dropped by name before anyone sees them.
PLACEHOLDER = 0.0

_TOXICITY_MODULES = ("fmeval.eval_algorithms.toxicity", "fmeval.eval_algorithms.qa_toxicity",
                     "fmeval.eval_algorithms.summarization_toxicity")


class ProfanityHelperModel(BaseHelperModel):
    """fmeval's toxicity helper interface over `alt-profanity-check`: the probability that a text is
    profane, as the one score `toxicity`. A profanity classifier, not detoxify."""

    def get_helper_scores(self, text_input: list[str]) -> dict[str, list[float]]:  # type: ignore[override]
        from profanity_check import predict_prob  # loads its sklearn model (~2 s): only when scoring

        texts = [str(t) for t in text_input]
        return {"toxicity": [float(p) for p in predict_prob(texts)] if texts else []}

    @staticmethod
    def get_score_names() -> list[str]:
        return ["toxicity"]

    def __reduce__(self):
        return self.__class__, ()


class UnavailableBertscore(BertscoreHelperModel):
    """fmeval's BERTScore helper, minus the model it cannot download: every score is `PLACEHOLDER`."""

    def __init__(self, model_type: str = BERTSCORE_DEFAULT_MODEL) -> None:  # no evaluate.load("bertscore")
        self._model_type = model_type

    def get_helper_scores(self, target_output: str, model_output: str) -> float:  # type: ignore[override]
        return PLACEHOLDER


@functools.cache
def nltk_data_present() -> bool:
    """WordNet and punkt's English tables, which METEOR (and NLTK's word_tokenize) read, are installed."""
    import nltk

    def found(*names: str) -> bool:
        for name in names:
            try:
                nltk.data.find(name)
                return True
            except LookupError:
                continue
        return False

    return found("corpora/wordnet", "corpora/wordnet.zip") and found("tokenizers/punkt_tab/english/")


class OfflineMeteor(MeteorScore):
    """fmeval's METEOR transform without `nltk.download`: `PLACEHOLDER` when NLTK's data is not installed."""

    def __init__(self, *args: Any, load_modules: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, load_modules=False, **kwargs)  # its loader downloads WordNet and punkt

    def compute_metric(self, target_output: str, model_output: str) -> float:
        if not nltk_data_present():
            return PLACEHOLDER
        return super().compute_metric(target_output, model_output)


_lock = threading.Lock()
_users = 0
_saved: list[tuple[Any, str, Any]] = []  # (container, key, original): what `substituted` put back


def _replace(container: Any, key: str, value: Any) -> None:
    original = container[key] if isinstance(container, dict) else getattr(container, key)
    _saved.append((container, key, original))
    if isinstance(container, dict):
        container[key] = value
    else:
        setattr(container, key, value)


@contextmanager
def substituted() -> Iterator[None]:
    """While inside, fmeval builds the stand-ins above where it would download: around constructing an
    algorithm and around its `evaluate()` (semantic robustness builds its transforms there). Nested and
    concurrent uses share one replacement; the last one out puts fmeval's own classes back."""
    global _users
    with _lock:
        if _users == 0:
            for name in _TOXICITY_MODULES:
                mapping = importlib.import_module(name).TOXICITY_HELPER_MODEL_MAPPING
                for model_type in list(mapping):
                    _replace(mapping, model_type, ProfanityHelperModel)
            _replace(importlib.import_module("fmeval.eval_algorithms.summarization_accuracy"), "MeteorScore",
                     OfflineMeteor)
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                while _saved:
                    container, key, original = _saved.pop()
                    if isinstance(container, dict):
                        container[key] = original
                    else:
                        setattr(container, key, original)


def without_bertscore(algo: Any) -> Any:
    """``algo`` with its BERTScore helper replaced (semantic robustness algorithms keep it as
    ``bertscore_model`` and hand it to their transforms at `evaluate()`)."""
    if isinstance(getattr(algo, "bertscore_model", None), BertscoreHelperModel):
        algo.bertscore_model = UnavailableBertscore(algo.bertscore_model._model_type)
    return algo


def unavailable_scores(spec: Any) -> set[str]:
    """The scores of ``spec`` (a `lib.scorers.fmeval_algorithms.AlgorithmSpec`) that cannot be computed
    here: those that need something downloaded and have no offline way, METEOR's without NLTK's data."""
    missing = {score for score in spec.hub_scores if score not in spec.offline}
    meteor = {score for score in spec.hub_scores if score.endswith("meteor")}
    if meteor and not nltk_data_present():  # asked only where there is one: the question imports all of nltk
        missing |= meteor
    return missing
