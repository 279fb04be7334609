"""PromptStereotyping: log-probabilities asked of a container as Hugging Face TGI returns them
(`details.prefill`), scored by fmeval; providers that cannot return them are refused at validate."""

from __future__ import annotations

import html
import json
import math
import os

import pytest
import yaml
from conftest import ROOT
from fake_servers import chat_server

from lib.decide.status import EXIT_NOTHING_SELECTED
from lib.engine.invokers import HttpInvoker, PermanentError, with_log_probabilities
from lib.providers.base import Provider
from pipelines.build_pipeline import main

PAIRS = [json.loads(line) for line in (ROOT / "data" / "stereotype_pairs.jsonl").read_text().splitlines()]


class UrlContainerProvider(Provider):
    """A plug-in for a container that already runs at a URL and speaks the SageMaker contract, such as
    Hugging Face TGI's image run by hand: nothing to deploy; it returns TGI's details."""

    name = "url-container"
    deploys = False
    log_probabilities = "details"
    config_schema = {"endpoint_url": {"type": "string", "minLength": 1}}
    required_keys = {"endpoint_url": "where the container listens"}

    def invoker(self, model, deployment):
        return HttpInvoker(model["endpoint_url"], model["invoke"])


def tgi_payload(text: str, logprobs: list[float | None], as_list: bool = True):
    """What TGI answers with details and decoder_input_details: the prompt's tokens, each with its logprob."""
    tokens = [{"id": i, "text": w, "logprob": lp} for i, (w, lp) in enumerate(zip(text.split(), logprobs,
                                                                                strict=False))]
    answer = {"generated_text": " x", "details": {"finish_reason": "length", "generated_tokens": 1,
                                                  "prefill": tokens, "tokens": [{"id": 9, "text": " x"}]}}
    return [answer] if as_list else answer


def fake_log_probability(sentence: str) -> list[float | None]:
    """Per token: none for the first, then -1 each; the pairs' 'less' sentences get -2 each, except the
    first pair's, so the model prefers the more stereotypical sentence in all pairs but that one."""
    less = {p["sent_less"] for p in PAIRS[1:]}
    return [None] + [-2.0 if sentence in less else -1.0] * (len(sentence.split()) - 1)


def test_invoker_asks_for_and_reads_tgi_prefill_log_probabilities():
    seen = []

    def answer(n, headers, body):
        seen.append(body)
        if body["inputs"] == "no details here":
            return 200, [{"generated_text": "hello"}]
        return 200, tgi_payload(body["inputs"], [None, -0.5, -1.25, -2.0], as_list=n % 2 == 1)

    with chat_server(answer) as url:
        plain = HttpInvoker(url, {"content_template": "PROMPT_PLACEHOLDER", "output": "[0].generated_text",
                                  "inference_parameters": {"max_new_tokens": 32, "temperature": 0.0}})
        asker = with_log_probabilities(plain)
        first = asker("The chef tasted soup")
        second = asker("The chef tasted soup")  # TGI's /generate shape: one object, not a list
        assert plain("x").log_probability is None and not plain.log_probabilities  # the original is unchanged
        with pytest.raises(PermanentError, match="no log-probabilities .*details.prefill"):
            asker("no details here")
    assert first.log_probability == second.log_probability == pytest.approx(-3.75)
    assert first.prompt_tokens == 4
    assert seen[0]["parameters"] == {"max_new_tokens": 1, "temperature": 0.0, "details": True,
                                     "decoder_input_details": True}
    assert "details" not in seen[2]["parameters"]  # the plain invoker asks for an answer only


def test_an_invoker_without_log_probabilities_is_said_so():
    from lib.providers.bedrock import BedrockInvoker

    assert with_log_probabilities(lambda prompt: None) is None
    assert not hasattr(BedrockInvoker, "log_probabilities")


def run_config(tmp_path, provider: str, url: str = "http://127.0.0.1:9") -> dict:
    (tmp_path / "pairs.jsonl").write_text((ROOT / "data" / "stereotype_pairs.jsonl").read_text())
    model = {"name": "cand", "provider": provider, "model_id": "m",
             "evaluation_config": {"output": "[0].generated_text", "content_template": "PROMPT_PLACEHOLDER",
                                   "prompt_template": "$model_input", "max_concurrency": 4}}
    if provider != "bedrock":
        model["endpoint_url"] = url
    return {"pipeline": {"name": "stereo"},
            "dataset": {"dataset_name": "pairs", "input_data_location": "pairs.jsonl",
                        "model_input_key": "sent_more", "target_output_key": "sent_less"},
            "models": [model], "algorithms": [{"algorithm": "PromptStereotyping"}]}


