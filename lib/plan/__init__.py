"""The plan: a pure, inspectable DAG of steps that both executors run (`model`: the data;
`kinds`: the step kinds; `build`: from a config to a plan)."""

from lib.plan.build import build_plan
from lib.plan.kinds import KINDS, STEP_KINDS, StepKind
from lib.plan.model import Param, Plan, PlanError, Ref, Step, call_arguments

__all__ = ["KINDS", "STEP_KINDS", "Param", "Plan", "PlanError", "Ref", "Step", "StepKind", "build_plan",
           "call_arguments"]
