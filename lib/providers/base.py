"""What every provider offers the steps. Subclass it to plug in a provider by import path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Provider:
    """Deploy, fine-tune, invoke and remove one kind of model. Results are JSON-serialisable dicts."""

    name = "base"
    default_max_concurrency = 4

    def finetune(self, model: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError(f"provider '{self.name}' cannot fine-tune")

    def deploy(self, model: dict[str, Any], finetuned: dict[str, Any] | None,
               context: dict[str, Any]) -> dict[str, Any]:
        """Make the model callable. Returns at least ``created`` (what cleanup must remove)."""
        return {"created": []}

    def invoker(self, model: dict[str, Any], deployment: dict[str, Any]) -> Callable[[str], Any]:
        """A callable ``prompt -> lib.invokers.Answer``; picklable (fmeval ships runners to Ray)."""
        raise NotImplementedError

    def identity(self, model: dict[str, Any], deployment: dict[str, Any]) -> str:
        """What makes this model's answers what they are, for the output cache."""
        return "|".join([self.name, model["model_id"], model.get("model_version") or "*",
                         deployment.get("artifact_identity") or ""])

    def cleanup(self, model: dict[str, Any], deployment: dict[str, Any]) -> dict[str, Any]:
        return {"deleted": []}

