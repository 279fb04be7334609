"""Tracking (issue 15 items 1, 2, 4): MLflow runs read back with MLflow's own client, CloudWatch metrics,
alarms and the dashboard under moto, the lineage of a registered version, and the `tracking:` section's
checks (mlflow absent included, through a process that cannot import it)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, fake_aws, write_dataset
from fake_servers import chat_server, reply

moto = pytest.importorskip("moto")
pytest.importorskip("mlflow")

CLI = [sys.executable, str(ROOT / "pipelines" / "build_pipeline.py")]
SNS = "arn:aws:sns:us-east-1:123456789012:oncall"


@pytest.fixture
def aws(monkeypatch):
    fake_aws(monkeypatch, AWS_REGION="us-east-1")
    with moto.mock_aws():
        import boto3

        yield boto3


def write_configs(tmp_path: Path, urls: dict[str, str], tracking: dict | None = None,
                  settings_tracking: dict | None = None, n: int = 6, **evaluation: object) -> Path:
    write_dataset(tmp_path / "eval.jsonl", n)
    config = {
        "pipeline": {"name": "tracked"},
        "dataset": {"dataset_name": "trivia", "input_data_location": "eval.jsonl",
                    "model_input_key": "question", "target_output_key": "answer"},
        "models": [{"name": name, "provider": "openai", "model_id": f"model-{name}", "endpoint_url": url,
                    "evaluation_config": {"max_retries": 0, "inference_parameters": {"max_tokens": 16},
                                          "prompt_template": "Answer briefly. $model_input"}}
                   for name, url in urls.items()],
        "algorithms": [{"algorithm": "FactualKnowledge", "target_output_delimiter": "<OR>"}],
        **evaluation,
    }
    if tracking is not None:
        config["tracking"] = tracking
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    settings: dict = {"local": {"output_dir": str(tmp_path / "runs"), "model_cache_dir": str(tmp_path / "cache")}}
    if settings_tracking is not None:
        settings["tracking"] = settings_tracking
    (tmp_path / "pipeline_config.yaml").write_text(yaml.safe_dump(settings))
    return tmp_path / "config.yaml"


def knows(answer: str):
    return lambda n, headers, body: (200, reply(answer))


def runs_of(uri: str, experiment: str) -> tuple[object, object, dict]:
    """(client, the execution's parent run, {model: child run}), as MLflow's own client reads them."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1, [r.info.run_name for r in runs]
    children = {r.data.tags["llm_eval.model"]: r for r in runs if r.data.tags.get("mlflow.parentRunId")
                == parents[0].info.run_id}
    assert len(children) == len(runs) - 1
    return client, parents[0], children


def test_a_local_run_logs_a_parent_and_a_child_per_model_to_mlflow_and_metrics_to_cloudwatch(tmp_path, aws, capsys):
    from pipelines.cli import main

    with chat_server(knows("Paris")) as paris, chat_server(knows("Tokyo")) as tokyo:
        config = write_configs(tmp_path, {"paris": paris, "tokyo": tokyo},
                               tracking={"mlflow": {"experiment": "from-the-evaluation-config"}},
                               settings_tracking={"mlflow": {"experiment": "trivia-evals"},  # the settings win
                                                  "cloudwatch": {"namespace": "Test/LLMEval"}},
                               gate={"min": {"factual_knowledge": 0.1}})
        out = tmp_path / "run"
        assert main(["run", "--config", str(config), "--output-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    uri = f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"  # the default store: beside the runs
    tracked = summary["tracking"]["mlflow"]
    assert tracked["status"] == "succeeded" and tracked["uri"] == uri and tracked["experiment"] == "trivia-evals"
    assert f"view: mlflow ui --backend-store-uri {uri}" in printed

    client, parent, children = runs_of(uri, "trivia-evals")
    # made by us: the UI opens it on its runs table
    assert client.get_experiment_by_name("trivia-evals").tags["mlflow.experimentKind"] == "custom_model_development"
    assert parent.info.run_id == tracked["run_id"] and parent.info.status == "FINISHED"
    assert set(children) == {"paris", "tokyo"}
    assert parent.data.tags["llm_eval.execution_id"] == summary["execution_id"]
    # selection and gate decision as tags; lineage as parameters
    assert parent.data.tags["llm_eval.selection.best"] == summary["selection"]["best"] == "paris"
    assert parent.data.tags["llm_eval.gate.decision"] == "approved"
    assert parent.data.tags["llm_eval.registry.version"] == "1"
    config_sha = hashlib.sha256(config.read_bytes()).hexdigest()
    assert parent.data.params["config_hash"] == config_sha == summary["config_hash"]
    assert parent.data.params["dataset_hash"] == summary["dataset_hash"]
    assert parent.data.params["dataset_uri"] == str(tmp_path / "eval.jsonl") == summary["dataset_uri"]
    assert parent.data.metrics["selected.factual_knowledge.factual_knowledge"] == pytest.approx(
        summary["models"]["paris"]["scores"]["factual_knowledge"]["factual_knowledge"])
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"summary.json", "report.html", "config"} <= artifacts
    logged = json.loads(Path(client.download_artifacts(parent.info.run_id, "summary.json", str(tmp_path))).read_text())
    assert logged["registry"]["version"] == 1  # the summary as it ended, after register
    assert Path(client.download_artifacts(parent.info.run_id, "config/config.yaml", str(tmp_path))).read_bytes() \
        == config.read_bytes()
    assert [d.dataset.digest for d in parent.inputs.dataset_inputs] == [summary["dataset_hash"]]

    paris_run = children["paris"]
    params = paris_run.data.params
    assert params["provider"] == "openai" and params["model_id"] == "model-paris"
    assert params["prompt_template"] == "Answer briefly. $model_input" and params["inference.max_tokens"] == "16"
    assert params["dataset_hash"] == summary["dataset_hash"] and params["dataset_name"] == "trivia"
    result = summary["models"]["paris"]
    metrics = paris_run.data.metrics
    assert metrics["factual_knowledge.factual_knowledge"] == pytest.approx(
        result["scores"]["factual_knowledge"]["factual_knowledge"])
    assert metrics["error_rate"] == 0 and metrics["latency_p50_s"] == pytest.approx(result["latency_p50_s"])
    assert metrics["generated_tokens"] == result["generated_tokens"] and metrics["records"] == 6
    assert paris_run.data.tags["llm_eval.selected"] == "true" and children["tokyo"].data.tags["llm_eval.rank"] == "2"
    # the per-record table: one row per record, with the answer and every score
    table = json.loads(Path(client.download_artifacts(paris_run.info.run_id, "records.json", str(tmp_path)))
                       .read_text())
    rows = [dict(zip(table["columns"], row, strict=True)) for row in table["data"]]
    assert len(rows) == 6 and {r["output"] for r in rows} == {"Paris"}
    assert sum(r["factual_knowledge.factual_knowledge"] for r in rows) == pytest.approx(
        6 * result["scores"]["factual_knowledge"]["factual_knowledge"], rel=1e-4)  # the summary's are rounded
    # three publishes (select, register pending, register done) made one set of runs, each metric once
    assert len(client.get_metric_history(paris_run.info.run_id, "error_rate")) == 1

    # lineage: the registered version points at the execution, data, config, report and MLflow run
    line = json.loads((tmp_path / "model_registry" / "tracked-models.jsonl").read_text().splitlines()[-1])
    assert line["execution_id"] == summary["execution_id"] and line["mlflow_run_id"] == parent.info.run_id
    assert line["config_hash"] == config_sha and line["dataset_hash"] == summary["dataset_hash"]
    assert line["dataset_uri"] == summary["dataset_uri"] and line["report_uri"] == str(out / "report.html")

    # CloudWatch: per model and algorithm, and the selected model's, under the namespace
    cw = aws.client("cloudwatch")
    assert summary["tracking"]["cloudwatch"]["status"] == "succeeded"
    listed = {(m["MetricName"], tuple(sorted((d["Name"], d["Value"]) for d in m["Dimensions"])))
              for m in cw.list_metrics(Namespace="Test/LLMEval")["Metrics"]}
    assert ("factual_knowledge", (("Algorithm", "factual_knowledge"), ("Model", "tokyo"),
                                  ("Pipeline", "tracked"))) in listed
    assert ("error_rate", (("Model", "paris"), ("Pipeline", "tracked"))) in listed
    assert ("factual_knowledge", (("Algorithm", "factual_knowledge"), ("Pipeline", "tracked"))) in listed
    assert ("gate_approved", (("Pipeline", "tracked"),)) in listed


def test_publishing_again_updates_the_same_runs(tmp_path):
    """What select and register do: the same execution's summary, published as it changes."""
    from lib import sinks
    from lib.run.layout import RunLayout
    from lib.run.records import Gate, ModelResult, Registration, RunSummary, Selection

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking = {"mlflow": {"uri": uri, "experiment": "again"}, "config_hash": "c0ffee"}
    summary = RunSummary("p", "exec-1", {"m": ModelResult("m", records=2, errors=0, scores={"e": {"s": 0.5}})},
                         Selection("e", best="m", best_value=0.5, ranking=[{"model": "m", "value": 0.5}]),
                         dataset_hash="d1", config_hash="c0ffee")
    layout = RunLayout(str(tmp_path / "run"))
    assert sinks.publish(summary, layout, tracking=tracking) == []
    first = summary.tracking["mlflow"]["run_id"]
    summary.gate = Gate(status="succeeded", decision="rejected", approval_status="Rejected", reasons=["too low"])
    summary.registry = Registration(status="succeeded", version=3, model_package_group_name="g")
    assert sinks.publish(summary, layout, tracking=tracking) == []
    assert summary.tracking["mlflow"]["run_id"] == first
    client, parent, children = runs_of(uri, "again")
    assert parent.info.run_id == first and list(children) == ["m"]
    assert parent.data.tags["llm_eval.gate.decision"] == "rejected"
    assert parent.data.tags["llm_eval.gate.reasons"] == "too low"
    assert parent.data.tags["llm_eval.registry.version"] == "3"
    assert len(client.get_metric_history(children["m"].info.run_id, "e.s")) == 1
    # and the run's own summary says what MLflow recorded
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["tracking"]["mlflow"]["run_id"] == first


def test_an_interrupted_run_sends_nothing(tmp_path, aws):
    """Ctrl-C ends a run within seconds: no mlflow import, no alarm paged for a run that did not finish."""
    from lib import sinks
    from lib.run.layout import RunLayout
    from lib.run.records import INTERRUPTED, ModelResult, RunSummary, Selection

    summary = RunSummary("p", "e", {"m": ModelResult("m", status=INTERRUPTED, scores={"e": {"s": 0.1}})},
                         Selection("e"), status=INTERRUPTED)
    tracking = {"mlflow": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "x"},
                "cloudwatch": {"namespace": "N", "region": None, "dashboard": "d", "alarms": []}}
    assert sinks.publish(summary, RunLayout(str(tmp_path / "run")), tracking=tracking) == []
    assert {k: v["skipped"] for k, v in summary.tracking.items()} == {
        "mlflow": "the run was interrupted", "cloudwatch": "the run was interrupted: nothing put"}
    assert not (tmp_path / "mlflow.db").exists()
    assert aws.client("cloudwatch").list_metrics(Namespace="N")["Metrics"] == []
    assert sinks.outcome_lines(summary)[0] == "cloudwatch: nothing sent: the run was interrupted: nothing put"


def test_a_sagemaker_mlflow_arn_resolves_through_the_plugin(write_config, config_dir):
    from mlflow.tracking._tracking_service.utils import _get_store
    from sagemaker_mlflow.mlflow_sagemaker_store import MlflowSageMakerStore

    from lib.config import load_config
    from lib.errors import ConfigError
    from lib.sinks.mlflow_runs import _client

    arn = "arn:aws:sagemaker:eu-west-1:123456789012:mlflow-tracking-server/team-server"
    config = write_config({**_minimal(), "tracking": {"mlflow": {"uri": arn}}})
    tracking = load_config(config).settings["tracking"]
    assert tracking["mlflow"] == {"uri": arn, "experiment": "tracked"}
    store = _get_store(arn)
    assert isinstance(store, MlflowSageMakerStore)
    creds = store.get_host_creds()  # no network: the URL and the SigV4 auth the plugin will use
    assert creds.host == "https://eu-west-1.experiments.sagemaker.aws" and creds.auth == "arn"
    assert isinstance(_client(arn)._tracking_client.store, MlflowSageMakerStore)  # the sink's client, too
    with pytest.raises(ConfigError, match="is not the ARN of a SageMaker MLflow tracking server"):
        load_config(write_config({**_minimal(), "tracking": {"mlflow": {"uri": arn.replace("server/", "thing/")}}}))


def _minimal() -> dict:
    return {"pipeline": {"name": "tracked"},
            "dataset": {"dataset_name": "t", "input_data_location": "eval.jsonl", "model_input_key": "question",
                        "target_output_key": "answer"},
            "models": [{"name": "a", "provider": "openai", "model_id": "m", "endpoint_url": "http://127.0.0.1:9/v1"}],
            "algorithms": [{"algorithm": "FactualKnowledge", "target_output_delimiter": "<OR>"}]}


HIDE_MLFLOW = """
import importlib.abc, sys

class _Hidden(importlib.abc.MetaPathFinder):  # as if mlflow were not installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("mlflow", "sagemaker_mlflow"):
            raise ModuleNotFoundError(f"No module named '{name}'", name=name)
        return None

sys.meta_path.insert(0, _Hidden())
"""


def test_without_mlflow_the_section_is_refused_at_validate_and_the_default_path_never_imports_it(tmp_path):
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(HIDE_MLFLOW)
    env = {"PYTHONPATH": str(shim), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    probe = subprocess.run([sys.executable, "-c", "import mlflow"], env=env, capture_output=True, text=True)
    assert probe.returncode == 1 and "No module named 'mlflow'" in probe.stderr  # the shim works
    config = write_configs(tmp_path, {"a": "http://127.0.0.1:9/v1"}, settings_tracking={"mlflow": {}})
    refused = subprocess.run([*CLI, "validate", "--config", str(config)], env=env, capture_output=True, text=True,
                             cwd=tmp_path)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    message = refused.stderr.strip()
    line = (tmp_path / "pipeline_config.yaml").read_text().splitlines().index("  mlflow: {}") + 1
    assert len(message.splitlines()) == 1 and f"pipeline_config.yaml, line {line}, at tracking.mlflow:" in message
    assert "mlflow is not installed" in message and "pip install '.[mlflow]'" in message
    # without the section nothing needs mlflow: publishing a summary imports none of it
    code = "\n".join([
        f"import sys; sys.path.insert(0, {str(ROOT)!r})",
        "from lib import sinks", "from lib.run.layout import RunLayout",
        "from lib.run.records import ModelResult, RunSummary, Selection",
        "s = RunSummary('p', 'e', {'m': ModelResult('m')}, Selection('x'))",
        f"assert sinks.publish(s, RunLayout({str(tmp_path / 'r')!r}), tracking={{'config_hash': 'c'}}) == []",
        "assert 'mlflow' not in sys.modules and 'boto3' not in sys.modules"])
    plain = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert plain.returncode == 0, plain.stderr


def test_a_failing_sink_is_reported_and_the_run_goes_on(tmp_path, capsys):
    from pipelines.cli import main

    with chat_server(knows("Paris")) as paris:
        config = write_configs(tmp_path, {"paris": paris},
                               settings_tracking={"mlflow": {"uri": "sqlite:////proc/no-such-dir/mlflow.db"}})
        assert main(["run", "--config", str(config), "--output-dir", str(tmp_path / "run")]) == 0
    captured = capsys.readouterr()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["registry"]["status"] == "succeeded"
    assert summary["tracking"]["mlflow"]["status"] == "failed"
    assert "no-such-dir" in summary["tracking"]["mlflow"]["error"]
    assert "mlflow: FAILED (the run went on)" in captured.out and "mlflow failed" in captured.err


@pytest.mark.parametrize("tracking, settings_tracking, where, expected", [
    ({"cloudwatch": {"alarms": [{"metric": "factual_knowlege", "below": 0.5}]}}, None,
     "config.yaml, line 24, at tracking.cloudwatch.alarms[0].metric", "did you mean 'factual_knowledge'"),
    (None, {"cloudwatch": {"alarms": [{"below": "champion"}]}},
     "pipeline_config.yaml, line 7, at tracking.cloudwatch.alarms[0].below", "needs `gate` with `champion: registry`"),
    (None, {"cloudwatch": {"alarms": [{"metric": "error_rate", "above": 0.1, "model": "b"}]}},
     "at tracking.cloudwatch.alarms[0].model", "'b' is not a model of the evaluation config"),
    (None, {"cloudwatch": {"alarms": [{"metric": "error_rate", "above": 0.1, "below": 0.0}]}},
     "at tracking.cloudwatch.alarms[0]", "either 'below'"),
    (None, {"cloudwatch": {"alarms": [{"metric": "error_rate", "below": "Champion"}]}},
     "at tracking.cloudwatch.alarms[0].below", "below is a number (a floor) or 'champion'"),
    (None, {"cloudwatch": {"namespace": "AWS/SageMaker"}}, "at tracking.cloudwatch.namespace",
     "does not start with 'AWS/'"),
    (None, {"mlflow": {"uri": "./mlruns"}}, "at tracking.mlflow.uri", "maintenance mode"),
    (None, {"mlflow": {"uri": "sqlite://"}}, "at tracking.mlflow.uri", "keeps nothing after the run"),
    (None, {"mlflow": {"experimant": "x"}}, "at tracking.mlflow.experimant", "did you mean 'experiment'"),
])
def test_tracking_section_errors_name_the_file_and_place(tmp_path, tracking, settings_tracking, where, expected):
    from lib.config import load_config
    from lib.errors import ConfigError

    config = write_configs(tmp_path, {"a": "http://127.0.0.1:9/v1"}, tracking=tracking,
                           settings_tracking=settings_tracking)
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert where in str(caught.value) and expected in str(caught.value), str(caught.value)


def test_settings_win_key_by_key_and_can_turn_a_sink_off(tmp_path):
    from lib.config import load_config

    config = write_configs(tmp_path, {"a": "http://127.0.0.1:9/v1"},
                           tracking={"mlflow": {"uri": "sqlite:///ev.db", "experiment": "from-eval"},
                                     "cloudwatch": True},
                           settings_tracking={"mlflow": {"experiment": "from-settings"}, "cloudwatch": False})
    cfg = load_config(config)
    # a relative sqlite file is beside the file that names it
    assert cfg.settings["tracking"] == {"mlflow": {"uri": f"sqlite:///{tmp_path / 'ev.db'}",
                                                   "experiment": "from-settings"}}
    from pipelines.cli.config_cmds import format_settings

    shown = format_settings(cfg)  # what `plan` prints
    assert "tracking.cloudwatch, tracking.mlflow from" in shown  # yaml.safe_dump sorts the keys
    assert f"tracking: MLflow sqlite:///{tmp_path / 'ev.db'} (experiment from-settings)" in shown
    config = write_configs(tmp_path, {"a": "http://127.0.0.1:9/v1"},
                           tracking={"cloudwatch": {"dashboard": True, "alarms": [
                               {"metric": "factual_knowledge", "below": 0.5, "actions": [SNS]},
                               {"metric": "error_rate", "above": 0.2, "model": "a", "period_seconds": 3600}]}})
    alarms = load_config(config).settings["tracking"]["cloudwatch"]
    assert alarms["dashboard"] == "tracked" and alarms["namespace"] == "LLMEval"
    floor, ceiling = alarms["alarms"]
    assert floor["dimensions"] == [{"Name": "Pipeline", "Value": "tracked"},
                                   {"Name": "Algorithm", "Value": "factual_knowledge"}]
    assert (floor["metric_name"], floor["comparison"], floor["threshold"], floor["statistic"]) == (
        "factual_knowledge", "LessThanThreshold", 0.5, "Minimum")
    assert ceiling["dimensions"][1] == {"Name": "Model", "Value": "a"} and ceiling["period_seconds"] == 3600


def _summary(difference: float | None = -0.05):
    from lib.run.records import Gate, ModelResult, RunSummary, Selection

    models = {"a": ModelResult("a", records=10, errors=1, latency_p50_s=0.4, latency_p95_s=0.9, cost_usd=0.02,
                               scores={"factual_knowledge": {"factual_knowledge": 0.7, "quasi": 0.75}}),
              "b": ModelResult("b", status="failed", records=10, errors=9, scores={})}
    gate = Gate(status="succeeded", decision="rejected", approval_status="Rejected", reasons=["worse"], model="a",
                comparison=None if difference is None else {"difference": difference, "low": -0.1, "high": 0.0})
    return RunSummary("cw-pipe", "exec-9", models, Selection("factual_knowledge", best="a", best_value=0.7),
                      gate=gate)


def test_cloudwatch_metrics_alarms_and_dashboard_once_per_execution(tmp_path, aws):
    from lib.config import load_config
    from lib.run.layout import RunLayout
    from lib.sinks.cloudwatch import CloudWatchSink

    config = write_configs(tmp_path, {"a": "http://127.0.0.1:9/v1", "b": "http://127.0.0.1:9/v1"},
                           gate={"min": {"factual_knowledge": 0.5}},
                           settings_tracking={"cloudwatch": {"dashboard": "evals", "alarms": [
                               {"below": "champion", "actions": [SNS]},
                               {"metric": "factual_knowledge", "below": 0.8},
                               {"metric": "error_rate", "above": 0.5, "model": "b"}]}})
    settings = load_config(config).settings["tracking"]["cloudwatch"]
    layout = RunLayout(str(tmp_path / "run"))
    sink = CloudWatchSink(settings)
    outcome = sink.publish(_summary(), layout)
    assert sink.publish(_summary(), layout) == outcome  # register publishes again: nothing is put twice
    cw = aws.client("cloudwatch")

    def points(name: str, **dims: str) -> list[dict]:
        from datetime import UTC, datetime, timedelta

        now = datetime.now(UTC)
        return cw.get_metric_statistics(
            Namespace="LLMEval", MetricName=name, Dimensions=[{"Name": k, "Value": v} for k, v in dims.items()],
            StartTime=now - timedelta(hours=1), EndTime=now + timedelta(hours=1), Period=3600,
            Statistics=["Minimum", "SampleCount"])["Datapoints"]

    assert [(p["Minimum"], p["SampleCount"]) for p in points(
        "factual_knowledge", Pipeline="cw-pipe", Model="a", Algorithm="factual_knowledge")] == [(0.7, 1.0)]
    assert [p["Minimum"] for p in points("quasi", Pipeline="cw-pipe", Algorithm="factual_knowledge")] == [0.75]
    assert [p["Minimum"] for p in points("error_rate", Pipeline="cw-pipe", Model="b")] == [0.9]
    assert [p["Minimum"] for p in points("latency_p95_s", Pipeline="cw-pipe", Model="a")] == [0.9]
    assert [p["Minimum"] for p in points("cost_usd", Pipeline="cw-pipe", Model="a")] == [0.02]
    assert [p["Minimum"] for p in points("champion_difference", Pipeline="cw-pipe")] == [-0.05]
    assert [p["Minimum"] for p in points("models_failed", Pipeline="cw-pipe")] == [1.0]
    assert [p["Minimum"] for p in points("gate_approved", Pipeline="cw-pipe")] == [0.0]

    alarms = {a["AlarmName"]: a for a in cw.describe_alarms()["MetricAlarms"]}
    champion = alarms["tracked selected factual_knowledge below the champion"]
    assert (champion["MetricName"], champion["ComparisonOperator"], champion["Threshold"]) == (
        "champion_difference", "LessThanThreshold", 0.0)
    assert champion["AlarmActions"] == [SNS] and champion["Namespace"] == "LLMEval"
    floor = alarms["tracked selected factual_knowledge below 0.8"]
    assert {d["Name"]: d["Value"] for d in floor["Dimensions"]} == {"Pipeline": "tracked",
                                                                    "Algorithm": "factual_knowledge"}
    assert alarms["tracked b error_rate above 0.5"]["ComparisonOperator"] == "GreaterThanThreshold"
    body = json.loads(cw.get_dashboard(DashboardName="evals")["DashboardBody"])
    lines = [m for w in body["widgets"] if w["type"] == "metric" for m in w["properties"]["metrics"]]
    assert ["LLMEval", "factual_knowledge", "Pipeline", "cw-pipe", "Model", "a", "Algorithm", "factual_knowledge",
            {"label": "a"}] in lines
    assert any(w["type"] == "alarm" and len(w["properties"]["alarms"]) == 3 for w in body["widgets"])
    assert outcome["dashboard"] == "evals" and outcome["metrics"] > 10


def test_upsert_creates_the_alarms_and_the_dashboard(tmp_path, aws, capsys):
    from test_sagemaker import PIPELINE_SETTINGS

    from pipelines.build_pipeline import main

    aws.client("s3").create_bucket(Bucket="llm-eval-test")
    config = write_configs(tmp_path, {"a": "http://127.0.0.1:9/v1"})
    data = yaml.safe_load(config.read_text())
    data["models"][0] = {"name": "a", "model_id": "huggingface-llm-falcon-7b-bf16"}  # a SageMaker provider
    config.write_text(yaml.safe_dump(data))
    (tmp_path / "pipeline_config.yaml").write_text(yaml.safe_dump({
        **PIPELINE_SETTINGS, "tracking": {
            "mlflow": {},  # a file on this machine: SageMaker steps could not reach it
            "cloudwatch": {"dashboard": True, "alarms": [{"metric": "factual_knowledge", "below": 0.5}]}}}))
    assert main(["upsert", "--config", str(config)]) == 0
    captured = capsys.readouterr()
    cw = aws.client("cloudwatch")
    assert [a["AlarmName"] for a in cw.describe_alarms()["MetricAlarms"]] == ["tracked selected factual_knowledge "
                                                                              "below 0.5"]
    body = json.loads(cw.get_dashboard(DashboardName="tracked")["DashboardBody"])
    titles = [w["properties"].get("title") for w in body["widgets"]]
    assert "factual_knowledge" in titles and "error_rate" in titles
    assert "dashboard tracked" in captured.out
    assert "tracking.mlflow: sqlite:///" in captured.err and "logs to no MLflow" in captured.err


def test_a_sagemaker_registration_carries_the_lineage(aws):
    from lib import storage
    from lib.run.records import ModelResult, RunSummary, Selection
    from steps.register import register

    aws.client("s3").create_bucket(Bucket="runs")
    summary = RunSummary("p", "exec-7", {"falcon": ModelResult("falcon", provider="huggingface", model_id="f",
                                                               scores={"fk": {"fk": 0.6}})},
                         Selection("fk", best="falcon", best_value=0.6), dataset_hash="d" * 32,
                         dataset_uri="s3://runs/p/inputs/dataset/eval.jsonl", config_hash="c" * 64,
                         tracking={"mlflow": {"status": "succeeded", "run_id": "abc123"}})
    record = register({"model_package_group_name": "lineage"}, {"status": "succeeded", "summary": summary.to_dict()},
                      None, "s3://runs/p/runs/{execution_id}", "exec-7")
    package = aws.client("sagemaker").describe_model_package(ModelPackageName=record["model_package_arn"])
    metadata = package["CustomerMetadataProperties"]
    assert metadata["execution_id"] == "exec-7" and metadata["mlflow_run_id"] == "abc123"
    assert metadata["dataset_uri"] == "s3://runs/p/inputs/dataset/eval.jsonl" and metadata["dataset_hash"] == "d" * 32
    assert metadata["config_hash"] == "c" * 64
    assert metadata["report_uri"] == "s3://runs/p/runs/exec-7/report.html"
    assert storage.exists(metadata["report_uri"])  # the evidence is where the package says
