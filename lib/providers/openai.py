"""Provider `openai`: any server speaking the OpenAI chat-completions API (vLLM, TGI, Ollama, ...)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

from lib.invokers import Answer, PermanentError, TransientError
from lib.providers.base import Provider


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
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env or "OPENAI_API_KEY")
        if key:
            headers["Authorization"] = f"Bearer {key}"
        body = json.dumps({"model": self.model_id, "messages": messages, **params}).encode()
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode(errors="replace")
            error = TransientError if exc.code == 429 or exc.code >= 500 else PermanentError
            raise error(f"HTTP {exc.code}: {detail}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise TransientError(f"{type(exc).__name__}: {exc}") from None
        usage = payload.get("usage") or {}
        text = payload["choices"][0]["message"]["content"] or ""
        return Answer(text.strip(), usage.get("prompt_tokens"), usage.get("completion_tokens"))


class OpenAIProvider(Provider):
    name = "openai"
    default_max_concurrency = 8

    def deploy(self, model: dict[str, Any], finetuned: dict[str, Any] | None,
               context: dict[str, Any]) -> dict[str, Any]:
        return {"created": [], "endpoint_url": model["endpoint_url"]}

    def invoker(self, model: dict[str, Any], deployment: dict[str, Any]) -> OpenAIInvoker:
        return OpenAIInvoker(model["endpoint_url"], model["model_id"], model["invoke"], model.get("api_key_env"),
                             model["invoke"].get("timeout_seconds", 120))

    def identity(self, model: dict[str, Any], deployment: dict[str, Any]) -> str:
        return f"openai|{model['endpoint_url']}|{model['model_id']}"
