"""What the steps that publish the summary (select, register) get for the sinks, as the plan's plain JSON
(it travels into SageMaker @steps as it is): the `tracking` settings, the config's hash for lineage, and,
with MLflow, each model's parameters and the config file itself (logged as evidence)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

_PARAM_MAX = 6000  # MLflow's longest parameter value


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text[:_PARAM_MAX]


def model_params(model: dict[str, Any]) -> dict[str, str]:
    """A normalised model entry (lib/config/load.py) as flat MLflow parameters: how it was deployed and asked."""
    from lib.providers import provider_class

    cls = provider_class(model["provider"])
    params = {"provider": model["provider"], "model_id": model["model_id"],
              "model_version": model.get("model_version")}
    if cls.sagemaker_endpoint:
        params.update({"endpoint_name": model.get("endpoint_name"), "region": model.get("region"),
                       "instance_type": model["deployment"].get("instance_type"),
                       "num_instances": model["deployment"].get("num_instances")})
    invoke = model.get("invoke") or {}
    # the request template and JMESPath apply to the providers that use them
    for key in ("prompt_template", "system_prompt") + (("content_template", "output", "custom_attributes")
                                                       if cls.needs_template else ()):
        params[key] = invoke.get(key)
    for key, value in sorted((invoke.get("inference_parameters") or {}).items()):
        params[f"inference.{key}"] = value
    for key, value in sorted(((model.get("finetune") or {}).get("parameters") or {}).items()):
        params[f"finetune.{key}"] = value
    if model.get("finetune"):
        params["finetune.train_data_uri"] = model["finetune"].get("train_data_uri")
    return {k: _text(v) for k, v in params.items() if v not in (None, "", {}, [])}


def tracking_args(config: Any) -> dict[str, Any]:
    """The ``tracking`` argument of select and register, from a `RunConfig`."""
    tracking = dict(config.settings.get("tracking") or {})
    raw = Path(config.config_path).read_bytes()
    args: dict[str, Any] = {**tracking, "config_hash": hashlib.sha256(raw).hexdigest(),
                            "dataset_name": config.evaluation["dataset"]["dataset_name"]}
    if tracking.get("mlflow"):
        args["models"] = {m["name"]: model_params(m) for m in config.models}
        args["config_file"] = Path(config.config_path).name
        args["config_text"] = raw.decode("utf-8", errors="replace")
    return args
