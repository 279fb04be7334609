"""Build the plan from a RunConfig, with no network access:
preprocess -> per model [finetune ->] deploy -> evaluate -> select -> register -> cleanup."""

from __future__ import annotations

from typing import Any

from lib.aws import aws_name
from lib.config import RunConfig
from lib.config.schema import MAX_SHARDS
from lib.plan.kinds import STEP_KINDS
from lib.plan.model import Param, Plan, Ref, Step

# `dataset.shards: auto`: one shard per this many records, rounded up; at least 1, at most
# min(MAX_SHARDS, sagemaker.max_parallel_steps)
RECORDS_PER_SHARD = 10_000


def _step(kind: str, args: dict[str, Any], description: str, model: dict[str, Any] | None = None,
          suffix: str = "", **extra: Any) -> Step:
    spec = STEP_KINDS[kind]
    compute: dict[str, Any] = {}
    if spec.warm_pool:
        compute["warm_pool"] = True
    if spec.accelerator:
        compute["accelerator"] = True
    if kind == "finetune" and model is not None:
        # the step only starts the training job; the job runs on the model's own instance type
        compute["training_instance_type"] = model["finetune"]["parameters"]["instance_type"]
    name = (step_name(kind, model["name"]) if spec.per_model and model else kind) + suffix
    return Step(name, kind, spec.function, args, model=model["name"] if model else None, compute=compute,
                description=description[:256], **extra)


def step_name(kind: str, model: str) -> str:
    """``<kind>-<model>`` with the model's AWS name (underscores become hyphens): the name of the step in
    the plan, in SageMaker and in each step's own log lines."""
    return f"{kind}-{aws_name(model)}"


