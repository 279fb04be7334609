"""What every provider offers the steps, and the rules it owns. Subclass it to plug in a provider by
import path (`provider: mypkg.providers:MyProvider`).

A provider declares, as class attributes, what config validation and the executors need to know,
so neither ever branches on a provider's name:

- ``config_schema``: JSON Schema properties of the model keys only this provider reads (they are
  allowed on a model of this provider and refused elsewhere, with did-you-mean);
  ``required_keys``: keys it cannot work without, each with what it is for;
- ``needs_template``: requests are shaped by the model's ``content_template`` and read with its
  JMESPath ``output`` (the SageMaker container contract); providers with an API of their own say no;
- ``deploys``: it creates something a cleanup step must remove; ``sagemaker_endpoint``: that
  something is a SageMaker endpoint named by ``endpoint_name`` (so names must be unique in a run);
- ``runs_on_sagemaker``: it can be a step of a SageMaker pipeline (a model on this machine cannot);
- ``finetunes``: true when the class overrides ``finetune``;
- ``log_probabilities``: whether its invoker can return the log-probability of a prompt, which
  PromptStereotyping needs (`lib.engine.invokers.with_log_probabilities`): True always; ``"details"``
  when the model's container answers with Hugging Face TGI's ``details.prefill`` (asked for with
  ``decoder_input_details``), as JumpStart's and Hugging Face's LLM containers do; False never;
- ``default_inference_parameters``; ``price`` (what an hour or a token costs, when known).

``validate`` checks meaning beyond the schema and may normalise the model (e.g. resolve a path).

The ``context`` a provider's deploy and finetune receive holds ``layout`` (the run's `RunLayout`),
``run_root``, ``cache_root``, ``execution_id``, ``progress`` (a one-argument reporter) and, for
deploy, ``created``: a list the provider appends each resource to the moment it exists, so that
a deploy failing half-way still leaves cleanup the full list.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar


class ProviderConfigError(ValueError):
    """A model's config is wrong for its provider. ``where`` is the YAML path below the model."""

    def __init__(self, where: list[str | int], message: str) -> None:
        super().__init__(message)
        self.where = where


class Provider:
    """Deploy, fine-tune, invoke and remove one kind of model. Results are JSON-serialisable dicts."""

    name = "base"
    default_max_concurrency = 4
    config_schema: ClassVar[dict[str, Any]] = {}
    required_keys: ClassVar[dict[str, str]] = {}
    needs_template = True
    deploys = True  # a plug-in may create something: it gets a cleanup step unless it says otherwise
    sagemaker_endpoint = False
    runs_on_sagemaker = True
    log_probabilities: ClassVar[bool | str] = False
    default_inference_parameters: ClassVar[dict[str, Any]] = {}
    # imported once, before any worker thread starts: two threads importing the SDK's modules at once
    # can meet a half-initialised module (a circular import error)
    preload_modules: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def finetunes(cls) -> bool:
        return cls.finetune is not Provider.finetune

    @classmethod
    def validate(cls, model: dict[str, Any], base: Path) -> None:
        """Check ``model`` (normalised) for this provider; raise ProviderConfigError. ``base`` is the
        folder relative paths resolve against."""

    # can evaluate a model by one batch transform job (`evaluation_config.invocation: batch_transform`):
    # then `deploy` creates the model only, and the evaluate step runs the job (`lib.aws.transform`)
    batch_transform: ClassVar[bool] = False

    @classmethod
    def price(cls, model: dict[str, Any], prices: dict[str, Any]) -> dict[str, float] | None:
        """``{"usd_per_hour": x}`` and/or ``{"usd_per_1k_input_tokens": x, "usd_per_1k_output_tokens": y}``
        for this model from the price table ``prices`` (`lib.pricing.table`), or None when unknown."""
        return None

    def finetune(self, model: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError(f"provider '{self.name}' cannot fine-tune")

    def deploy(self, model: dict[str, Any], finetuned: dict[str, Any] | None,
               context: dict[str, Any]) -> dict[str, Any]:
        """Make the model callable. Returns at least ``created`` (what cleanup must remove)."""
        return {"created": []}

    def invoker(self, model: dict[str, Any], deployment: dict[str, Any]) -> Callable[[str], Any]:
        """A callable ``prompt -> lib.engine.invokers.Answer``; picklable (fmeval ships runners to Ray)."""
        raise NotImplementedError

    def identity(self, model: dict[str, Any], deployment: dict[str, Any]) -> str:
        """What makes this model's answers what they are, for the output cache: two models that differ
        in any of these never share an answer. JSON, sorted keys. A local server's URL (its port changes
        every run) is not part of it; a configured ``endpoint_url`` is."""
        container = model.get("deployment") or {}
        return json.dumps({
            "provider": self.name,
            "endpoint_name": deployment.get("endpoint_name")
            or (model.get("endpoint_name") if self.sagemaker_endpoint else None),
            "endpoint_url": model.get("endpoint_url"),
            "region": model.get("region"),
            "model_id": model.get("model_id"),
            "model_version": model.get("model_version") or "*",
            "image_uri": deployment.get("image_uri") or container.get("image_uri"),
            "container_env": container.get("env") or None,
            "model_data_url": deployment.get("model_data_url"),
            "artifact_identity": deployment.get("artifact_identity") or None,
        }, sort_keys=True, default=str)

    def cleanup(self, model: dict[str, Any], deployment: dict[str, Any]) -> dict[str, Any]:
        return {"deleted": []}
