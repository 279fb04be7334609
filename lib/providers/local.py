"""Provider `local`: a small model on this machine behind the SageMaker container contract."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from lib import storage
from lib.engine.invokers import HttpInvoker
from lib.providers import local_model, running
from lib.providers.base import Provider, ProviderConfigError

FINETUNE_CODE_VERSION = "1"  # bump when training changes, so cached adapters are not reused


def _file_digest(path: str) -> str:
    h = hashlib.sha256()
    p = Path(path)
    for f in sorted(p.rglob("*")) if p.is_dir() else [p]:
        if f.is_file():
            h.update(f.read_bytes())
    return h.hexdigest()


def _training_pairs(uri: str) -> list[tuple[str, str]]:
    """(question, first accepted answer) from JSON Lines in the usual instruction-tuning key names."""
    p = Path(uri)
    files = sorted(p.glob("*.jsonl")) if p.is_dir() else [p]
    pairs = []
    for f in files:
        for row in storage.read_jsonl(str(f)):
            q = row.get("question") or row.get("instruction") or row.get("prompt") or row.get("model_input")
            a = row.get("answer") or row.get("response") or row.get("completion") or row.get("target_output")
            if q and a:
                pairs.append((str(q), str(a).split("<OR>")[0].strip()))
    return pairs


class LocalProvider(Provider):
    name = "local"
    default_max_concurrency = 16  # the server batches concurrent requests
    runs_on_sagemaker = False  # the model lives on this machine
    default_inference_parameters = {"max_new_tokens": 32}  # CPU generation is slow: short answers

    @classmethod
    def validate(cls, model: dict[str, Any], base: Path) -> None:
        model_id = model["model_id"]
        if "/" in model_id or model_id.endswith(".gguf"):  # a file or folder, not a known model name
            path = Path(os.path.expanduser(model_id))
            model["model_id"] = str(path if path.is_absolute() else (base / path).resolve())
            if not Path(model["model_id"]).exists():
                raise ProviderConfigError(["model_id"], f"the local model {model['model_id']} does not exist "
                                          "(give a .gguf file, a Hugging Face model folder, or smollm2-135m-instruct)")

    @classmethod
    def price(cls, model: dict[str, Any], prices: dict[str, Any]) -> dict[str, float] | None:
        return {"usd_per_hour": 0.0}  # this machine

    def finetune(self, model: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
        from lib.providers import local_finetune

        say = context.get("progress", print)
        ft = model["finetune"]
        params = {**local_finetune.DEFAULTS,
                  **{k: v for k, v in ft["parameters"].items() if k in local_finetune.DEFAULTS}}
        base = local_model.ensure_converted(model["model_id"], context["cache_root"], say)
        key = hashlib.sha256(json.dumps({
            "base": str(base), "data": _file_digest(ft["train_data_uri"]), "params": params,
            "code": FINETUNE_CODE_VERSION}, sort_keys=True, default=str).encode()).hexdigest()[:20]
        cached = Path(context["cache_root"]) / "finetuned" / key
        reused = (cached / "result.json").exists()
        if reused:
            say(f"reusing the fine-tuned model from {cached} (same base, data and parameters)")
            metrics = json.loads((cached / "result.json").read_text())
        else:
            pairs = _training_pairs(ft["train_data_uri"])
            if not pairs:
                raise ValueError(f"no question/answer pairs found in {ft['train_data_uri']}")
            if params.get("max_train_records"):
                pairs = pairs[: params["max_train_records"]]
            say(f"training {params['method']} on {len(pairs)} pairs for {params['max_steps']} steps")
            tmp = cached.with_name(key + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            metrics = local_finetune.train(base, pairs, tmp, params, say)
            (tmp / "result.json").write_text(json.dumps(metrics))
            shutil.rmtree(cached, ignore_errors=True)
            tmp.rename(cached)
        artifact = context["layout"].finetuned(model["name"])
        shutil.copytree(cached, artifact, dirs_exist_ok=True)
        return {"artifact": artifact, "artifact_identity": f"finetuned:{key}", "reused": reused,
                "method": metrics.get("method"), "metrics": metrics}

    def deploy(self, model: dict[str, Any], finetuned: dict[str, Any] | None,
               context: dict[str, Any]) -> dict[str, Any]:
        from lib.providers.local_server import LocalEndpoint

        say = context.get("progress", print)
        artifact = (finetuned or {}).get("artifact")
        if artifact and (Path(artifact) / "config.json").exists():  # a full fine-tune saved a whole model
            lm = local_model.load(artifact, context["cache_root"], progress=say)
        else:  # the base model, with a LoRA adapter merged in when there is one
            lm = local_model.load(model["model_id"], context["cache_root"], artifact, say)
        endpoint = LocalEndpoint(lm, model["name"])
        endpoint_id = f"local:{model['name']}:{endpoint.port}"
        running.add(endpoint_id, endpoint)
        say(f"serving on {endpoint.url} (/ping, /invocations)")
        return {"endpoint_url": endpoint.url, "endpoint_id": endpoint_id,
                "artifact_identity": (finetuned or {}).get("artifact_identity", ""),
                "created": [{"type": "local-endpoint", "id": endpoint_id}]}

    def invoker(self, model: dict[str, Any], deployment: dict[str, Any]) -> HttpInvoker:
        return HttpInvoker(deployment["endpoint_url"], model["invoke"],
                           timeout=model["invoke"].get("timeout_seconds", 600))

    def cleanup(self, model: dict[str, Any], deployment: dict[str, Any]) -> dict[str, Any]:
        return {"deleted": [item["id"] for item in deployment.get("created", []) if running.stop(item["id"])]}
