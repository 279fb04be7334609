"""POST a request body and read the whole reply, over a connection each thread keeps open per server.

urllib opens a new connection for every request, and for https a new TLS handshake; a run asks a model
thousands of times. Here each asking thread keeps one connection per server (HTTP keep-alive) and
reuses it for as long as the server allows. Before a kept connection is reused it is looked at: one the
server has closed (or that holds bytes nobody asked for) is dropped, and a new one made. A request is
sent again only when sending it on a kept connection failed; once it has gone out, a failure is the
caller's to retry (the server may have begun on it). Where a proxy is set for the URL
(``HTTPS_PROXY``/``HTTP_PROXY``, outside ``NO_PROXY``; never for this machine's own servers), the
request goes through urllib, which honours it, on a new connection each time. Redirects are never
followed: a 3xx comes back as it is (urllib would resend our headers, an Authorization included,
wherever it points).
"""

from __future__ import annotations

import functools
import http.client
import ipaddress
import os
import select
import socket
import ssl
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message
from urllib.parse import urlsplit

USER_AGENT = "llm-eval-pipelines"
# What sending on a kept connection that the server has closed fails with (the TLS ones over https)
_CLOSED = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, ssl.SSLEOFError, ssl.SSLZeroReturnError)
# What urllib reads to choose a proxy: the next request sees a change to any of them
_PROXY_VARIABLES = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                    "no_proxy", "NO_PROXY")


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Message
    body: bytes


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str
    port: int
    path: str
    proxied: bool


@functools.lru_cache(maxsize=256)
def _target(url: str, proxy_settings: tuple[str | None, ...]) -> _Target:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url}")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    # a proxy cannot reach this machine's own servers (the local endpoints)
    proxied = (scheme in urllib.request.getproxies() and not is_loopback(parts.hostname)
               and not urllib.request.proxy_bypass(parts.hostname))
    # the port always given: http.client would read "::1" as host ":" and port 1
    return _Target(scheme, parts.hostname, parts.port or (443 if scheme == "https" else 80), path, proxied)


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` is this machine (127.0.0.0/8, ::1, localhost)."""
    host = (host or "").strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # urllib's signature
        return None


_local = threading.local()


def _connection(target: _Target, timeout: float) -> http.client.HTTPConnection:
    pool = _local.__dict__.setdefault("pool", {})
    key = (target.scheme, target.host, target.port, timeout)
    conn = pool.get(key)
    if conn is None:
        # (http.client turns Nagle's algorithm off on each connection it opens: the headers and body it
        # writes apart are not held back for an acknowledgement)
        kind = http.client.HTTPSConnection if target.scheme == "https" else http.client.HTTPConnection
        conn = pool[key] = kind(target.host, target.port, timeout=timeout)
    elif conn.sock is not None and _unusable(conn.sock):
        conn.close()  # the next request opens a new one
    return conn


def _unusable(sock: socket.socket) -> bool:
    """A kept connection with something to read before we have asked: the server closed it (end of file),
    or sent bytes that answer nothing of ours. Either way it must not carry the next request."""
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    if not hasattr(select, "poll"):  # Windows
        return bool(select.select([sock], [], [], 0)[0])
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> Reply:
    """POST ``body`` to ``url``; the reply whatever its status. Raises OSError (refused, reset, timed out,
    name not found), ValueError (not an http(s) URL) or ``http.client.HTTPException`` (a reply that is
    not HTTP, or cut short) when none came."""
    target = _target(url, tuple(os.environ.get(v) for v in _PROXY_VARIABLES))
    headers = {"User-Agent": USER_AGENT, **headers}
    if target.proxied:
        return _through_urllib(url, body, headers, timeout)
    conn = _connection(target, timeout)
    try:
        try:
            kept = conn.sock is not None
            conn.request("POST", target.path, body, headers)
        except _CLOSED:
            if not kept:
                raise
            # closed by the server between our look and our request: nothing of it was answered
            conn.close()
            conn.request("POST", target.path, body, headers)
        response = conn.getresponse()
        return Reply(response.status, response.headers, response.read())
    except BaseException:
        conn.close()  # half a request or reply may be on it
        raise


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
