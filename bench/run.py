"""`make bench`: the figures the issues ask for, printed and written to bench/results.json.

1. Evaluation, end to end on the default local config, in one process: our engine (one model call per
   record, every algorithm scored on the outputs) against the naive way (fmeval `evaluate()` per
   algorithm with a model runner, as the AWS sample does), same models, data and servers.
2. Scoring throughput: 10,000 cached records x 3 algorithms; the local server's request batching.
3. SageMaker definition build time for 10 and 50 models: our way (settings as @step arguments) and
   through a SageMaker config file, under moto.

    python -m bench.run [--only engine,scoring,definition] [--records N]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lib import progress, storage  # noqa: E402
from lib.engine import fmeval_offline  # noqa: E402


def bench_engine(records: int | None) -> dict:
    """Our engine vs fmeval evaluate() per algorithm, on every model of evaluation_config.yaml."""
    fmeval_offline.prepare()
    from fmeval.data_loaders.data_config import DataConfig
    from fmeval.eval_algorithms.helper_models import helper_model

    from lib.config import load_config
    from lib.engine.invoke import invoke_records
    from lib.engine.invokers import HttpInvoker
    from lib.engine.with_model import runner_class
    from lib.providers import running
    from lib.scorers import score_outputs
    from pipelines.local_executor import configure_threads
    from steps.deploy import deploy
    from steps.finetune import finetune
    from steps.preprocess import preprocess

    # The naive side cannot reach BERTScore's model offline; give it a free BERTScore so it can run
    # at all. This only makes the naive figure faster than it would be, never ours.
    helper_model.BertscoreHelperModel.get_helper_scores = lambda self, target, output: 0.0

    configure_threads(1)
    cfg = load_config(ROOT / "evaluation_config.yaml")
    ev = cfg.evaluation
    cache_root = cfg.settings["local"]["model_cache_dir"]
    work = Path(tempfile.mkdtemp(prefix="bench-engine-"))
    dataset = dict(ev["dataset"], num_records=records or ev["dataset"]["num_records"])
    data = preprocess(dataset, None, str(work))
    rows_in = storage.read_jsonl(data["uri"])
    out: dict = {"records": len(rows_in), "algorithms": [a["name"] for a in ev["algorithms"]], "models": {}}
    totals = {"ours_s": 0.0, "naive_s": 0.0, "ours_calls": 0, "naive_calls": 0}
    for model in ev["models"]:
        ft = finetune(model, str(work), cache_root) if model["finetune"] else None
        dep = deploy(model, ft, str(work), "bench", cache_root)
        endpoint = running.get(dep["endpoint_id"])
        try:
            served = sum(endpoint.batcher.batches)
            started = time.perf_counter()
            rows, stats = invoke_records(
                rows_in, invoke=model["invoke"], invoker=HttpInvoker(dep["endpoint_url"], model["invoke"]),
                identity="bench", outputs_uri=str(work / model["name"] / "outputs.jsonl"), cache=None,
                max_concurrency=16)
            ours_scores = {a["eval_name"]: score_outputs(a, rows)["scores"] for a in ev["algorithms"]}
            ours_s = time.perf_counter() - started
            ours_calls = sum(endpoint.batcher.batches) - served

            served = sum(endpoint.batcher.batches)
            started = time.perf_counter()
            naive_scores = {}
            for a in ev["algorithms"]:
                module = __import__(a["module"], fromlist=[a["name"]])
                algo = getattr(module, a["name"])(getattr(module, a["config_class"])(**a["options"]))
                config = DataConfig(dataset_name="bench", dataset_uri=data["uri"],
                                    dataset_mime_type="application/jsonlines", model_input_location="model_input",
                                    target_output_location="target_output")
                runner = runner_class()(HttpInvoker(dep["endpoint_url"], model["invoke"]))
                result = algo.evaluate(model=runner, dataset_config=config,
                                       prompt_template=model["invoke"]["prompt_template"],
                                       num_records=len(rows_in), save=False)
                naive_scores[a["eval_name"]] = {s.name: s.value for s in result[0].dataset_scores}
            naive_s = time.perf_counter() - started
            naive_calls = sum(endpoint.batcher.batches) - served
        finally:
            running.stop_all()
        fk_ours = ours_scores["factual_knowledge"]["factual_knowledge"]
        fk_naive = naive_scores["factual_knowledge"]["factual_knowledge"]
        out["models"][model["name"]] = {
            "ours_s": round(ours_s, 1), "naive_s": round(naive_s, 1), "ours_calls": ours_calls,
            "naive_calls": naive_calls, "factual_knowledge_ours": fk_ours, "factual_knowledge_naive": fk_naive}
        totals["ours_s"] += ours_s
        totals["naive_s"] += naive_s
        totals["ours_calls"] += ours_calls
        totals["naive_calls"] += naive_calls
        print(f"  {model['name']:<24} ours {ours_s:6.1f}s {ours_calls:4d} calls | naive {naive_s:6.1f}s "
              f"{naive_calls:4d} calls | factual_knowledge {fk_ours:.3f} vs {fk_naive:.3f}", flush=True)
    totals["ratio"] = round(totals["naive_s"] / totals["ours_s"], 2)
    out.update({k: round(v, 1) if isinstance(v, float) else v for k, v in totals.items()})
    print(f"  total: ours {totals['ours_s']:.1f}s, {totals['ours_calls']} calls; naive {totals['naive_s']:.1f}s, "
          f"{totals['naive_calls']} calls; naive/ours = {totals['ratio']}x")
    return out


def bench_server(n: int = 32) -> dict:
    """The local server's request batching: n questions one at a time, then 16 in flight."""
    import tempfile

    from lib.config import load_config
    from lib.engine.invoke import invoke_records
    from lib.providers import running
    from lib.providers.local import LocalProvider
    from pipelines.local_executor import configure_threads

    configure_threads(1)
    cfg = load_config(ROOT / "evaluation_config.yaml")
    model = cfg.models[0]
    provider = LocalProvider()
    dep = provider.deploy(model, None, {"cache_root": cfg.settings["local"]["model_cache_dir"],
                                        "progress": lambda m: None})
    endpoint = running.get(dep["endpoint_id"])
    trivia = [json.loads(line) for line in (ROOT / "data" / "trivia_eval.jsonl").read_text().splitlines()]
    records = [{"id": f"r{i}", "model_input": trivia[i]["question"], "target_output": ""} for i in range(n)]
    out = {}
    try:
        for label, concurrency in (("one_at_a_time", 1), ("batched_16", 16)):
            work = Path(tempfile.mkdtemp(prefix="bench-server-"))
            started = time.perf_counter()
            invoke_records(records, invoke=model["invoke"], invoker=provider.invoker(model, dep), identity="bench",
                           outputs_uri=str(work / "outputs.jsonl"), cache=None, max_concurrency=concurrency)
            seconds = time.perf_counter() - started
            out[label] = {"seconds": round(seconds, 1), "questions_per_s": round(n / seconds, 2)}
        out["largest_batch"] = max(endpoint.batcher.batches)
    finally:
        provider.cleanup(model, dep)
    out["speedup"] = round(out["batched_16"]["questions_per_s"] / out["one_at_a_time"]["questions_per_s"], 2)
    print(f"  {n} questions: one at a time {out['one_at_a_time']['questions_per_s']}/s, 16 in flight "
          f"{out['batched_16']['questions_per_s']}/s ({out['speedup']}x, batches up to {out['largest_batch']})")
    return out


