"""Calling a model once: build the request from the model's templates, send it, read the answer.

An invoker is a callable ``prompt -> Answer``. It raises ``TransientError`` for what a retry may
fix (throttling, 5xx, timeouts, refused connections) and ``PermanentError`` for the rest.
"""

from __future__ import annotations

import copy
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import jmespath

PLACEHOLDER = "PROMPT_PLACEHOLDER"


class TransientError(RuntimeError):
    pass


class PermanentError(RuntimeError):
    pass


@dataclass
class Answer:
    text: str
    prompt_tokens: int | None = None
    generated_tokens: int | None = None


def fill_placeholder(template: Any, prompt: str) -> Any:
    """Put ``prompt`` where PROMPT_PLACEHOLDER stands, at any depth of a string or JSON structure."""
    if isinstance(template, str):
        return prompt if template == PLACEHOLDER else template.replace(PLACEHOLDER, prompt)
    if isinstance(template, list):
        return [fill_placeholder(v, prompt) for v in template]
    if isinstance(template, dict):
        return {k: fill_placeholder(v, prompt) for k, v in template.items()}
    return copy.deepcopy(template)


def build_body(invoke: dict[str, Any], prompt: str) -> dict[str, Any]:
    """The request body the AWS sample sends: ``{"inputs": <content_template>, "parameters": ...}``."""
    body: dict[str, Any] = {"inputs": fill_placeholder(invoke["content_template"], prompt)}
    params = dict(invoke.get("inference_parameters") or {})
    if invoke.get("system_prompt"):
        params["system_prompt"] = invoke["system_prompt"]
    if params:
        body["parameters"] = params
    return body


def read_answer(invoke: dict[str, Any], payload: Any) -> Answer:
    """Apply the model's ``output`` JMESPath; pick up token counts where the server reports them."""
    text = jmespath.search(invoke["output"], payload)
    if text is None:
        raise PermanentError(f"the output path '{invoke['output']}' found nothing in {json.dumps(payload)[:200]}")
    details = jmespath.search("[0].details", payload) if isinstance(payload, list) else None
    details = details if isinstance(details, dict) else {}
    return Answer(str(text).strip(), details.get("prompt_tokens"), details.get("generated_tokens"))


def post_json(url: str, body: Any, headers: dict[str, str], timeout: float) -> Any:
    """POST JSON, return the parsed answer; 429/5xx and network trouble are transient, other HTTP errors not."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json", **headers}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:300].decode(errors="replace")
        error = TransientError if exc.code == 429 or exc.code >= 500 else PermanentError
        raise error(f"HTTP {exc.code}: {detail}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise TransientError(f"{type(exc).__name__}: {exc}") from None


class HttpInvoker:
    """POST to a server speaking the SageMaker container contract (`/invocations`)."""

    def __init__(self, url: str, invoke: dict[str, Any], timeout: float = 120.0) -> None:
        self.url = url.rstrip("/") + "/invocations"
        self.invoke = invoke
        self.timeout = timeout

    def __call__(self, prompt: str) -> Answer:
        headers = {"Accept": "application/json"}
        if self.invoke.get("custom_attributes"):
            headers["X-Amzn-SageMaker-Custom-Attributes"] = self.invoke["custom_attributes"]
        return read_answer(self.invoke, post_json(self.url, build_body(self.invoke, prompt), headers, self.timeout))
