"""Let fmeval import and score without the Hugging Face Hub.

fmeval 1.2.3 loads its metrics with `evaluate.load("bertscore" | "rouge" | "wer")`, which fetches metric
scripts from the Hub; BERTScore's helper is even built at import, so QAAccuracy and the reporting module
fail to import offline. `evaluate` falls back to its module cache: we place metric modules of our own
there (`lib/engine/offline_metrics`): ROUGE over `rouge_score` and WER over `jiwer` compute what the
Hub's scripts compute; BERTScore loads and refuses to compute (it needs model weights from the Hub).
What else runs offline, and with which substitute, is `lib.engine.fmeval_substitutes`.
Call `prepare()` before importing fmeval.

On SageMaker (hub reachable) set LLM_EVAL_OFFLINE=0 and fmeval's defaults are used unchanged.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from lib.engine import offline_metrics

_HASH = "0" * 63 + "1"  # evaluate looks for 64-character hash folders
_done = False
_lock = threading.Lock()


def _place(root: Path, metric: str, source: str) -> None:
    """Where `evaluate` looks for a cached metric module: .../evaluate-metric--<name>/<64-char hash>/<name>.py."""
    folder = root / "evaluate_modules" / "metrics" / f"evaluate-metric--{metric}" / _HASH
    folder.mkdir(parents=True, exist_ok=True)
    for parent in (root / "evaluate_modules", root / "evaluate_modules" / "metrics", folder.parent, folder):
        (parent / "__init__.py").touch()
    script = folder / f"{metric}.py"
    if not script.exists() or script.read_text() != source:
        script.write_text(source)


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
        for filename, metric in offline_metrics.MODULES.items():
            _place(root, metric, (Path(offline_metrics.__file__).parent / filename).read_text())
        os.environ.setdefault("HF_MODULES_CACHE", str(root))
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["HF_EVALUATE_OFFLINE"] = "1"
        os.environ["HF_DATASETS_OFFLINE"] = "1"
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        # evaluate warns on every load that it used the cache; that is the point here
        os.environ.setdefault("EVALUATE_VERBOSITY", "error")
        logging.getLogger("evaluate").setLevel(logging.ERROR)
        _done = True