def bench_scoring(n: int = 10_000) -> dict:
    """Score n cached records with three algorithms (no model call)."""
    from lib.scorers import fmeval_algorithms as algorithms
    from lib.scorers import score_outputs

    fmeval_offline.prepare()
    trivia = [json.loads(line) for line in (ROOT / "data" / "trivia_eval.jsonl").read_text().splitlines()]
    rng = random.Random(1)
    rows = []
    for i in range(n):
        q = trivia[i % len(trivia)]
        answer = q["answer"].split("<OR>")[0]
        output = rng.choice([answer, f"The answer is {answer}.", "I do not know.", answer.lower()])
        rows.append({"id": f"r{i}", "model_input": q["question"], "target_output": q["answer"], "output": output,
                     "error": None})
    labels = [{**r, "target_output": "yes" if i % 2 else "no", "output": rng.choice(["yes", "no", "maybe"])}
              for i, r in enumerate(rows)]
    chosen = [("FactualKnowledge", rows, {"target_output_delimiter": "<OR>"}),
              ("QAAccuracy", rows, {"target_output_delimiter": "<OR>"}),
              ("ClassificationAccuracy", labels, {"valid_labels": ["yes", "no"]})]
    for name, _, _ in chosen:  # import and construct once outside the clock, as a step does
        spec = algorithms.BUILTIN[name]
        score_outputs({"name": name, "module": spec.module, "config_class": spec.config_class,
                       "eval_name": spec.eval_name, "options": {}}, rows[:1])
    started = time.perf_counter()
    per = {}
    for name, data, options in chosen:
        spec = algorithms.BUILTIN[name]
        t = time.perf_counter()
        result = score_outputs({"name": name, "module": spec.module, "config_class": spec.config_class,
                                "eval_name": spec.eval_name, "options": options}, data)
        per[name] = round(time.perf_counter() - t, 2)
        assert len(result["per_record"]) == n
    total = time.perf_counter() - started
    print(f"  {n} records x 3 algorithms scored in {total:.1f}s ({3 * n / total:,.0f} record-scores/s): {per}")
    return {"records": n, "algorithms": 3, "seconds": round(total, 2), "per_algorithm_s": per}


