"""Algorithms that must call the model themselves (semantic robustness perturbs each prompt and asks
again): fmeval's `evaluate()` with a ModelRunner over the provider's invoker."""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from lib.engine import fmeval_offline


@contextmanager
def local_ray() -> Iterator[None]:
    """Ray for fmeval's `evaluate()`, bound to 127.0.0.1 (left to itself, Ray listens on every
    interface: 7 sockets measured here) and shut down afterwards, so none of its processes outlives
    the algorithm. A Ray the caller started is left as it is."""
    import ray

    from lib.providers import running

    if ray.is_initialized():
        yield
        return
    before = {p.pid for p in _children()}
    ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, configure_logging=False, log_to_driver=False)
    # registered like a local endpoint: an interrupted run stops it with everything else it started
    running.add("ray:local", _RayCluster([p for p in _children() if p.pid not in before]))
    try:
        yield
    finally:
        running.stop("ray:local")


def _children() -> list[Any]:
    import psutil  # the SageMaker SDK, accelerate and peft require it

    return psutil.Process().children(recursive=True)


class _RayCluster:
    """Ray's processes, started by `ray.init`: ``close`` shuts Ray down and ends any that outlive it
    (its agents only notice their raylet is gone when they next look: once a run outlived a 15 s wait)."""

    def __init__(self, processes: list[Any]) -> None:
        self.processes = processes  # psutil's, which know their start time: a reused pid is never killed

    def close(self, grace_s: float = 5.0) -> None:
        import psutil
        import ray

        ray.shutdown()
        _, alive = psutil.wait_procs(self.processes, timeout=grace_s)
        for proc in alive:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=grace_s)


def runner_class() -> type:
    from fmeval.model_runners.model_runner import ModelRunner

    class InvokerRunner(ModelRunner):
        """fmeval's view of our invoker. Picklable (Ray ships it to its workers): no locks, no clients."""

        def __init__(self, invoker: Any) -> None:
            # fmeval's base __init__ builds a request composer we do not use
            self.invoker = invoker

        def predict(self, prompt: str):
            return self.invoker(prompt).text, None  # no log-probabilities: PromptStereotyping cannot run

        def __reduce__(self):
            return self.__class__, (self.invoker,)

    return InvokerRunner


def evaluate_with_model(algorithm: dict[str, Any], invoker: Any, dataset_uri: str, dataset_name: str,
                        prompt_template: str, num_records: int) -> dict[str, Any]:
    """Same result shape as `scoring.score_outputs`, without per-record rows. Offline, the algorithm is
    built with the stand-ins of `lib.engine.fmeval_substitutes`, and the scores that need the network
    are left out and named in the notes."""
    from lib.scorers.fmeval_algorithms import offline_notes
    from lib.scorers.fmeval_scorer import builtin_spec

    result: dict[str, Any] = {"eval_name": algorithm["eval_name"], "algorithm": algorithm["name"], "scores": {},
                              "per_record": [], "error": None, "notes": ["scored by fmeval evaluate() with the model"]}
    fmeval_offline.prepare()
    spec = builtin_spec(algorithm)
    offline = fmeval_offline.is_offline() and spec is not None and bool(spec.hub_scores)
    unavailable: set[str] = set()
    try:
        from fmeval.data_loaders.data_config import DataConfig

        module = importlib.import_module(algorithm["module"])
        config_cls = getattr(module, algorithm["config_class"]) if algorithm.get("config_class") else None
        cls = getattr(module, algorithm["name"])
        config = DataConfig(dataset_name=dataset_name, dataset_uri=dataset_uri,
                            dataset_mime_type="application/jsonlines", model_input_location="model_input",
                            target_output_location="target_output")
        substitutes = nullcontext()
        if offline:
            from lib.engine import fmeval_substitutes

            unavailable = fmeval_substitutes.unavailable_scores(spec)
            substitutes = fmeval_substitutes.substituted()
        with substitutes:  # semantic robustness builds its transforms in evaluate(): keep the stand-ins there too
            algo = cls(config_cls(**algorithm["options"])) if config_cls else cls()
            if offline:
                fmeval_substitutes.without_bertscore(algo)
            if getattr(invoker, "ready", None) is not None:
                invoker.ready()  # a local model loads here, not inside the workers' first calls
            with local_ray():
                outputs = algo.evaluate(model=runner_class()(invoker), dataset_config=config,
                                        prompt_template=prompt_template, num_records=num_records, save=False)
    except Exception as exc:  # unavailable offline, or the model failed throughout: data, not a crash
        result["error"] = f"{algorithm['name']} could not run: {type(exc).__name__}: {str(exc)[:300]}"
        return result
    scores = outputs[0].dataset_scores or []
    result["scores"] = {s.name: (None if s.value is None or math.isnan(s.value) else round(float(s.value), 6))
                        for s in scores if s.name not in unavailable}
    if offline:
        result["notes"] += offline_notes(spec, unavailable)
    return result
