"""Calling a model once: build the request from the model's templates, send it, read the answer.

An invoker is a callable ``prompt -> Answer``. It raises ``TransientError`` for what a retry may
fix (throttling, 5xx, timeouts, refused connections) and ``PermanentError`` for the rest. Their text
is redacted (`lib.redact`): it is stored in outputs.jsonl and shown in the report.
"""

from __future__ import annotations

import copy
import http.client
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jmespath

from lib.engine import http_post
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
    log_probability: float | None = None  # of the prompt, when asked for (`with_log_probabilities`)


# What asks a container for the log-probability of the prompt: Hugging Face TGI's prefill details. TGI
# generates at least one token; the local server generates none when asked for these.
LOG_PROBABILITY_PARAMETERS = {"details": True, "decoder_input_details": True, "max_new_tokens": 1}


def fill_placeholder(template: Any, prompt: str) -> Any:
    """Put ``prompt`` where PROMPT_PLACEHOLDER stands, at any depth of a string or JSON structure."""
    if isinstance(template, str):
        return prompt if template == PLACEHOLDER else template.replace(PLACEHOLDER, prompt)
    if isinstance(template, list):
        return [fill_placeholder(v, prompt) for v in template]
    if isinstance(template, dict):
        return {k: fill_placeholder(v, prompt) for k, v in template.items()}
    return copy.deepcopy(template)


def build_body(invoke: dict[str, Any], prompt: str, log_probabilities: bool = False) -> dict[str, Any]:
    """The request body the AWS sample sends: ``{"inputs": <content_template>, "parameters": ...}``;
    with ``log_probabilities``, asking for the prompt's token log-probabilities instead of an answer."""
    body: dict[str, Any] = {"inputs": fill_placeholder(invoke["content_template"], prompt)}
    params = dict(invoke.get("inference_parameters") or {})
    if invoke.get("system_prompt") is not None:  # "" too: an empty system turn, not the template's default
        params["system_prompt"] = invoke["system_prompt"]
    if log_probabilities:
        params.update(LOG_PROBABILITY_PARAMETERS)
    if params:
        body["parameters"] = params
    return body


def prompt_log_probability(payload: Any) -> tuple[float, int]:
    """(the prompt's log-probability, its tokens) from TGI's ``details.prefill``: the sum over the prompt's
    tokens of each one's log-probability given those before it (the first token, which nothing precedes,
    has none). An answer without them is a PermanentError saying so."""
    first = payload[0] if isinstance(payload, list) and payload else payload
    details = first.get("details") if isinstance(first, dict) else None
    prefill = details.get("prefill") if isinstance(details, dict) else None
    values = [t.get("logprob") for t in prefill if isinstance(t, dict)] if isinstance(prefill, list) else []
    known = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if not known:
        raise PermanentError("the answer holds no log-probabilities (details.prefill with a logprob per token): "
                             "this container does not return them; Hugging Face TGI containers do, asked with "
                             f"decoder_input_details; the answer began {redact(json.dumps(payload)[:2000])[:150]}")
    return sum(known), len(values)


def read_answer(invoke: dict[str, Any], payload: Any, log_probabilities: bool = False) -> Answer:
    """Apply the model's ``output`` JMESPath; pick up token counts where the server reports them. With
    ``log_probabilities``, the answer is the prompt's log-probability (its text, when any, is ignored)."""
    if log_probabilities:
        value, tokens = prompt_log_probability(payload)
        return Answer("", prompt_tokens=tokens, generated_tokens=0, log_probability=value)
    text = jmespath.search(invoke["output"], payload)
    if text is None:
        raise PermanentError(f"the output path '{invoke['output']}' found nothing in "
                             f"{redact(json.dumps(payload)[:2000])[:200]}")
    details = jmespath.search("[0].details", payload) if isinstance(payload, list) else None
    details = details if isinstance(details, dict) else {}
    return Answer(str(text).strip(), details.get("prompt_tokens"), details.get("generated_tokens"))


def post_json(url: str, body: Any, headers: dict[str, str], timeout: float, secrets: tuple[str, ...] = ()) -> Any:
    """POST JSON, return the parsed answer; 429/5xx and network trouble are transient, other HTTP errors
    not. Redirects are not followed. Error text is redacted, each of ``secrets`` (values we sent) too."""
    try:
        reply = http_post.post(url, json.dumps(body).encode(), {"Content-Type": "application/json", **headers},
                               timeout)
    except http.client.RemoteDisconnected as exc:  # closed with no reply: a retry may get one
        raise TransientError(redact(f"{type(exc).__name__}: {exc}", *secrets)) from None
    except (http.client.BadStatusLine, http.client.LineTooLong) as exc:  # not an HTTP server (a wrong port?)
        raise PermanentError(redact(f"the reply is not HTTP ({type(exc).__name__}: {exc})", *secrets)[:300]) from None
    except http.client.InvalidURL as exc:  # a space in the path, a port that is not a number, ...
        raise PermanentError(redact(f"not a valid URL: {exc}", *secrets)) from None
    except (OSError, http.client.HTTPException) as exc:
        raise TransientError(redact(f"{type(exc).__name__}: {exc}", *secrets)) from None
    except ValueError as exc:  # not an http(s) URL
        raise PermanentError(redact(str(exc), *secrets)) from None
    if reply.status >= 300:
        detail = redact(reply.body[:4000].decode(errors="replace"), *secrets)[:300]  # redact, then cut
        if reply.status < 400:
            detail = f"redirect to {redact(reply.headers.get('Location') or '?', *secrets)} not followed"
        error = TransientError if reply.status == 429 or reply.status >= 500 else PermanentError
        raise error(f"HTTP {reply.status}: {detail}")
    try:
        return json.loads(reply.body)
    except ValueError as exc:  # not JSON: what it was, redacted, then cut
        began = redact(reply.body[:2000].decode(errors="replace"), *secrets)[:120]
        raise PermanentError(f"the answer is not JSON ({redact(str(exc), *secrets)}); it began: {began!r}") from None


def with_log_probabilities(invoker: Any) -> Any:
    """A copy of ``invoker`` whose answers are the log-probability of each prompt (`Answer.log_probability`),
    or None when this kind of invoker cannot ask for one."""
    if not hasattr(invoker, "log_probabilities"):
        return None
    twin = copy.copy(invoker)
    twin.log_probabilities = True
    return twin


class HttpInvoker:
    """POST to a server speaking the SageMaker container contract (`/invocations`)."""

    def __init__(self, url: str, invoke: dict[str, Any], timeout: float = 120.0,
                 log_probabilities: bool = False, ready: Callable[..., Any] | None = None) -> None:
        self.url = url.rstrip("/") + "/invocations"
        self.invoke = invoke
        self.timeout = timeout
        self.log_probabilities = log_probabilities  # see `with_log_probabilities`
        # called with a progress function before the first call is timed: the server loads its model then
        self.ready = ready

    def __getstate__(self) -> dict[str, Any]:
        # a copy in another process (fmeval's Ray workers) cannot reach this process's model to load it
        # (nor pickle its lock); the server loads it on its first request instead
        return {**self.__dict__, "ready": None}

    def __call__(self, prompt: str) -> Answer:
        headers = {"Accept": "application/json"}
        if self.invoke.get("custom_attributes"):
            headers["X-Amzn-SageMaker-Custom-Attributes"] = self.invoke["custom_attributes"]
        body = build_body(self.invoke, prompt, self.log_probabilities)
        return read_answer(self.invoke, post_json(self.url, body, headers, self.timeout), self.log_probabilities)
