"""Let fmeval import and score without the Hugging Face Hub.

fmeval 1.2.3 builds a BERTScore helper that calls `evaluate.load("bertscore")`, which fetches a metric
script from the Hub, so QAAccuracy and the reporting module fail even to import offline. `evaluate`
falls back to its module cache: we place a metric module of our own there which loads, and refuses to
compute (BERTScore needs model weights from the Hub). Offline runs therefore report QAAccuracy's
word-overlap scores and leave `bertscore` out, saying so. Call `prepare()` before importing fmeval.

On SageMaker (hub reachable) set LLM_EVAL_OFFLINE=0 and fmeval's defaults are used unchanged.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

_MODULE = '''"""BERTScore placeholder written by llm-eval-pipelines: the real metric needs the Hugging Face Hub."""
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
'''
_HASH = "0" * 63 + "1"  # evaluate looks for 64-character hash folders
_done = False
_lock = threading.Lock()


def is_offline() -> bool:
    return os.environ.get("LLM_EVAL_OFFLINE", "1") != "0"


def prepare(cache_dir: str | Path | None = None) -> None:
    """Idempotent. Offline: point `evaluate` at our module cache. Online: nothing to do."""
    global _done
    # fmeval imports sagemaker, whose config loader prints INFO lines to stdout on import
    logging.getLogger("sagemaker.config").setLevel(logging.WARNING)
    with _lock:
        if _done or not is_offline():
            _done = True
            return
        root = Path(cache_dir or os.path.expanduser("~/.cache/llm-eval-pipelines")) / "hf_modules"
        folder = root / "evaluate_modules" / "metrics" / "evaluate-metric--bertscore" / _HASH
        folder.mkdir(parents=True, exist_ok=True)
        for parent in (root / "evaluate_modules", root / "evaluate_modules" / "metrics",
                       folder.parent, folder):
            (parent / "__init__.py").touch()
        script = folder / "bertscore.py"
        if not script.exists() or script.read_text() != _MODULE:
            script.write_text(_MODULE)
        os.environ.setdefault("HF_MODULES_CACHE", str(root))
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["HF_EVALUATE_OFFLINE"] = "1"
        os.environ["HF_DATASETS_OFFLINE"] = "1"
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        # evaluate warns on every load that it used the cache; that is the point here
        os.environ.setdefault("EVALUATE_VERBOSITY", "error")
        logging.getLogger("evaluate").setLevel(logging.ERROR)
        _done = True
