"""The records a run produces, typed. Steps pass them between each other as plain JSON (``to_dict``)
because a SageMaker step's arguments and results must be; every reader turns the JSON back into
the record (``from_dict``) rather than poking at keys.

`summary.json` is ``RunSummary.to_dict()``; `selection.json` is ``Selection.to_dict()``;
`registry.json` is ``Registration.to_dict()``.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, fields
from typing import Any

SUCCEEDED, PARTIAL, FAILED, SKIPPED = "succeeded", "partial", "failed", "skipped"
INTERRUPTED = "interrupted"
COMPLETED = "completed"  # a run that ran every step (whatever each model did)
PENDING = "pending"  # a registration about to be made


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """Only the keys ``cls`` declares: records written by an older version still load."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclass
class ModelResult:
    """One model's evaluation: how it was asked, how it answered, what it scored."""

    model: str
    status: str = SUCCEEDED  # succeeded | partial (some records failed, within budget) | failed | interrupted
    error: str | None = None  # why it failed, or how partial it is
    first_error: str | None = None  # the first record's error, as the model or its client said it
    provider: str | None = None
    model_id: str | None = None
    records: int | None = None
    invocations: int | None = None  # records sent to the model in this run (not cache hits, resumed or unasked rows)
    attempts: int | None = None
    errors: int | None = None  # records the model failed on
    cache_hits: int | None = None
    resumed: int | None = None
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    latency_mean_s: float | None = None
    wall_s: float | None = None  # time spent asking the model, start to end
    tokens_per_s: float | None = None  # generated tokens per second of wall time, when the server counts them
    # what evaluating the model cost (0 for a local model), when its price is known: asking it, plus what
    # scoring its answers cost (a judge's calls), also kept apart
    cost_usd: float | None = None
    scoring_cost_usd: float | None = None
    prompt_tokens: int | None = None
    generated_tokens: int | None = None
    scores: dict[str, dict[str, float | None]] = field(default_factory=dict)  # eval name -> score -> mean
    algorithm_errors: dict[str, str] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)
    outputs_uri: str | None = None
    deployment: dict[str, Any] = field(default_factory=dict)  # endpoint, image, artifact: what register needs
    register: dict[str, Any] | None = None  # the model's own register_config (the sample's)
    # how to deploy and ask this model again: its normalised config and its fine-tune's result, kept with
    # its registered version so a later gate can evaluate it as the champion on other data
    recipe: dict[str, Any] | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == SUCCEEDED

    @property
    def selectable(self) -> bool:
        """Evaluated well enough to be chosen: every record, or all but an error budget's worth."""
        return self.status in (SUCCEEDED, PARTIAL)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelResult:
        return cls(**_known(cls, {"model": data.get("model") or "?", **data}))

    @classmethod
    def failure(cls, model: str, error: str) -> ModelResult:
        return cls(model=model, status=FAILED, error=error)


@dataclass
class Selection:
    """Which model won, by what, and why the others did not."""

    metric: str
    direction: str = "max"
    best: str | None = None
    best_value: float | None = None
    ranking: list[dict[str, Any]] = field(default_factory=list)  # [{"model", "value", "score"}], best first
    excluded: dict[str, str] = field(default_factory=dict)  # model -> reason
    objectives: list[dict[str, Any]] = field(default_factory=list)  # [{"metric", "weight", "direction"}]
    constraints: list[dict[str, Any]] = field(default_factory=list)  # [{"metric", "max"|"min"}]
    # model -> {"values": {metric: raw}, "normalised": {metric: 0..1}, "weighted": 0..1, "broke": reason}
    candidates: dict[str, dict[str, Any]] = field(default_factory=dict)
    # the winner over the runner-up on the first objective: difference, and with per-record scores
    # n, low, high (a paired bootstrap interval at `confidence`) and `significant` (low > 0)
    margin: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Selection:
        return cls(**_known(cls, data))


