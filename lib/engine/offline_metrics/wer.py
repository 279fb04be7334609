"""Word error rate with `jiwer`, for `evaluate.load("wer")` without the Hub (written by llm-eval-pipelines).

As the Hub's script: all pairs' substitutions, deletions and insertions over all reference words. One
difference: an empty reference (a model that answered nothing) counts its prediction's words as
insertions instead of raising, so one empty answer does not stop a whole robustness evaluation.
"""

import datasets
import evaluate
import jiwer


class Wer(evaluate.Metric):
    def _info(self):
        text = datasets.Value("string", id="sequence")
        return evaluate.MetricInfo(
            description="WER computed by jiwer (offline metric module of llm-eval-pipelines)",
            citation="", inputs_description="predictions, references",
            features=datasets.Features({"predictions": text, "references": text}),
        )

    def _compute(self, predictions=None, references=None, concatenate_texts=False):
        predictions, references = list(predictions), list(references)
        if concatenate_texts:
            predictions, references = [" ".join(predictions)], [" ".join(references)]
        errors = words = 0
        for reference, prediction in zip(references, predictions, strict=True):
            if not reference.strip():
                errors += len(prediction.split())
                continue
            out = jiwer.process_words(reference, prediction)
            errors += out.substitutions + out.deletions + out.insertions
            words += out.substitutions + out.deletions + out.hits
        if words == 0:
            return 0.0 if errors == 0 else 1.0
        return errors / words
