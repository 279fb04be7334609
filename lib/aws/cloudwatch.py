"""CloudWatch: the metrics a run puts, the alarms on them, and a pipeline's dashboard.

Namespace `LLMEval` unless `tracking.cloudwatch.namespace` says otherwise. Each execution puts, once:

- dimensions Pipeline, Model, Algorithm: every score (the metric is the score's name, Algorithm the
  algorithm's eval name, e.g. factual_knowledge / qa_accuracy);
- Pipeline, Model: error_rate, latency_p50_s, latency_p95_s, cost_usd, cost_per_1k_records_usd, tokens_per_s;
- Pipeline[, Algorithm]: the same metrics of the model the run selected;
- Pipeline: champion_difference (the gate's paired difference over the champion, positive is better),
  gate_approved (1 or 0) and models_failed.

Nothing here imports boto3 at import time; the calls go through `lib.aws.client`.
"""

from __future__ import annotations

import json
from typing import Any

from lib.run.records import FAILED, ModelResult, RunSummary
from lib.sinks import measures

DEFAULT_NAMESPACE = "LLMEval"
DEFAULT_ALARM_PERIOD = 86400  # a day: one run a day (a schedule) still lands in every period an alarm looks at
CHAMPION_METRIC = "champion_difference"
UNITS = {"latency_p50_s": "Seconds", "latency_p95_s": "Seconds", "tokens_per_s": "Count/Second",
         "models_failed": "Count"}
_PER_REQUEST = 20  # PutMetricData takes 1000 now; 20 is what every endpoint (LocalStack, older regions) takes


def dimensions(pipeline: str, model: str | None = None, algorithm: str | None = None) -> list[dict[str, str]]:
    dims = [{"Name": "Pipeline", "Value": pipeline}]
    if model:
        dims.append({"Name": "Model", "Value": model})
    if algorithm:
        dims.append({"Name": "Algorithm", "Value": algorithm})
    return dims


def model_values(result: ModelResult) -> list[tuple[str, str | None, float]]:
    """(metric, algorithm or None, value): every score, and the run metrics a policy can name. (Each is a
    custom metric CloudWatch bills monthly: the counts MLflow gets are left out.)"""
    values: list[tuple[str, str | None, float]] = [(score, eval_name, value)
                                                   for eval_name, score, value in measures.scores(result)]
    return values + [(metric, None, value) for metric, value in measures.run_metrics(result).items()]


def _datum(name: str, dims: list[dict[str, str]], value: float) -> dict[str, Any]:
    return {"MetricName": name, "Dimensions": dims, "Value": value, "Unit": UNITS.get(name, "None")}


def metric_data(summary: RunSummary) -> list[dict[str, Any]]:
    """Every datum of the table above that ``summary`` holds (no timestamp: put when sent)."""
    data: list[dict[str, Any]] = []
    pipeline = summary.pipeline
    for name, result in summary.models.items():
        for metric, algorithm, value in model_values(result):
            data.append(_datum(metric, dimensions(pipeline, name, algorithm), value))
    best = summary.selection.best
    if best and best in summary.models:
        for metric, algorithm, value in model_values(summary.models[best]):
            data.append(_datum(metric, dimensions(pipeline, None, algorithm), value))
    data.append(_datum("models_failed", dimensions(pipeline),
                       float(sum(1 for r in summary.models.values() if r.status == FAILED))))
    gate = summary.gate
    if gate and gate.decision:
        data.append(_datum("gate_approved", dimensions(pipeline), 1.0 if gate.decision == "approved" else 0.0))
        difference = measures.number((gate.comparison or {}).get("difference"))
        if difference is not None:
            data.append(_datum(CHAMPION_METRIC, dimensions(pipeline), difference))
    return data


def datum_key(datum: dict[str, Any]) -> str:
    """What one datum is, whatever its value: a sink puts each once per execution."""
    dims = ",".join(f"{d['Name']}={d['Value']}" for d in datum["Dimensions"])
    return f"{datum['MetricName']}|{dims}"


def put_metric_data(namespace: str, data: list[dict[str, Any]], region: str | None = None) -> None:
    from datetime import UTC, datetime

    from lib import aws

    client = aws.client("cloudwatch", region)
    now = datetime.now(UTC)
    for start in range(0, len(data), _PER_REQUEST):
        client.put_metric_data(Namespace=namespace,
                               MetricData=[{**d, "Timestamp": now} for d in data[start:start + _PER_REQUEST]])


