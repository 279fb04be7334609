"""Real HTTP servers on 127.0.0.1 that misbehave the way model servers do."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from lib.providers.local_server import send_json


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """``handler`` served on a free port of 127.0.0.1 in a thread; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


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

    with serving(Handler) as url:
        yield f"{url}/v1"


def reply(text: str) -> dict:
    return {"choices": [{"message": {"content": text}}], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}


@contextmanager
def s3_server(answer: Callable[[int, str], int]) -> Iterator[tuple[str, list[dict]]]:
    """A stand-in for S3's PutObject: the n-th PUT (its path) gets ``answer``'s status, with S3's XML
    error body when it is not 200. Yields its endpoint URL and the PUTs it received (method, path,
    headers, body), in order."""
    received: list[dict] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # kept connections, as S3's

        def do_PUT(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                received.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status = answer(len(received), self.path)
            reply = b"" if status == 200 else (
                b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>%s</Code><Message>refused</Message></Error>"
                % (b"AccessDenied" if status == 403 else b"InternalError"))
            self.send_response(status)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as url:
        yield url, received