@dataclass
class Gate:
    """Whether the winner may ship: floors, and the champion it must beat by more than noise."""

    status: str  # succeeded (it decided) | skipped (no gate configured, nothing selected) | failed
    decision: str | None = None  # approved | rejected
    approval_status: str | None = None  # what register records: Approved, or the gate's on_fail
    reasons: list[str] = field(default_factory=list)
    model: str | None = None  # the winner it judged
    champion: dict[str, Any] | None = None  # {"model", "version", "value", "package"} or None: no champion yet
    comparison: dict[str, Any] | None = None  # the paired difference over the champion (PairedDifference)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Gate:
        return cls(**_known(cls, data))


@dataclass
class Registration:
    """What register did: a model package (SageMaker), a local registry line, or nothing and why."""

    status: str
    error: str | None = None
    reason: str | None = None  # why nothing was registered
    model_package_group_name: str | None = None
    model_package_group_description: str = ""
    model: str | None = None
    model_id: str | None = None
    provider: str | None = None
    metrics: dict[str, dict[str, float | None]] = field(default_factory=dict)
    selection_metric: str | None = None
    selection_value: float | None = None
    approval_status: str | None = None
    pipeline: str | None = None
    execution_id: str | None = None
    deployment: dict[str, Any] = field(default_factory=dict)
    created_at: str | None = None
    version: int | None = None
    registry: str | None = None  # the local registry file
    model_package_arn: str | None = None
    metrics_uri: str | None = None
    created_group: bool | None = None
    created: list[dict[str, str]] = field(default_factory=list)
    gate_reason: str | None = None  # why the gate decided as it did (in the package's description)
    fingerprint: str | None = None  # same model, data and scores: an identical rerun registers nothing new
    dataset_hash: str | None = None
    # lineage: from the registered version back to the evidence that approved it
    dataset_uri: str | None = None
    config_hash: str | None = None  # sha256 of the evaluation config file as written (`sha256sum` agrees)
    report_uri: str | None = None
    mlflow_run_id: str | None = None  # the execution's parent run (`tracking.mlflow`)
    per_record: dict[str, float | None] = field(default_factory=dict)  # the winner's, on selection_metric
    recipe: dict[str, Any] | None = None  # the winner's `ModelResult.recipe`

    def to_dict(self) -> dict[str, Any]:
        # as `asdict`, but `per_record` (a number for every record: 10,000 in a large run) copied whole,
        # where asdict copies it one value at a time; register writes it five times
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = dict(value) if f.name == "per_record" else copy.deepcopy(value)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Registration:
        return cls(**_known(cls, data))


@dataclass
class RunSummary:
    """The machine-readable contract of a run (`summary.json`)."""

    pipeline: str
    execution_id: str | None
    models: dict[str, ModelResult]
    selection: Selection
    registry: Registration | None = None
    status: str = COMPLETED  # completed | interrupted
    gate: Gate | None = None
    dataset_hash: str | None = None
    dataset_uri: str | None = None  # where the records were read from
    config_hash: str | None = None  # sha256 of the evaluation config file as written
    # what each sink besides the run's files recorded: {"mlflow": {"status", "run_id", ...}, "cloudwatch": {...}}
    tracking: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        models = {}
        for name, result in self.models.items():
            entry = result.to_dict()
            entry.pop("model")  # it is the key
            models[name] = entry
        return {"pipeline": self.pipeline, "execution_id": self.execution_id, "status": self.status,
                "dataset_hash": self.dataset_hash, "dataset_uri": self.dataset_uri, "config_hash": self.config_hash,
                "gate": self.gate.to_dict() if self.gate else None,
                "models": models,
                "selection": self.selection.to_dict(),
                "registry": self.registry.to_dict() if self.registry else None,
                "tracking": self.tracking}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSummary:
        return cls(
            pipeline=data["pipeline"], execution_id=data.get("execution_id"),
            models={name: ModelResult.from_dict({**m, "model": name}) for name, m in data["models"].items()},
            selection=Selection.from_dict(data["selection"]),
            registry=Registration.from_dict(data["registry"]) if data.get("registry") else None,
            status=data.get("status", COMPLETED),
            gate=Gate.from_dict(data["gate"]) if data.get("gate") else None,
            dataset_hash=data.get("dataset_hash"),
            dataset_uri=data.get("dataset_uri"), config_hash=data.get("config_hash"),
            tracking=dict(data.get("tracking") or {}),
        )
