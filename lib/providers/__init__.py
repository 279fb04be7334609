"""Providers: how a model is deployed, fine-tuned, invoked and removed, and the config rules each owns
(`base.Provider` lists them). One module per provider; the name a config uses maps to its class here.

Anything not in `BUILTIN` is an import path ``package.module:Class``. Modules are imported on first
use, and none imports the SageMaker SDK at import time, so validating a config stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

BUILTIN = {
    "jumpstart": "lib.providers.jumpstart:JumpStartProvider",
    "huggingface": "lib.providers.huggingface:HuggingFaceProvider",
    "endpoint": "lib.providers.endpoint:EndpointProvider",
    "bedrock": "lib.providers.bedrock:BedrockProvider",
    "openai": "lib.providers.openai:OpenAIProvider",
    "local": "lib.providers.local:LocalProvider",
}


class ProviderLookupError(ValueError):
    """The provider name is unknown or its class cannot be imported; the message says which."""


def is_import_path(name: str) -> bool:
    return "." in name or ":" in name


def provider_class(name: str) -> type:
    """The class of provider ``name`` (a built-in name or ``module:Class``)."""
    target = BUILTIN.get(name)
    if target is None:
        if not is_import_path(name):
            from lib.errors import did_you_mean

            raise ProviderLookupError(
                f"unknown provider '{name}'{did_you_mean(name, BUILTIN)}; choose one of {', '.join(BUILTIN)} "
                "or give an import path 'package.module:Class'")
        target = name
    module_name, _, cls_name = target.partition(":")
    if not cls_name:
        module_name, _, cls_name = target.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the user's module: say what went wrong, not a traceback
        raise ProviderLookupError(f"the provider module '{module_name}' does not import: "
                                  f"{type(exc).__name__}: {exc}") from None
    cls = getattr(module, cls_name, None)
    if not isinstance(cls, type):
        raise ProviderLookupError(f"the module '{module_name}' has no provider class '{cls_name}'")
    return cls


def get_provider(name: str) -> Any:
    """An instance of the provider ``name``."""
    return provider_class(name)()
