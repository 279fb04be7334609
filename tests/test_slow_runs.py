"""Slow end-to-end runs (make test-all): the default config as `make run` runs it, and an algorithm
that calls the model itself through fmeval's evaluate()."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow


def test_make_run_default_config(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "pipelines" / "build_pipeline.py"), "run", "--config",
                           str(ROOT / "evaluation_config.yaml"), "--output-dir", str(tmp_path / "run")],
                          capture_output=True, text=True, cwd=ROOT, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert set(summary["models"]) == {"smollm2-plain", "smollm2-answer-only", "smollm2-finetuned"}
    assert all(m["status"] == "succeeded" and m["records"] == 66 for m in summary["models"].values())
    assert summary["selection"]["best"] in summary["models"]
    assert "evaluate-smollm2-plain" in proc.stderr and "records" in proc.stderr  # progress shown


def test_semantic_robustness_calls_the_model_through_fmeval(tmp_path):
    from lib.engine.with_model import evaluate_with_model
    from lib.providers.local import LocalProvider
    from lib.scorers import fmeval_algorithms as algorithms

    data = tmp_path / "sentiment.jsonl"
    data.write_text("".join(json.dumps({"model_input": f"Review: {t}\\nIs it positive or negative?",
                                        "target_output": label}) + "\n"
                            for t, label in [("Loved every minute.", "positive"), ("Dreadful and dull.", "negative")]))
    spec = algorithms.BUILTIN["ClassificationAccuracySemanticRobustness"]
    algorithm = {"name": spec.name, "module": spec.module, "config_class": spec.config_class,
                 "eval_name": spec.eval_name, "options": {"valid_labels": ["positive", "negative"],
                                                          "num_perturbations": 2}}
    provider = LocalProvider()
    model = {"name": "sr", "provider": "local", "model_id": "smollm2-135m-instruct",
             "invoke": {"output": "[0].generated_text", "content_template": "PROMPT_PLACEHOLDER",
                        "inference_parameters": {"max_new_tokens": 4}, "prompt_template": "$model_input"}}
    import os

    deployment = provider.deploy(model, None, {"cache_root": os.path.expanduser("~/.cache/llm-eval-pipelines"),
                                               "progress": lambda m: None})
    try:
        result = evaluate_with_model(algorithm, provider.invoker(model, deployment), str(data), "sentiment",
                                     "$model_input", 2)
    finally:
        provider.cleanup(model, deployment)
    assert result["error"] is None, result["error"]
    assert result["scores"] and all(0.0 <= v <= 1.0 for v in result["scores"].values() if v is not None)