def put_alarms(alarms: list[dict[str, Any]], namespace: str, pipeline: str, region: str | None = None
               ) -> list[str]:
    """Create or update each alarm (the same name replaces it); their ARNs."""
    from lib import aws

    if not alarms:
        return []
    client = aws.client("cloudwatch", region)
    for alarm in alarms:
        request: dict[str, Any] = {
            "AlarmName": alarm["name"], "AlarmDescription": alarm["description"][:1024],
            "ActionsEnabled": bool(alarm["actions"]), "AlarmActions": alarm["actions"],
            "MetricName": alarm["metric_name"], "Namespace": namespace, "Statistic": alarm["statistic"],
            "Dimensions": alarm["dimensions"], "Period": alarm["period_seconds"], "EvaluationPeriods": 1,
            "DatapointsToAlarm": 1, "Threshold": alarm["threshold"], "ComparisonOperator": alarm["comparison"],
            # no run in the period is no news: a schedule that did not run is another alarm's business
            "TreatMissingData": "notBreaching",
            "Tags": aws.resource_tags(pipeline),
        }
        client.put_metric_alarm(**request)
    described = client.describe_alarms(AlarmNames=[a["name"] for a in alarms])["MetricAlarms"]
    return [a["AlarmArn"] for a in described]


def dashboard_body(pipeline: str, namespace: str, region: str, models: list[str],
                   scores: list[tuple[str, str]], alarm_arns: list[str] | None = None) -> dict[str, Any]:
    """One graph per score (a line per model, and the selected model's), then error rate, latency and
    cost per model, then the alarms' states."""
    widgets: list[dict[str, Any]] = [{
        "type": "text", "width": 24, "height": 2,
        "properties": {"markdown": f"## {pipeline}\nllm-eval-pipelines metrics in namespace `{namespace}`: one "
                                   "point per execution and model; *selected* is the model the run chose."}}]

    def graph(title: str, metric: str, algorithm: str | None, selected: bool) -> dict[str, Any]:
        lines: list[list[Any]] = []
        for model in models:
            line: list[Any] = [namespace, metric, "Pipeline", pipeline, "Model", model]
            lines.append(line + (["Algorithm", algorithm] if algorithm else []) + [{"label": model}])
        if selected:
            lines.append([namespace, metric, "Pipeline", pipeline] + (["Algorithm", algorithm] if algorithm else [])
                         + [{"label": "selected"}])
        return {"type": "metric", "width": 12, "height": 6,
                "properties": {"title": title, "region": region, "view": "timeSeries", "stat": "Average",
                               "period": 3600, "metrics": lines}}

    for algorithm, score in scores:
        title = score if score == algorithm else f"{algorithm}: {score}"
        widgets.append(graph(title, score, algorithm, True))
    for metric in ("error_rate", "latency_p95_s", "cost_usd"):
        widgets.append(graph(metric, metric, None, False))
    if alarm_arns:
        widgets.append({"type": "alarm", "width": 24, "height": 3,
                        "properties": {"title": "alarms", "alarms": alarm_arns}})
    return {"widgets": widgets}


def put_dashboard(name: str, body: dict[str, Any], region: str | None = None) -> None:
    from lib import aws

    aws.client("cloudwatch", region).put_dashboard(DashboardName=name, DashboardBody=json.dumps(body))


def region_of(region: str | None) -> str:
    """The region a dashboard's graphs name: the one given, else the client's."""
    from lib import aws

    return region or aws.client("cloudwatch").meta.region_name


def set_up(settings: dict[str, Any], evaluation: dict[str, Any]) -> tuple[list[str], str | None]:
    """For `upsert`, before any run: the alarms of ``settings`` (`tracking.cloudwatch`, normalised) and, when
    it names one, the dashboard, from the config's models and scores. Their ARNs, and the dashboard's name."""
    pipeline = evaluation["pipeline"]["name"]
    arns = put_alarms(settings["alarms"], settings["namespace"], pipeline, settings.get("region"))
    if not settings.get("dashboard"):
        return arns, None
    scores = [(a["eval_name"], s) for a in evaluation["algorithms"] for s in a.get("score_names") or []]
    body = dashboard_body(pipeline, settings["namespace"], region_of(settings.get("region")),
                          [m["name"] for m in evaluation["models"]], scores, arns)
    put_dashboard(settings["dashboard"], body, settings.get("region"))
    return arns, settings["dashboard"]
