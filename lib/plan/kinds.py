"""The step kinds: what each calls and what compute it asks for. A new kind of step is one module in
`steps/` plus one line here (and the line in `build.py` that places it in the DAG).

Compute is a hint, not an instance type: each executor maps it. The SageMaker executor turns it
into an instance type (per kind, overridable per run with a `<Kind>InstanceType` parameter) and a
warm pool (``warm_pool`` seconds by default, `sagemaker.keep_alive_period_in_seconds` per kind); the
local executor runs every step on a worker thread and ignores the rest.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StepKind:
    name: str
    function: str  # "module:function", called with the step's arguments
    per_model: bool  # one step per model (`<kind>-<model>`) or one for the run (`<kind>`)
    # the same job shape repeats per model: keep instances warm between them, this many seconds by default
    # (the AWS sample's: 2400 for fine-tune, 1200 for evaluation)
    warm_pool: int = 0
    accelerator: bool = False  # wants a GPU instance when the executor has one to give
    # still runs when the run is interrupted, with what has finished (cleanup deletes what was
    # created; select writes the summary, marked interrupted)
    on_interrupt: bool = False
    # "module:function" giving the result of a step the interrupt stopped (called with the step's own
    # arguments, in the wind-down): what it had done, for the summary; None: just "interrupted"
    interrupted: str | None = None


STEP_KINDS: dict[str, StepKind] = {k.name: k for k in (
    StepKind("preprocess", "steps.preprocess:preprocess", per_model=False),
    StepKind("finetune", "steps.finetune:finetune", per_model=True, warm_pool=2400),
    StepKind("deploy", "steps.deploy:deploy", per_model=True),
    # evaluation only calls the model's endpoint and scores text: a CPU instance
    StepKind("evaluate", "steps.evaluate:evaluate", per_model=True, warm_pool=1200,
             interrupted="steps.evaluate:interrupted"),
    # a sharded model's answers (`dataset.shards`) in order, scored as one evaluation
    StepKind("merge", "steps.merge:merge", per_model=True, interrupted="steps.merge:interrupted"),
    StepKind("select", "steps.select:select", per_model=False, on_interrupt=True),
    StepKind("gate", "steps.gate:gate", per_model=False),
    StepKind("register", "steps.register:register", per_model=False),
    StepKind("cleanup", "steps.cleanup:cleanup", per_model=True, on_interrupt=True),
)}
KINDS = tuple(STEP_KINDS)


def default_keep_alive() -> dict[str, int]:
    """The warm pool of each kind that keeps one, in seconds."""
    return {k.name: k.warm_pool for k in STEP_KINDS.values() if k.warm_pool}


def keep_alive_seconds(kind: str, sagemaker_settings: dict) -> int:
    """The warm pool a step of ``kind`` keeps under these settings: ``keep_alive_period_in_seconds`` is a
    mapping per kind (normalised settings) or one number for every kind that keeps a pool."""
    value = sagemaker_settings.get("keep_alive_period_in_seconds")
    if isinstance(value, dict):
        return int(value.get(kind, 0))
    if value is None:
        return default_keep_alive().get(kind, 0)
    return int(value) if STEP_KINDS[kind].warm_pool else 0
