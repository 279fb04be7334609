"""Providers plugged in by import path, as users plug in their own (not mocks: real plug-ins)."""

from __future__ import annotations

from lib.providers.base import Provider
from lib.providers.huggingface import HuggingFaceProvider
from lib.providers.local import LocalProvider


class BrokenDeployProvider(Provider):
    """A provider whose deployment always fails, as a real one does when capacity runs out."""

    name = "broken-deploy"

    def deploy(self, model, finetuned, context):
        raise RuntimeError("ResourceLimitExceeded: no ml.g5.2xlarge capacity")


class InterruptedProvider(LocalProvider):
    """A real local endpoint whose evaluation is interrupted, as by Ctrl-C, after the first record."""

    name = "interrupted"
    deployed: list[str] = []  # endpoint URLs, so a test can check they are closed afterwards

    def deploy(self, model, finetuned, context):
        result = super().deploy(model, finetuned, context)
        InterruptedProvider.deployed.append(result["endpoint_url"])
        return result

    def invoker(self, model, deployment):
        inner = super().invoker(model, deployment)
        calls = []

        def invoke(prompt):
            if calls:
                raise KeyboardInterrupt
            calls.append(prompt)
            return inner(prompt)

        return invoke


class BrokenInvokerProvider(LocalProvider):
    """Deploys for real; then building its invoker fails, as a misconfigured client would."""

    name = "broken-invoker"

    def invoker(self, model, deployment):
        raise RuntimeError("no credentials for the model endpoint")


class EchoProvider(Provider):
    """A provider with a config key of its own (``greeting``, required): it answers every prompt with
    the greeting and the prompt, as a rule-based baseline would. Nothing to deploy."""

    name = "echo"
    deploys = False
    needs_template = False
    config_schema = {"greeting": {"type": "string", "minLength": 1}}
    required_keys = {"greeting": "what every answer starts with"}

    def invoker(self, model, deployment):
        from lib.engine.invokers import Answer

        greeting = model["greeting"]
        return lambda prompt: Answer(f"{greeting} {prompt}")

    def identity(self, model, deployment):
        return f"echo|{model['greeting']}"


class SlowEndpointProvider(HuggingFaceProvider):
    """Deploys a real (moto) SageMaker endpoint through the shared SageMaker code; answers each prompt
    after a pause, as a busy endpoint does, so a run can be interrupted mid-evaluation."""

    name = "slow-endpoint"

    def invoker(self, model, deployment):
        import time

        from lib.engine.invokers import Answer

        def invoke(prompt):
            time.sleep(0.25)
            return Answer("Paris")

        return invoke
