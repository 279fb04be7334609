"""The step kinds: what each calls and what compute it asks for. A new kind of step is one module in
`steps/` plus one line here (and the line in `build.py` that places it in the DAG).

Compute is a hint, not an instance type: each executor maps it. The SageMaker executor turns it
into an instance type (per kind, overridable per run with a `<Kind>InstanceType` parameter) and a
warm pool; the local executor runs every step on a worker thread and ignores the rest.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StepKind:
    name: str
    function: str  # "module:function", called with the step's arguments
    per_model: bool  # one step per model (`<kind>-<model>`) or one for the run (`<kind>`)
    warm_pool: bool = False  # the same job shape repeats per model: keep instances warm between them
    accelerator: bool = False  # wants a GPU instance when the executor has one to give
    # still runs when the run is interrupted, with what has finished (cleanup deletes what was
    # created; select writes the summary, marked interrupted)
    on_interrupt: bool = False


STEP_KINDS: dict[str, StepKind] = {k.name: k for k in (
    StepKind("preprocess", "steps.preprocess:preprocess", per_model=False),
    StepKind("finetune", "steps.finetune:finetune", per_model=True, warm_pool=True),
    StepKind("deploy", "steps.deploy:deploy", per_model=True),
    StepKind("evaluate", "steps.evaluate:evaluate", per_model=True, warm_pool=True, accelerator=True),
    StepKind("select", "steps.select:select", per_model=False, on_interrupt=True),
    StepKind("gate", "steps.gate:gate", per_model=False),
    StepKind("register", "steps.register:register", per_model=False),
    StepKind("cleanup", "steps.cleanup:cleanup", per_model=True, on_interrupt=True),
)}
KINDS = tuple(STEP_KINDS)
