"""`make bench`: the figures README's "Benchmarks" table shows, printed and written to bench/results.json.

1. Evaluation, end to end on the default local config's first model (`--engine-models N` for more),
   in one process: our engine (one model call per record, every algorithm scored on the outputs)
   against the naive way (fmeval `evaluate()` per algorithm with a model runner, as the AWS sample
   does), same model, data and server.
2. Orchestration: the `run` command (a new process: imports, set-up and every step inside the clock)
   on 10,000 records x 3 algorithms against an instant OpenAI-compatible server (HTTP/1.1, its
   connections kept, as a model server keeps them), against a plain
   client asking the same server the same questions with the same concurrency; a 10-record run for
   the fixed start-up; wall time and peak memory at 10,000 and 100,000 records, unsharded and with
   `dataset.shards: 4` (and 4 local workers).
3. Scoring throughput: 10,000 cached records x 3 algorithms; the local server (concurrent requests over HTTP,
   gathered into batches) against raw batched `generate` on the same questions.
4. SageMaker definition build time for 5, 10, 50 and 200 models, against an S3 stand-in in its own process
   that takes every object at once (real S3 is another machine's work): our way (settings as @step
   arguments, the SDK's step uploads through one S3 client in parallel: `pipelines/sdk_uploads.py`); for 5,
   through a SageMaker config file; for 50, also with the SDK's own uploads (one after another, a new S3
   resource each); for 200, the build alone and the build under moto in the same process (as the tests run it).

    python -m bench.run [--quick] [--only orchestration,memory,definition,server,scoring,engine]
                        [--records N] [--baseline GIT-REF] [--write-readme]

`--quick` (about 2 minutes) measures a subset at smaller sizes and writes bench/results-quick.json,
leaving bench/results.json (README's source) alone. `--baseline REF` also runs the orchestration
case with the code of git revision REF (a temporary worktree), for a before/after in one run.
`--write-readme` puts the table made from bench/results.json into README's "Benchmarks" section
(tests/test_readme_figures.py checks that they agree).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lib import progress, storage  # noqa: E402
from lib.engine import fmeval_offline  # noqa: E402


def bench_engine(records: int | None, models: int = 1) -> dict:
    """Our engine vs fmeval evaluate() per algorithm, on the first ``models`` models of
    evaluation_config.yaml that need no fine-tuning (a fine-tune takes minutes; its model is served
    and asked like the others)."""
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
    # fmeval's algorithms: those the naive way can run too (a scorer of our own kind has no `evaluate()`)
    algorithms = [a for a in ev["algorithms"] if a.get("kind", "fmeval") == "fmeval"]
    out: dict = {"records": len(rows_in), "algorithms": [a["name"] for a in algorithms], "models": {}}
    totals = {"ours_s": 0.0, "naive_s": 0.0, "ours_calls": 0, "naive_calls": 0}
    for model in [m for m in ev["models"] if not m["finetune"]][:models]:
        ft = None
        dep = deploy(model, ft, str(work), "bench", cache_root)
        endpoint = running.get(dep["endpoint_id"])
        try:
            served = sum(endpoint.batcher.batches)
            started = time.perf_counter()
            rows, stats = invoke_records(
                rows_in, invoke=model["invoke"], invoker=HttpInvoker(dep["endpoint_url"], model["invoke"]),
                identity="bench", outputs_uri=str(work / model["name"] / "outputs.jsonl"), cache=None,
                max_concurrency=16)
            ours_scores = {a["eval_name"]: score_outputs(a, rows)["scores"] for a in algorithms}
            ours_s = time.perf_counter() - started
            ours_calls = sum(endpoint.batcher.batches) - served

            served = sum(endpoint.batcher.batches)
            started = time.perf_counter()
            naive_scores = {}
            for a in algorithms:
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


def bench_server(n: int = 32, rounds: int = 3) -> dict:
    """The local server against raw batched ``generate`` on the same n questions and parameters: the model
    loaded once, ``generate`` on batches of the server's ``max_batch`` (timed around generation only), and
    the project's path (the engine's ``invoke_records`` with the local provider's concurrency, over HTTP to
    the local server; first request to last answer). Alternated ``rounds`` times; the median round."""
    import tempfile

    from lib.config import load_config
    from lib.engine.invoke import invoke_records, make_prompt
    from lib.engine.invokers import build_body
    from lib.providers import running
    from lib.providers.local import LocalProvider
    from lib.providers.local_server import _GEN_KEYS, _to_text
    from pipelines.local_executor import configure_threads

    configure_threads(1)
    cfg = load_config(ROOT / "evaluation_config.yaml")
    model = cfg.models[0]
    invoke = model["invoke"]
    provider = LocalProvider()
    concurrency = invoke.get("max_concurrency") or provider.default_max_concurrency
    dep = provider.deploy(model, None, {"cache_root": cfg.settings["local"]["model_cache_dir"],
                                        "progress": lambda m: None})
    endpoint = running.get(dep["endpoint_id"])
    lm, batcher = endpoint.lm, endpoint.batcher
    trivia = [json.loads(line) for line in (ROOT / "data" / "trivia_eval.jsonl").read_text().splitlines()]
    records = [{"id": f"r{i}", "model_input": trivia[i]["question"], "target_output": ""} for i in range(n)]
    # what the server makes of each request: the same body, chat text and generation parameters
    bodies = [build_body(invoke, make_prompt(invoke["prompt_template"], r["model_input"])) for r in records]
    params = bodies[0].get("parameters") or {}
    gen = {k: params[k] for k in _GEN_KEYS if k in params}
    texts = [_to_text(lm, b["inputs"], params.get("system_prompt")) for b in bodies]

    def raw() -> list[str]:
        return [r["generated_text"] for i in range(0, n, batcher.max_batch)
                for r in lm.generate(texts[i:i + batcher.max_batch], **gen)]

    def server() -> list[str]:
        work = Path(tempfile.mkdtemp(prefix="bench-server-"))
        try:
            rows, _ = invoke_records(records, invoke=invoke, invoker=provider.invoker(model, dep), identity="bench",
                                     outputs_uri=str(work / "outputs.jsonl"), cache=None,
                                     max_concurrency=concurrency)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return [row["output"] for row in rows]

    def timed(fn) -> tuple[float, list[str]]:
        started = time.perf_counter()
        answers = fn()
        return time.perf_counter() - started, answers

    runs, identical = [], True
    try:
        lm.generate(texts[:2], **gen)  # warm-up, for both ways
        for i in range(rounds):  # alternating which goes first, so a machine getting busier favours neither
            before = len(batcher.batches)
            if i % 2:
                (server_s, served), (raw_s, raw_answers) = timed(server), timed(raw)
            else:
                (raw_s, raw_answers), (server_s, served) = timed(raw), timed(server)
            identical = identical and served == raw_answers
            runs.append({"raw_s": round(raw_s, 1), "server_s": round(server_s, 1),
                         "ratio": round(server_s / raw_s, 2), "batches": batcher.batches[before:]})
    finally:
        provider.cleanup(model, dep)
    middle = sorted(runs, key=lambda r: r["ratio"])[len(runs) // 2]  # the median round: one disturbed one aside
    out = {"questions": n, "max_new_tokens": gen.get("max_new_tokens"), "max_batch": batcher.max_batch,
           "concurrency": concurrency, **middle, "identical": identical, "rounds": runs}
    print(f"  {n} questions, the median of {rounds} rounds: raw batched generate {out['raw_s']} s, the server "
          f"with {concurrency} in flight {out['server_s']} s ({out['ratio']}x, batches {out['batches']}); all "
          f"rounds {[(r['ratio'], r['batches']) for r in runs]}; identical answers: {identical}")
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


class _SdkUploads:
    """Times the SageMaker SDK's own uploads while a definition is rendered the SDK's way (it uploads
    each step's function, arguments and their metadata: four objects per step)."""

    def __init__(self) -> None:
        import sagemaker.s3

        self.count, self.seconds = 0, 0.0
        self._sdk = sagemaker.s3.S3Uploader.upload_bytes
        sagemaker.s3.S3Uploader.upload_bytes = staticmethod(self._upload)

    def _upload(self, b, s3_uri, kms_key=None, sagemaker_session=None):
        started = time.perf_counter()
        try:
            return self._sdk(b, s3_uri, kms_key=kms_key, sagemaker_session=sagemaker_session)
        finally:
            self.count += 1
            self.seconds += time.perf_counter() - started

    def reset(self) -> None:
        self.count, self.seconds = 0, 0.0


# the end of each stand-in server script (its own process): serve on a free port, and say which
SERVE = r"""
ThreadingHTTPServer.request_queue_size = 256
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(server.server_port, flush=True)
server.serve_forever()
"""


@contextlib.contextmanager
def _stand_in(script: str, *args: str):
    """A stand-in server script run in its own process; yields its port."""
    proc = subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True)
    try:
        yield int(proc.stdout.readline())
    finally:
        proc.terminate()
        proc.wait()


