"""Step `evaluate-<model>`: call the model once per record, then score every algorithm on those outputs."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable
from typing import Any

from lib import pricing, progress, reports, storage
from lib.aws import aws_name, derived_endpoint_name
from lib.decide.status import DEFAULT_MAX_ERROR_RATE, model_status
from lib.engine.cache import OutputCache
from lib.engine.invoke import InvocationStats, RetryPolicy, Spend, StoredRows, ask_records
from lib.engine.score import score_together
from lib.providers import get_provider
from lib.run.layout import RunLayout
from lib.run.records import FAILED, INTERRUPTED, ModelResult
from lib.scorers import scorer_for
from steps._common import context, failed, guarded


def evaluate(model: dict[str, Any], deployment: dict[str, Any], dataset: dict[str, Any],
             algorithms: list[dict[str, Any]], run_root: str, cache_root: str | None = None,
             execution_id: str | None = None, budget_share_usd: float | None = None,
             shard: dict[str, int] | None = None) -> dict[str, Any]:
    """``budget_share_usd``: what asking this model may cost at most (its share of budget.max_usd).
    ``shard`` ({"index", "count"}): ask only that share of the records and leave scoring to the model's
    `merge` step (`steps/merge.py`)."""
    step = f"evaluate-{aws_name(model['name'])}" + (f"-shard-{shard['index']}" if shard else "")  # the plan's
    layout = RunLayout.resolve(run_root, execution_id)
    if failed(deployment):
        return ModelResult.failure(model["name"], f"not evaluated: {deployment['error']}").to_dict()
    if failed(dataset):
        return ModelResult.failure(model["name"], f"not evaluated: preprocess failed ({dataset['error']})").to_dict()
    if shard:
        return guarded(step, lambda: _ask_shard(step, model, deployment, dataset, layout, cache_root,
                                                budget_share_usd, shard, execution_id))
    outcome = guarded(step, lambda: _evaluate(step, model, deployment, dataset, algorithms, layout,
                                              cache_root, budget_share_usd, execution_id).to_dict())
    return ModelResult.from_dict({"model": model["name"], **outcome}).to_dict()  # select must know whose


def interrupted(model: dict[str, Any], deployment: dict[str, Any], dataset: dict[str, Any],
                algorithms: list[dict[str, Any]], run_root: str, cache_root: str | None = None,
                execution_id: str | None = None, budget_share_usd: float | None = None,
                shard: dict[str, int] | None = None) -> dict[str, Any] | None:
    """The result of an evaluation the run's interrupt stopped (`evaluate`'s arguments): how far it got,
    from its answers file as it stands, so the summary says how many failed and why; None when that
    cannot be read here (the run's folder in S3, where the answers are still in parts). A shard is read
    with the others by its model's merge step (`steps.merge.interrupted`), which select reads."""
    if shard:
        return None
    layout = RunLayout.resolve(run_root, execution_id)
    return stopped_result(model, [layout.outputs(model["name"])], layout,
                          record_count(dataset) if dataset.get("uri") else None)


def stopped_result(model: dict[str, Any], answer_files: list[str], layout: RunLayout,
                   total: int | None) -> dict[str, Any] | None:
    """A stopped model's result from its answers files as they stand: each record's latest row (a resumed
    run appends its new rows after the earlier run's), how many failed, the first error."""
    if layout.is_remote:
        return None
    latest: dict[str, str | None] = {}  # record id -> its latest row's error, ids in file order
    for uri in answer_files:
        if storage.exists(uri):
            for row in storage.iter_jsonl(uri):  # a line still being written is left out
                latest[row["id"]] = row.get("error")
    failures = [e for e in latest.values() if e is not None]
    first = failures[0] if failures else None
    result = ModelResult(model=model["name"], provider=model.get("provider"), model_id=model.get("model_id"),
                         status=INTERRUPTED, records=total, errors=len(failures), first_error=first,
                         outputs_uri=answer_files[0] if len(answer_files) == 1 else None,
                         error=f"interrupted after {len(latest)} of {total if total is not None else '?'} records"
                               + (f", {len(failures)} of them failed (first: {first})" if failures else ""))
    return result.to_dict()


def shard_range(total: int, index: int, count: int) -> tuple[int, int]:
    """The records [start, end) of shard ``index`` of ``count``: disjoint, in order, sizes differing by one
    at most."""
    return total * index // count, total * (index + 1) // count


def _ask_shard(step: str, model: dict[str, Any], deployment: dict[str, Any], dataset: dict[str, Any],
               layout: RunLayout, cache_root: str | None, budget_share_usd: float | None,
               shard: dict[str, int], execution_id: str | None = None) -> dict[str, Any]:
    start, end = shard_range(record_count(dataset), shard["index"], shard["count"])
    spend = Spend(model.get("price"), budget_share_usd) if budget_share_usd else None
    stats = _ask(step, model, deployment, lambda: itertools.islice(storage.iter_jsonl(dataset["uri"]), start, end),
                 end - start, layout.shard_outputs(model["name"], shard["index"]), cache_root, spend, execution_id,
                 model_records=record_count(dataset))
    return {"model": model["name"], "shard": shard, "records": [start, end],
            "invocations": stats.invocations, "attempts": stats.attempts, "resumed": stats.resumed,
            "wall_s": round(stats.wall_s, 3)}


def record_count(dataset: dict[str, Any]) -> int:
    """How many records the run's dataset holds: preprocess counted them (counted again if not)."""
    if dataset.get("records") is not None:
        return int(dataset["records"])
    return sum(1 for _ in storage.iter_jsonl(dataset["uri"]))


def _ask(step: str, model: dict[str, Any], deployment: dict[str, Any],
         records: Callable[[], Iterable[dict[str, Any]]], total: int, outputs_uri: str, cache_root: str | None,
         spend: Spend | None, execution_id: str | None = None, model_records: int | None = None) -> InvocationStats:
    """Ask the model every record (``total`` of them; ``records()`` reads them one at a time, as often
    as the way of asking needs) into ``outputs_uri``. Once more of them failed than the model's error
    budget allows over all its records (``model_records``, when these are a shard), the rest are not
    asked: the model has failed whatever they answer, and a rerun asks them."""
    say = progress.reporter(step)
    provider = get_provider(model["provider"])
    invoke = model["invoke"]
    if invoke.get("invocation") == "batch_transform":  # one job asks them all; no endpoint is up
        from lib import aws
        from lib.engine.batch import transform_records

        stats = transform_records(
            records, total, model=model, deployment=deployment, identity=provider.identity(model, deployment),
            outputs_uri=outputs_uri, cache=OutputCache(cache_root) if cache_root else None,
            execution_id=execution_id,
            tags=aws.resource_tags(model["pipeline"], execution_id, model["name"]), progress=say)
        say(f"{stats.invocations} records through a batch transform job, {stats.cached} from cache, "
            f"{stats.resumed} resumed, {stats.errors} errors")
        return stats
    stats = ask_records(
        records(),
        total=total,
        invoke=invoke,
        invoker=provider.invoker(model, deployment),
        identity=provider.identity(model, deployment),
        outputs_uri=outputs_uri,
        cache=OutputCache(cache_root) if cache_root else None,
        max_concurrency=invoke.get("max_concurrency") or provider.default_max_concurrency,
        policy=RetryPolicy(max_retries=invoke.get("max_retries", 4)),
        progress=say,
        spend=spend,
        give_up=error_budget(model_records or total, invoke.get("max_error_rate", DEFAULT_MAX_ERROR_RATE),
                             (execution_id, model["name"]), outputs_uri),
    )
    say(f"{stats.invocations} model calls, {stats.cached} "
        f"from cache, {stats.resumed} resumed, {stats.errors} errors")
    return stats


# failed records so far of each model being asked in this process, by the file its answers go to: the
# shards of one model (threads of the local executor) spend one budget together
_FAILED: dict[tuple[str | None, str], dict[str, int]] = {}
_FAILED_LOCK = threading.Lock()


def error_budget(records: int, max_error_rate: float, model: tuple[str | None, str] | None = None,
                 part: str = "") -> Callable[[int], str | None]:
    """``failed -> why asking more is pointless``: once the model has failed by `model_status`'s rule,
    whatever the records still to ask answer (None before). ``model`` (execution id, name) and ``part``
    (this ask's answers file): the failures of the model's other shards asked in this process count
    too (a shard in a job of its own counts only its own)."""
    counts: dict[str, int] = {}
    if model is not None:
        with _FAILED_LOCK:
            counts = _FAILED.setdefault(model, {})

    def spent(failed: int) -> str | None:
        with _FAILED_LOCK:
            counts[part] = failed
            failed = sum(counts.values())
        if model_status(records, failed, max_error_rate) != FAILED or failed >= records:
            return None
        return (f"{failed} of {records} records failed, more than its error budget allows (max_error_rate "
                f"{max_error_rate:g}); a rerun asks the rest")

    return spent


# what a model's result keeps of its deployment: the container it ran in, which register puts in the package
KEPT_OF_DEPLOYMENT = ("endpoint_name", "image_uri", "model_data_url", "model_data_source", "environment",
                      "instance_type")


def _evaluate(step: str, model: dict[str, Any], deployment: dict[str, Any], dataset: dict[str, Any],
              algorithms: list[dict[str, Any]], layout: RunLayout, cache_root: str | None,
              budget_share_usd: float | None = None, execution_id: str | None = None) -> ModelResult:
    # one account per model: its answers and its judge's ratings both spend its share of the budget
    spend = Spend(model.get("price"), budget_share_usd) if budget_share_usd else None
    stats = _ask(step, model, deployment, lambda: storage.iter_jsonl(dataset["uri"]), record_count(dataset),
                 layout.outputs(model["name"]), cache_root, spend, execution_id)
    return scored_result(step, model, deployment, dataset, algorithms, layout, cache_root, stats, spend)


def scored_result(step: str, model: dict[str, Any], deployment: dict[str, Any], dataset: dict[str, Any],
                  algorithms: list[dict[str, Any]], layout: RunLayout, cache_root: str | None,
                  stats: InvocationStats, spend: Spend | None) -> ModelResult:
    """The model's result from its answers (in the run's outputs file, in dataset order) and how they were
    asked: every algorithm scored, the pages written. Answers and scores are streamed from and to files,
    never all held."""
    say = progress.reporter(step)
    provider = get_provider(model["provider"])
    name, invoke = model["name"], model["invoke"]
    result = ModelResult(
        model=name, provider=model["provider"], model_id=model["model_id"], **stats.summary(),
        outputs_uri=layout.outputs(name),
        deployment={k: deployment[k] for k in KEPT_OF_DEPLOYMENT if deployment.get(k)},
        register=model.get("register"),  # the sample's per-model register_config
        recipe={"model": model, "finetuned": deployment.get("finetuned")})
    result.cost_usd = pricing.cost(model.get("price"), stats.wall_s, stats.summary()["prompt_tokens"],
                                   stats.summary()["generated_tokens"])
    result.status = model_status(stats.records, stats.errors, invoke.get("max_error_rate", DEFAULT_MAX_ERROR_RATE))
    if stats.errors:
        result.error = f"{stats.errors} of {stats.records} records failed (first: {stats.first_error})"
        say(result.error)
    if stats.records and stats.errors == stats.records:
        return result  # nothing to score: every answer is an error
    # a kind that calls a model of its own (a judge) gets this step's context
    scorers = [scorer_for(algorithm, {"model": model, "layout": layout, "cache_root": cache_root, "progress": say,
                                      "spend": spend}) for algorithm in algorithms]
    together = score_stored(algorithms, scorers, layout.outputs(name),
                            [layout.scores(name, a["eval_name"]) for a in algorithms], say)
    for i, (algorithm, scorer) in enumerate(zip(algorithms, scorers, strict=True)):
        limit = algorithm.get("num_records")  # scored on the first N records when set
        scores_uri = layout.scores(name, algorithm["eval_name"])
        if i in together:
            scored = together[i]
        elif scorer.needs_model:
            scored = scorer.score_with_model(provider.invoker(model, deployment), dataset, invoke,
                                             limit or stats.records)
            scored.pop("lowest", None)  # kept from its own rows, not the answers the page shows
        else:
            scored = scorer.score(StoredRows(layout.outputs(name), limit), out=scores_uri)
        eval_name = algorithm["eval_name"]
        if scored.get("cost_usd") is not None:  # a judge's calls
            result.scoring_cost_usd = round((result.scoring_cost_usd or 0.0) + scored["cost_usd"], 6)
            if result.cost_usd is not None:  # an unknown price for the model leaves the total unknown
                result.cost_usd = round(result.cost_usd + scored["cost_usd"], 6)
        if scored["error"]:
            result.algorithm_errors[eval_name] = scored["error"]
            say(f"{algorithm['name']}: not scored: {scored['error']}")
            continue
        result.scores[eval_name] = scored["scores"]
        result.notes[eval_name] = scored["notes"]
        if scored["per_record"]:  # a scorer that keeps them (one that calls the model) rather than streams
            storage.write_jsonl(scores_uri, scored["per_record"])
        written = scored["per_record"] or not scorer.needs_model  # (an output-only scorer streamed them there)
        per_record = storage.iter_jsonl(scores_uri) if written and storage.exists(scores_uri) else []
        storage.write_text(layout.algorithm_page(name, eval_name),
                           reports.algorithm_html(name, dataset["dataset_name"], algorithm, scored,
                                                  invoke["prompt_template"], StoredRows(layout.outputs(name)),
                                                  per_record), "text/html; charset=utf-8")
        shown = ", ".join(f"{k}={v:.3f}" for k, v in scored["scores"].items() if v is not None)
        say(f"{algorithm['name']}: {shown}")
    if algorithms and not result.scores:
        result.status = FAILED
        result.error = "; ".join(f"{k} not scored: {v}" for k, v in result.algorithm_errors.items())
    return result


def score_stored(algorithms: list[dict[str, Any]], scorers: list[Any], outputs_uri: str,
                 scores_uris: list[str], say: Callable[[str], None] = lambda message: None
                 ) -> dict[int, dict[str, Any]]:
    """The results of the algorithms (by their index) whose scorers take the stored answers one at a time
    (`scoring`): scored together, the answers read once for all of them, each one's per-record scores
    written to its file of ``scores_uris``. The others are scored one by one afterwards."""
    scorings = {i: scorer.scoring(scores_uris[i], algorithm.get("num_records"))
                for i, (algorithm, scorer) in enumerate(zip(algorithms, scorers, strict=True))
                if not scorer.needs_model and hasattr(scorer, "scoring")}
    if not scorings:
        return {}
    say("scoring the answers: " + ", ".join(algorithms[i]["name"] for i in scorings))
    limits = [algorithms[i].get("num_records") for i in scorings]
    # read no further than the algorithm scored on the most records wants
    score_together(StoredRows(outputs_uri, None if None in limits else max(limits)), list(scorings.values()))
    done: dict[int, dict[str, Any]] = {}
    try:
        for i, scoring in scorings.items():
            done[i] = scoring.finish()
    except BaseException:
        for scoring in scorings.values():
            scoring.abort()  # those not finished leave nothing behind
        raise
    return done


def evaluate_again(step: str, recipe: dict[str, Any], name: str, dataset: dict[str, Any],
                   algorithms: list[dict[str, Any]], layout: RunLayout, cache_root: str | None) -> ModelResult:
    """Deploy a model from its ``recipe`` (`ModelResult.recipe`) under another ``name``, evaluate it as a
    candidate is, and remove what the deploy made, whatever happens (an interrupt included).
    A gate uses it for a champion scored on other data."""
    model = {**recipe["model"], "name": name}
    if model.get("endpoint_name") == derived_endpoint_name(recipe["model"]["name"]):
        # the name the config derived: its own, so the candidate's endpoint is never the one deleted
        model["endpoint_name"] = derived_endpoint_name(name)
    provider = get_provider(model["provider"])
    ctx = context(step, layout, cache_root, created=[])
    deployment: dict[str, Any] | None = None
    try:
        deployment = provider.deploy(model, recipe.get("finetuned"), ctx)
        deployment.setdefault("created", ctx["created"])
        return _evaluate(step, model, deployment, dataset, algorithms, layout, cache_root)
    finally:
        if provider.deploys:
            try:
                provider.cleanup(model, deployment or {"created": ctx["created"]})
            except Exception as exc:  # reported, never raised: the scores stand
                progress.say(step, f"cleanup of {name} failed: {type(exc).__name__}: {exc}")
