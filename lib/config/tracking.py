"""The `tracking:` section: where a run's records go besides its own files, an MLflow tracking server
(`lib/sinks/mlflow_runs.py`) and CloudWatch (`lib/sinks/cloudwatch.py`).

Either config file may carry it; the settings file wins, key by key (``mlflow: false`` there turns off what
the evaluation config turned on). `finish` merges both into ``settings["tracking"]``, a sink that is off
left out:

    {"mlflow": {"uri", "experiment"},
     "cloudwatch": {"namespace", "region", "dashboard" (a name or None), "alarms": [normalised alarm, ...]}}
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

from lib.aws import cloudwatch as cw
from lib.errors import ConfigError, did_you_mean

MLFLOW_HINT = ("install the MLflow extra: pip install '.[mlflow]' (mlflow 3.17.2 and sagemaker-mlflow 0.5.0; "
               "`make run` and `make test` install it)")
_DB_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
_SERVER_ARN = re.compile(r"^arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]+:\d{12}:(mlflow-tracking-server|mlflow-app)/"
                         r"[A-Za-z0-9\-]{1,256}$")


def own_part(raw: dict[str, Any] | None, path: str | Path) -> dict[str, Any]:
    """One file's `tracking:` as written, with the file it came from (for errors and relative paths)."""
    return {"file": str(path), **raw} if raw else {}


def is_sagemaker_server(uri: str) -> bool:
    return uri.startswith("arn:")


def is_local_store(uri: str) -> bool:
    """A store on this machine's disk: of no use inside a SageMaker step, whose disk goes with its job."""
    return uri.startswith("sqlite:")


def importable(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (mlflow takes seconds to import)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError, AttributeError):
        return False


class _Place:
    """Where a value of the merged section was written: raises errors naming that file and key."""

    def __init__(self, file: str, where: list[str | int]) -> None:
        self.file, self.where = file, where

    def error(self, sub: list[str | int], message: str) -> ConfigError:
        from lib.config.yaml_loader import load_yaml

        return load_yaml(self.file).error(self.where + sub, message)  # read again only to name the line


def _merge(evaluation: dict[str, Any], settings: dict[str, Any], sink: str) -> dict[str, tuple[Any, _Place]] | None:
    """The sink's keys, each with the place it came from; None when the sink is off."""
    merged: dict[str, tuple[Any, _Place]] | None = None
    for part in (evaluation, settings):  # the settings file last: it wins
        if sink not in part:
            continue
        value = part[sink]
        if value is False:
            merged = None
            continue
        merged = dict(merged or {})
        merged["_self"] = (True, _Place(part["file"], ["tracking", sink]))
        for key, item in (value if isinstance(value, dict) else {}).items():
            merged[key] = (item, _Place(part["file"], ["tracking", sink, key]))
    return merged


