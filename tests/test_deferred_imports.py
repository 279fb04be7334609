"""fmeval's algorithms import without torch, transformers, Hugging Face `evaluate`, Ray, scikit-learn, SciPy's
statistics, boto3 and nltk (#16 goal 2): those load only when an algorithm uses them, and then work as they
always did. Each case runs in a fresh interpreter, where nothing has imported them yet."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT

SCORE = """
import json, sys
from lib.scorers import score_outputs
from lib.scorers.fmeval_algorithms import BUILTIN

def algorithm(name, **options):
    spec = BUILTIN[name]
    return {"name": name, "module": spec.module, "config_class": spec.config_class, "eval_name": spec.eval_name,
            "options": options}

HEAVY = ("torch", "transformers", "evaluate", "ray", "fmeval.data_loaders.util", "sklearn", "scipy.stats", "boto3",
         "botocore", "nltk", "numpy", "functional")

rows = [{"id": "r0", "model_input": "Capital of France?", "target_output": "paris", "output": "Paris",
         "error": None},
        {"id": "r1", "model_input": "Capital of Italy?", "target_output": "rome", "output": "Milan", "error": None}]
out = {}
for name, options in json.loads(sys.argv[1]):
    out[name] = score_outputs(algorithm(name, **options), rows)["scores"]
    out[name + ".loaded"] = sorted(m for m in HEAVY if m in sys.modules)
from lib.reports.pages import algorithm_html
page = algorithm_html("m", "d", algorithm("FactualKnowledge"), {"scores": {"factual_knowledge": 0.5},
                      "per_record": [], "notes": []}, "$model_input")
out["page_has_fmeval_cell"] = "fmeval's report cell is unavailable" not in page
out["page.loaded"] = sorted(m for m in HEAVY if m in sys.modules)
# fmeval's category scores compare with PyFunctional's `seq`, and its mean transform is NumPy's: both on first use
from fmeval.eval_algorithms import CategoryScore, EvalScore
from fmeval.transforms.common import Mean
same = [EvalScore(name="a", value=0.5), EvalScore(name="b", value=1.0)]
out["scores_equal"] = CategoryScore("c", same) == CategoryScore("c", same[::-1])
out["mean"] = float(Mean(["x", "y"], "m")({"x": 1.0, "y": 2.0})["m"])
out["first_use.loaded"] = sorted(m for m in HEAVY if m in sys.modules)
# ClassificationAccuracy's dataset-level score (fmeval's `evaluate()`), from scikit-learn on first use
import fmeval.eval_algorithms.classification_accuracy as ca
out["balanced_accuracy"] = float(ca.balanced_accuracy_score(["a", "b", "b"], ["a", "a", "b"]))
out["balanced.loaded"] = sorted(m for m in HEAVY if m in sys.modules)
# fmeval's AWS helpers: boto3 on first use, a real session with fmeval's retry settings
from fmeval.model_runners.util import get_boto_session
import boto3
session = get_boto_session("standard", 3)
out["boto_session"] = [isinstance(session, boto3.session.Session),
                       session._session.get_default_client_config().retries]
out["boto.loaded"] = sorted(m for m in HEAVY if m in sys.modules)
print(json.dumps(out))
"""


def run(algorithms: list) -> dict:
    done = subprocess.run([sys.executable, "-c", SCORE, json.dumps(algorithms)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_answer_only_algorithms_and_the_report_cell_never_load_torch():
    out = run([["FactualKnowledge", {"target_output_delimiter": "<OR>"}],
               ["QAAccuracy", {"target_output_delimiter": "<OR>"}],
               ["ClassificationAccuracy", {"valid_labels": ["paris", "rome", "milan"]}]])
    assert out["FactualKnowledge"]["factual_knowledge"] == 0.5
    assert out["QAAccuracy"]["quasi_exact_match_score"] == 0.5
    assert out["ClassificationAccuracy"]["classification_accuracy_score"] == 0.5
    assert out["FactualKnowledge.loaded"] == out["QAAccuracy.loaded"] == out["page.loaded"] == []
    assert out["page_has_fmeval_cell"]
    assert out["scores_equal"] is True and out["mean"] == 1.5
    assert out["first_use.loaded"] == ["functional", "numpy"]
    assert out["balanced_accuracy"] == 0.75 and "sklearn" in out["balanced.loaded"]
    assert "boto3" not in out["balanced.loaded"]  # fmeval's AWS helpers: boto3 too only when used
    assert out["boto_session"] == [True, {"mode": "standard", "max_attempts": 3}]
    assert {"boto3", "botocore"} <= set(out["boto.loaded"])


def test_an_algorithm_that_needs_them_loads_them_on_first_use_and_scores_as_before():
    # QAAccuracy first (its import builds BERTScore's helper, deferred), then ROUGE through `evaluate.load`
    out = run([["QAAccuracy", {"target_output_delimiter": "<OR>"}],
               ["SummarizationAccuracy", {"rouge_type": "rouge1"}]])
    assert out["QAAccuracy.loaded"] == []
    assert out["SummarizationAccuracy"]["rouge"] == 0.5  # "Paris" vs "Paris", "Milan" vs "Rome"
    assert "evaluate" in out["SummarizationAccuracy.loaded"]


THREADS = """
import json, os, sys
from pipelines.local_executor import configure_threads
configure_threads(4)
before = "torch" in sys.modules
import torch
print(json.dumps({"torch_before": before, "threads": torch.get_num_threads(), "cores": os.cpu_count()}))
"""


def test_a_run_shares_the_cores_without_importing_torch(monkeypatch):
    # a run against a remote model never needs torch (3 s to import); torch, once imported, has its share
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    done = subprocess.run([sys.executable, "-c", THREADS], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["torch_before"] is False
    assert out["threads"] == max(1, out["cores"] // 4)
