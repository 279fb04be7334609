"""Providers' request shapes and error classes; examples validate; Ctrl-C leaves nothing running."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import ROOT

from lib.config import load_config
from lib.engine.invokers import PermanentError, TransientError
from lib.providers import get_provider
from lib.providers.bedrock import BedrockInvoker
from lib.providers.openai import OpenAIInvoker


@pytest.mark.parametrize("name", ["jumpstart_multi_model.yaml", "bedrock.yaml"])
def test_examples_validate(name):
    cfg = load_config(ROOT / "examples" / name)
    assert cfg.models


def test_every_builtin_provider_loads():
    for name in ("local", "jumpstart", "huggingface", "endpoint", "bedrock", "openai"):
        assert get_provider(name).name == name


def test_bedrock_converse_request():
    invoker = BedrockInvoker("anthropic.claude-3-haiku", {"system_prompt": "Be brief.",
                                                         "inference_parameters": {"max_new_tokens": 64,
                                                                                  "temperature": 0}})
    request = invoker.request("What is 2+2?")
    assert request == {"modelId": "anthropic.claude-3-haiku",
                       "messages": [{"role": "user", "content": [{"text": "What is 2+2?"}]}],
                       "inferenceConfig": {"maxTokens": 64, "temperature": 0},
                       "system": [{"text": "Be brief."}]}


class FakeOpenAIServer:
    """A stand-in for an OpenAI-compatible server: answers, or fails with a given status."""

    def __init__(self, status: int = 200) -> None:
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):  # noqa: N802
                outer.requests.append({"path": self.path, "auth": self.headers.get("Authorization"),
                                       "body": json.loads(self.rfile.read(int(self.headers["Content-Length"])))})
                body = json.dumps({"choices": [{"message": {"content": " Paris "}}],
                                   "usage": {"prompt_tokens": 7, "completion_tokens": 1}}).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_openai_invoker(monkeypatch):
    server = FakeOpenAIServer()
    monkeypatch.setenv("MY_KEY", "sk-test")
    try:
        answer = OpenAIInvoker(server.url, "llama3", {"system_prompt": "Short.",
                                                      "inference_parameters": {"max_new_tokens": 8}}, "MY_KEY")("Q?")
    finally:
        server.close()
    assert answer.text == "Paris" and answer.prompt_tokens == 7 and answer.generated_tokens == 1
    sent = server.requests[0]
    assert sent["path"] == "/v1/chat/completions" and sent["auth"] == "Bearer sk-test"
    assert sent["body"] == {"model": "llama3", "max_tokens": 8, "messages": [
        {"role": "system", "content": "Short."}, {"role": "user", "content": "Q?"}]}


@pytest.mark.parametrize("status,error", [(429, TransientError), (503, TransientError), (400, PermanentError)])
def test_openai_errors_are_classified(status, error):
    server = FakeOpenAIServer(status)
    try:
        with pytest.raises(error):
            OpenAIInvoker(server.url, "m", {}, None)("Q?")
    finally:
        server.close()


def test_ctrl_c_stops_every_endpoint(tmp_path):
    from plugin_providers import InterruptedProvider
    from test_local_run import linked_cache, local_model_entry, port_open, write_run_config

    from lib.providers import running
    from pipelines.build_pipeline import main

    entry = {**local_model_entry("interrupted"), "provider": "plugin_providers.InterruptedProvider"}
    entry["evaluation_config"]["max_concurrency"] = 1
    # a cache of its own, so earlier runs' answers cannot spare the model call that is interrupted
    config = write_run_config(tmp_path, [entry], n=4, cache_dir=linked_cache(tmp_path))
    InterruptedProvider.deployed.clear()
    assert main(["run", "--config", str(config), "--output-dir", str(tmp_path / "run")]) == 130
    assert running.running() == []
    assert InterruptedProvider.deployed and not port_open(InterruptedProvider.deployed[0])


def test_gguf_file_is_parsed_once_while_converting():
    # transformers parses the GGUF file four times to convert it; memoised, the same parse serves all
    # four (34 s -> 11 s), and outside the block gguf is itself again.
    import gguf

    from lib.providers import local_model

    path = str(local_model.source_path("smollm2-135m-instruct"))
    original = gguf.GGUFReader
    with local_model._gguf_read_once():
        first = gguf.GGUFReader(path)
        assert gguf.GGUFReader(path) is first
        assert "general.architecture" in first.fields
        assert gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, 2) is gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, 2)
    assert gguf.GGUFReader is original and isinstance(first, original)


def test_an_empty_system_prompt_reaches_the_server_and_none_stays_away():
    from lib.engine.invokers import build_body

    invoke = {"content_template": "PROMPT_PLACEHOLDER"}
    assert build_body({**invoke, "system_prompt": ""}, "q")["parameters"] == {"system_prompt": ""}
    assert "parameters" not in build_body(invoke, "q")


def test_model_work_shares_the_cores_among_the_work_in_progress():
    import os
    import threading

    import torch

    from lib.providers.local_model import cores_shared

    cores, before = os.cpu_count() or 1, torch.get_num_threads()
    inside, release = threading.Event(), threading.Event()

    def other_work():
        with cores_shared():
            inside.set()
            release.wait(10)

    try:
        with cores_shared():
            assert torch.get_num_threads() == cores  # alone: every core
        worker = threading.Thread(target=other_work)
        worker.start()
        inside.wait(10)
        with cores_shared():
            assert torch.get_num_threads() == max(1, cores // 2)  # beside another: half
        release.set()
        worker.join()
        with cores_shared():
            assert torch.get_num_threads() == cores  # alone again: every core again
    finally:
        release.set()
        torch.set_num_threads(before)


def test_an_invoker_sent_to_another_process_leaves_its_model_loader_behind():
    # fmeval's Ray workers get a pickled copy; the loader (a lock inside) stays with this process
    import pickle
    import threading

    from lib.engine.invokers import HttpInvoker

    lock = threading.Lock()
    invoker = HttpInvoker("http://127.0.0.1:1", {"content_template": "PROMPT_PLACEHOLDER"},
                          ready=lambda progress=None, lock=lock: lock)
    copy = pickle.loads(pickle.dumps(invoker))
    assert copy.ready is None and copy.url == invoker.url and invoker.ready is not None


def test_a_local_model_that_failed_to_load_is_tried_again_by_the_next_deploy(tmp_path):
    # a notebook: a run whose model did not load, then another run once the file is there; the servers of
    # the first run keep their failed handle (each record fails at once, saying why)
    from lib.providers import local_model

    missing = str(tmp_path / "model.gguf")
    said: list[str] = []
    first = local_model.lazy(missing, tmp_path / "cache", progress=said.append)
    with pytest.raises(local_model.LocalModelError, match="does not exist"):
        first.get()
    with pytest.raises(local_model.LocalModelError, match="does not exist"):
        first.get()  # the same handle: the remembered failure, at once
    assert said == [f"loading {missing}"] and first.failed
    second = local_model.lazy(missing, tmp_path / "cache", progress=said.append)
    assert second is not first and not second.failed
    with pytest.raises(local_model.LocalModelError):
        second.get()
    assert said == [f"loading {missing}"] * 2  # it tried again
    assert local_model.lazy(missing, tmp_path / "cache") is not second


def test_an_answer_of_the_wrong_shape_says_what_came_back():
    import http.server

    from fake_servers import chat_server

    with chat_server(lambda n, h, b: (200, {"choices": []})) as url:
        with pytest.raises(PermanentError) as caught:
            OpenAIInvoker(url, "m", {}, None)("Q?")
    assert str(caught.value) == 'the answer has no choices[0].message.content: {"choices": []}'

    class NotJson(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"<html>502 Bad Gateway</html>")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotJson)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(PermanentError) as caught:
            OpenAIInvoker(f"http://127.0.0.1:{server.server_port}/v1", "m", {}, None)("Q?")
    finally:
        server.shutdown()
        server.server_close()
    assert str(caught.value) == ("the answer is not JSON (Expecting value: line 1 column 1 (char 0)); it began: "
                                 "'<html>502 Bad Gateway</html>'")