INSTANT_S3 = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BUCKETS = ("<?xml version='1.0' encoding='UTF-8'?><ListAllMyBucketsResult><Owner><ID>bench</ID></Owner><Buckets>"
           "<Bucket><Name>%s</Name><CreationDate>2026-01-01T00:00:00.000Z</CreationDate></Bucket></Buckets>"
           "</ListAllMyBucketsResult>" % sys.argv[1]).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # connections kept, as S3's

    def do_PUT(self):  # an object (or the bucket): taken and dropped
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("ETag", '"0"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):  # ListBuckets, which the SDK's default_bucket() asks
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(BUCKETS)))
        self.end_headers()
        self.wfile.write(BUCKETS)

    def log_message(self, *args):
        pass

""" + SERVE


@contextlib.contextmanager
def instant_s3(bucket: str):
    """An S3 stand-in in its own process that takes every PUT at once, as real S3 is another machine's
    work; boto3 sent to it through AWS_ENDPOINT_URL while the block runs."""
    before = os.environ.get("AWS_ENDPOINT_URL")
    with _stand_in(INSTANT_S3, bucket) as port:
        os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{port}"
        try:
            yield
        finally:
            os.environ.pop("AWS_ENDPOINT_URL")
            if before is not None:
                os.environ["AWS_ENDPOINT_URL"] = before


def _split(se, config: dict, work: Path, n: int) -> dict:
    """The same build with its uploads kept in memory instead of sent (what the build itself costs), and
    again under moto in this process (what the tests see: moto's work charged to the build)."""
    import yaml
    from moto import mock_aws

    from lib.config import load_config
    from pipelines import sdk_uploads

    kept: list[str] = []
    submit, wait = sdk_uploads._Uploads.submit, sdk_uploads._Uploads.wait

    def keep(self, body, s3_uri, kms_key):
        kept.append(s3_uri)
        return s3_uri

    def timed(name: str) -> tuple[float, int]:
        (work / "config.yaml").write_text(yaml.safe_dump({**config, "pipeline": {"name": name}}))
        cfg = load_config(work / "config.yaml")
        started = time.perf_counter()
        steps = len(json.loads(se.build(cfg).pipeline.definition())["Steps"])
        return time.perf_counter() - started, steps

    sdk_uploads._Uploads.submit, sdk_uploads._Uploads.wait = keep, lambda self: len(kept)
    try:
        render, steps = timed(f"bench-{n}-c")
    finally:
        sdk_uploads._Uploads.submit, sdk_uploads._Uploads.wait = submit, wait
    assert steps and len(kept) == 4 * steps
    endpoint = os.environ.pop("AWS_ENDPOINT_URL")
    try:
        with mock_aws():
            import boto3

            boto3.client("s3").create_bucket(Bucket="bench-bucket")
            moto_s, _ = timed(f"bench-{n}-m")
    finally:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
    return {"render_s": round(render, 2), "moto_s": round(moto_s, 2)}


def bench_definition(sizes: tuple[int, ...] = (5, 10, 50, 200), with_file: tuple[int, ...] = (5,),
                     sdk_way: tuple[int, ...] = (50,), split: tuple[int, ...] = (200,)) -> dict:
    """Definition build time against an S3 stand-in in its own process (`instant_s3`), our way and (for
    ``with_file``) through a SageMaker config file; for ``sdk_way``, the build again with the SDK's own
    sequential uploads; for ``split``, the build alone and the build under moto in this process (`_split`)."""
    import logging

    import yaml

    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    role, image = "arn:aws:iam::123456789012:role/Bench", "123456789012.dkr.ecr.us-east-1.amazonaws.com/bench:1"
    work = Path(tempfile.mkdtemp(prefix="bench-definition-"))
    data = work / "eval.jsonl"
    data.write_text((ROOT / "data" / "trivia_eval.jsonl").read_text())
    results: dict = {}
    with instant_s3("bench-bucket"):
        import boto3

        from lib.config import load_config
        from lib.plan import Param, Ref, build_plan, call_arguments
        from pipelines import sagemaker_executor as se

        se.quiet_sdk()
        uploads = _SdkUploads()
        for n in sizes:
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
            results[n] = {"steps": len(definition["Steps"]), "ours_s": round(ours, 2),
                          "uploads": assembly.pipeline.uploaded_objects}
            print(f"  {n} models ({len(definition['Steps'])} steps): ours {ours:.1f}s with "
                  f"{assembly.pipeline.uploaded_objects} S3 uploads through one client", flush=True)
            if n in sdk_way:
                uploads.reset()
                (work / "config.yaml").write_text(yaml.safe_dump({**config, "pipeline": {"name": f"bench-{n}-b"}}))
                started = time.perf_counter()
                pipeline = se.build(load_config(work / "config.yaml")).pipeline
                again = json.loads(type(pipeline).definition(pipeline))  # the SDK's own, past ours
                results[n].update(sdk_s=round(time.perf_counter() - started, 2),
                                  sdk_uploads_s=round(uploads.seconds, 2))
                assert len(again["Steps"]) == len(definition["Steps"]) and uploads.count == results[n]["uploads"]
                print(f"  {n} models with the SDK's own uploads: {results[n]['sdk_s']:.1f}s, of which "
                      f"{results[n]['sdk_uploads_s']:.1f}s uploading", flush=True)
            if n in split:
                results[n].update(_split(se, config, work, n))
                print(f"  {n} models, the build alone (uploads kept, not sent): {results[n]['render_s']:.1f}s; "
                      f"under moto in this process: {results[n]['moto_s']:.1f}s", flush=True)
            if n not in with_file:
                continue

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
                file_s = time.perf_counter() - started
            finally:
                del os.environ["SAGEMAKER_USER_CONFIG_OVERRIDE"]
            assert len(via_file["Steps"]) == len(definition["Steps"])
            results[n].update(config_file_s=round(file_s, 2), ratio=round(file_s / ours, 1))
            print(f"  {n} models through a SageMaker config file: {file_s:.1f}s ({file_s / ours:.1f}x slower)",
                  flush=True)
    return {str(n): r for n, r in results.items()}


# ------------------------------------------------------------------ orchestration against an instant server

INSTANT_SERVER = r"""
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REPLY = json.dumps({"choices": [{"message": {"content": "Paris"}}],
                    "usage": {"prompt_tokens": 9, "completion_tokens": 1}}).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # connections kept, as a model server keeps them (vLLM, TGI, OpenAI's)
    disable_nagle_algorithm = True

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(REPLY)))
        self.end_headers()
        self.wfile.write(REPLY)

    def log_message(self, *args):
        pass

""" + SERVE

# What any evaluation must do at least: ask every question with the same concurrency, by the same call
# our OpenAI invoker makes (`lib.engine.http_post.post`: a connection kept per thread), and keep each
# answer in a JSON Lines file.
PLAIN_CLIENT = r"""
import json, sys
from concurrent.futures import ThreadPoolExecutor

root, url, data, out, workers = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
sys.path.insert(0, root)
from lib.engine.http_post import post

questions = [json.loads(line)["question"] for line in open(data)]


def ask(question):
    body = json.dumps({"model": "instant", "messages": [{"role": "user", "content": question}]}).encode()
    reply = post(url + "/chat/completions", body, {"Content-Type": "application/json"}, 60)
    return json.loads(reply.body)["choices"][0]["message"]["content"]


with open(out, "w") as fh, ThreadPoolExecutor(workers) as pool:
    for question, answer in zip(questions, pool.map(ask, questions)):
        fh.write(json.dumps({"question": question, "output": answer}) + "\n")
"""

ORCHESTRATION_CONFIG = """pipeline: {{name: bench-orchestration}}
dataset: {{dataset_name: trivia-{n}, input_data_location: {data}, dataset_mime_type: jsonlines,
          model_input_key: question, target_output_key: answer{shards}}}
models:
  - name: instant
    provider: openai
    model_id: instant
    endpoint_url: {url}
    evaluation_config: {{prompt_template: "$model_input", max_concurrency: {concurrency}}}
algorithms:
  - {{algorithm: FactualKnowledge, target_output_delimiter: "<OR>"}}
  - {{algorithm: QAAccuracy, target_output_delimiter: "<OR>"}}
  - {{algorithm: ClassificationAccuracy, config: {{valid_labels: [Paris, London]}}}}
selection: {{metric: factual_knowledge, direction: max}}
model_registry: {{model_package_group_name: bench-orchestration}}
"""
CONCURRENCY = 8
ORCHESTRATION_ROUNDS = 3
# What a run imports to score the three algorithms with fmeval's own code, the plain way (torch and all)
FMEVAL_IMPORT = """
from lib.engine import fmeval_offline
fmeval_offline.prepare()
import fmeval.eval_algorithms.factual_knowledge, fmeval.eval_algorithms.qa_accuracy
import fmeval.eval_algorithms.classification_accuracy
"""
# ... and as a run imports them (`lib.engine.deferred_imports`: torch, transformers, evaluate and sagemaker
# left for their first use)
FMEVAL_IMPORT_DEFERRED = """
from lib.engine import deferred_imports, fmeval_offline
fmeval_offline.prepare()
with deferred_imports.deferred():
    import fmeval.eval_algorithms.factual_knowledge, fmeval.eval_algorithms.qa_accuracy
    import fmeval.eval_algorithms.classification_accuracy
"""


@contextlib.contextmanager
def instant_server():
    """An OpenAI-compatible server that answers at once (stdlib, its own process); yields its /v1 URL."""
    with _stand_in(INSTANT_SERVER) as port:
        yield f"http://127.0.0.1:{port}/v1"


def _dataset(n: int, folder: Path) -> Path:
    """n distinct trivia questions (a repeated one would be served from the cache)."""
    path = folder / f"trivia-{n}.jsonl"
    if not path.exists():
        trivia = [json.loads(line) for line in (ROOT / "data" / "trivia_eval.jsonl").read_text().splitlines()]
        with open(path, "w") as fh:
            for i in range(n):
                q = trivia[i % len(trivia)]
                fh.write(json.dumps({"question": f"{q['question']} (#{i})", "answer": q["answer"]}) + "\n")
    return path


# Starts the command and reports its wall time, peak RSS and CPU. A process started straight from the
# benchmark would count the benchmark's own peak too (Linux keeps the peak RSS of the image a child was
# forked from across exec); started from this small launcher, it counts only its own.
LAUNCHER = r"""
import json, os, subprocess, sys, time
started = time.perf_counter()
proc = subprocess.Popen(sys.argv[2:], stdout=sys.stdout, stderr=subprocess.STDOUT)
_, status, usage = os.wait4(proc.pid, 0)
with open(sys.argv[1], "w") as fh:
    json.dump({"seconds": time.perf_counter() - started, "peak_rss_kb": usage.ru_maxrss,
               "cpu_s": usage.ru_utime + usage.ru_stime, "exit": os.waitstatus_to_exitcode(status)}, fh)
"""


def _timed(cmd: list[str], cwd: Path, log: Path) -> dict:
    """Run ``cmd``; its wall time, peak RSS, CPU time and exit code."""
    report = log.with_suffix(".measure.json")
    with open(log, "wb") as out:
        subprocess.run([sys.executable, "-c", LAUNCHER, str(report), *cmd], cwd=cwd, stdout=out,
                       stderr=subprocess.STDOUT, check=True)
    m = json.loads(report.read_text())
    return {"seconds": round(m["seconds"], 2), "peak_rss_mb": round(m["peak_rss_kb"] / 1024),
            "cpu_s": round(m["cpu_s"], 1), "exit": m["exit"]}


def run_cli(code: Path, url: str, data: Path, n: int, work: Path, shards: int | None = None,
            max_workers: int = 2) -> dict:
    """`run` of the orchestration config with the project in ``code``, in a new process, empty cache;
    ``shards``: with that `dataset.shards` (checked: the run had that many evaluate steps)."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "config.yaml").write_text(ORCHESTRATION_CONFIG.format(
        n=n, data=data, url=url, concurrency=CONCURRENCY, shards=f", shards: {shards}" if shards else ""))
    (work / "pipeline_config.yaml").write_text(
        f"local: {{output_dir: {work / 'runs'}, max_workers: {max_workers}, model_cache_dir: {work / 'cache'}}}\n")
    result = _timed([sys.executable, str(code / "pipelines" / "build_pipeline.py"), "run", "--config",
                     str(work / "config.yaml"), "--output-dir", str(work / "out")], code, work / "run.log")
    summary = json.loads((work / "out" / "summary.json").read_text()) if (work / "out" / "summary.json").exists() \
        else {}
    model = summary.get("models", {}).get("instant", {})
    if result["exit"] != 0 or model.get("invocations") != n or len(model.get("scores", {})) != 3:
        tail = (work / "run.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"the {n}-record run did not do what it should (exit {result['exit']}):\n{tail}")
    if shards:
        steps = json.loads((work / "out" / "execution.json").read_text())["steps"]
        asked = [s for s in steps if s.startswith("evaluate-instant-shard-") and steps[s]["status"] == "succeeded"]
        if len(asked) != shards:
            raise RuntimeError(f"the {n}-record run with {shards} shards ran {len(asked)} shard steps: {sorted(steps)}")
    return result


def run_plain(url: str, data: Path, work: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    return _timed([sys.executable, "-c", PLAIN_CLIENT, str(ROOT), url, str(data), str(work / "answers.jsonl"),
                   str(CONCURRENCY)], work, work / "plain.log")


def _baseline_tree(ref: str, into: Path) -> Path:
    """The project as of git revision ``ref``, unpacked (no worktree: nothing in .git changes)."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def bench_orchestration(n: int = 10_000, baseline: str | None = None) -> dict:
    """`run` end to end against an instant server vs a plain client; a 10-record run for the start-up."""
    work = Path(tempfile.mkdtemp(prefix="bench-orchestration-"))
    out: dict = {"records": n, "algorithms": 3, "concurrency": CONCURRENCY}
    try:
        with instant_server() as url:
            data, tiny = _dataset(n, work), _dataset(10, work)
            # Alternated rounds, as the server's case: these machines change speed within a minute (the
            # same run took 8 s, then 11 s), so one pair of runs could compare a fast moment with a slow one.
            # Each round is a pair run back to back (which goes first alternates); the median round by ratio.
            rounds = []
            for i in range(ORCHESTRATION_ROUNDS):
                pair = {}
                for which in (("plain", "ours") if i % 2 == 0 else ("ours", "plain")):
                    pair[which] = (run_plain(url, data, work / "plain") if which == "plain"
                                   else run_cli(ROOT, url, data, n, work / f"ours-{i}"))
                rounds.append(pair)
            rounds.sort(key=lambda r: r["ours"]["seconds"] / r["plain"]["seconds"])
            out["plain"], out["ours"] = rounds[len(rounds) // 2]["plain"], rounds[len(rounds) // 2]["ours"]
            out["rounds"] = [{"plain_s": r["plain"]["seconds"], "ours_s": r["ours"]["seconds"],
                              "ratio": round(r["ours"]["seconds"] / r["plain"]["seconds"], 2)} for r in rounds]
            out["startup"] = run_cli(ROOT, url, tiny, 10, work / "startup")
            out["fmeval_import"] = _timed([sys.executable, "-c", FMEVAL_IMPORT], ROOT, work / "import.log")
            out["fmeval_import_deferred"] = _timed([sys.executable, "-c", FMEVAL_IMPORT_DEFERRED], ROOT,
                                                   work / "import-deferred.log")
            if baseline:
                code = _baseline_tree(baseline, work / "baseline-code")
                out["baseline"] = {"ref": baseline, **run_cli(code, url, data, n, work / "baseline")}
                out["baseline_startup"] = run_cli(code, url, tiny, 10, work / "baseline-startup")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    plain, ours, startup = out["plain"]["seconds"], out["ours"]["seconds"], out["startup"]["seconds"]
    out["ratio"] = round(ours / plain, 2)
    out["ratio_after_startup"] = round((ours - startup) / plain, 2)
    out["target_s"] = round(1.3 * plain + 2, 1)
    print(f"  {n} records x 3 algorithms, {CONCURRENCY} in flight, the median of {len(out['rounds'])} rounds: plain "
          f"client {plain:.1f}s; `run` {ours:.1f}s ({out['ratio']}x; {out['ratio_after_startup']}x after its "
          f"{startup:.1f}s start-up), peak {out['ours']['peak_rss_mb']} MB; goal: within {out['target_s']}s; "
          f"rounds (plain, run): {[(r['plain_s'], r['ours_s']) for r in out['rounds']]}", flush=True)
    imp, deferred = out["fmeval_import"], out["fmeval_import_deferred"]
    print(f"  importing fmeval's three algorithms: {imp['seconds']:.1f}s, {imp['cpu_s']} CPU s, "
          f"{imp['peak_rss_mb']} MB; as a run imports them: {deferred['seconds']:.1f}s, "
          f"{deferred['peak_rss_mb']} MB", flush=True)
    if baseline:
        b, bs = out["baseline"], out["baseline_startup"]
        print(f"  before ({baseline}, one run, against the median round's plain client): `run` {b['seconds']:.1f}s "
              f"({b['seconds'] / plain:.2f}x), start-up "
              f"{bs['seconds']:.1f}s, peak {b['peak_rss_mb']} MB", flush=True)
    return out


MEMORY_SHARDS = 4  # bench_memory's sharded case: `dataset.shards: 4` and 4 local workers (every shard at once)


def bench_memory(sizes: tuple[int, ...] = (10_000, 100_000), known: dict | None = None,
                 shards: int = MEMORY_SHARDS) -> dict:
    """Wall time and peak RSS of `run` as the dataset grows, unsharded and with ``dataset.shards: shards``
    (as many local workers); ``known``: unsharded sizes already measured. The local executor runs every
    step, each shard too, as a thread of the one `run` process (pipelines/local_executor.py), and the
    launcher's ``wait4`` also counts any child that process waited for: the peak is the whole run's."""
    work = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    out: dict = {}
    sharded: dict = {"shards": shards, "max_workers": shards}
    try:
        with instant_server() as url:
            for n in sizes:
                data = _dataset(n, work)
                r = (known or {}).get(str(n)) or run_cli(ROOT, url, data, n, work / str(n))
                out[str(n)] = r
                print(f"  {n:>7} records: peak {r['peak_rss_mb']} MB, {r['seconds']:.1f}s", flush=True)
                r = run_cli(ROOT, url, data, n, work / f"{n}-sharded", shards=shards, max_workers=shards)
                sharded[str(n)] = r
                print(f"  {n:>7} records, {shards} shards: peak {r['peak_rss_mb']} MB, {r['seconds']:.1f}s", flush=True)
                shutil.rmtree(work / str(n), ignore_errors=True)
                shutil.rmtree(work / f"{n}-sharded", ignore_errors=True)
                data.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if len(sizes) > 1:
        for figures in (out, sharded):
            small, large = (figures[str(n)] for n in (sizes[0], sizes[-1]))
            figures["mb_per_10k_records"] = round((large["peak_rss_mb"] - small["peak_rss_mb"])
                                                  / ((sizes[-1] - sizes[0]) / 10_000), 1)
        print(f"  growth: {out['mb_per_10k_records']} MB per 10,000 records; with {shards} shards "
              f"{sharded['mb_per_10k_records']} MB", flush=True)
    out["sharded"] = sharded
    return out


# ------------------------------------------------------------------ README's table

README_HEADING = "## Benchmarks"
TABLE_START = "<!-- bench table: generated by `python -m bench.run --write-readme` from bench/results.json -->"
TABLE_END = "<!-- end of bench table -->"


def _s(x: float) -> str:
    return f"{x:.0f} s" if x >= 100 else f"{x:.1f} s" if x >= 1 else f"{x:.2f} s"


def readme_table(results: dict) -> str:
    """README's "Benchmarks" table, made from bench/results.json: each figure is one of its values."""
    rows = ["| what | ours | the other way |", "|---|---|---|"]
    e = results.get("engine")
    if e:
        same = all(abs(m["factual_knowledge_ours"] - m["factual_knowledge_naive"]) < 1e-6  # ours: 6 decimals
                   for m in e["models"].values())
        names = ", ".join(f"`{m}`" for m in e["models"])
        rows.append(f"| default config end to end: {names} × {e['records']} records × "
                    f"{len(e['algorithms'])} algorithms | {_s(e['ours_s'])}, {e['ours_calls']} model calls | fmeval "
                    f"`evaluate()` per algorithm: {_s(e['naive_s'])}, {e['naive_calls']} calls ({e['ratio']}× "
                    f"slower), {'same' if same else 'different'} scores |")
    o = results.get("orchestration")
    if o:
        rows.append(f"| `run` against an instant OpenAI-compatible server, {o['records']:,} records × "
                    f"{o['algorithms']} algorithms, {o['concurrency']} in flight | {_s(o['ours']['seconds'])} "
                    f"({o['ratio']}×" + (f"; the median of {len(o['rounds'])} rounds, "
                                         f"{min(r['ratio'] for r in o['rounds']):.2f}–"
                                         f"{max(r['ratio'] for r in o['rounds']):.2f}×" if o.get("rounds") else "")
                    + f"; the goal: at most {_s(o['target_s'])}); a 10-record run: {_s(o['startup']['seconds'])}, "
                    "importing fmeval's "
                    f"algorithms: {_s(o['fmeval_import']['seconds'])}"
                    + (f", {_s(o['fmeval_import_deferred']['seconds'])} as a run imports them"
                       if o.get("fmeval_import_deferred") else "") + " | a plain client asking the "
                    f"same questions: {_s(o['plain']['seconds'])} |")
    m = results.get("memory")
    if m:
        sizes = sorted((k for k in m if k.isdigit()), key=int)
        rows.append("| peak memory of that `run` | " + ", ".join(
            f"{int(k):,} records: {m[k]['peak_rss_mb']:,} MB" for k in sizes)
            + f" (+{m['mb_per_10k_records']} MB per 10,000) | — |")
        sh = m.get("sharded")
        if sh:
            def figures(f: dict) -> str:
                return "; ".join(f"{int(k):,} records: {_s(f[k]['seconds'])}, {f[k]['peak_rss_mb']:,} MB"
                                 for k in sorted((k for k in f if k.isdigit()), key=int))

            rows.append(f"| that `run` with `dataset.shards: {sh['shards']}` ({sh['max_workers']} local workers): wall "
                        f"time, peak memory | {figures(sh)} | unsharded: {figures(m)} |")
    sc = results.get("scoring")
    if sc:
        rows.append(f"| scoring {sc['records']:,} cached records × {sc['algorithms']} algorithms | "
                    f"{_s(sc['seconds'])} | — |")
    sv = results.get("server")
    if sv:
        ratios = sorted(r["ratio"] for r in sv["rounds"])
        rows.append(f"| local server, {sv['questions']} questions × {sv['max_new_tokens']} tokens, "
                    f"{sv['concurrency']} in flight over HTTP | {_s(sv['server_s'])} ({sv['ratio']:.2f}×; "
                    f"{len(ratios)} rounds: {ratios[0]:.2f}–{ratios[-1]:.2f}×), batches "
                    f"{'+'.join(map(str, sv['batches']))}, {'same' if sv['identical'] else 'different'} answers | "
                    f"raw batched `generate`, {sv['max_batch']} at a time: {_s(sv['raw_s'])} |")
    d = results.get("definition")
    if d:
        for n in sorted((k for k in d if k.isdigit()), key=int):
            r = d[n]
            other = (f"through a SageMaker config file: {_s(r['config_file_s'])} ({r['ratio']}×)"
                     if "config_file_s" in r else
                     f"the SDK's own uploads, one after another: {_s(r['sdk_s'])}" if "sdk_s" in r else "—")
            split = (f"; the build alone {_s(r['render_s'])}; under moto in the same process {_s(r['moto_s'])}"
                     if "moto_s" in r else "")
            rows.append(f"| SageMaker definition, {n} models ({r['steps']} steps) | {_s(r['ours_s'])}, "
                        f"{r['uploads']:,} S3 uploads through one client{split} | {other} |")
    dates = sorted({v["date"] for v in results.values() if isinstance(v, dict) and "date" in v})
    when = dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}" if dates else "an unknown date"
    machine = results.get("machine", {})
    took = ""
    if "bench_s" in results:  # less the runs of an older revision (`--baseline`), which `make bench` does not do
        before = sum(o.get(k, {}).get("seconds", 0) for k in ("baseline", "baseline_startup")) if o else 0
        took = f"; the whole benchmark took {(results['bench_s'] - before) / 60:.0f} min"
    lead = (f"Measured by `make bench` on {when}, on a {machine.get('cores', '?')}-core machine "
            f"(load average {machine.get('load_average', '?')} at the start){took}:")
    return "\n".join([TABLE_START, lead, "", *rows, TABLE_END])


def readme_section_table(readme: str) -> str | None:
    """The generated table as it stands in README's "Benchmarks" section (None if it is not there)."""
    if README_HEADING not in readme:
        return None
    section = readme.split(README_HEADING, 1)[1].split("\n## ", 1)[0]
    if TABLE_START not in section or TABLE_END not in section:
        return None
    return TABLE_START + section.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0] + TABLE_END


