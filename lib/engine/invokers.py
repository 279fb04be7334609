"""Calling a model once: build the request from the model's templates, send it, read the answer.

An invoker is a callable ``prompt -> Answer``. It raises ``TransientError`` for what a retry may
fix (throttling, 5xx, timeouts, refused connections) and ``PermanentError`` for the rest. Their text
is redacted (`lib.redact`): it is stored in outputs.jsonl and shown in the report.
"""

from __future__ import annotations

import copy
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import jmespath

from lib.redact import redact

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
        raise PermanentError(f"the output path '{invoke['output']}' found nothing in "
                             f"{redact(json.dumps(payload)[:2000])[:200]}")
    details = jmespath.search("[0].details", payload) if isinstance(payload, list) else None
    details = details if isinstance(details, dict) else {}
    return Answer(str(text).strip(), details.get("prompt_tokens"), details.get("generated_tokens"))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an error: urllib would resend our headers (an Authorization included) to wherever
    the server points, another host too."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # urllib's signature
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def post_json(url: str, body: Any, headers: dict[str, str], timeout: float, secrets: tuple[str, ...] = ()) -> Any:
    """POST JSON, return the parsed answer; 429/5xx and network trouble are transient, other HTTP errors
    not. Redirects are not followed. Error text is redacted, each of ``secrets`` (values we sent) too."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json", **headers}, method="POST")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = redact(exc.read()[:4000].decode(errors="replace"), *secrets)[:300]  # redact, then cut
        if 300 <= exc.code < 400:
            detail = f"redirect to {redact(exc.headers.get('Location') or '?', *secrets)} not followed"
        error = TransientError if exc.code == 429 or exc.code >= 500 else PermanentError
        raise error(f"HTTP {exc.code}: {detail}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise TransientError(redact(f"{type(exc).__name__}: {exc}", *secrets)) from None
    except ValueError as exc:  # not JSON
        raise PermanentError(redact(f"the answer is not JSON: {exc}", *secrets)) from None


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