def test_prompt_stereotyping_end_to_end_against_a_fake_tgi_container(tmp_path):
    def answer(n, headers, body):
        if body.get("parameters", {}).get("decoder_input_details"):
            return 200, tgi_payload(body["inputs"], fake_log_probability(body["inputs"]))
        return 200, [{"generated_text": "ok"}]  # the evaluate step's own call per record

    with chat_server(answer) as url:
        config = run_config(tmp_path, "test_prompt_stereotyping:UrlContainerProvider", url)
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        (tmp_path / "pipeline_config.yaml").write_text(yaml.safe_dump(
            {"local": {"output_dir": str(tmp_path / "runs"), "model_cache_dir": str(tmp_path / "cache")}}))
        assert main(["run", "--config", str(tmp_path / "config.yaml"), "--output-dir", str(tmp_path / "run")]) == 0
    model = json.loads((tmp_path / "run" / "summary.json").read_text())["models"]["cand"]
    scores = model["scores"]["prompt_stereotyping"]
    assert scores["prompt_stereotyping"] == pytest.approx(7 / 8)  # all but the first pair
    rows = [json.loads(x) for x in (tmp_path / "run" / "models" / "cand" / "prompt_stereotyping.jsonl")
            .read_text().splitlines()]
    first, second = rows[0], rows[1]
    n_more, n_less = len(PAIRS[0]["sent_more"].split()), len(PAIRS[0]["sent_less"].split())
    assert first["sent_more_log_probability"] == -(n_more - 1) and first["sent_less_log_probability"] == -(n_less - 1)
    assert first["prompt_stereotyping"] == float(n_more < n_less)  # -1 per token: the shorter sentence wins
    assert second["sent_less_log_probability"] == -2.0 * (len(PAIRS[1]["sent_less"].split()) - 1)
    assert second["log_probability_difference"] == pytest.approx(
        second["sent_more_log_probability"] - second["sent_less_log_probability"])
    assert scores["log_probability_difference"] == pytest.approx(
        sum(r["log_probability_difference"] for r in rows) / len(rows), abs=1e-5)
    assert "provider 'test_prompt_stereotyping:UrlContainerProvider'" in model["notes"]["prompt_stereotyping"][0]
    # its page shows the lowest pairs as the run asked them: the sentence, the other one, the answer
    page = (tmp_path / "run" / "models" / "cand" / "prompt_stereotyping.html").read_text()
    assert page.count("<td>ok</td>") == min(10, len(rows))
    assert f"<td>{html.escape(PAIRS[0]['sent_more'])}</td><td>{html.escape(PAIRS[0]['sent_less'])}</td>" in page


def test_a_container_that_returns_no_log_probabilities_is_reported_not_hidden(tmp_path):
    with chat_server(lambda n, h, b: (200, [{"generated_text": "ok"}])) as url:
        config = run_config(tmp_path, "test_prompt_stereotyping:UrlContainerProvider", url)
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        (tmp_path / "pipeline_config.yaml").write_text(yaml.safe_dump(
            {"local": {"output_dir": str(tmp_path / "runs"), "model_cache_dir": str(tmp_path / "cache")}}))
        code = main(["run", "--config", str(tmp_path / "config.yaml"), "--output-dir", str(tmp_path / "run")])
    assert code == EXIT_NOTHING_SELECTED  # its one algorithm scored nothing: the model failed, none selected
    model = json.loads((tmp_path / "run" / "summary.json").read_text())["models"]["cand"]
    assert "prompt_stereotyping" not in model["scores"]
    assert "PromptStereotyping scored no sentence pair" in model["algorithm_errors"]["prompt_stereotyping"]
    assert "no log-probabilities" in model["algorithm_errors"]["prompt_stereotyping"]


@pytest.mark.parametrize("provider", ["openai", "bedrock"])
def test_validate_refuses_a_provider_without_log_probabilities(tmp_path, capsys, provider):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(run_config(tmp_path, provider), sort_keys=False))
    assert main(["validate", "--config", str(tmp_path / "config.yaml")]) == 2
    err = capsys.readouterr().err
    assert "algorithms[0].algorithm: PromptStereotyping needs the log-probability of each sentence, which " \
           f"model 'cand' (provider '{provider}') cannot return" in err
    assert "providers that can: local; jumpstart, huggingface and endpoint" in err
    assert "Traceback" not in err


def test_providers_declare_the_capability():
    from lib.providers import provider_class

    can = {name: provider_class(name).log_probabilities
           for name in ("local", "jumpstart", "huggingface", "endpoint", "bedrock", "openai")}
    assert can == {"local": True, "jumpstart": "details", "huggingface": "details", "endpoint": "details",
                   "bedrock": False, "openai": False}


@pytest.mark.slow
def test_prompt_stereotyping_with_the_real_local_model(tmp_path):
    """The shipped example as a user runs it: the local server scores each sentence in one forward pass; the
    sum it returns is the model's own loss on that sentence."""
    import torch

    from lib.providers import local_model

    out = tmp_path / "run"
    assert main(["run", "--config", str(ROOT / "examples" / "prompt_stereotyping.yaml"), "--output-dir",
                 str(out)]) == 0
    model = json.loads((out / "summary.json").read_text())["models"]["smollm2-plain"]
    scores = model["scores"]["prompt_stereotyping"]
    assert 0.0 <= scores["prompt_stereotyping"] <= 1.0
    rows = [json.loads(x) for x in (out / "models" / "smollm2-plain" / "prompt_stereotyping.jsonl")
            .read_text().splitlines()]
    assert len(rows) == len(PAIRS) and all(r["sent_more_log_probability"] < 0 for r in rows)
    lm = local_model.load("smollm2-135m-instruct", os.path.expanduser("~/.cache/llm-eval-pipelines"))
    sentence = PAIRS[0]["sent_more"]
    ids = torch.tensor([[lm.tokenizer.bos_token_id] + lm.tokenizer(sentence, add_special_tokens=False)["input_ids"]])
    with torch.inference_mode():
        loss = lm.model(input_ids=ids, labels=ids).loss.item()
    assert math.isclose(rows[0]["sent_more_log_probability"], -loss * (ids.shape[1] - 1), abs_tol=1e-3)
