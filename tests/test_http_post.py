"""Kept connections (`lib.engine.http_post`): reused per thread, dropped when the server closed them (or
sent what nobody asked for), a request never sent twice once it went out, https checked as before, and
the proxy a user set honoured."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lib.engine import http_post
from lib.engine.invokers import PermanentError, TransientError, post_json
from lib.providers.local_server import ClosingHTTPServer, send_json


@contextmanager
def counting_server(keep_alive: bool = True, idle_s: float | None = None, tls: tuple[Path, Path] | None = None,
                    server_class: type[ThreadingHTTPServer] = ThreadingHTTPServer) -> Iterator[dict]:
    """A JSON server counting the connections it accepted and the requests it answered (each answer
    echoes the request's ``n``). ``keep_alive``: HTTP/1.1, connections kept; ``idle_s``: a kept
    connection idle that long is closed (as uvicorn closes one after 5 s); ``tls``: (cert, key)."""
    seen: dict = {"connections": set(), "requests": 0, "paths": [], "closed": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"
        disable_nagle_algorithm = True
        timeout = idle_s

        def handle(self) -> None:
            try:
                super().handle()
            except TimeoutError:  # idle too long: the connection is closed
                pass

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                seen["connections"].add(self.client_address)
                seen["requests"] += 1
                seen["paths"].append(self.path)
            send_json(self, body.get("status", 200), {"echo": body.get("n")})

        def log_message(self, *args: object) -> None:
            pass

    class Server(server_class):  # type: ignore[valid-type, misc]
        def shutdown_request(self, request: socket.socket) -> None:
            super().shutdown_request(request)
            with lock:  # counted once the socket is closed: a client looking at it now sees the end
                seen["closed"] += 1

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    seen["url"] = f"{'https' if tls else 'http'}://localhost:{server.server_port}/v1/x"
    seen["server"] = server
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def raw_server(serve: Callable[[socket.socket, int], bool]) -> Iterator[dict]:
    """A server speaking raw bytes: ``serve(connection, n)`` gets the n-th request (counted over all
    connections, from 1) once its body is read, replies as it likes, and says whether to keep reading
    that connection."""
    seen = {"requests": 0}
    listener = socket.create_server(("127.0.0.1", 0))

    def read_request(conn: socket.socket) -> bool:
        data = b""
        while b"\r\n\r\n" not in data:
            try:
                chunk = conn.recv(65536)
            except ConnectionResetError:  # the client dropped it (with bytes it did not read)
                return False
            if not chunk:
                return False
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        while len(rest) < length:
            rest += conn.recv(65536)
        return True

    def connection(conn: socket.socket) -> None:
        with conn:
            while read_request(conn):
                seen["requests"] += 1
                if not serve(conn, seen["requests"]):
                    return

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=connection, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    seen["url"] = f"http://127.0.0.1:{listener.getsockname()[1]}/v1/x"
    try:
        yield seen
    finally:
        listener.close()


def closed(seen: dict, count: int) -> None:
    """Wait until the server has closed ``count`` connections (an idle one is closed by its own thread)."""
    deadline = time.monotonic() + 10
    while seen["closed"] < count:
        assert time.monotonic() < deadline, f"the server closed {seen['closed']} connections, not {count}"
        time.sleep(0.01)


def reply_bytes(payload: dict) -> bytes:
    body = json.dumps(payload).encode()
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


def _ask(url: str, n: int, status: int = 200, timeout: float = 10) -> object:
    return post_json(url, {"n": n, "status": status}, {}, timeout=timeout)


def test_one_thread_asks_over_one_kept_connection():
    with counting_server() as seen:
        answers = [_ask(seen["url"], i) for i in range(20)]
    assert answers == [{"echo": i} for i in range(20)]
    assert seen["requests"] == 20 and len(seen["connections"]) == 1


def test_each_asking_thread_keeps_a_connection_of_its_own():
    threads: set[int] = set()

    def ask(url: str, i: int) -> object:
        threads.add(threading.get_ident())
        return _ask(url, i)

    with counting_server() as seen, ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda i: ask(seen["url"], i), range(40)))
    assert answers == [{"echo": i} for i in range(40)]
    assert seen["requests"] == 40 and len(seen["connections"]) == len(threads)


def test_a_connection_the_server_closed_while_idle_is_not_used_again():
    # (the idle time also bounds the wait for a request's body: long enough for a loaded machine)
    with counting_server(idle_s=0.5) as seen:
        answers = []
        for i in range(3):
            answers.append(_ask(seen["url"], i))
            closed(seen, i + 1)  # by the server, idle
    assert answers == [{"echo": i} for i in range(3)]  # none failed
    assert seen["requests"] == 3 and len(seen["connections"]) == 3


def test_a_server_that_closes_every_connection_is_answered_too():
    with counting_server(keep_alive=False) as seen:
        answers = [_ask(seen["url"], i) for i in range(5)]
    assert answers == [{"echo": i} for i in range(5)]
    assert len(seen["connections"]) == 5


def test_a_request_that_went_out_is_not_sent_again_when_its_reply_never_comes():
    """The server took the second request and closed without replying (it may have begun generating):
    the caller gets the failure, to retry with its own backoff; nothing is resent behind its back."""
    def serve(conn: socket.socket, n: int) -> bool:
        if n == 1:
            conn.sendall(reply_bytes({"echo": 1}))
            return True
        return False  # closed, no reply

    with raw_server(serve) as seen:
        assert _ask(seen["url"], 1) == {"echo": 1}
        with pytest.raises(TransientError, match="RemoteDisconnected"):
            _ask(seen["url"], 2)
    assert seen["requests"] == 2


def test_bytes_a_server_sent_unasked_are_not_taken_for_the_next_answer():
    again = threading.Event()

    def serve(conn: socket.socket, n: int) -> bool:
        conn.sendall(reply_bytes({"echo": n}))
        if n == 1:  # the first answered twice, once the client has read the first
            time.sleep(0.1)
            conn.sendall(reply_bytes({"echo": n}))
            again.set()
        return True

    with raw_server(serve) as seen:
        answers = [_ask(seen["url"], 1)]
        assert again.wait(10)
        answers += [_ask(seen["url"], i) for i in (2, 3)]
    assert answers == [{"echo": 1}, {"echo": 2}, {"echo": 3}]


def test_a_reply_that_is_not_http_is_permanent():
    def serve(conn: socket.socket, n: int) -> bool:
        conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
        return False

    with raw_server(serve) as seen, pytest.raises(PermanentError, match="not HTTP"):
        _ask(seen["url"], 1)


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


def test_a_kept_connection_to_a_closed_local_server_is_refused():
    """`ClosingHTTPServer` (the local endpoints') ends its kept connections when closed: the next request
    is refused, where it would wait out its timeout (60 s here) on a connection nobody serves."""
    with counting_server(server_class=ClosingHTTPServer) as seen:
        assert _ask(seen["url"], 1, timeout=60) == {"echo": 1}
        seen["server"].shutdown()
        seen["server"].server_close()
        with pytest.raises(TransientError, match="ConnectionRefusedError"):
            _ask(seen["url"], 2, timeout=60)


def test_the_proxy_the_user_set_is_used_even_after_a_direct_ask(monkeypatch):
    """A proxy in HTTP_PROXY gets the request in its absolute form; the host itself, which does not
    exist, is never looked up. Set after the same URL was asked directly, it is still seen."""
    url = "http://models.invalid:8080/v1/chat"
    for name in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(TransientError, match="gaierror"):  # directly: the name is not found
        _ask(url, 6)
    with counting_server() as proxy:
        monkeypatch.setenv("http_proxy", proxy["url"].removesuffix("/v1/x"))
        assert _ask(url, 7) == {"echo": 7}
        monkeypatch.setenv("no_proxy", "models.invalid")
        with pytest.raises(TransientError, match="gaierror"):
            _ask(url, 8)
    assert proxy["paths"] == [url]


def test_a_url_that_is_not_http_is_refused_before_anything_is_sent():
    with pytest.raises(PermanentError, match="not an http"):
        _ask("ftp://example.com/x", 1)
    with pytest.raises(PermanentError, match="not a valid URL"):
        _ask("http://127.0.0.1:1/a path", 1)


def test_an_ipv6_address_without_a_port_keeps_its_default_port():
    assert (http_post._target("http://[::1]/v1", ()).host, http_post._target("http://[::1]/v1", ()).port) == ("::1", 80)
    assert http_post._target("https://[::1]/v1", ()).port == 443


def test_this_machines_own_servers_are_never_asked_through_a_proxy(monkeypatch):
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # nothing listens there
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with counting_server() as seen:
        assert _ask(seen["url"], 1) == {"echo": 1}  # localhost, directly
    assert seen["requests"] == 1


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost, made by openssl."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
                   check=True, capture_output=True)
    return cert, key


def test_https_refuses_a_certificate_nobody_trusts(certificate, monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with counting_server(tls=certificate) as seen, pytest.raises(TransientError, match="CERTIFICATE_VERIFY_FAILED"):
        _ask(seen["url"], 1)
    assert seen["requests"] == 0


def test_https_keeps_its_connection_and_opens_another_once_the_server_closed_it(certificate, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))  # trusted here
    with counting_server(idle_s=1.0, tls=certificate) as seen:
        answers = [_ask(seen["url"], 1), _ask(seen["url"], 2)]  # one connection
        closed(seen, 1)  # by the server, idle
        answers.append(_ask(seen["url"], 3))
    assert answers == [{"echo": 1}, {"echo": 2}, {"echo": 3}]
    assert seen["requests"] == 3 and len(seen["connections"]) == 2


def test_a_kept_connection_sends_without_nagles_delay():
    """http.client writes headers and body apart: with Nagle's algorithm on, a kept connection would hold
    the body back for the server's acknowledgement (40 ms a request where the server delays it). The
    connections we keep are http.client's, which turns it off."""
    with counting_server() as seen:
        assert _ask(seen["url"], 1) == {"echo": 1}
        kept = [c for c in http_post._local.pool.values() if c.port == seen["server"].server_port]
        assert kept and kept[0].sock is not None
        assert kept[0].sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