def write_readme(results: dict, path: Path = ROOT / "README.md") -> None:
    text = path.read_text()
    current = readme_section_table(text)
    if current is None:
        raise SystemExit(f"{path}: no generated table in the Benchmarks section (markers {TABLE_START!r} ... "
                         f"{TABLE_END!r})")
    path.write_text(text.replace(current, readme_table(results), 1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="definition,orchestration,memory,server,scoring,engine")
    parser.add_argument("--quick", action="store_true",
                        help="a 2-minute subset at smaller sizes, into bench/results-quick.json")
    # 16 of the default dataset's 66: one full batch for our engine; the naive way asks one record at a
    # time, 4 to 8 s each here, and asked 32 it was 5 of the whole benchmark's 18 minutes on a busy day
    parser.add_argument("--records", type=int, default=16,
                        help="records for the engine benchmark (default: 16; 0 for all)")
    parser.add_argument("--engine-models", type=int, default=1,
                        help="models of evaluation_config.yaml (those without fine-tuning) the engine benchmark "
                        "asks both ways (default: 1; the naive way takes about 3 minutes per model)")
    parser.add_argument("--baseline", default=None, metavar="GIT-REF",
                        help="also run the orchestration case with the code of this git revision")
    parser.add_argument("--write-readme", action="store_true",
                        help="only put the table made from bench/results.json into README.md")
    args = parser.parse_args()
    out = ROOT / "bench" / ("results-quick.json" if args.quick else "results.json")
    if args.write_readme:
        write_readme(json.loads(out.read_text()))
        print(f"README.md's Benchmarks table now shows {out}")
        return 0
    progress.set_quiet(True)
    parts = args.only.split(",")
    if args.quick:
        parts = [p for p in parts if p in ("definition", "orchestration", "scoring")]
    date = datetime.date.today().isoformat()
    results: dict = {"machine": {"cores": os.cpu_count(), "load_average": round(os.getloadavg()[0], 1),
                                 "python": sys.version.split()[0]}}
    started = time.perf_counter()

    def measure(name: str, title: str, fn, *a) -> None:
        print(title, flush=True)
        t = time.perf_counter()
        results[name] = {**fn(*a), "date": date, "bench_s": round(time.perf_counter() - t, 1)}

    if "definition" in parts:
        sizes, with_file, sdk_way, split = (((10, 50), (), (), ()) if args.quick
                                            else ((5, 10, 50, 200), (5,), (50,), (200,)))
        measure("definition", "SageMaker definition build time:", bench_definition, sizes, with_file, sdk_way, split)
    if "orchestration" in parts:
        measure("orchestration", "Orchestration: `run` against an instant server, and a plain client:",
                bench_orchestration, 2_000 if args.quick else 10_000, args.baseline)
    if "memory" in parts:
        known = {"10000": results["orchestration"]["ours"]} \
            if results.get("orchestration", {}).get("records") == 10_000 else {}
        measure("memory", f"Wall time and peak memory of `run` as the dataset grows, unsharded and with "
                f"{MEMORY_SHARDS} shards:", bench_memory, (10_000, 100_000), known)
    if "server" in parts:
        measure("server", "Local server against raw batched generate:", bench_server)
    if "scoring" in parts:
        measure("scoring", "Scoring cached outputs:", bench_scoring)
    if "engine" in parts:
        measure("engine", "Evaluation end to end, default config (our engine vs fmeval evaluate() per algorithm):",
                bench_engine, args.records or None, args.engine_models)
    took = round(time.perf_counter() - started, 1)
    if args.only == parser.get_default("only"):  # the whole benchmark (a part alone keeps the last whole figure)
        results["bench_s"] = took
    print(f"the benchmark took {took:.0f}s")
    previous = json.loads(out.read_text()) if out.exists() and not args.quick else {}
    merged = {**previous, **results}
    out.write_text(json.dumps(merged, indent=2) + "\n")
    print(f"wrote {out}\n")
    print(readme_table(merged))
    return 0


if __name__ == "__main__":
    sys.exit(main())
