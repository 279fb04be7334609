"""The local server lets in every client that connects at once, so their requests meet in one batch
(with the real local model, loaded once per process)."""

from __future__ import annotations

import json
import os
import socket
import threading

import pytest

from lib.providers import local_model
from lib.providers.local_server import LocalEndpoint


@pytest.fixture(scope="module")
def lm() -> local_model.LocalLM:
    return local_model.load("smollm2-135m-instruct", os.path.expanduser("~/.cache/llm-eval-pipelines"),
                            progress=lambda m: None)


def test_sixteen_clients_connecting_while_the_server_is_busy_all_get_in_and_share_a_batch(lm):
    """socketserver's listen backlog of 5 let the kernel drop the connections of clients 7 to 16 while the
    server thread had not yet accepted; they retried a second later and missed the batch (16 + 11 + 5)."""
    endpoint = LocalEndpoint(lm, "backlog")
    try:
        endpoint.server.shutdown()  # nothing accepts now: a server thread that has not got to accept() yet
        before = len(endpoint.batcher.batches)
        body = json.dumps({"inputs": "What is 2 plus 2?", "parameters": {"max_new_tokens": 1}}).encode()
        request = (f"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body
        clients = []
        for _ in range(16):
            client = socket.create_connection(("127.0.0.1", endpoint.port), timeout=1)  # fails when not let in
            client.sendall(request)
            clients.append(client)
        threading.Thread(target=endpoint.server.serve_forever, daemon=True).start()  # accepting again
        for client in clients:
            client.settimeout(120)
            with client, client.makefile("rb") as answer:
                assert answer.readline().startswith(b"HTTP/1.1 200"), "every request is answered"
        batches = endpoint.batcher.batches[before:]
        # all 16 were waiting: one batch (two on a machine too busy to hand them over within the quiet gap)
        assert sum(batches) == 16 and len(batches) <= 2, batches
    finally:
        endpoint.close()
