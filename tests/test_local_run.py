"""The local executor end to end, with the real local model (loaded once per test session)."""

from __future__ import annotations

import json
import socket
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from conftest import write_dataset

from lib.providers import running
from lib.providers.local import LocalProvider
from pipelines.build_pipeline import main

LOCAL_MODEL = {"provider": "local", "model_id": "smollm2-135m-instruct"}


@pytest.fixture(scope="session")
def cache_root() -> str:
    """The user's model cache: the conversion (~30 s) happens once per machine, not per test."""
    import os

    return os.path.expanduser("~/.cache/llm-eval-pipelines")


def port_open(url: str) -> bool:
    host, port = url.replace("http://", "").split(":")
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, int(port))) == 0


def local_model_entry(name: str, prompt_template: str = "$model_input") -> dict:
    return {"name": name, **LOCAL_MODEL,
            "evaluation_config": {"output": "[0].generated_text", "content_template": "PROMPT_PLACEHOLDER",
                                  "inference_parameters": {"max_new_tokens": 24},
                                  "prompt_template": prompt_template}}


def linked_cache(tmp_path: Path) -> str:
    """An empty cache that shares only the converted base model with the user's cache."""
    from lib.providers import local_model

    base = local_model.ensure_converted("smollm2-135m-instruct", Path("~/.cache/llm-eval-pipelines").expanduser())
    cache = tmp_path / "cache"
    (cache / "models").mkdir(parents=True)
    (cache / "models" / base.name).symlink_to(base)
    return str(cache)


