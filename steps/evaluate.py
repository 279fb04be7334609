"""Step `evaluate-<model>`: call the model once per record, then score every algorithm on those outputs."""

from __future__ import annotations

from typing import Any

from lib import progress, reports, storage
from lib.evaluation import RetryPolicy, invoke_records
from lib.output_cache import OutputCache
from lib.providers import get_provider
from lib.scoring import score_outputs
from steps._common import failed, guarded


def evaluate(model: dict[str, Any], deployment: dict[str, Any], dataset: dict[str, Any],
             algorithms: list[dict[str, Any]], run_root: str, cache_root: str | None = None,
             execution_id: str | None = None) -> dict[str, Any]:
    step = f"evaluate-{model['name']}"
    run_root = storage.run_root(run_root, execution_id)
    if failed(deployment):
        return {"status": "failed", "error": f"not evaluated: {deployment['error']}", "model": model["name"]}
    if failed(dataset):
        return {"status": "failed", "error": f"not evaluated: preprocess failed ({dataset['error']})",
                "model": model["name"]}
    result = guarded(step, lambda: _evaluate(step, model, deployment, dataset, algorithms, run_root, cache_root))
    return {"model": model["name"], **result}  # select must know whose failure this is


def _evaluate(step: str, model: dict[str, Any], deployment: dict[str, Any], dataset: dict[str, Any],
              algorithms: list[dict[str, Any]], run_root: str, cache_root: str | None) -> dict[str, Any]:
    say = progress.reporter(step)
    provider = get_provider(model["provider"])
    records = storage.read_jsonl(dataset["uri"])
    model_dir = storage.join(run_root, "models", model["name"])
    invoke = model["invoke"]
    rows, stats = invoke_records(
        records,
        invoke=invoke,
        invoker=provider.invoker(model, deployment),
        identity=provider.identity(model, deployment),
        outputs_uri=storage.join(model_dir, "outputs.jsonl"),
        cache=OutputCache(cache_root) if cache_root else None,
        max_concurrency=invoke.get("max_concurrency") or provider.default_max_concurrency,
        policy=RetryPolicy(max_retries=invoke.get("max_retries", 4)),
        progress=say,
    )
    say(f"{stats.invocations} model calls, {stats.cached} "
        f"from cache, {stats.resumed} resumed, {stats.errors} errors")
    scores: dict[str, dict[str, float]] = {}
    algorithm_errors: dict[str, str] = {}
    notes: dict[str, list[str]] = {}
    for algorithm in algorithms:
        limit = algorithm.get("num_records") or len(records)  # scored on the first N records when set
        if algorithm["needs_model"]:
            from lib.model_algorithms import evaluate_with_model

            local_data = storage.local_copy(dataset["uri"])
            result = evaluate_with_model(algorithm, provider.invoker(model, deployment), local_data,
                                         dataset["dataset_name"], invoke["prompt_template"], limit)
        else:
            result = score_outputs(algorithm, rows[:limit])
        if result["error"]:
            algorithm_errors[algorithm["eval_name"]] = result["error"]
            say(f"{algorithm['name']}: not scored: {result['error']}")
            continue
        scores[algorithm["eval_name"]] = result["scores"]
        notes[algorithm["eval_name"]] = result["notes"]
        if result["per_record"]:
            storage.write_jsonl(storage.join(model_dir, f"{algorithm['eval_name']}.jsonl"), result["per_record"])
        storage.write_text(storage.join(model_dir, f"{algorithm['eval_name']}.html"),
                           reports.algorithm_html(model["name"], dataset["dataset_name"], algorithm, result,
                                                  invoke["prompt_template"], rows), "text/html; charset=utf-8")
        shown = ", ".join(f"{k}={v:.3f}" for k, v in result["scores"].items() if v is not None)
        say(f"{algorithm['name']}: {shown}")
    return {"model": model["name"], "provider": model["provider"], "model_id": model["model_id"],
            **stats.summary(), "scores": scores, "algorithm_errors": algorithm_errors, "notes": notes,
            "outputs_uri": storage.join(model_dir, "outputs.jsonl"),
            "deployment": {k: deployment.get(k) for k in ("endpoint_name", "image_uri", "model_data_url")
                           if deployment.get(k)},
            "register": model.get("register")}  # the sample's per-model register_config
