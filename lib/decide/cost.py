"""What a run will cost before it starts (`plan`, the budget), from the price table and stated
assumptions. A plain function of the validated config: no AWS call.

Assumptions (each a setting under ``cost:`` in pipeline_config.yaml): a model answers in
``seconds_per_record`` (default 2 s; divided by its max_concurrency); an endpoint takes
``endpoint_startup_minutes`` (10) to come up, billed; a fine-tune epoch takes ``training_hours_per_epoch``
(1 h); every SageMaker step job runs ``step_minutes`` (5) plus its warm pool's idle keep-alive; a Bedrock
answer uses ``prompt_tokens`` (200) and ``output_tokens`` (the model's max_new_tokens, else 256).
A local run's models cost 0; its own steps run on this machine. A judge (an LLMJudge's) is priced as a
model is, for one call per record and metric, and counted in each candidate's estimate and budget share.
"""

from __future__ import annotations

from typing import Any

DEFAULT_ASSUMPTIONS = {"seconds_per_record": 2.0, "endpoint_startup_minutes": 10.0, "training_hours_per_epoch": 1.0,
                       "step_minutes": 5.0, "prompt_tokens": 200, "output_tokens": 256}


def _records(evaluation: dict[str, Any], default: int) -> int:
    return evaluation["dataset"].get("num_records") or default


def estimate(evaluation: dict[str, Any], settings: dict[str, Any], records: int, on_sagemaker: bool) -> dict[str, Any]:
    """{"total_usd", "models": {name: {"usd", "parts": {...}}}, "steps_usd", "unknown": [names], "assumptions"}.
    ``records`` is the dataset's size (the config's num_records wins)."""
    from lib import pricing

    a = {**DEFAULT_ASSUMPTIONS, **(settings.get("cost") or {})}
    prices = pricing.table(settings.get("prices"))
    n = _records(evaluation, records)
    models: dict[str, Any] = {}
    unknown: list[str] = []
    for m in evaluation["models"]:
        parts: dict[str, float] = {}
        asking = _asking(m, n, a)
        if asking is None:
            unknown.append(m["name"])
        else:
            parts.update(asking)
        for algorithm in evaluation["algorithms"]:
            for key in algorithm.get("model_keys", ()):  # a judge rates each record on each of its metrics
                calls = (algorithm.get("num_records") or n) * len(algorithm["score_names"])
                judged = _asking(algorithm[key], calls, a)  # a deployed judge comes up once per candidate
                if judged is None:
                    unknown.append(f"{m['name']} ({algorithm['eval_name']}'s {key})")
                else:
                    parts[key] = parts.get(key, 0.0) + sum(judged.values())
        if m.get("finetune") and on_sagemaker:
            params = m["finetune"]["parameters"]
            hourly = prices["instance_usd_per_hour"].get(params.get("instance_type"))
            if hourly is None:
                unknown.append(f"{m['name']} (training on {params.get('instance_type')})")
            else:
                parts["training"] = hourly * params.get("num_instances", 1) * a["training_hours_per_epoch"] * \
                    params.get("epoch", 1)
        models[m["name"]] = {"usd": round(sum(parts.values()), 4), "parts": {k: round(v, 4) for k, v in parts.items()}}
        if "transform" in parts:  # the same records through a real-time endpoint, for comparison: it is also
            # up (and billed) while the evaluate step's job and then the cleanup step's job start
            endpoint = (_asking({**m, "invoke": {**m["invoke"], "invocation": "endpoint"}}, n, a) or {}).get(
                "endpoint", 0.0)
            idle = 2 * a["step_minutes"] / 60 * m["price"]["usd_per_hour"] if on_sagemaker else 0.0
            models[m["name"]]["endpoint_alternative_usd"] = round(endpoint + idle, 4)
    steps = 0.0
    if on_sagemaker:
        steps = _step_jobs(evaluation, settings, prices, a)
    total = round(sum(v["usd"] for v in models.values()) + steps, 2)
    return {"total_usd": total, "models": models, "steps_usd": round(steps, 4), "unknown": unknown,
            "records": n, "assumptions": a, "prices_as_of": prices["as_of"]}


def _asking(m: dict[str, Any], calls: int, a: dict[str, Any]) -> dict[str, float] | None:
    """What ``calls`` answers from model ``m`` cost: its endpoint's hours (and start-up, when the run creates
    it) or its tokens. None when its price is unknown."""
    price = m.get("price")
    if price is None:
        return None
    parts: dict[str, float] = {}
    concurrency = m["invoke"].get("max_concurrency") or 4
    if "usd_per_hour" in price:
        hours = calls * a["seconds_per_record"] / concurrency / 3600
        if m["invoke"].get("invocation") == "batch_transform":  # the job's instances share the records
            hours /= max(1, (m.get("deployment") or {}).get("num_instances", 1))
        if m.get("creates_endpoint") and price["usd_per_hour"]:
            hours += a["endpoint_startup_minutes"] / 60
        key = "transform" if m["invoke"].get("invocation") == "batch_transform" else "endpoint"
        parts[key] = price["usd_per_hour"] * hours
    if "usd_per_1k_input_tokens" in price:
        out = (m["invoke"].get("inference_parameters") or {}).get("max_new_tokens") or a["output_tokens"]
        parts["tokens"] = calls * (a["prompt_tokens"] * price["usd_per_1k_input_tokens"]
                                   + out * price.get("usd_per_1k_output_tokens", 0.0)) / 1000
    return parts


def _step_jobs(evaluation: dict[str, Any], settings: dict[str, Any], prices: dict[str, Any],
               a: dict[str, Any]) -> float:
    """Every @step is a training job on its step instance, billed for its run and its warm pool."""
    from lib.plan.kinds import STEP_KINDS, keep_alive_seconds

    sm = settings["sagemaker"]
    per_model = len(evaluation["models"])
    total = 0.0
    for kind in STEP_KINDS.values():
        count = per_model if kind.per_model else 1
        if kind.name == "finetune":
            count = sum(1 for m in evaluation["models"] if m.get("finetune"))
        hourly = prices["instance_usd_per_hour"].get(sm["instance_types"].get(kind.name, sm["step_instance_type"]), 0.0)
        minutes = a["step_minutes"] + keep_alive_seconds(kind.name, sm) / 60
        total += count * hourly * minutes / 60
    return total


def over_budget(evaluation: dict[str, Any], cost: dict[str, Any]) -> str | None:
    """Why the run must not start, or None."""
    budget = evaluation.get("budget")
    if not budget:
        return None
    if cost["total_usd"] > budget["max_usd"]:
        return (f"the estimated cost ${cost['total_usd']:.2f} is above budget.max_usd ${budget['max_usd']:g} "
                "(see `plan` for the estimate and its assumptions)")
    return None
