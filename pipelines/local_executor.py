"""Run a plan on this machine: the same step functions SageMaker runs, in dependency order, with
independent steps (one per model) in parallel threads of this process.

Local endpoints are servers inside this process, so nothing outlives a run: after success, after a
failed step, and after Ctrl-C, `run_plan` stops every one of them before it returns or raises.
"""

from __future__ import annotations

import importlib
import os
import secrets
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from functools import partial
from typing import Any

from lib import progress, storage
from lib.plan import STEP_KINDS, Param, Plan, Ref, Step, call_arguments
from lib.providers import running
from lib.run import interrupt
from lib.run.layout import RunLayout


def new_execution_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def _function(path: str) -> Callable[..., Any]:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _value(value: Any, results: dict[str, Any], params: dict[str, Any]) -> Any:
    if isinstance(value, Ref):
        return results[value.step]
    if isinstance(value, Param):
        return params.get(value.name)
    return value


def _call(step: Step, results: dict[str, Any], params: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """The step's result and its own run time (not the time it waited for a worker)."""
    progress.say(step.name, "started")
    progress.track(step.name, state="running")
    started = time.perf_counter()
    fn = _function(step.function)
    args, kwargs = call_arguments(step, fn, lambda v: _value(v, results, params))
    return fn(*args, **kwargs), round(time.perf_counter() - started, 2)


def configure_threads(max_workers: int) -> None:
    """Give each parallel worker its share of the cores: torch's spinning threads collide otherwise.
    Without importing torch (3 s): a run that asks no local model may never need it, and torch takes
    its thread count from OMP_NUM_THREADS when it is imported. A local model's own work shares the
    cores as it goes (`local_model.cores_shared`), one thread each when several run, so torch's threads
    may spin while they wait: a lone fine-tune on 2 threads takes 2.0 s a step spinning, 3.0 s with
    OMP_WAIT_POLICY=PASSIVE, no faster than on one thread (measured 2026-12-01)."""
    share = max(1, (os.cpu_count() or 1) // max(1, max_workers))
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(share)
    else:
        os.environ.setdefault("OMP_NUM_THREADS", str(share))


def _wind_down(plan: Plan, results: dict[str, Any], params: dict[str, Any]) -> None:
    """After an interrupt: run, in this thread, every step whose kind runs on interrupt (cleanup,
    then select), with what has finished; a step still running or never started counts as
    interrupted (a deploy in progress, with what it has created so far)."""
    def value(v: Any, described: bool = True) -> Any:
        if isinstance(v, Ref):
            if v.step in results:
                return results[v.step]
            return running.partial_result(v.step) or (stopped(plan.step(v.step)) if described else None) or {
                "status": "interrupted", "error": "interrupted before it finished", "model": plan.step(v.step).model}
        return _value(v, results, params)

    def stopped(step: Any) -> dict[str, Any] | None:
        """What a step the interrupt stopped had done, when its kind can say (an evaluation's answers)."""
        how = STEP_KINDS[step.kind].interrupted
        if how is None:
            return None
        fn = _function(how)
        try:
            args, kwargs = call_arguments(step, fn, partial(value, described=False))
            return fn(*args, **kwargs)
        except Exception as exc:  # the wind-down goes on: the step is just "interrupted"
            progress.say(step.name, f"could not read what it had done: {type(exc).__name__}: {exc}")
            return None

    for step in sorted(plan.steps, key=lambda s: s.kind != "cleanup"):  # money first
        if step.name in results or not STEP_KINDS[step.kind].on_interrupt:
            continue
        fn = _function(step.function)
        # cleanup deletes at once, without reading how far each evaluation got (select says that)
        args, kwargs = call_arguments(step, fn, partial(value, described=step.kind != "cleanup"))
        try:
            results[step.name] = fn(*args, **kwargs)
        except Exception as exc:
            results[step.name] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
            progress.say(step.name, f"raised {type(exc).__name__}: {exc}")


def preload(modules: list[str]) -> None:
    """Import, in this thread and before any worker starts, what steps will import in parallel."""
    if modules:
        progress.say("executor", f"loading {', '.join(modules)}")
    for name in modules:
        if name.startswith("fmeval."):
            from lib.engine import fmeval_offline

            fmeval_offline.prepare()  # fmeval reads its offline settings at import
        try:
            importlib.import_module(name)
        except ImportError as exc:  # the step that needs it will report it as its own failure
            progress.say("executor", f"could not load {name}: {exc}")


STOPPING_SECONDS = 2.0  # how long an interrupted run waits for its running steps to stop


def run_plan(plan: Plan, params: dict[str, Any], max_workers: int = 2) -> dict[str, Any]:
    """Execute every step; a step that raises becomes a failed result and its dependants still run.

    On SIGINT/SIGTERM (`Interrupted`, or a KeyboardInterrupt from a worker) no new model call starts,
    cleanup and select run with what has finished, every local endpoint stops, and the interrupt
    is raised again for the caller to exit with its code."""
    interrupt.reset()  # a new run starts unstopped, whatever an earlier one in this process did
    preload(plan.preload)
    results: dict[str, Any] = {}
    timings: dict[str, float] = {}
    pending = {s.name: s for s in plan.steps}
    in_flight: dict[Future, str] = {}
    pool = ThreadPoolExecutor(max_workers=max(1, max_workers), thread_name_prefix="step")
    try:
        while pending or in_flight:
            for name, step in list(pending.items()):
                if set(step.depends_on) <= results.keys():
                    del pending[name]
                    in_flight[pool.submit(_call, step, results, params)] = name
            done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
            for future in done:
                name = in_flight.pop(future)
                try:
                    results[name], timings[name] = future.result()
                except Exception as exc:  # a bug in a step: record it, keep going so cleanup runs
                    results[name] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
                    progress.say(name, f"raised {type(exc).__name__}: {exc}")
                status = results[name].get("status") or "done"
                progress.track(name, state=status)
                progress.say(name, f"{status} in {timings.get(name, 0):.1f}s")
    except (KeyboardInterrupt, interrupt.Interrupted):
        interrupt.request()
        pool.shutdown(wait=False, cancel_futures=True)
        # steps that look at the flag (asking, scoring) stop within moments and remove what they had half
        # written; one inside a long generate or training step is not waited for beyond this
        wait(list(in_flight), timeout=STOPPING_SECONDS)
        _wind_down(plan, results, params)
        raise
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        stopped = running.stop_all()
        if stopped:
            progress.say("executor", f"stopped {len(stopped)} local endpoint(s) left running")
        storage.write_json(RunLayout.resolve(params["run_root"], params["execution_id"]).execution,
                           {"pipeline": plan.pipeline, "execution_id": params["execution_id"],
                            "steps": {s.name: {"seconds": timings.get(s.name),
                                               "status": (results.get(s.name) or {}).get("status", "not run"),
                                               "error": (results.get(s.name) or {}).get("error")}
                                      for s in plan.steps}})
    return results
