"""Provider `openai`: any server speaking the OpenAI chat-completions API (vLLM, TGI, Ollama, ...).

Which key goes where: a model's ``api_key_env`` names the environment variable holding the key for its
``endpoint_url``; without it, the ambient ``OPENAI_API_KEY`` is sent only to OpenAI's own host
(https://api.openai.com), never elsewhere. No key is ever sent over plain http to a host other than
this machine (127.0.0.0/8, ::1, localhost): validation refuses such a model, and the invoker refuses
the call.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lib.engine.http_post import is_loopback
from lib.engine.invokers import Answer, PermanentError, TransientError, post_json
from lib.providers.base import Provider, ProviderConfigError
from lib.redact import redact

OPENAI_HOST = "api.openai.com"


def plain_http_off_machine(url: str) -> bool:
    """True when ``url`` is not https and its host is not this machine: a key sent there travels in clear."""
    parts = urlsplit(url)
    return parts.scheme.lower() != "https" and not is_loopback(parts.hostname)


def key_for(url: str, api_key_env: str | None) -> tuple[str | None, str | None]:
    """(the key to send to ``url``, or None; the name of the variable it came from). Raises
    PermanentError when a key is configured but must not or cannot be sent."""
    if api_key_env:
        key = os.environ.get(api_key_env)
        if not key:
            raise PermanentError(f"api_key_env names ${api_key_env}, which is not set in this environment")
        if plain_http_off_machine(url):
            raise PermanentError(f"refusing to send the key in ${api_key_env} over plain http to "
                                 f"{urlsplit(url).hostname}: use https (or a server on this machine)")
        return key, api_key_env
    parts = urlsplit(url)
    if parts.scheme.lower() == "https" and (parts.hostname or "").lower() == OPENAI_HOST:
        return os.environ.get("OPENAI_API_KEY") or None, "OPENAI_API_KEY"
    return None, None  # the ambient OPENAI_API_KEY is OpenAI's, not this server's


class OpenAIInvoker:
    def __init__(self, base_url: str, model_id: str, invoke: dict[str, Any], api_key_env: str | None,
                 timeout: float = 120.0) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model_id, self.invoke, self.api_key_env, self.timeout = model_id, invoke, api_key_env, timeout

    def __call__(self, prompt: str) -> Answer:
        params = dict(self.invoke.get("inference_parameters") or {})
        if "max_new_tokens" in params:
            params["max_tokens"] = params.pop("max_new_tokens")
        messages = [{"role": "user", "content": prompt}]
        if self.invoke.get("system_prompt"):
            messages.insert(0, {"role": "system", "content": self.invoke["system_prompt"]})
        key, _ = key_for(self.url, self.api_key_env)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        secrets = (key,) if key else ()
        try:
            payload = post_json(self.url, {"model": self.model_id, "messages": messages, **params}, headers,
                                self.timeout, secrets)
        except (TransientError, PermanentError) as exc:  # already redacted; the key itself once more
            raise type(exc)(redact(str(exc), *secrets)) from None
        try:
            usage = payload.get("usage") or {}
            text = payload["choices"][0]["message"]["content"] or ""
        except Exception:  # an answer of another shape (e.g. {"error": ...} or no choices, with status 200)
            shown = redact(json.dumps(payload)[:2000], *secrets)[:200]
            raise PermanentError(f"the answer has no choices[0].message.content: {shown}") from None
        return Answer(text.strip(), usage.get("prompt_tokens"), usage.get("completion_tokens"))


class OpenAIProvider(Provider):
    name = "openai"
    default_max_concurrency = 8
    deploys = False
    needs_template = False  # chat completions have their own request shape
    config_schema = {"endpoint_url": {"type": "string", "minLength": 1},
                     "api_key_env": {"type": "string", "minLength": 1}}
    required_keys = {"endpoint_url": "the server's base URL (…/v1)"}

    @classmethod
    def validate(cls, model: dict[str, Any], base: Path) -> None:
        url = model["endpoint_url"]
        shown = url if len(url) <= 80 else url[:77] + "..."
        parts = urlsplit(url)
        if "://" not in url:
            raise ProviderConfigError(["endpoint_url"], f"'{shown}' has no scheme: write the whole URL, such as "
                                      f"https://{url.lstrip('/')} (or http:// for a server on this machine)")
        if parts.scheme.lower() not in ("http", "https"):
            raise ProviderConfigError(["endpoint_url"], f"'{parts.scheme}://' is not a scheme an OpenAI-compatible "
                                      "server speaks: use https:// (or http:// for a server on this machine)")
        if any(c.isspace() or ord(c) < 32 for c in url):
            raise ProviderConfigError(["endpoint_url"], f"'{shown}' has a space or control character")
        try:
            port = parts.port
        except ValueError:
            port = -1
        if not parts.hostname or port == -1:
            raise ProviderConfigError(["endpoint_url"], f"'{shown}' is not an http(s) URL with a host (and a port "
                                      "from 1 to 65535, if any)")
        if parts.username or parts.password:
            raise ProviderConfigError(["endpoint_url"], "the endpoint_url carries a user name or password; put "
                                      "the key in the variable named by api_key_env instead")
        if model.get("api_key_env") and plain_http_off_machine(url):
            raise ProviderConfigError(
                ["endpoint_url"],
                f"the key in ${model['api_key_env']} would be sent over plain http to {parts.hostname}: "
                "use https, or a server on this machine (localhost, 127.0.0.1, ::1)")

    def deploy(self, model: dict[str, Any], finetuned: dict[str, Any] | None,
               context: dict[str, Any]) -> dict[str, Any]:
        return {"created": [], "endpoint_url": model["endpoint_url"]}

    def invoker(self, model: dict[str, Any], deployment: dict[str, Any]) -> OpenAIInvoker:
        return OpenAIInvoker(model["endpoint_url"], model["model_id"], model["invoke"], model.get("api_key_env"),
                             model["invoke"].get("timeout_seconds", 120))
