"""Prices: what an hour of an instance and a thousand Bedrock tokens cost, for cost estimates before a
run (`plan`), actual cost per model after it, and the budget.

The table below is AWS's on-demand list price in us-east-1 as we know it (PRICES_AS_OF); it was not
checked against AWS from this offline machine and other regions differ. Override any entry in
pipeline_config.yaml:

    prices:
      instance_usd_per_hour: {ml.g5.2xlarge: 1.515}
      bedrock_usd_per_1k_tokens: {anthropic.claude-3-haiku-20240307-v1:0: {input: 0.00025, output: 0.00125}}
"""

from __future__ import annotations

from typing import Any

PRICES_AS_OF = "2024-11"

# SageMaker real-time inference and training (ml.* instances), USD per instance-hour
INSTANCE_USD_PER_HOUR: dict[str, float] = {
    "ml.m5.large": 0.115, "ml.m5.xlarge": 0.23, "ml.m5.2xlarge": 0.461, "ml.m5.4xlarge": 0.922,
    "ml.c5.xlarge": 0.204, "ml.c5.2xlarge": 0.408,
    "ml.g4dn.xlarge": 0.736, "ml.g4dn.2xlarge": 0.94, "ml.g4dn.12xlarge": 4.89,
    "ml.g5.xlarge": 1.408, "ml.g5.2xlarge": 1.515, "ml.g5.4xlarge": 2.03, "ml.g5.8xlarge": 3.06,
    "ml.g5.12xlarge": 7.09, "ml.g5.16xlarge": 5.12, "ml.g5.24xlarge": 10.18, "ml.g5.48xlarge": 20.36,
    "ml.p4d.24xlarge": 37.69,
}

# Bedrock on-demand, USD per 1,000 tokens
BEDROCK_USD_PER_1K_TOKENS: dict[str, dict[str, float]] = {
    "anthropic.claude-3-5-sonnet-20240620-v1:0": {"input": 0.003, "output": 0.015},
    "anthropic.claude-3-haiku-20240307-v1:0": {"input": 0.00025, "output": 0.00125},
    "anthropic.claude-3-sonnet-20240229-v1:0": {"input": 0.003, "output": 0.015},
    "meta.llama3-8b-instruct-v1:0": {"input": 0.0003, "output": 0.0006},
    "meta.llama3-70b-instruct-v1:0": {"input": 0.00265, "output": 0.0035},
    "mistral.mistral-7b-instruct-v0:2": {"input": 0.00015, "output": 0.0002},
    "amazon.titan-text-express-v1": {"input": 0.0002, "output": 0.0006},
    "amazon.titan-text-lite-v1": {"input": 0.00015, "output": 0.0002},
}


def table(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The price table with the settings' ``prices`` laid over it."""
    overrides = overrides or {}
    return {"as_of": PRICES_AS_OF,
            "instance_usd_per_hour": {**INSTANCE_USD_PER_HOUR, **(overrides.get("instance_usd_per_hour") or {})},
            "bedrock_usd_per_1k_tokens": {**BEDROCK_USD_PER_1K_TOKENS,
                                          **(overrides.get("bedrock_usd_per_1k_tokens") or {})}}


def cost(price: dict[str, float] | None, wall_s: float | None, prompt_tokens: int | None,
         generated_tokens: int | None) -> float | None:
    """What asking a model cost: its hourly price over the time it was asked, plus its token prices.
    None when the price is unknown (or per-token with no token counts)."""
    if price is None:
        return None
    total = 0.0
    if "usd_per_hour" in price:
        total += price["usd_per_hour"] * (wall_s or 0.0) / 3600
    if "usd_per_1k_input_tokens" in price or "usd_per_1k_output_tokens" in price:
        if prompt_tokens is None and generated_tokens is None:
            return None
        total += price.get("usd_per_1k_input_tokens", 0.0) * (prompt_tokens or 0) / 1000
        total += price.get("usd_per_1k_output_tokens", 0.0) * (generated_tokens or 0) / 1000
    return round(total, 6)
