"""Providers plugged in by import path, as users plug in their own (not mocks: real plug-ins)."""

from __future__ import annotations

from lib.providers.base import Provider


class BrokenDeployProvider(Provider):
    """A provider whose deployment always fails, as a real one does when capacity runs out."""

    name = "broken-deploy"

    def deploy(self, model, finetuned, context):
        raise RuntimeError("ResourceLimitExceeded: no ml.g5.2xlarge capacity")
