"""Kept connections (`lib.engine.http_post`): reused per thread, opened again when the server closed them,
and the proxy a user set is honoured."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lib.engine import http_post
from lib.engine.invokers import PermanentError, TransientError, post_json


@contextmanager
def counting_server(keep_alive: bool = True, drop_after_reply: bool = False) -> Iterator[dict]:
    """A JSON server that counts the connections it accepted and the requests it answered. ``keep_alive``:
    HTTP/1.1, connections kept; ``drop_after_reply``: it closes each connection after one reply without
    saying so (what a server does to a connection that sat idle past its timeout)."""
    seen = {"connections": set(), "requests": 0, "paths": []}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"
        disable_nagle_algorithm = True

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                seen["connections"].add(self.client_address)
                seen["requests"] += 1
                seen["paths"].append(self.path)
            status = body.get("status", 200)
            data = json.dumps({"echo": body.get("n")}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            if drop_after_reply:
                self.close_connection = True  # closed, though the reply promised to keep it

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    seen["url"] = f"http://127.0.0.1:{server.server_port}/v1/x"
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()


def _ask(url: str, n: int, status: int = 200) -> object:
    return post_json(url, {"n": n, "status": status}, {}, timeout=10)


def test_one_thread_asks_over_one_kept_connection():
    with counting_server() as seen:
        answers = [_ask(seen["url"], i) for i in range(20)]
    assert answers == [{"echo": i} for i in range(20)]
    assert seen["requests"] == 20 and len(seen["connections"]) == 1


def test_each_asking_thread_keeps_its_own_connection():
    with counting_server() as seen, ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda i: _ask(seen["url"], i), range(40)))
    assert answers == [{"echo": i} for i in range(40)]
    assert seen["requests"] == 40 and 1 <= len(seen["connections"]) <= 4


def test_a_connection_the_server_closed_is_opened_again():
    with counting_server(drop_after_reply=True) as seen:
        answers = [_ask(seen["url"], i) for i in range(5)]
    assert answers == [{"echo": i} for i in range(5)]  # none failed
    assert seen["requests"] == 5 and len(seen["connections"]) == 5


def test_a_server_that_closes_every_connection_is_answered_too():
    with counting_server(keep_alive=False) as seen:
        answers = [_ask(seen["url"], i) for i in range(5)]
    assert answers == [{"echo": i} for i in range(5)]
    assert len(seen["connections"]) == 5


def test_an_error_reply_keeps_the_connection_and_says_what_came_back():
    with counting_server() as seen:
        with pytest.raises(TransientError, match=r"HTTP 503: \{\"echo\": 1\}"):
            _ask(seen["url"], 1, status=503)
        with pytest.raises(PermanentError, match="HTTP 404"):
            _ask(seen["url"], 2, status=404)
        assert _ask(seen["url"], 3) == {"echo": 3}
    assert seen["requests"] == 3 and len(seen["connections"]) == 1


def test_a_refused_connection_is_transient_and_named():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TransientError, match="ConnectionRefusedError"):
        _ask(f"http://127.0.0.1:{port}/v1/x", 1)


def test_the_proxy_the_user_set_is_used(monkeypatch):
    """A proxy in HTTP_PROXY gets the request in its absolute form; the host itself, which does not
    exist, is never looked up."""
    with counting_server() as proxy:
        proxy_root = proxy["url"].removesuffix("/v1/x")
        monkeypatch.setenv("http_proxy", proxy_root)
        monkeypatch.setenv("HTTP_PROXY", proxy_root)
        for name in ("no_proxy", "NO_PROXY"):
            monkeypatch.delenv(name, raising=False)
        http_post._target.cache_clear()
        try:
            assert _ask("http://models.invalid:8080/v1/chat", 7) == {"echo": 7}
        finally:
            http_post._target.cache_clear()
    assert proxy["paths"] == ["http://models.invalid:8080/v1/chat"]


def test_a_url_that_is_not_http_is_refused_before_anything_is_sent():
    with pytest.raises(PermanentError, match="not an http"):
        _ask("ftp://example.com/x", 1)