def finish(evaluation: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """The merged, checked `tracking` settings (see the module's docstring)."""
    out: dict[str, Any] = {}
    own_eval, own_settings = evaluation.get("tracking") or {}, settings.get("tracking") or {}
    mlflow = _merge(own_eval, own_settings, "mlflow")
    if mlflow is not None:
        out["mlflow"] = _mlflow(mlflow, evaluation, settings)
    cloudwatch = _merge(own_eval, own_settings, "cloudwatch")
    if cloudwatch is not None:
        out["cloudwatch"] = _cloudwatch(cloudwatch, evaluation, settings)
    return out


def _mlflow(keys: dict[str, tuple[Any, _Place]], evaluation: dict[str, Any], settings: dict[str, Any]
            ) -> dict[str, Any]:
    place = keys["_self"][1]
    if not importable("mlflow"):
        raise place.error([], f"MLflow tracking is configured but mlflow is not installed: {MLFLOW_HINT}; or take "
                          "the `mlflow` entry out of `tracking`")
    if "uri" in keys:
        uri, where = keys["uri"]
        uri = _tracking_uri(uri, where)
    else:  # beside the runs, so `mlflow ui` shows every local run of every pipeline
        uri = "sqlite:///" + str(Path(settings["local"]["output_dir"]) / "mlflow.db")
    experiment = keys["experiment"][0] if "experiment" in keys else evaluation["pipeline"]["name"]
    return {"uri": uri, "experiment": experiment}


def _tracking_uri(uri: str, place: _Place) -> str:
    scheme = uri.partition(":")[0].partition("+")[0].lower() if ":" in uri else ""
    if is_sagemaker_server(uri):
        if not _SERVER_ARN.match(uri):
            raise place.error([], f"'{uri[:120]}' is not the ARN of a SageMaker MLflow tracking server "
                              "(arn:aws:sagemaker:REGION:ACCOUNT:mlflow-tracking-server/NAME)")
        if not importable("sagemaker_mlflow"):
            raise place.error([], f"a SageMaker MLflow server needs the sagemaker-mlflow plugin: {MLFLOW_HINT}")
        return uri
    if scheme == "sqlite":
        path = uri[len("sqlite:///"):] if uri.startswith("sqlite:///") else ""
        if not path or path == ":memory:":
            raise place.error([], f"'{uri}' keeps nothing after the run: name a file, such as "
                              "sqlite:///runs/mlflow.db")
        if not Path(path).is_absolute():  # relative to the file that says it, as every path in it
            path = str((Path(place.file).resolve().parent / path).resolve())
        return "sqlite:///" + path
    if scheme in _DB_SCHEMES or scheme in ("http", "https", "databricks"):
        return uri
    if scheme in ("", "file") or len(scheme) == 1:  # a path (C: included): MLflow's file store
        raise place.error([], f"'{uri[:120]}' is an MLflow file store, which MLflow keeps in maintenance mode: "
                          "give a database such as sqlite:///runs/mlflow.db (leave `uri` out for that default)")
    raise place.error([], f"'{scheme}' is not a tracking URI this tool knows: use sqlite:///FILE, http(s)://HOST, "
                      "a database URI (postgresql://, mysql://), databricks, or the ARN of a SageMaker MLflow "
                      "tracking server")


def _cloudwatch(keys: dict[str, tuple[Any, _Place]], evaluation: dict[str, Any], settings: dict[str, Any]
                ) -> dict[str, Any]:
    pipeline = evaluation["pipeline"]["name"]
    dashboard = keys.get("dashboard", (False, None))[0]
    alarms = []
    if "alarms" in keys:
        raw, place = keys["alarms"]
        for i, alarm in enumerate(raw):
            alarms.append(_alarm(alarm, _Place(place.file, place.where + [i]), evaluation))
        names = [a["name"] for a in alarms]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise _Place(place.file, place.where + [i]).error([], f"two alarms are named '{name}': give one "
                                                                   "of them another 'name'")
    return {"namespace": keys.get("namespace", (cw.DEFAULT_NAMESPACE, None))[0],
            "region": keys.get("region", (None, None))[0] or settings["sagemaker"].get("region"),
            "dashboard": (pipeline if dashboard is True else dashboard) or None,
            "alarms": alarms}


def _alarm(raw: dict[str, Any], place: _Place, evaluation: dict[str, Any]) -> dict[str, Any]:
    """One alarm, as `put_metric_alarm` takes it: a floor (`below`) or a ceiling (`above`) on a metric of one
    model or of the selected one, or the selected model scoring below the registry's champion."""
    from lib.decide.metrics import RUN_METRICS

    pipeline = evaluation["pipeline"]["name"]
    if ("below" in raw) == ("above" in raw):
        raise place.error([], "an alarm takes either 'below' (a floor, or 'champion') or 'above' (a ceiling)")
    period = raw.get("period_seconds", cw.DEFAULT_ALARM_PERIOD)
    base = {"actions": list(raw.get("actions") or []), "period_seconds": period}
    if raw.get("below") == "champion":
        gate = evaluation.get("gate") or {}
        if gate.get("champion") != "registry":
            raise place.error(["below"], "an alarm below the champion needs `gate` with `champion: registry` in "
                              "the evaluation config: the gate finds the champion and compares the winner with it "
                              "on the same records")
        objective = evaluation["selection"]["metric"]
        if raw.get("metric", objective) != objective or "model" in raw:
            raise place.error([], f"an alarm below the champion watches the selected model on the selection's "
                              f"first objective ({objective}): give it no 'metric' or 'model'")
        return {**base, "name": raw.get("name") or f"{pipeline} selected {objective} below the champion",
                "metric": objective, "metric_name": cw.CHAMPION_METRIC, "dimensions": cw.dimensions(pipeline),
                "comparison": "LessThanThreshold", "threshold": 0.0, "statistic": "Minimum",
                "description": f"llm-eval-pipelines: a run of {pipeline} selected a model that scored below the "
                               f"registry's champion on {objective} (the gate's paired difference is negative)"}
    if "metric" not in raw:
        raise place.error([], "an alarm needs the 'metric' it watches: a score such as factual_knowledge, or "
                          f"{', '.join(RUN_METRICS)}")
    metric = raw["metric"]
    model = raw.get("model")
    names = [m["name"] for m in evaluation["models"]]
    if model is not None and model not in names:
        raise place.error(["model"], f"'{model}' is not a model of the evaluation config{did_you_mean(model, names)}; "
                          f"its models: {', '.join(names)}")
    algorithm = None
    if metric in RUN_METRICS:
        metric_name = metric
    else:
        algos = {a["eval_name"]: a for a in evaluation["algorithms"]}
        eval_name, _, score = metric.partition(".")
        if eval_name not in algos:
            choices = list(algos) + list(RUN_METRICS)
            raise place.error(["metric"], f"'{metric}' is not a score of a configured algorithm nor a run metric"
                              f"{did_you_mean(metric, choices)}; scores: {', '.join(algos)}; run metrics: "
                              f"{', '.join(RUN_METRICS)}")
        known = algos[eval_name]["score_names"]
        if score and known and score not in known:
            raise place.error(["metric"], f"{eval_name} reports no score '{score}'{did_you_mean(score, known)}; "
                              f"its scores are {', '.join(known)}")
        metric_name = score or (known[0] if known else None)  # an algorithm's name alone: its first score
        if not metric_name:
            raise place.error(["metric"], f"the scores of {eval_name} are known only when it runs: name one, as "
                              f"{eval_name}.<score>")
        algorithm = eval_name
    below = "below" in raw
    threshold = float(raw["below"] if below else raw["above"])
    who = model or "selected"
    return {**base, "name": raw.get("name") or f"{pipeline} {who} {metric} {'below' if below else 'above'} "
                                                 f"{threshold:g}",
            "metric": metric, "metric_name": metric_name,
            "dimensions": cw.dimensions(pipeline, model, algorithm),
            "comparison": "LessThanThreshold" if below else "GreaterThanThreshold", "threshold": threshold,
            # any run in the period that crosses the line trips it, not their average
            "statistic": "Minimum" if below else "Maximum",
            "description": f"llm-eval-pipelines: {'the selected model' if model is None else model}'s {metric} in "
                           f"a run of {pipeline} was {'below' if below else 'above'} {threshold:g}"}
