"""Preset custom scorers (`algorithm: CustomScorer` with `preset: NAME`), each computed by a maintained
library, never by hand, and all of them offline:

| preset | scores | computed by |
|---|---|---|
| exact_match | exact_match, quasi_exact_match | fmeval's QA accuracy functions (QAAccuracy's own numbers) |
| f1 | f1, precision, recall | fmeval's QA accuracy functions (words after QuAC normalisation) |
| bleu | bleu | NLTK's `sentence_bleu` (Treebank tokens, smoothing method 1, orders up to the answer's length) |
| rouge | rouge1, rouge2, rougeL | Google's `rouge_score` (F-measure, Porter stemmer) |

A target holding several accepted answers (``Paris<OR>Lutetia``) scores the best of them, as fmeval does.
Every score is per record, in 0..1; a run reports the mean over the records. NLTK needs no downloaded
data for these (its word tokenizer would: the Treebank tokenizer is rules only).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

DEFAULT_DELIMITER = "<OR>"


def _targets(record: dict[str, Any], delimiter: str) -> list[str]:
    return [t.strip() for t in str(record.get("target_output") or "").split(delimiter)] or [""]


def _qa_scores(names: dict[str, str]) -> Callable[..., dict[str, float]]:
    """A preset over fmeval's QAAccuracyScores transform: {our name: fmeval's score name}."""
    transforms: dict[str, Any] = {}

    def score(record: dict[str, Any], target_output_delimiter: str = DEFAULT_DELIMITER) -> dict[str, float]:
        transform = transforms.get(target_output_delimiter)
        if transform is None:
            from lib.engine import fmeval_offline

            fmeval_offline.prepare()  # qa_accuracy builds a BERTScore helper at import; offline it must not
            from fmeval.eval_algorithms.qa_accuracy import QAAccuracyScores

            transform = transforms[target_output_delimiter] = QAAccuracyScores(
                target_output_delimiter=target_output_delimiter)
        out = transform({"target_output": str(record.get("target_output") or ""),
                         "model_output": str(record.get("model_output") or "")})
        return {ours: float(out[theirs]) for ours, theirs in names.items()}

    return score


def bleu(record: dict[str, Any], target_output_delimiter: str = DEFAULT_DELIMITER) -> dict[str, float]:
    from nltk.tokenize import TreebankWordTokenizer
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    tokenize = TreebankWordTokenizer().tokenize
    hypothesis = tokenize(str(record.get("model_output") or ""))
    references = [tokenize(t) for t in _targets(record, target_output_delimiter)]
    if not hypothesis or not any(references):
        return {"bleu": 0.0}
    # auto_reweigh: a three-word answer is scored on 1- to 3-grams (BLEU-4 of a short answer is always ~0)
    return {"bleu": float(sentence_bleu(references, hypothesis, smoothing_function=SmoothingFunction().method1,
                                        auto_reweigh=True))}


_ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
_rouge: list[Any] = []


def rouge(record: dict[str, Any], target_output_delimiter: str = DEFAULT_DELIMITER) -> dict[str, float]:
    if not _rouge:
        from rouge_score import rouge_scorer

        _rouge.append(rouge_scorer.RougeScorer(list(_ROUGE_TYPES), use_stemmer=True))
    scores = _rouge[0].score_multi(_targets(record, target_output_delimiter), str(record.get("model_output") or ""))
    return {name: float(scores[name].fmeasure) for name in _ROUGE_TYPES}


# preset -> (the scores it reports, the per-record function)
PRESETS: dict[str, tuple[tuple[str, ...], Callable[..., dict[str, float]]]] = {
    "exact_match": (("exact_match", "quasi_exact_match"),
                    _qa_scores({"exact_match": "exact_match_score", "quasi_exact_match": "quasi_exact_match_score"})),
    "f1": (("f1", "precision", "recall"),
           _qa_scores({"f1": "f1_score", "precision": "precision_over_words", "recall": "recall_over_words"})),
    "bleu": (("bleu",), bleu),
    "rouge": (_ROUGE_TYPES, rouge),
}
