"""A content-addressed store of model outputs: the same model, request and prompt are never paid twice.

The key covers everything that shapes the answer: model identity, content template, inference
parameters, custom attributes, system prompt and the prompt itself. The model identity is the
provider's (`Provider.identity`): provider, endpoint name and URL, region, model id and version,
container image and model data, so two models sharing a ``model_id`` never share an answer.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from lib import storage


def cache_key(identity: str, invoke: dict[str, Any], prompt: str) -> str:
    material = {
        "identity": identity,
        "content_template": invoke.get("content_template"),
        "inference_parameters": invoke.get("inference_parameters") or {},
        "custom_attributes": invoke.get("custom_attributes"),
        "system_prompt": invoke.get("system_prompt"),
        "output": invoke.get("output"),
        "prompt": prompt,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


class OutputCache:
    def __init__(self, root: str) -> None:
        self.root = storage.join(root, "outputs")

    def _uri(self, key: str) -> str:
        return storage.join(self.root, key[:2], f"{key}.json")

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            return storage.read_json(self._uri(key))
        except (ValueError, OSError):  # absent (FileNotFoundError) or damaged: a miss, not a failure
            return None
        except Exception as exc:  # S3: NoSuchKey is a miss; anything else is a real error
            if getattr(exc, "response", {}).get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise

    def put(self, key: str, value: dict[str, Any]) -> None:
        storage.write_json(self._uri(key), value)
