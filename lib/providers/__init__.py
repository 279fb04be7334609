"""Providers: how a model is deployed, fine-tuned, invoked and removed.

Built-in names map to modules here; anything else is an import path ``package.module:Class``.
Modules are imported on first use, so a provider's SDK costs nothing until a config names it.
"""

from __future__ import annotations

import importlib
from typing import Any

BUILTIN = {
    "local": "lib.providers.local:LocalProvider",
    "jumpstart": "lib.providers.jumpstart:JumpStartProvider",
    "huggingface": "lib.providers.huggingface:HuggingFaceProvider",
    "endpoint": "lib.providers.endpoint:EndpointProvider",
    "bedrock": "lib.providers.bedrock:BedrockProvider",
    "openai": "lib.providers.openai:OpenAIProvider",
}


def get_provider(name: str) -> Any:
    """An instance of the provider ``name`` (a built-in name or ``module:Class``)."""
    target = BUILTIN.get(name, name)
    module_name, _, cls_name = target.partition(":")
    if not cls_name:
        module_name, _, cls_name = target.rpartition(".")
    cls = getattr(importlib.import_module(module_name), cls_name)
    return cls()
