"""Provider `openai`: any server speaking the OpenAI chat-completions API (vLLM, TGI, Ollama, ...)."""

from __future__ import annotations

import os
from typing import Any

from lib.engine.invokers import Answer, post_json
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
        key = os.environ.get(self.api_key_env or "OPENAI_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        payload = post_json(self.url, {"model": self.model_id, "messages": messages, **params}, headers, self.timeout)
        usage = payload.get("usage") or {}
        text = payload["choices"][0]["message"]["content"] or ""
        return Answer(text.strip(), usage.get("prompt_tokens"), usage.get("completion_tokens"))


class OpenAIProvider(Provider):
    name = "openai"
    default_max_concurrency = 8
    deploys = False
    needs_template = False  # chat completions have their own request shape
    config_schema = {"endpoint_url": {"type": "string", "minLength": 1},
                     "api_key_env": {"type": "string", "minLength": 1}}
    required_keys = {"endpoint_url": "the server's base URL (…/v1)"}

    def deploy(self, model: dict[str, Any], finetuned: dict[str, Any] | None,
               context: dict[str, Any]) -> dict[str, Any]:
        return {"created": [], "endpoint_url": model["endpoint_url"]}

    def invoker(self, model: dict[str, Any], deployment: dict[str, Any]) -> OpenAIInvoker:
        return OpenAIInvoker(model["endpoint_url"], model["model_id"], model["invoke"], model.get("api_key_env"),
                             model["invoke"].get("timeout_seconds", 120))

    def identity(self, model: dict[str, Any], deployment: dict[str, Any]) -> str:
        return f"openai|{model['endpoint_url']}|{model['model_id']}"
