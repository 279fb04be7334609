"""BERTScore placeholder written by llm-eval-pipelines: the real metric needs model weights from the Hub.

It loads (so fmeval's modules import offline) and refuses to compute.
"""

import datasets
import evaluate


class Bertscore(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="unavailable offline", citation="", inputs_description="",
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string")}),
        )

    def _compute(self, predictions, references, **kwargs):
        raise RuntimeError("BERTScore needs model weights from the Hugging Face Hub, unreachable offline")
