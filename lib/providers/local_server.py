"""Serve a local model behind the SageMaker inference-container contract on 127.0.0.1.

`GET /ping` -> 200; `POST /invocations` with `{"inputs": str | chat, "parameters": {...}}` ->
`[{"generated_text": ..., "details": {...}}]`. Concurrent requests are gathered into one batched
`generate` call (`make bench` measures the server against raw batched `generate` on the same questions). With
`"decoder_input_details": true` the inputs are scored instead of continued: `details.prefill` lists their
tokens with log-probabilities, as Hugging Face TGI returns them (nothing is generated).
"""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from concurrent.futures import Future
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from lib.providers.local_model import LocalLM, chat_messages

_GEN_KEYS = ("max_new_tokens", "temperature", "top_p", "do_sample")


class Batcher:
    """Runs queued requests with equal parameters as one batched ``generate``.

    It gathers while the model is busy: everything queued when a batch starts goes into it (up to
    ``max_batch``). After a batch, the clients it answered send their next requests within a few
    milliseconds each; it waits up to ``wait_s`` for that many to arrive, and otherwise keeps gathering
    while requests keep coming (a gap of ``quiet_s`` ends it), so 32 questions from 16 clients run as
    16 + 16, not as uneven splits of a short fixed window.
    """

    def __init__(self, lm: LocalLM, max_batch: int = 16, wait_s: float = 0.25, quiet_s: float = 0.05) -> None:
        self.lm, self.max_batch, self.wait_s, self.quiet_s = lm, max_batch, wait_s, quiet_s
        self._queue: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._expect = 1  # how many requests the next batch should wait for: the last batch's size
        self.batches: list[int] = []  # batch sizes, for tests and benchmarks
        self.users = 0  # endpoints sharing this batcher (models that share one loaded model)
        self._thread = threading.Thread(target=self._loop, name="local-batcher", daemon=True)
        self._thread.start()

    def submit(self, text: str, params: dict[str, Any]) -> Future:
        future: Future = Future()
        self._queue.put((text, params, future))
        return future

    def _gather(self, first: tuple) -> list[tuple]:
        items = [first]
        deadline = time.monotonic() + self.wait_s
        while len(items) < self.max_batch:
            try:
                items.append(self._queue.get_nowait())  # already waiting: never wait for these
                continue
            except queue.Empty:
                pass
            left = deadline - time.monotonic()
            if left <= 0:
                break
            # short of what the last batch had: wait for the rest; else only while they keep coming
            timeout = left if len(items) < self._expect else min(left, self.quiet_s)
            try:
                items.append(self._queue.get(timeout=timeout))
            except queue.Empty:
                break
        return items

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._queue.get(timeout=0.2)
            except queue.Empty:
                self._expect = 1  # idle: the next request starts a fresh round
                continue
            items = self._gather(first)
            self._expect = min(len(items), self.max_batch)
            groups: dict[str, list] = {}
            for item in items:
                groups.setdefault(json.dumps(item[1], sort_keys=True), []).append(item)
            for group in groups.values():
                self.batches.append(len(group))
                params = dict(group[0][1])
                # a request for the prompt's log-probabilities is scored, not continued
                run = self.lm.prefill if params.pop("decoder_input_details", False) else self.lm.generate
                try:
                    results = run([g[0] for g in group], **params)
                except Exception as exc:  # answer every waiting request, never leave one hanging
                    for _, _, fut in group:
                        fut.set_exception(exc)
                    continue
                for (_, _, fut), result in zip(group, results, strict=False):
                    fut.set_result(result)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


_SHARED: dict[int, Batcher] = {}  # id(LocalLM) -> its batcher: one per loaded model per process
_SHARED_LOCK = threading.Lock()


def shared_batcher(lm: LocalLM, max_batch: int = 16) -> Batcher:
    """The batcher of ``lm``: endpoints of models that share one loaded model batch together."""
    with _SHARED_LOCK:
        batcher = _SHARED.get(id(lm))
        if batcher is None or batcher._stop.is_set():
            batcher = _SHARED[id(lm)] = Batcher(lm, max_batch=max_batch)
        batcher.users += 1
        return batcher


