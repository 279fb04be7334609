"""MLflow: one parent run per pipeline execution, one child run per model.

A child holds how its model was asked (parameters: provider, model, prompt template, inference
parameters, dataset and its hash), what it scored and cost (metrics), its per-record table (an MLflow
table: the UI's evaluation view) and fmeval's pages. The parent holds the run's lineage (execution,
dataset, config hash, report), the selected model's values, the selection, gate and registry as tags,
and `summary.json`, `report.html` and the config file as artifacts.

Idempotent per execution: the parent is found again by its execution-id tag and each child by its
parent and model, so the publish after select and those after register update the same runs.
Parameters and metrics go once (a parameter cannot change in MLflow); tags and artifacts are replaced.
mlflow is imported here only, when `tracking.mlflow` is on: it takes seconds to import.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import posixpath
import re
import threading
import time
from typing import Any

from lib import storage
from lib.run.layout import RunLayout
from lib.run.records import FAILED, INTERRUPTED, ModelResult, RunSummary
from lib.sinks import measures
from lib.sinks.context import _PARAM_MAX

EXECUTION_TAG = "llm_eval.execution_id"
MODEL_TAG = "llm_eval.model"
ROLE_TAG = "llm_eval.run"  # execution (the parent) or model (a child)
LOGGED_TAG = "llm_eval.logged"  # parameters, metrics and tables are in: the next publish leaves them
_TAG_MAX = 5000  # MLflow takes 8000 characters
TABLE_RECORDS = 10_000  # rows in a model's per-record table; the run's own files hold every record
_KEY_BAD = re.compile(r"[^A-Za-z0-9_\-. /]")  # what MLflow allows in a key

_CLIENTS: dict[str, Any] = {}
_LOCK = threading.Lock()


def _key(name: str) -> str:
    return _KEY_BAD.sub("_", name)[:250]


def _tag(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:_TAG_MAX]


def _client(uri: str) -> Any:
    """One MlflowClient per tracking URI and process (its store opens the database once)."""
    with _LOCK:
        if uri not in _CLIENTS:
            os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # a run reports to no one it was not told to
            from mlflow import MlflowClient

            if logging.getLogger().getEffectiveLevel() > logging.INFO:  # unless --verbose (mlflow sets its own
                for name in ("mlflow", "alembic"):                     # level when imported: after that)
                    logging.getLogger(name).setLevel(logging.WARNING)

            _CLIENTS[uri] = MlflowClient(tracking_uri=uri)
        return _CLIENTS[uri]


def _experiment_id(client: Any, name: str, uri: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if uri.startswith("sqlite:///"):  # artifacts beside the database, not in whatever folder the run started in
        location = os.path.join(os.path.dirname(uri[len("sqlite:///"):]), "mlartifacts", name)
    try:
        # the UI then opens on the runs table (parents and their model runs), not on its GenAI trace views
        return client.create_experiment(name, artifact_location=location,
                                        tags={"mlflow.experimentKind": "custom_model_development"})
    except Exception:  # made by another process meanwhile
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


class MlflowSink:
    name = "mlflow"

    def __init__(self, tracking: dict[str, Any]) -> None:
        self.tracking = tracking  # the step's `tracking` argument (lib/sinks/context.py)
        self.uri = tracking["mlflow"]["uri"]
        self.experiment = tracking["mlflow"]["experiment"]

    def publish(self, summary: RunSummary, layout: RunLayout) -> dict[str, Any]:
        if summary.status == INTERRUPTED:  # Ctrl-C ends a run in seconds: not the seconds of importing mlflow
            return {"uri": self.uri, "experiment": self.experiment, "skipped": "the run was interrupted"}
        client = _client(self.uri)
        experiment_id = _experiment_id(client, self.experiment, self.uri)
        parent = self._parent(client, experiment_id, summary)
        children = self._children(client, experiment_id, parent.info.run_id, summary)
        for name, result in summary.models.items():
            self._child(client, children[name], result, summary, layout)
        self._parent_record(client, parent, summary, layout)
        info = {"uri": self.uri, "experiment": self.experiment, "experiment_id": experiment_id,
                "run_id": parent.info.run_id,
                "model_runs": {name: run.info.run_id for name, run in children.items()}}
        if self.uri.startswith("sqlite:"):
            info["view"] = f"mlflow ui --backend-store-uri {self.uri}"
        return info

    # -- finding the execution's runs again ------------------------------------------------------------

    def _parent(self, client: Any, experiment_id: str, summary: RunSummary) -> Any:
        execution = summary.execution_id or ""
        found = client.search_runs([experiment_id], max_results=1,
                                   filter_string=f"tags.`{EXECUTION_TAG}` = '{_quoted(execution)}' "
                                                 f"and tags.`{ROLE_TAG}` = 'execution'")
        if found:
            return found[0]
        return client.create_run(experiment_id, run_name=execution or summary.pipeline,
                                 tags={EXECUTION_TAG: execution, ROLE_TAG: "execution",
                                       "llm_eval.pipeline": summary.pipeline})

    def _children(self, client: Any, experiment_id: str, parent_id: str, summary: RunSummary) -> dict[str, Any]:
        runs = client.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'",
                                  max_results=1000)
        children = {r.data.tags.get(MODEL_TAG): r for r in runs}
        for name in summary.models:
            if name not in children:
                children[name] = client.create_run(
                    experiment_id, run_name=name,
                    tags={"mlflow.parentRunId": parent_id, MODEL_TAG: name, ROLE_TAG: "model",
                          EXECUTION_TAG: summary.execution_id or "", "llm_eval.pipeline": summary.pipeline})
        return children

    # -- one model ---------------------------------------------------------------------------------------

    def _child(self, client: Any, run: Any, result: ModelResult, summary: RunSummary, layout: RunLayout) -> None:
        from mlflow.entities import Metric, Param, RunTag

        run_id = run.info.run_id
        selection = summary.selection
        rank = next((i + 1 for i, r in enumerate(selection.ranking) if r.get("model") == result.model), None)
        tags = {"llm_eval.status": result.status, "llm_eval.selected": str(result.model == selection.best).lower(),
                "llm_eval.rank": str(rank) if rank else "", "llm_eval.error": result.error or "",
                "llm_eval.excluded": selection.excluded.get(result.model, "")}
        if LOGGED_TAG not in run.data.tags:
            params = {**self.tracking.get("models", {}).get(result.model, {}), **self._dataset_params(summary)}
            if not params.get("provider") and result.provider:
                params["provider"] = result.provider
            now = int(time.time() * 1000)
            values = {f"{e}.{s}": v for e, s, v in measures.scores(result)}
            values.update(measures.run_metrics(result))
            values.update(measures.counts(result))
            client.log_batch(run_id, metrics=[Metric(_key(k), v, now, 0) for k, v in values.items()],
                             params=[Param(_key(k), str(v)) for k, v in params.items()])
            self._records(client, run_id, result, layout)
            self._dataset_input(client, run_id, summary)
            tags[LOGGED_TAG] = "1"
        client.log_batch(run_id, tags=[RunTag(k, _tag(v)) for k, v in tags.items() if v not in ("", None)])
        client.set_terminated(run_id, "FAILED" if result.status == FAILED else "FINISHED")

    def _records(self, client: Any, run_id: str, result: ModelResult, layout: RunLayout) -> None:
        """The per-record table: each record's prompt, answer, error, latency and every score; the first
        `TABLE_RECORDS` records (a table is held whole to be logged; the run's files hold them all)."""
        import pandas as pd

        outputs_uri = result.outputs_uri or layout.outputs(result.model)
        if not storage.exists(outputs_uri):
            return
        keep = ("id", "model_input", "prompt", "target_output", "output", "error", "latency_s", "prompt_tokens",
                "generated_tokens", "cached")
        rows = {r["id"]: {k: r.get(k) for k in keep}
                for r in itertools.islice(storage.iter_jsonl(outputs_uri), TABLE_RECORDS) if "id" in r}
        if result.records and result.records > len(rows):
            client.set_tag(run_id, "records_table", f"the first {len(rows)} of {result.records} records; "
                                                    f"all of them are in {outputs_uri}")
        for eval_name in result.scores:
            scores_uri = layout.scores(result.model, eval_name)
            if storage.exists(scores_uri):
                for r in itertools.islice(storage.iter_jsonl(scores_uri), TABLE_RECORDS):
                    row = rows.get(r.get("id"))
                    if row is not None:
                        row.update({f"{eval_name}.{k}": v for k, v in r.items()
                                    if k != "id" and (isinstance(v, (int, float)) or v is None)})
            page = layout.algorithm_page(result.model, eval_name)
            if storage.exists(page):
                client.log_text(run_id, storage.read_text(page), f"fmeval/{eval_name}.html")
        if rows:
            client.log_table(run_id, data=pd.DataFrame(list(rows.values())), artifact_file="records.json")

    # -- the execution -----------------------------------------------------------------------------------

    def _dataset_params(self, summary: RunSummary) -> dict[str, str]:
        values = {"dataset_name": self.tracking.get("dataset_name"), "dataset_uri": summary.dataset_uri,
                  "dataset_hash": summary.dataset_hash}
        return {k: str(v) for k, v in values.items() if v}

    def _dataset_input(self, client: Any, run_id: str, summary: RunSummary) -> None:
        """The dataset as MLflow's own input record (the UI's Datasets column): name, digest and source."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        if not summary.dataset_hash:
            return
        uri = summary.dataset_uri or ""
        dataset = Dataset(name=self.tracking.get("dataset_name") or "dataset", digest=summary.dataset_hash[:36],
                          source_type="s3" if uri.startswith("s3://") else "local", source=json.dumps({"uri": uri}))
        client.log_inputs(run_id, datasets=[DatasetInput(dataset, tags=[InputTag("mlflow.data.context",
                                                                                  "evaluation")])])

    def _parent_record(self, client: Any, parent: Any, summary: RunSummary, layout: RunLayout) -> None:
        from mlflow.entities import Metric, Param, RunTag

        run_id = parent.info.run_id
        sel, gate, reg = summary.selection, summary.gate, summary.registry
        tags: dict[str, Any] = {
            "llm_eval.status": summary.status, "llm_eval.selection.best": sel.best or "",
            "llm_eval.selection.metric": sel.metric, "llm_eval.selection.direction": sel.direction,
            "llm_eval.selection.best_value": "" if sel.best_value is None else f"{sel.best_value:.6g}",
            "llm_eval.selection.ranking": " > ".join(r.get("model", "?") for r in sel.ranking),
            "llm_eval.selection.excluded": "; ".join(f"{m}: {why}" for m, why in sel.excluded.items()),
            "llm_eval.report_uri": layout.report, "mlflow.note.content": _note(summary, layout),
        }
        if gate is not None:
            tags.update({"llm_eval.gate.decision": gate.decision or gate.status,
                         "llm_eval.gate.approval_status": gate.approval_status or "",
                         "llm_eval.gate.reasons": "; ".join(gate.reasons)})
            if gate.champion:
                tags["llm_eval.gate.champion"] = gate.champion
        if reg is not None:
            tags.update({"llm_eval.registry.status": reg.status,
                         "llm_eval.registry.group": reg.model_package_group_name or "",
                         "llm_eval.registry.version": "" if reg.version is None else str(reg.version),
                         "llm_eval.registry.approval_status": reg.approval_status or "",
                         "llm_eval.registry.model_package_arn": reg.model_package_arn or "",
                         "llm_eval.registry.reason": reg.reason or reg.error or ""})
        if LOGGED_TAG not in parent.data.tags:
            params = {"pipeline": summary.pipeline, "execution_id": summary.execution_id or "",
                      "config_hash": summary.config_hash or self.tracking.get("config_hash") or "",
                      "selection_metric": sel.metric, "selection_direction": sel.direction,
                      "models": ", ".join(summary.models), **self._dataset_params(summary)}
            now = int(time.time() * 1000)
            metrics = []
            if sel.best and sel.best in summary.models:
                best = summary.models[sel.best]
                values = {f"selected.{e}.{s}": v for e, s, v in measures.scores(best)}
                values.update({f"selected.{k}": v for k, v in measures.run_metrics(best).items()})
                metrics = [Metric(_key(k), v, now, 0) for k, v in values.items()]
            margin = measures.number((sel.margin or {}).get("difference"))
            if margin is not None:
                metrics.append(Metric("selection.margin", margin, now, 0))
            client.log_batch(run_id, metrics=metrics, params=[Param(_key(k), str(v)[:_PARAM_MAX])
                                                              for k, v in params.items() if v])
            if self.tracking.get("config_text"):
                client.log_text(run_id, self.tracking["config_text"],
                                f"config/{self.tracking.get('config_file') or 'evaluation_config.yaml'}")
            self._dataset_input(client, run_id, summary)
            tags[LOGGED_TAG] = "1"
        if gate is not None and gate.comparison and "gate.champion_difference" not in parent.data.metrics:
            difference = measures.number(gate.comparison.get("difference"))
            if difference is not None:  # known from register's publish on
                client.log_batch(run_id, metrics=[Metric("gate.champion_difference", difference,
                                                         int(time.time() * 1000), 0)])
        client.log_batch(run_id, tags=[RunTag(k, _tag(v)) for k, v in tags.items() if v not in ("", None)])
        # in the run's root as in the run's folder, under the same names
        client.log_dict(run_id, summary.to_dict(), posixpath.basename(layout.summary))
        if storage.exists(layout.report):
            client.log_text(run_id, storage.read_text(layout.report), posixpath.basename(layout.report))
        client.set_terminated(run_id, "FINISHED")


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _note(summary: RunSummary, layout: RunLayout) -> str:
    """The parent run's description in the MLflow UI: the verdict in a few lines of Markdown."""
    sel = summary.selection
    lines = [f"**{summary.pipeline}** execution `{summary.execution_id}`: "
             + (f"selected **{sel.best}** ({sel.metric} = {sel.best_value:.4g})" if sel.best and
                sel.best_value is not None else "nothing selected")]
    if summary.gate and summary.gate.decision:
        lines.append(f"gate: {summary.gate.decision} ({summary.gate.approval_status}): "
                     + "; ".join(summary.gate.reasons))
    reg = summary.registry
    if reg and reg.version is not None:
        lines.append(f"registered as version {reg.version} of {reg.model_package_group_name}"
                     + (f" ({reg.model_package_arn})" if reg.model_package_arn else ""))
    lines.append(f"report: {layout.report}")
    return "\n\n".join(lines)
