"""ROUGE with Google's `rouge_score`, for `evaluate.load("rouge")` without the Hub (written by llm-eval-pipelines).

Same arguments and result as the Hub's script: F-measures per ROUGE type. With ``use_aggregator`` the
Hub's script reports the middle of a bootstrap over the pairs; this reports their mean. fmeval scores one
pair per call, where the two are the same number.
"""

import datasets
import evaluate
from rouge_score import rouge_scorer


class _Tokenizer:
    """rouge_score wants an object with `tokenize`; callers of `compute` pass a function."""

    def __init__(self, fn):
        self.fn = fn

    def tokenize(self, text):
        return self.fn(text)


class Rouge(evaluate.Metric):
    def _info(self):
        text = datasets.Value("string", id="sequence")
        return evaluate.MetricInfo(
            description="ROUGE computed by rouge_score (offline metric module of llm-eval-pipelines)",
            citation="", inputs_description="predictions, references (one or a list per prediction)",
            features=[datasets.Features({"predictions": text, "references": datasets.Sequence(text)}),
                      datasets.Features({"predictions": text, "references": text})],
        )

    def _compute(self, predictions, references, rouge_types=None, use_aggregator=True, use_stemmer=False,
                 tokenizer=None):
        predictions, references = list(predictions), list(references)  # `datasets` may hand Column objects
        rouge_types = list(rouge_types or ["rouge1", "rouge2", "rougeL", "rougeLsum"])
        scorer = rouge_scorer.RougeScorer(rouge_types=rouge_types, use_stemmer=use_stemmer,
                                          tokenizer=_Tokenizer(tokenizer) if tokenizer else None)
        per_pair = []
        for reference, prediction in zip(references, predictions, strict=True):
            if isinstance(reference, (list, tuple)):
                per_pair.append(scorer.score_multi(list(reference), prediction))
            else:
                per_pair.append(scorer.score(reference, prediction))
        if not use_aggregator:
            return {t: [s[t].fmeasure for s in per_pair] for t in rouge_types}
        return {t: (sum(s[t].fmeasure for s in per_pair) / len(per_pair) if per_pair else 0.0) for t in rouge_types}