def release_batcher(batcher: Batcher) -> None:
    with _SHARED_LOCK:
        batcher.users -= 1
        if batcher.users > 0:
            return
        if _SHARED.get(id(batcher.lm)) is batcher:
            del _SHARED[id(batcher.lm)]
    batcher.close()


def _to_text(lm: LocalLM, inputs: Any, system_prompt: str | None = None) -> str:
    """A prompt string becomes one user turn; a chat structure is used as it is (`chat_messages`)."""
    if isinstance(inputs, list) and inputs and isinstance(inputs[0], list):
        inputs = inputs[0]  # the [[{role, content}]] shape of chat endpoints
    if not (isinstance(inputs, str) or (isinstance(inputs, list)
                                        and all(isinstance(m, dict) and "content" in m for m in inputs))):
        raise ValueError("'inputs' must be a string or a list of {role, content} messages")
    return lm.chat_text(chat_messages(inputs, system_prompt))


def send_json(handler: BaseHTTPRequestHandler, status: int, payload: Any) -> None:
    """Reply to the request ``handler`` is serving with ``payload`` as JSON."""
    data = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


class ClosingHTTPServer(ThreadingHTTPServer):
    """A threaded HTTP server whose ``server_close`` also ends the connections its clients keep open: a
    client's next request on one then fails at once (refused), where it would wait out its timeout for
    a server that no longer answers."""

    # socketserver's listen backlog is 5: of 16 clients connecting at once, the kernel drops some
    # connection attempts and their clients retry a second later, too late for the batch they were meant for
    request_queue_size = 128
    daemon_threads = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def server_close(self) -> None:
        super().server_close()
        with self._open_lock:
            kept = list(self._open)
        for sock in kept:  # its handler, waiting for the next request, reads the end and closes it
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class LocalEndpoint:
    """A running server: ``url`` to call, ``close()`` to stop it."""

    def __init__(self, lm: LocalLM, name: str, max_batch: int = 16) -> None:
        self.lm, self.name = lm, name
        self.batcher = shared_batcher(lm, max_batch=max_batch)
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # connections are kept: its headers and body go out in two writes,
            disable_nagle_algorithm = True  # which Nagle's algorithm would hold apart for up to 40 ms

            def log_message(self, *args: Any) -> None:  # quiet: progress is shown by the evaluate step
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path == "/ping":
                    send_json(self, 200, {"status": "ok", "model": endpoint.name})
                else:
                    send_json(self, 404, {"error": "not found"})

            def do_POST(self) -> None:  # noqa: N802
                if self.path != "/invocations":
                    send_json(self, 404, {"error": "not found"})
                    return
                try:
                    body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                    params = body.get("parameters") or {}
                    gen = {k: params[k] for k in _GEN_KEYS if k in params}
                    if params.get("decoder_input_details"):
                        # TGI's contract: the log-probabilities of the inputs' tokens; a string is scored as it
                        # is (no chat template), a chat as the template writes it
                        inputs = body.get("inputs")
                        text = inputs if isinstance(inputs, str) else _to_text(endpoint.lm, inputs)
                        gen = {"decoder_input_details": True}
                    else:
                        text = _to_text(endpoint.lm, body.get("inputs"), params.get("system_prompt"))
                except (ValueError, TypeError, AttributeError) as exc:
                    send_json(self, 400, {"error": f"bad request: {exc}"})
                    return
                try:
                    result = endpoint.batcher.submit(text, gen).result(timeout=600)
                except Exception as exc:  # the model failed: a 500, as a real container would answer
                    send_json(self, 500, {"error": f"{type(exc).__name__}: {exc}"})
                    return
                details = {"prompt_tokens": result["prompt_tokens"], "generated_tokens": result["generated_tokens"]}
                if "prefill" in result:
                    details["prefill"] = result["prefill"]
                send_json(self, 200, [{"generated_text": result["generated_text"], "details": details}])

        self.server = ClosingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, name=f"endpoint-{name}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        release_batcher(self.batcher)