def wanted_shards(records: int) -> int:
    """One shard per `RECORDS_PER_SHARD` records, rounded up, before any cap."""
    return -(-records // RECORDS_PER_SHARD)


def auto_shards(records: int, max_parallel_steps: int) -> int:
    """The shard count `auto` chooses for ``records`` records (see RECORDS_PER_SHARD)."""
    return max(1, min(wanted_shards(records), MAX_SHARDS, max_parallel_steps))


def dataset_records(dataset: dict[str, Any]) -> int:
    """The records preprocess will write for the normalised ``dataset``: a local file's (or a benchmark's local
    data's) count from validation; an S3 object is read now, a line at a time, through `lib.storage`."""
    bench = dataset.get("benchmark")
    known = bench.get("records") if bench else dataset.get("records")
    limit = dataset.get("num_records")
    if known is not None:  # a benchmark's count is limited already
        return min(known, limit) if limit else known
    if bench:
        from lib.benchmarks.data import read_items

        return len(read_items(dataset["uri"], bench, limit, bench.get("subtasks"))[0])
    from itertools import islice

    from lib import storage

    key = dataset["model_input_key"]  # preprocess keeps the first num_records lines that hold it
    return sum(1 for row in islice(storage.iter_jsonl(dataset["uri"]), limit) if key in row)


def shard_choice(config: RunConfig) -> dict[str, Any]:
    """How many evaluate steps each model gets: ``{"count", "auto", "records", "why"}``. With
    ``dataset.shards: auto`` the dataset's records are counted (``records``) and ``why`` says what was
    chosen; else ``records`` is None and ``why`` is empty."""
    dataset = config.evaluation["dataset"]
    shards = dataset.get("shards") or 1
    if shards != "auto":
        return {"count": shards, "auto": False, "records": None, "why": ""}
    from lib.config.data_files import DataFileError
    from lib.errors import UserError
    from lib.storage import StorageError

    uri = dataset["uri"]
    try:
        records = dataset_records(dataset)
    except DataFileError as exc:
        raise UserError(f"{config.config_path}: dataset.input_data_location: {exc}") from None
    except Exception as exc:  # S3 refused, or could not be reached: one paragraph, no traceback
        if not (isinstance(exc, OSError) or type(exc).__module__.startswith("botocore")):
            raise
        reason = " ".join(str(exc).split()) + " (dataset.shards: auto counts the records when the plan is built)"
        raise StorageError(uri, reason, "read") from None
    cap = min(MAX_SHARDS, (config.settings.get("sagemaker") or {}).get("max_parallel_steps") or MAX_SHARDS)
    count = auto_shards(records, cap)
    why = f"auto: {records:,} records -> {count} shard{'' if count == 1 else 's'}"
    if wanted_shards(records) > count:
        why += (f" (at most {cap}: sagemaker.max_parallel_steps)" if cap < MAX_SHARDS else f" (at most {cap})")
    return {"count": count, "auto": True, "records": records, "why": why}


def build_plan(config: RunConfig, shards: dict[str, Any] | None = None) -> Plan:
    """The plan of ``config``; ``shards``: its `shard_choice` when the caller has made it already (with
    ``dataset.shards: auto`` on S3 data, making it reads the data)."""
    ev = config.evaluation
    shards = (shards or shard_choice(config))["count"]
    run = {"run_root": Param("run_root"), "execution_id": Param("execution_id")}
    steps: list[Step] = [_step(
        "preprocess", {"dataset": ev["dataset"], "dataset_uri": Param("dataset_uri"), **run},
        f"Prepare the {ev['dataset']['dataset_name']} dataset for evaluation")]
    evaluates: list[Ref] = []
    budget_share = ev["budget"]["max_usd"] / len(ev["models"]) if ev.get("budget") else None
    for model in ev["models"]:
        name = model["name"]
        finetune_ref: Ref | None = None
        if model["finetune"]:
            steps.append(_step("finetune", {"model": model, "cache_root": Param("cache_root"), **run},
                               f"Fine-tune {model['model_id']} for {name}", model))
            finetune_ref = Ref(step_name("finetune", name))
        steps.append(_step(
            "deploy", {"model": model, "finetune_result": finetune_ref, "cache_root": Param("cache_root"), **run},
            f"Deploy {name} ({model['provider']} {model['model_id']})", model))
        evaluate = {"model": model, "dataset": Ref("preprocess"), "deployment": Ref(step_name("deploy", name)),
                    "algorithms": ev["algorithms"], "cache_root": Param("cache_root"), **run,
                    # each model may spend its share of the budget: the same rule in both executors
                    "budget_share_usd": budget_share}
        doing = f"Evaluate {name} with " + ", ".join(a["name"] for a in ev["algorithms"])
        if shards == 1:
            steps.append(_step("evaluate", evaluate, doing[:200], model))
            evaluates.append(Ref(step_name("evaluate", name)))
            continue
        for k in range(shards):  # each asks its records in parallel; the merge step scores them as one
            share = {"budget_share_usd": budget_share / shards} if budget_share else {}
            steps.append(_step("evaluate", {**evaluate, **share, "shard": {"index": k, "count": shards}},
                               f"Ask {name} shard {k + 1} of {shards}", model, suffix=f"-shard-{k}"))
        steps.append(_step("merge", evaluate, doing[:200] + f" ({shards} shards)", model,
                           varargs=[Ref(f"{step_name('evaluate', name)}-shard-{k}") for k in range(shards)]))
        evaluates.append(Ref(step_name("merge", name)))
    selection = ev["selection"]
    from lib.sinks.context import tracking_args

    tracking = tracking_args(config)  # what the sinks of select and register need (MLflow, CloudWatch, lineage)
    score_names = {a["eval_name"]: a["score_names"] for a in ev["algorithms"]}
    steps.append(_step(
        "select", {"selection": selection, "pipeline": config.pipeline_name, "score_names": score_names,
                   "dataset": Ref("preprocess"), "tracking": tracking, **run},
        f"Pick the best model by {selection['metric']} ({selection['direction']})", varargs=evaluates))
    gate = ev.get("gate")
    steps.append(_step(
        "gate", {"gate_config": gate, "selection": Ref("select"), "registry_config": ev["model_registry"],
                 "score_names": score_names, **run,
                 # a champion scored on other data is evaluated on this run's, with these
                 "dataset": Ref("preprocess"), "algorithms": ev["algorithms"], "cache_root": Param("cache_root")},
        "Decide whether the winner may ship: floors, and the registry's champion to beat" if gate
        else "No gate configured: pass the selection on"))
    steps.append(_step(
        "register", {"registry_config": ev["model_registry"], "gated": Ref("gate"),
                     "approval_status": Param("model_approval_status"), "tracking": tracking, **run},
        f"Register the selected model in {ev['model_registry']['model_package_group_name']}"))
    for model in ev["models"]:
        if model["creates_endpoint"] and model["cleanup_endpoint"] is not False:
            name = model["name"]
            # waits for its own model's evaluation only: a failing select, register or sibling
            # branch cannot keep this endpoint up (a SageMaker step after a failed one never runs)
            steps.append(_step(
                "cleanup", {"model": model, "deployment": Ref(step_name("deploy", name)),
                            "evaluation": Ref(step_name("evaluate" if shards == 1 else "merge", name))},
                f"Remove what {step_name('deploy', name)} created", model))
    from lib.providers import provider_class

    preload = [m for model in ev["models"] for m in provider_class(model["provider"]).preload_modules]
    if preload:  # fmeval imports the SageMaker SDK too: both once, in one thread, before the steps start
        preload += [a["module"] for a in ev["algorithms"] if a["module"].startswith("fmeval.")]
    return Plan(config.pipeline_name, steps, preload=list(dict.fromkeys(preload)))