def bench_definition() -> dict:
    """Definition build time, our way and through a SageMaker config file, under moto."""
    import logging

    import yaml
    from moto import mock_aws

    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    role, image = "arn:aws:iam::123456789012:role/Bench", "123456789012.dkr.ecr.us-east-1.amazonaws.com/bench:1"
    work = Path(tempfile.mkdtemp(prefix="bench-definition-"))
    data = work / "eval.jsonl"
    data.write_text((ROOT / "data" / "trivia_eval.jsonl").read_text())
    results = {}
    with mock_aws():
        import boto3

        boto3.client("s3").create_bucket(Bucket="bench-bucket")
        from lib.config import load_config
        from lib.plan import Param, Ref, build_plan, call_arguments
        from pipelines import sagemaker_executor as se

        se.quiet_sdk()
        for n in (10, 50):
            config = {"pipeline": {"name": f"bench-{n}"},
                      "dataset": {"dataset_name": "trivia", "input_data_location": str(data),
                                  "model_input_key": "question", "target_output_key": "answer"},
                      "models": [{"name": f"m{i}", "model_id": "huggingface-llm-falcon-7b-bf16"} for i in range(n)],
                      "algorithms": [{"algorithm": "FactualKnowledge"}]}
            (work / "config.yaml").write_text(yaml.safe_dump(config))
            (work / "pipeline_config.yaml").write_text(yaml.safe_dump({"sagemaker": {
                "role_arn": role, "image_uri": image, "bucket": "bench-bucket", "prefix": "bench",
                "region": "us-east-1"}}))
            cfg = load_config(work / "config.yaml")
            started = time.perf_counter()
            assembly = se.build(cfg)
            definition = json.loads(assembly.pipeline.definition())
            ours = time.perf_counter() - started

            # The same steps with role, image, environment and tags from a SageMaker config file.
            sm_config = work / "sagemaker_config.yaml"
            sm_config.write_text(yaml.safe_dump({"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {
                "Session": {"DefaultS3Bucket": "bench-bucket", "DefaultS3ObjectKeyPrefix": "bench"},
                "RemoteFunction": {"RoleArn": role, "ImageUri": image, "InstanceType": "ml.m5.xlarge",
                                   "EnvironmentVariables": {"LLM_EVAL_OFFLINE": "0"},
                                   "Tags": [{"Key": "team", "Value": "ml"}]}}}}}))
            os.environ["SAGEMAKER_USER_CONFIG_OVERRIDE"] = str(sm_config)
            try:
                import sagemaker
                from sagemaker.workflow.execution_variables import ExecutionVariables
                from sagemaker.workflow.function_step import step
                from sagemaker.workflow.pipeline import Pipeline

                started = time.perf_counter()
                session = sagemaker.Session(boto3.Session(region_name="us-east-1"))
                plan = build_plan(cfg)
                delayed: dict = {}
                values = {"run_root": "s3://bench-bucket/bench/runs/{execution_id}", "cache_root": None,
                          "execution_id": ExecutionVariables.PIPELINE_EXECUTION_ID, "dataset_uri": None,
                          "model_approval_status": "PendingManualApproval"}

                def resolve(v, delayed=delayed, values=values):
                    return delayed[v.step] if isinstance(v, Ref) else values[v.name] if isinstance(v, Param) else v

                for s in plan.steps:
                    module, _, fn_name = s.function.partition(":")
                    fn = getattr(__import__(module, fromlist=[fn_name]), fn_name)
                    args, kwargs = call_arguments(s, fn, resolve)
                    delayed[s.name] = step(fn, name=s.name, display_name=s.name, description=s.kind,
                                           keep_alive_period_in_seconds=s.compute.get("keep_alive_period_in_seconds",
                                                                                      0))(*args, **kwargs)
                logging.getLogger("sagemaker").setLevel(logging.WARNING)
                via_file = json.loads(Pipeline(name=f"bench-file-{n}", steps=list(delayed.values()),
                                               sagemaker_session=session).definition())
                with_file = time.perf_counter() - started
            finally:
                del os.environ["SAGEMAKER_USER_CONFIG_OVERRIDE"]
            assert len(via_file["Steps"]) == len(definition["Steps"])
            results[n] = {"steps": len(definition["Steps"]), "ours_s": round(ours, 2),
                          "config_file_s": round(with_file, 2), "ratio": round(with_file / ours, 1)}
            print(f"  {n} models ({len(definition['Steps'])} steps): ours {ours:.1f}s, with a SageMaker config file "
                  f"{with_file:.1f}s ({with_file / ours:.1f}x slower)", flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="server,scoring,definition,engine")
    parser.add_argument("--records", type=int, default=None, help="records for the engine benchmark (default: all)")
    args = parser.parse_args()
    progress.set_quiet(True)
    results = {}
    parts = args.only.split(",")
    if "definition" in parts:
        print("SageMaker definition build time:", flush=True)
        results["definition"] = bench_definition()
    if "server" in parts:
        print("Local server, request batching:", flush=True)
        results["server"] = bench_server()
    if "scoring" in parts:
        print("Scoring cached outputs:", flush=True)
        results["scoring"] = bench_scoring()
    if "engine" in parts:
        print("Evaluation end to end, default config (our engine vs fmeval evaluate() per algorithm):", flush=True)
        results["engine"] = bench_engine(args.records)
    import resource

    peak_mb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    results["peak_memory_mb"] = round(peak_mb)
    print(f"peak memory of one process: {peak_mb:.0f} MB")
    out = ROOT / "bench" / "results.json"
    previous = json.loads(out.read_text()) if out.exists() else {}
    out.write_text(json.dumps({**previous, **results}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
