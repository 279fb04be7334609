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


# what training reads from each row: the first of these keys that holds something
QUESTION_KEYS = ("question", "instruction", "prompt", "model_input")
ANSWER_KEYS = ("answer", "response", "completion", "target_output")


def _first(row: dict[str, Any], keys: tuple[str, ...]) -> Any:
    return next((row[k] for k in keys if row.get(k)), None)


def _training_pairs(uri: str) -> list[tuple[str, str]]:
    """(question, first accepted answer) from JSON Lines in the usual instruction-tuning key names."""
    p = Path(uri)
    files = sorted(p.glob("*.jsonl")) if p.is_dir() else [p]
    pairs = []
    for f in files:
        for row in storage.read_jsonl(str(f)):
            q, a = _first(row, QUESTION_KEYS), _first(row, ANSWER_KEYS)
            if q and a:
                pairs.append((str(q), str(a).split("<OR>")[0].strip()))
    return pairs


def _check_training_rows(uri: str) -> None:
    """Every row of the local training data holds a question and an answer as text, under the keys
    `_training_pairs` reads (a row without them would be dropped silently)."""
    from lib.config import data_files

    if storage.is_remote(uri) or "://" in uri:
        raise ProviderConfigError(["finetuning", "train_data_path"], "a local model trains on local data: give "
                                  "a JSON Lines file or a folder of them on this machine, not " + uri)
    try:
        files = data_files.local_files(Path(uri), "the training data", folder_ok=True)
        if not files:
            raise data_files.DataFileError(f"the folder {uri} holds no .jsonl file")
        count = 0
        for file in files:
            for number, row in data_files.records(file):
                for keys, role in ((QUESTION_KEYS, "question"), (ANSWER_KEYS, "answer")):
                    value = _first(row, keys)
                    if value is None:
                        has = ", ".join(list(row)[:12]) or "nothing"
                        raise data_files.DataFileError(
                            f"{file} line {number} has no {role}: training reads the first of "
                            f"{', '.join(keys)} that is not empty; the row has {has}")
                    if not isinstance(value, (str, int, float)) or isinstance(value, bool):  # training str()s
                        key = next(k for k in keys if row.get(k))
                        raise data_files.DataFileError(
                            f"{file} line {number}: '{key}' is {str(value)[:40]!r}, not text")
                count += 1
        if count == 0:
            raise data_files.DataFileError(f"the training data {uri} holds no rows")
    except data_files.DataFileError as exc:
        raise ProviderConfigError(["finetuning", "train_data_path"], str(exc)) from None


class LocalProvider(Provider):
    name = "local"
    default_max_concurrency = 16  # the server batches concurrent requests
    runs_on_sagemaker = False  # the model lives on this machine
    default_inference_parameters = {"max_new_tokens": 32}  # CPU generation is slow: short answers
    log_probabilities = True  # its server scores a prompt's tokens in one forward pass (TGI's details.prefill)

    @classmethod
    def validate(cls, model: dict[str, Any], base: Path) -> None:
        """``model_id`` is a model this tool ships or an existing .gguf file or Hugging Face model folder
        (made absolute here); local training data is read and every row checked."""
        model_id = model["model_id"]
        if model_id not in local_model.BUILTIN_MODELS:
            from lib.config import data_files
            from lib.errors import did_you_mean

            path = Path(os.path.expanduser(model_id))
            path = path if path.is_absolute() else (base / path).resolve()
            known = ", ".join(local_model.BUILTIN_MODELS)
            try:
                kind = data_files.kind_of(path, "the local model")
            except data_files.DataFileError as exc:
                raise ProviderConfigError(["model_id"], str(exc)) from None
            if kind == "missing":
                raise ProviderConfigError(["model_id"], f"'{model_id}' is neither a local model this tool knows "
                                          f"({known}){did_you_mean(model_id, local_model.BUILTIN_MODELS)} nor an "
                                          f"existing .gguf file or Hugging Face model folder ({path} does not exist)")
            if kind == "folder" and not (path / "config.json").is_file():
                raise ProviderConfigError(["model_id"], f"the folder {path} is not a Hugging Face model folder "
                                          "(it has no config.json)")
            if kind != "folder" and (path.suffix.lower() != ".gguf" or kind != "file"):
                raise ProviderConfigError(["model_id"], f"{path} is not a .gguf file nor a Hugging Face model "
                                          f"folder; or name a model this tool knows ({known})")
            model["model_id"] = str(path)
        if model.get("finetune"):
            _check_training_rows(model["finetune"]["train_data_uri"])

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
        system_prompt = (model.get("invoke") or {}).get("system_prompt")  # trained as it will be served
        key = hashlib.sha256(json.dumps({
            "base": str(base), "data": _file_digest(ft["train_data_uri"]), "params": params,
            "system_prompt": system_prompt, "code": FINETUNE_CODE_VERSION},
            sort_keys=True, default=str).encode()).hexdigest()[:20]
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
            metrics = local_finetune.train(base, pairs, tmp, params, say, system_prompt)
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
        # served at once, loaded when first asked: a rerun whose answers are all cached loads nothing
        if artifact and (Path(artifact) / "config.json").exists():  # a full fine-tune saved a whole model
            lm = local_model.lazy(artifact, context["cache_root"], progress=say)
        else:  # the base model, with a LoRA adapter merged in when there is one
            local_model.source_path(model["model_id"])  # a missing model fails its deploy, not each record
            if artifact and not Path(artifact).is_dir():
                raise local_model.LocalModelError(f"the fine-tuned adapter {artifact} does not exist")
            lm = local_model.lazy(model["model_id"], context["cache_root"], artifact, say)
        endpoint = LocalEndpoint(lm, model["name"])
        endpoint_id = f"local:{model['name']}:{endpoint.port}"
        running.add(endpoint_id, endpoint)
        say(f"serving on {endpoint.url} (/ping, /invocations); the model loads when first asked")
        return {"endpoint_url": endpoint.url, "endpoint_id": endpoint_id,
                "artifact_identity": (finetuned or {}).get("artifact_identity", ""),
                "created": [{"type": "local-endpoint", "id": endpoint_id}]}

    def invoker(self, model: dict[str, Any], deployment: dict[str, Any]) -> HttpInvoker:
        endpoint = running.get(deployment.get("endpoint_id", ""))
        return HttpInvoker(deployment["endpoint_url"], model["invoke"],
                           timeout=model["invoke"].get("timeout_seconds", 600),
                           ready=endpoint.lm.get if endpoint is not None else None)

    def cleanup(self, model: dict[str, Any], deployment: dict[str, Any]) -> dict[str, Any]:
        return {"deleted": [item["id"] for item in deployment.get("created", []) if running.stop(item["id"])]}
