"""Secrets: credentials are redacted in everything stored or printed; a key goes only to the host
configured for it, never over plain http off this machine; model and dataset text is escaped in every
HTML page, fmeval's cells included. HTTP through stdlib fake servers on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from conftest import write_dataset

from lib.engine.invoke import RetryPolicy, invoke_records
from lib.engine.invokers import PermanentError
from lib.errors import ConfigError
from lib.providers.openai import OpenAIInvoker, key_for
from lib.redact import redact

KEY = "opaque-Zx81Qm2Lw9vT"  # a key of no known shape: only "redact what we sent" can catch it
SK_KEY = "sk-proj-4kQ9zT1mB7xW2cV8nR5yL3pD"
NO_RETRY = RetryPolicy(max_retries=0)
INVOKE = {"prompt_template": "$model_input", "inference_parameters": {"max_new_tokens": 8}}
ANSWER = "<img src=x onerror=alert(1)>Paris"


class FakeServer:
    """OpenAI-style server on 127.0.0.1. Records each request's path and headers. Paths:
    /echo/... answers 500 with the request headers in the body (as a debugging proxy might), the
    bearer token once more on its own; /ok/... answers 200 with a chat completion;
    /redirect/... answers 302 to ``redirect_to``."""

    def __init__(self, redirect_to: str = "") -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.requests.append((self.path, dict(self.headers.items())))
                if self.path.startswith("/echo"):
                    token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                    body = json.dumps({"error": "upstream failed", "request_headers": dict(self.headers.items()),
                                       "hint": f"token {token} was rejected"}).encode()
                    status = 500
                elif self.path.startswith(("/html-200", "/shape-200")):  # a 200 that is not a chat completion
                    token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                    body = (f"<html>proxy: token {token} expired</html>".encode() if self.path.startswith("/html")
                            else json.dumps({"error": f"token {token} expired"}).encode())
                    status = 200
                elif self.path.startswith("/redirect"):
                    self.send_response(302)
                    self.send_header("Location", redirect_to + "/v1/chat/completions")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                else:
                    body = json.dumps({"choices": [{"message": {"content": ANSWER}}],
                                       "usage": {"prompt_tokens": 3, "completion_tokens": 2}}).encode()
                    status = 200
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.root = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server():
    s = FakeServer()
    yield s
    s.close()


# ---------------------------------------------------------------- redact()

@pytest.mark.parametrize("text,secret", [
    ('{"Authorization": "Bearer abc.DEF-123"}', "abc.DEF-123"),
    ("Authorization: Basic dXNlcjpwYXNzd29yZA==\nHost: x", "dXNlcjpwYXNzd29yZA"),
    ("proxy said: Bearer eyJhbGciOi.J9eyJzdWIi.OiIxMjM0", "eyJhbGciOi"),
    ("{'x-api-key': 'k3y-value-1'}", "k3y-value-1"),
    ("api-key: k3y-value-2; retry", "k3y-value-2"),
    ("https://h/v1?api_key=k3y-value-3&x=1", "k3y-value-3"),
    ('{"apiKey": "k3y-value-4"}', "k3y-value-4"),
    ("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI"),
    ('"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG"', "wJalrXUtnFEMI"),
    ("credentials AKIAIOSFODNN7EXAMPLE were refused", "AKIAIOSFODNN7EXAMPLE"),
    ("temporary ASIAY34FZKBOKMUTVV7A expired", "ASIAY34FZKBOKMUTVV7A"),
    (f"Incorrect API key provided: {SK_KEY}", SK_KEY),
    ("X-Amz-Security-Token: FQoGZXIvYXdzEJr//////////wEaDK", "FQoGZXIvYXdzEJr"),
    ("connect to https://admin:hunter2pass@db.example.com failed", "hunter2pass"),
    ('{"body": "{\\"Authorization\\": \\"Basic dXNlcjpwYXNz\\"}"}', "dXNlcjpwYXNz"),  # JSON inside JSON
])
def test_redact_masks_each_form_of_credential(text, secret):
    out = redact(text)
    assert secret not in out and "[REDACTED]" in out
    assert redact(out) == out  # idempotent


def test_redact_masks_a_value_we_sent_and_leaves_ordinary_text():
    assert KEY not in redact(f"the token {KEY} is unknown", KEY)
    plain = ("HTTP 404: model llama3 not found; max_new_tokens=20 prompt_tokens: 3 api_key_env: MY_KEY "
             "http://127.0.0.1:8000/v1 endpoint llm-eval-a")
    assert redact(plain) == plain


# ---------------------------------------------------------------- stored and printed text

def test_an_error_echoing_the_request_is_redacted_in_outputs_jsonl(server, tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_EVAL_TEST_KEY", KEY)
    invoker = OpenAIInvoker(server.root + "/echo/v1", "m", INVOKE, "LLM_EVAL_TEST_KEY", timeout=10)
    records = [{"id": "r0", "model_input": "Capital of France?", "target_output": "Paris"}]
    rows, stats = invoke_records(records, invoke=INVOKE, invoker=invoker, identity="t",
                                 outputs_uri=str(tmp_path / "outputs.jsonl"), cache=None, policy=NO_RETRY)
    assert server.requests[0][1]["Authorization"] == f"Bearer {KEY}"  # it was sent, and echoed back
    stored = (tmp_path / "outputs.jsonl").read_text()
    assert stats.errors == 1 and "HTTP 500" in rows[0]["error"] and "upstream failed" in stored
    assert KEY not in stored and "[REDACTED]" in stored


def test_an_sk_key_echoed_by_the_server_is_redacted(server, tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_EVAL_TEST_KEY", SK_KEY)
    invoker = OpenAIInvoker(server.root + "/echo/v1", "m", INVOKE, "LLM_EVAL_TEST_KEY", timeout=10)
    with pytest.raises(Exception) as err:
        invoker("Q?")
    assert SK_KEY not in str(err.value) and "HTTP 500" in str(err.value)


@pytest.mark.parametrize("path, says", [("/html-200/v1", "the answer is not JSON"),
                                        ("/shape-200/v1", "the answer has no choices[0].message.content")])
def test_a_200_of_the_wrong_shape_echoing_the_key_is_redacted(server, monkeypatch, path, says):
    # the message shows what came back, never the key in it
    monkeypatch.setenv("LLM_EVAL_TEST_KEY", KEY)
    with pytest.raises(PermanentError) as err:
        OpenAIInvoker(server.root + path, "m", INVOKE, "LLM_EVAL_TEST_KEY", timeout=10)("Q?")
    assert says in str(err.value) and "expired" in str(err.value)
    assert KEY not in str(err.value) and "[REDACTED]" in str(err.value)


def test_a_failed_step_and_progress_lines_are_redacted(capsys):
    from steps._common import guarded

    def deploy():
        raise RuntimeError(f"endpoint refused: Authorization: Bearer {SK_KEY} with AKIAIOSFODNN7EXAMPLE")

    result = guarded("deploy-m", deploy)
    printed = capsys.readouterr().err
    assert result["status"] == "failed" and "endpoint refused" in result["error"] and "FAILED" in printed
    for text in (result["error"], result["trace"], printed):
        assert SK_KEY not in text and "AKIAIOSFODNN7EXAMPLE" not in text

    from lib import progress

    progress.say("evaluate-m", "retrying with api_key=k3y-value-9")
    assert "k3y-value-9" not in capsys.readouterr().err


# ---------------------------------------------------------------- where a key goes

def test_the_ambient_openai_key_is_not_sent_to_another_host(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SK_KEY)
    answer = OpenAIInvoker(server.root + "/ok/v1", "m", INVOKE, None, timeout=10)("Q?")
    assert answer.text == ANSWER
    assert "Authorization" not in server.requests[0][1]


def test_the_ambient_openai_key_goes_to_openai_over_https_only(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SK_KEY)
    assert key_for("https://api.openai.com/v1/chat/completions", None)[0] == SK_KEY
    assert key_for("http://api.openai.com/v1/chat/completions", None)[0] is None
    assert key_for("https://api.openai.com.evil.example/v1/chat/completions", None)[0] is None


def test_a_configured_key_goes_to_its_own_host(server, monkeypatch):
    monkeypatch.setenv("LLM_EVAL_TEST_KEY", KEY)
    monkeypatch.setenv("OPENAI_API_KEY", SK_KEY)
    OpenAIInvoker(server.root + "/ok/v1", "m", INVOKE, "LLM_EVAL_TEST_KEY", timeout=10)("Q?")
    assert server.requests[0][1]["Authorization"] == f"Bearer {KEY}"  # loopback over http is allowed


@pytest.mark.parametrize("url", ["http://192.0.2.10:8000/v1", "http://models.example.com/v1"])
def test_no_key_over_plain_http_to_a_host_off_this_machine(monkeypatch, url):
    monkeypatch.setenv("LLM_EVAL_TEST_KEY", KEY)
    with pytest.raises(PermanentError, match="plain http") as err:  # refused before connecting
        OpenAIInvoker(url, "m", INVOKE, "LLM_EVAL_TEST_KEY", timeout=2)("Q?")
    assert KEY not in str(err.value)


def test_an_unset_key_variable_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("LLM_EVAL_UNSET_KEY", raising=False)
    with pytest.raises(PermanentError, match="LLM_EVAL_UNSET_KEY"):
        OpenAIInvoker("https://models.example.com/v1", "m", INVOKE, "LLM_EVAL_UNSET_KEY", timeout=2)("Q?")


def test_a_redirect_does_not_carry_the_key_to_another_host(monkeypatch):
    other = FakeServer()
    first = FakeServer(redirect_to=other.root)
    monkeypatch.setenv("LLM_EVAL_TEST_KEY", KEY)
    try:
        with pytest.raises(PermanentError, match="not followed"):
            OpenAIInvoker(first.root + "/redirect/v1", "m", INVOKE, "LLM_EVAL_TEST_KEY", timeout=10)("Q?")
    finally:
        first.close()
        other.close()
    assert first.requests and other.requests == []


def openai_config(tmp_path: Path, url: str, **extra) -> Path:
    write_dataset(tmp_path / "eval.jsonl", 2)
    config = {"pipeline": {"name": "p"},
              "dataset": {"dataset_name": "trivia", "input_data_location": "eval.jsonl",
                          "model_input_key": "question", "target_output_key": "answer"},
              "models": [{"name": "m", "provider": "openai", "model_id": "llama3", "endpoint_url": url, **extra,
                          "evaluation_config": {"prompt_template": "$model_input"}}],
              "algorithms": [{"algorithm": "FactualKnowledge", "target_output_delimiter": "<OR>"}]}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    return tmp_path / "config.yaml"


@pytest.mark.parametrize("url", ["http://models.example.com/v1", "http://10.0.0.5:8000/v1"])
def test_validate_refuses_a_key_over_plain_http(tmp_path, url):
    from lib.config import load_evaluation_config

    with pytest.raises(ConfigError) as err:
        load_evaluation_config(openai_config(tmp_path, url, api_key_env="LLM_EVAL_TEST_KEY"))
    assert "endpoint_url" in str(err.value) and "plain http" in str(err.value)


@pytest.mark.parametrize("url,extra", [
    ("https://models.example.com/v1", {"api_key_env": "LLM_EVAL_TEST_KEY"}),
    ("http://localhost:8000/v1", {"api_key_env": "LLM_EVAL_TEST_KEY"}),
    ("http://[::1]:8000/v1", {"api_key_env": "LLM_EVAL_TEST_KEY"}),
    ("http://models.example.com/v1", {}),  # no key configured: nothing to leak
])
def test_validate_accepts_https_loopback_or_no_key(tmp_path, url, extra):
    from lib.config import load_evaluation_config

    load_evaluation_config(openai_config(tmp_path, url, **extra))


# ---------------------------------------------------------------- HTML

XSS_DATASET = "<script>alert(1)</script>[x](javascript:alert(2))"


def test_fmeval_cell_escapes_the_dataset_name_and_prompt_template():
    from lib.reports import algorithm_html

    algorithm = {"name": "FactualKnowledge", "eval_name": "factual_knowledge"}
    result = {"scores": {"factual_knowledge": 0.5}, "notes": [],
              "per_record": [{"id": "r0", "factual_knowledge": 0.0}]}
    rows = [{"id": "r0", "prompt": "<b>Q</b>", "target_output": "<i>t</i>", "output": ANSWER}]
    page = algorithm_html("m", XSS_DATASET, algorithm, result, "<svg onload=alert(3)> $model_input", rows)
    assert "Custom Dataset" in page, "fmeval's own cell was rendered"
    assert "<script>" not in page and "<svg" not in page and "<img" not in page
    assert 'href="javascript:' not in page, "markdown in a dataset name does not make a link"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # shown, escaped once
    assert "&lt;svg onload=alert(3)&gt;" in page and "&amp;lt;" not in page


def test_a_run_stores_and_shows_no_key_and_escapes_model_text(tmp_path, capsys, monkeypatch):
    """A whole local run: one model whose server echoes our request in a 500, one whose answers and
    dataset name are HTML. No file of the run and no line on stderr holds the key."""
    from pipelines.build_pipeline import main

    server = FakeServer()
    monkeypatch.setenv("LLM_EVAL_TEST_KEY", KEY)
    write_dataset(tmp_path / "eval.jsonl", 3)
    config = {
        "pipeline": {"name": "secrets"},
        "dataset": {"dataset_name": XSS_DATASET, "input_data_location": "eval.jsonl",
                    "model_input_key": "question", "target_output_key": "answer"},
        "models": [
            {"name": "leaky", "provider": "openai", "model_id": "llama3", "endpoint_url": server.root + "/echo/v1",
             "api_key_env": "LLM_EVAL_TEST_KEY",
             "evaluation_config": {"prompt_template": "$model_input", "max_retries": 0}},
            {"name": "html", "provider": "openai", "model_id": "llama3", "endpoint_url": server.root + "/ok/v1",
             "evaluation_config": {"prompt_template": "$model_input"}}],
        "algorithms": [{"algorithm": "FactualKnowledge", "target_output_delimiter": "<OR>"}],
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (tmp_path / "pipeline_config.yaml").write_text(yaml.safe_dump(
        {"local": {"output_dir": str(tmp_path / "runs"), "model_cache_dir": str(tmp_path / "cache")}}))
    run = tmp_path / "run"
    try:
        main(["run", "--config", str(tmp_path / "config.yaml"), "--output-dir", str(run)])
    finally:
        server.close()
    stderr = capsys.readouterr().err
    assert any(h.get("Authorization") == f"Bearer {KEY}" for _, h in server.requests)  # the key was sent

    leaky = (run / "models" / "leaky" / "outputs.jsonl").read_text()
    assert "HTTP 500" in leaky and "[REDACTED]" in leaky
    files = [p for p in run.rglob("*") if p.is_file()]
    assert run / "summary.json" in files and run / "report.html" in files
    for path in files:
        assert KEY not in path.read_text(errors="replace"), f"the key is in {path}"
    assert KEY not in stderr

    pages = [p.read_text() for p in files if p.suffix == ".html"]
    assert (run / "models" / "html" / "factual_knowledge.html") in files
    for page in pages:
        assert "<script>" not in page and "<img" not in page and 'href="javascript:' not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in (run / "models" / "html" / "factual_knowledge.html").read_text()
