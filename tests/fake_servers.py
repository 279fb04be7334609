"""Real HTTP servers on 127.0.0.1 that misbehave the way model servers do."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from lib.providers.local_server import send_json


@contextmanager
def chat_server(answer: Callable[[int, dict, dict], tuple[int, dict]]) -> Iterator[str]:
    """An OpenAI-compatible server whose reply to the n-th request (headers, body) is ``answer``'s
    (status, JSON). Yields its base URL (…/v1)."""
    count = [0]
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            with lock:
                count[0] += 1
                n = count[0]
            send_json(self, *answer(n, dict(self.headers), body))

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1"
    finally:
        server.shutdown()
        server.server_close()


def reply(text: str) -> dict:
    return {"choices": [{"message": {"content": text}}], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}
