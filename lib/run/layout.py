"""Every path of a run, local or in S3, in one place.

    <root>/dataset/processed.jsonl
    <root>/models/<model>/outputs.jsonl | <eval>.jsonl | <eval>.html | finetuned/
    <root>/selection.json  registry.json  summary.json  report.html  execution.json
    <root>/sinks/<sink>.json                  what a sink (CloudWatch) has sent for this execution

A root may hold ``{execution_id}``: in a SageMaker pipeline the execution id is known only inside
the job (the SDK refuses a Join as a step argument), so the root travels as a template and each
step fills it in. A local run passes a root with the id already in it.
"""

from __future__ import annotations

from dataclasses import dataclass

from lib import storage

EXECUTION_ID_FIELD = "{execution_id}"


def local_root_template(output_dir: str, pipeline: str) -> str:
    """``<output_dir>/<pipeline>/{execution_id}``: where a local run goes by default."""
    return storage.join(output_dir, pipeline, EXECUTION_ID_FIELD)


def s3_root_template(pipeline_root: str) -> str:
    """``s3://<bucket>/<prefix>/<pipeline>/runs/{execution_id}``: where a SageMaker execution goes."""
    return storage.join(pipeline_root, "runs", EXECUTION_ID_FIELD)


@dataclass(frozen=True)
class RunLayout:
    root: str

    @classmethod
    def resolve(cls, root: str, execution_id: str | None) -> RunLayout:
        return cls(root.replace(EXECUTION_ID_FIELD, execution_id or ""))

    def _at(self, *parts: str) -> str:
        return storage.join(self.root, *parts)

    @property
    def is_remote(self) -> bool:
        return storage.is_remote(self.root)

    @property
    def dataset(self) -> str:
        return self._at("dataset", "processed.jsonl")

    def model_dir(self, model: str) -> str:
        return self._at("models", model)

    def outputs(self, model: str) -> str:
        return self._at("models", model, "outputs.jsonl")

    def shard_outputs(self, model: str, index: int) -> str:
        """A shard's answers (`dataset.shards`), merged into `outputs` by the model's merge step."""
        return self._at("models", model, "shards", str(index), "outputs.jsonl")

    def scores(self, model: str, eval_name: str) -> str:
        return self._at("models", model, f"{eval_name}.jsonl")

    def algorithm_page(self, model: str, eval_name: str) -> str:
        return self._at("models", model, f"{eval_name}.html")

    def finetuned(self, model: str) -> str:
        return self._at("models", model, "finetuned")

    @property
    def selection(self) -> str:
        return self._at("selection.json")

    @property
    def registry(self) -> str:
        return self._at("registry.json")

    @property
    def registry_metrics(self) -> str:
        """The evaluation a SageMaker model package points at as its ModelMetrics."""
        return self._at("registry", "evaluation.json")

    @property
    def summary(self) -> str:
        return self._at("summary.json")

    @property
    def report(self) -> str:
        return self._at("report.html")

    @property
    def execution(self) -> str:
        return self._at("execution.json")

    def sink_state(self, sink: str) -> str:
        """What a sink has sent for this execution already (sinks are called again as the summary changes)."""
        return self._at("sinks", f"{sink}.json")

    @property
    def lock(self) -> str:
        """Held by the run writing here (`lib.run.lock`): who it is, since when."""
        return self._at(".lock")

    def local_registry_index(self, group: str) -> str:
        """A local run's registry lives beside the pipeline's runs: ``<runs>/model_registry/<group>.jsonl``."""
        return storage.join(storage.parent(self.root), "model_registry", f"{group}.jsonl")
