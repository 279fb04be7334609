"""POST a request body and read the whole reply, over a connection each thread keeps open per server.

urllib opens a new connection for every request, and for https a new TLS handshake; a run asks a model
thousands of times. Here each asking thread keeps one connection per server (HTTP keep-alive) and
reuses it for as long as the server allows. A kept connection that the server closed while it sat idle
is opened again, once. Where a proxy is set for the URL (``HTTPS_PROXY``/``HTTP_PROXY``, outside
``NO_PROXY``), the request goes through urllib, which honours it. Redirects are never followed: a 3xx
comes back as it is (urllib would resend our headers, an Authorization included, wherever it points).
"""

from __future__ import annotations

import functools
import http.client
import socket
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message
from urllib.parse import urlsplit

USER_AGENT = "llm-eval-pipelines"
# What a kept connection that the server has closed while idle fails with, on its next request
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Message
    body: bytes


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str
    port: int | None
    path: str
    proxied: bool


@functools.lru_cache(maxsize=256)
def _target(url: str) -> _Target:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url}")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    proxied = scheme in urllib.request.getproxies() and not urllib.request.proxy_bypass(parts.hostname)
    return _Target(scheme, parts.hostname, parts.port, path, proxied)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # urllib's signature
        return None


_local = threading.local()


class _NoDelay:
    """http.client writes a request's headers and its body separately; with Nagle's algorithm on, a kept
    connection then holds the body back until the server acknowledges the headers (up to 40 ms, where a
    server delays its acknowledgements)."""

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # type: ignore[attr-defined]


class _HTTPConnection(_NoDelay, http.client.HTTPConnection):
    pass


class _HTTPSConnection(_NoDelay, http.client.HTTPSConnection):
    pass


def _connection(target: _Target, timeout: float) -> http.client.HTTPConnection:
    pool = _local.__dict__.setdefault("pool", {})
    key = (target.scheme, target.host, target.port, timeout)
    conn = pool.get(key)
    if conn is None:
        kind = _HTTPSConnection if target.scheme == "https" else _HTTPConnection
        conn = pool[key] = kind(target.host, target.port, timeout=timeout)
    return conn


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> Reply:
    """POST ``body`` to ``url``; the reply whatever its status. Raises OSError (refused, reset, timed out,
    name not found) or ``http.client.HTTPException`` (a reply that is not HTTP) when none came."""
    target = _target(url)
    headers = {"User-Agent": USER_AGENT, **headers}
    if target.proxied:
        return _through_urllib(url, body, headers, timeout)
    conn = _connection(target, timeout)
    for attempt in (1, 2):
        reused = conn.sock is not None  # an open socket from an earlier request (else a new one is made)
        try:
            conn.request("POST", target.path, body, headers)
            response = conn.getresponse()
            data = response.read()
        except _STALE:
            conn.close()
            if reused and attempt == 1:
                continue  # the server closed it while it sat idle: once more, on a new connection
            raise
        except BaseException:
            conn.close()  # half a request or reply may be on it
            raise
        return Reply(response.status, response.headers, data)
    raise AssertionError("unreachable")


def _through_urllib(url: str, body: bytes, headers: dict[str, str], timeout: float) -> Reply:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    opener = urllib.request.build_opener(_NoRedirect, urllib.request.ProxyHandler())  # the proxies set now
    try:
        with opener.open(request, timeout=timeout) as response:
            return Reply(response.status, response.headers, response.read())
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, exc.headers, exc.read())
    except urllib.error.URLError as exc:  # the OSError underneath, as on the direct way
        raise exc.reason if isinstance(exc.reason, OSError) else OSError(str(exc.reason)) from None
