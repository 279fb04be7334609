"""Provider `bedrock`: a Bedrock model through the Converse API. Nothing to deploy or delete."""

from __future__ import annotations

from typing import Any

from lib import aws
from lib.engine.invokers import Answer, PermanentError, TransientError
from lib.providers.base import Provider
from lib.redact import redact

_CONVERSE_PARAMS = {"max_new_tokens": "maxTokens", "max_tokens": "maxTokens", "temperature": "temperature",
                    "top_p": "topP", "stop_sequences": "stopSequences"}


class BedrockInvoker:
    def __init__(self, model_id: str, invoke: dict[str, Any], region: str | None = None) -> None:
        self.model_id, self.invoke, self.region = model_id, invoke, region
        self._client = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_client": None}

    def request(self, prompt: str) -> dict[str, Any]:
        params = self.invoke.get("inference_parameters") or {}
        request: dict[str, Any] = {
            "modelId": self.model_id,
            "messages": [{"role": "user", "content": [{"text": prompt}]}],
            "inferenceConfig": {_CONVERSE_PARAMS[k]: v for k, v in params.items() if k in _CONVERSE_PARAMS},
        }
        if self.invoke.get("system_prompt"):
            request["system"] = [{"text": self.invoke["system_prompt"]}]
        return request

    def __call__(self, prompt: str) -> Answer:
        if self._client is None:
            self._client = aws.client("bedrock-runtime", self.region, self.invoke.get("timeout_seconds", 120))
        try:
            response = self._client.converse(**self.request(prompt))
        except Exception as exc:
            code = aws.error_code(exc)
            if code in aws.THROTTLING_CODES or not code:
                raise TransientError(redact(f"{code or type(exc).__name__}: {exc}")) from None
            raise PermanentError(redact(f"{code}: {exc}")) from None
        text = "".join(part.get("text", "") for part in response["output"]["message"]["content"])
        usage = response.get("usage") or {}
        return Answer(text.strip(), usage.get("inputTokens"), usage.get("outputTokens"))


class BedrockProvider(Provider):
    name = "bedrock"
    default_max_concurrency = 4
    deploys = False
    needs_template = False  # the Converse API has its own request shape

    @classmethod
    def price(cls, model: dict[str, Any], prices: dict[str, Any]) -> dict[str, float] | None:
        per_1k = prices["bedrock_usd_per_1k_tokens"].get(model["model_id"])
        return None if per_1k is None else {"usd_per_1k_input_tokens": per_1k["input"],
                                            "usd_per_1k_output_tokens": per_1k["output"]}

    def deploy(self, model: dict[str, Any], finetuned: dict[str, Any] | None,
               context: dict[str, Any]) -> dict[str, Any]:
        return {"created": [], "model_id": model["model_id"]}

    def invoker(self, model: dict[str, Any], deployment: dict[str, Any]) -> BedrockInvoker:
        return BedrockInvoker(model["model_id"], model["invoke"], model.get("region"))