def write_run_config(tmp_path: Path, models: list[dict], n: int = 5, cache_dir: str | None = None) -> Path:
    write_dataset(tmp_path / "eval.jsonl", n)
    config = {
        "pipeline": {"name": "e2e"},
        "dataset": {"dataset_name": "trivia", "input_data_location": "eval.jsonl",
                    "model_input_key": "question", "target_output_key": "answer"},
        "models": models,
        "algorithms": [{"algorithm": "FactualKnowledge", "target_output_delimiter": "<OR>"},
                       {"algorithm": "QAAccuracy", "target_output_delimiter": "<OR>", "num_records": 3}],
        "selection": {"metric": "factual_knowledge", "direction": "max"},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (tmp_path / "pipeline_config.yaml").write_text(yaml.safe_dump(
        {"local": {"output_dir": str(tmp_path / "runs"), "max_workers": 2,
                   "model_cache_dir": cache_dir or str(Path("~/.cache/llm-eval-pipelines").expanduser())}}))
    return tmp_path / "config.yaml"


def test_server_speaks_the_sagemaker_contract_and_batches(cache_root):
    provider = LocalProvider()
    model = {"name": "contract", **LOCAL_MODEL, "invoke": {}}
    deployment = provider.deploy(model, None, {"cache_root": cache_root, "progress": lambda m: None})
    url = deployment["endpoint_url"]
    try:
        with urllib.request.urlopen(url + "/ping", timeout=5) as r:
            assert r.status == 200
        answers: list = []

        def ask(q: str) -> None:
            body = json.dumps({"inputs": q, "parameters": {"max_new_tokens": 8}}).encode()
            req = urllib.request.Request(url + "/invocations", data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=120) as r:
                answers.append(json.loads(r.read()))

        threads = [threading.Thread(target=ask, args=(f"What is {i} plus {i}?",)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(answers) == 6
        assert all(isinstance(a[0]["generated_text"], str) and a[0]["details"]["generated_tokens"] > 0
                   for a in answers)
        endpoint = running.get(deployment["endpoint_id"])
        assert max(endpoint.batcher.batches) > 1, "concurrent requests share one generate call"
        bad = urllib.request.Request(url + "/invocations", data=b'{"inputs": 5}',
                                     headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(bad, timeout=10)
        assert err.value.code == 400
    finally:
        result = provider.cleanup(model, deployment)
    assert result["deleted"] == [deployment["endpoint_id"]]
    assert not port_open(url)


def test_two_models_of_one_loaded_model_share_a_batcher_that_keeps_batches_full(cache_root):
    """32 questions from 16 clients, half to each of two endpoints over the same loaded model: two
    full batches of 16, not uneven splits of a short gathering window."""
    from lib.engine.invokers import HttpInvoker

    provider = LocalProvider()
    models = [{"name": f"twin-{i}", **LOCAL_MODEL, "invoke": {}} for i in range(2)]
    deployments = [provider.deploy(m, None, {"cache_root": cache_root, "progress": lambda m: None}) for m in models]
    try:
        endpoints = [running.get(d["endpoint_id"]) for d in deployments]
        assert endpoints[0].batcher is endpoints[1].batcher  # one loaded model, one batcher
        batcher = endpoints[0].batcher
        before = len(batcher.batches)
        invoke = {"output": "[0].generated_text", "content_template": "PROMPT_PLACEHOLDER",
                  "inference_parameters": {"max_new_tokens": 2}}
        invokers = [HttpInvoker(d["endpoint_url"], invoke) for d in deployments]
        questions = [f"What is {i} plus {i}?" for i in range(32)]
        with ThreadPoolExecutor(16) as pool:  # the engine's concurrency for local models
            answers = list(pool.map(lambda iq: invokers[iq[0] % 2](iq[1]), enumerate(questions)))
        assert len(answers) == 32 and all(a.text is not None for a in answers)
        batches = batcher.batches[before:]
        # full batches: at most one short one (a client slow to send under load), never the uneven
        # splits of a short fixed window ([16, 8, 8], [14, 14, 4])
        assert sum(batches) == 32 and len(batches) <= 3 and sum(b < 12 for b in batches) <= 1, batches
    finally:
        for m, d in zip(models, deployments, strict=True):
            provider.cleanup(m, d)
    assert batcher._stop.is_set()  # the last endpoint to close stops the shared batcher


def test_end_to_end_two_models(tmp_path, capsys):
    config = write_run_config(tmp_path, [
        local_model_entry("plain"),
        local_model_entry("answer-only", "Answer with only the name, word or number. $model_input")],
        cache_dir=linked_cache(tmp_path))
    threads_before = {t.name for t in threading.enumerate()}
    code = main(["run", "--config", str(config), "--output-dir", str(tmp_path / "run")])
    assert code == 0
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    models = summary["models"]
    assert set(models) == {"plain", "answer-only"}
    for m in models.values():
        assert m["status"] == "succeeded" and m["records"] == 5
        # two output-scored algorithms, one model call per record
        assert m["invocations"] == 5 and m["cache_hits"] == 0 and m["errors"] == 0
        for scores in m["scores"].values():
            assert all(0.0 <= v <= 1.0 for v in scores.values())
        assert set(m["scores"]) == {"factual_knowledge", "qa_accuracy"}
    fk = {name: m["scores"]["factual_knowledge"]["factual_knowledge"] for name, m in models.items()}
    selection = json.loads((run / "selection.json").read_text())
    assert selection["best"] == summary["selection"]["best"]
    assert fk[selection["best"]] == max(fk.values())
    registry = json.loads((run / "registry.json").read_text())
    assert registry["model"] == selection["best"] and registry["version"] >= 1
    assert registry["approval_status"] == "PendingManualApproval"
    assert registry["metrics"]["factual_knowledge"]["factual_knowledge"] == fk[selection["best"]]
    assert summary["registry"]["model"] == selection["best"]
    report = (run / "report.html").read_text()
    assert "plain" in report and "answer-only" in report
    assert "<OR>" not in report, "model and dataset text is escaped"
    for name in models:
        assert (run / "models" / name / "outputs.jsonl").exists()
        assert (run / "models" / name / "factual_knowledge.html").exists()
        assert len((run / "models" / name / "factual_knowledge.jsonl").read_text().splitlines()) == 5
        assert len((run / "models" / name / "qa_accuracy.jsonl").read_text().splitlines()) == 3  # num_records
    # nothing left running: no endpoint registered, no server thread alive
    assert running.running() == []
    leftover = {t.name for t in threading.enumerate()} - threads_before
    assert not [n for n in leftover if n.startswith(("endpoint-", "local-batcher"))]


def test_a_failing_model_is_data_and_cleanup_still_runs(tmp_path):
    config = write_run_config(tmp_path, [
        local_model_entry("good"),
        {"name": "broken", "provider": "plugin_providers.BrokenDeployProvider", "model_id": "x",
         "evaluation_config": {"prompt_template": "$model_input"}},
        {**local_model_entry("unreachable"), "provider": "plugin_providers.BrokenInvokerProvider"}], n=3)
    # a model was selected but two failed: the documented exit code 3, not 0
    assert main(["run", "--config", str(config), "--output-dir", str(tmp_path / "run")]) == 3
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["models"]["broken"]["status"] == "failed"
    assert "ResourceLimitExceeded" in summary["models"]["broken"]["error"]
    assert summary["selection"]["best"] == "good"
    assert "broken" in summary["selection"]["excluded"]
    assert "no credentials" in summary["models"]["unreachable"]["error"]
    execution = json.loads((tmp_path / "run" / "execution.json").read_text())
    assert execution["steps"]["cleanup-good"]["status"] == "succeeded"
    # its evaluate failed, but the endpoint its deploy started is still removed
    assert execution["steps"]["cleanup-unreachable"]["status"] == "succeeded"
    assert running.running() == []


def test_finetune_trains_saves_and_is_reused(tmp_path, cache_root):
    data = tmp_path / "train.jsonl"
    write_dataset(data, 8)
    model = {"name": "ft", **LOCAL_MODEL, "finetune": {
        "train_data_uri": str(data), "validation_data_uri": None,
        "parameters": {"max_steps": 2, "batch_size": 2, "method": "lora", "seed": 11}}}
    from lib.run.layout import RunLayout
    from steps._common import context

    ctx = context("finetune-ft", RunLayout(str(tmp_path / "run")), linked_cache(tmp_path))
    first = LocalProvider().finetune(model, ctx)
    assert not first["reused"] and first["metrics"]["steps"] == 2
    assert (Path(first["artifact"]) / "adapter_model.safetensors").exists()
    second = LocalProvider().finetune(model, ctx)
    assert second["reused"] and second["artifact_identity"] == first["artifact_identity"]
    changed = {**model, "finetune": {**model["finetune"], "parameters": {**model["finetune"]["parameters"],
                                                                         "max_steps": 3}}}
    assert LocalProvider().finetune(changed, ctx)["artifact_identity"] != first["artifact_identity"]
    # trained as served: an empty system turn is another model, trained on shorter examples
    bare = {**model, "invoke": {"system_prompt": ""}}
    third = LocalProvider().finetune(bare, ctx)
    assert third["artifact_identity"] != first["artifact_identity"]
    assert third["metrics"]["mean_tokens"] < first["metrics"]["mean_tokens"] - 10


@pytest.mark.parametrize("system_prompt", [None, "", "Answer in one word."])
def test_finetuning_trains_on_the_text_the_server_serves(cache_root, system_prompt):
    from lib.providers import local_model
    from lib.providers.local_finetune import chat_examples
    from lib.providers.local_server import _to_text

    lm = local_model.load("smollm2-135m-instruct", cache_root)
    question, answer = "What is the capital of France?", "Paris"
    served = _to_text(lm, question, system_prompt)
    example = chat_examples(lm.tokenizer, [(question, answer)], 256, system_prompt)[0]
    prompt_ids = [i for i, label in zip(example["input_ids"], example["labels"], strict=True) if label == -100]
    assert prompt_ids == lm.tokenizer(served, add_special_tokens=False)["input_ids"]
    assert ("SmolLM" in served) == (system_prompt is None)  # "" replaces the template's default turn


def test_rerun_into_the_same_output_dir_resumes(tmp_path):
    run = tmp_path / "run"
    config = write_run_config(tmp_path, [local_model_entry("plain")], n=5, cache_dir=linked_cache(tmp_path / "a"))
    assert main(["run", "--config", str(config), "--output-dir", str(run)]) == 0
    outputs = run / "models" / "plain" / "outputs.jsonl"
    outputs.write_text("".join(outputs.read_text().splitlines(keepends=True)[:2]))  # killed after two answers
    # a cache of its own for the second run, so only resumption can spare calls
    config = write_run_config(tmp_path, [local_model_entry("plain")], n=5, cache_dir=linked_cache(tmp_path / "b"))
    assert main(["run", "--config", str(config), "--output-dir", str(run)]) == 0
    summary = json.loads((run / "summary.json").read_text())["models"]["plain"]
    assert summary["resumed"] == 2 and summary["invocations"] == 3 and summary["records"] == 5


def test_a_rerun_whose_answers_are_all_cached_never_loads_the_model(tmp_path):
    import shutil

    from lib.providers import local_model

    first_cache = linked_cache(tmp_path)
    config = write_run_config(tmp_path, [local_model_entry("m")], n=3, cache_dir=first_cache)
    assert main(["run", "--config", str(config), "--output-dir", str(tmp_path / "first")]) == 0
    # the same answers in a cache of its own, so its model handle is a fresh one
    second_cache = str(tmp_path / "second-cache")
    shutil.copytree(first_cache, second_cache, symlinks=True)
    config = write_run_config(tmp_path, [local_model_entry("m")], n=3, cache_dir=second_cache)
    assert main(["run", "--config", str(config), "--output-dir", str(tmp_path / "second")]) == 0
    model = json.loads((tmp_path / "second" / "summary.json").read_text())["models"]["m"]
    assert (model["status"], model["cache_hits"], model["invocations"]) == ("succeeded", 3, 0)
    assert model["scores"]["factual_knowledge"]
    assert not local_model.lazy("smollm2-135m-instruct", second_cache).loaded
    assert local_model.lazy("smollm2-135m-instruct", first_cache).loaded


def test_a_model_that_does_not_load_fails_its_records_with_the_reason_and_is_cleaned_up(tmp_path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a GGUF file")
    config = write_run_config(tmp_path, [local_model_entry("good"), {**local_model_entry("bad"),
                                                                     "model_id": str(broken)}], n=3)
    assert main(["run", "--config", str(config), "--output-dir", str(tmp_path / "run")]) == 3
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    bad = summary["models"]["bad"]
    assert bad["status"] == "failed" and bad["errors"] == 3 and bad["invocations"] == 0  # nothing was asked
    assert "the model did not load" in bad["first_error"]
    assert summary["selection"]["best"] == "good"
    execution = json.loads((tmp_path / "run" / "execution.json").read_text())
    assert execution["steps"]["cleanup-bad"]["status"] == "succeeded"
    assert running.running() == []


def test_models_loaded_by_two_threads_at_once_both_get_their_weights():
    # a first evaluation loads its model while the fine-tune loads its own and adds its LoRA layers (the
    # first `make run` of a fresh clone): one load's empty-weights context must not put the others' on "meta"
    from lib.providers import local_model

    base = local_model.ensure_converted("smollm2-135m-instruct", Path("~/.cache/llm-eval-pipelines").expanduser())
    _, loaded = local_model.pretrained(base)
    start = threading.Barrier(3)

    def build(i):
        start.wait()
        if i == 0:  # as local_finetune.train adds its adapter
            with local_model.building():
                from peft import LoraConfig, get_peft_model

                return get_peft_model(loaded, LoraConfig(r=8, lora_alpha=16, task_type="CAUSAL_LM",
                                                         target_modules=["q_proj", "v_proj", "up_proj"]))
        return local_model.pretrained(base)[1]

    with ThreadPoolExecutor(3) as pool:
        models = list(pool.map(build, range(3)))
    assert [sorted({p.device.type for p in m.parameters()}) for m in models] == [["cpu"]] * 3
