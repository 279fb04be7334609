"""fmeval's algorithms as scorers: output-only ones score stored answers with fmeval's own per-record
code (`evaluate_sample`, or the transform it wraps), so the numbers are fmeval's and only the loop is
ours; the ones that must call the model go through fmeval's `evaluate()` with our model runner.

Measured here: 10,000 records x FactualKnowledge in ~0.2 s with `evaluate_sample`, against ~15 s
for `evaluate()` on 2,000 (Ray start-up and stages).
"""

from __future__ import annotations

import functools
import importlib
import json
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from lib.engine import deferred_imports, fmeval_offline
from lib.engine.score import RowScoring, empty_result
from lib.scorers.fmeval_algorithms import BUILTIN, AlgorithmSpec, offline_notes


class ScoringUnavailable(RuntimeError):
    """The algorithm cannot run here (e.g. it needs the Hugging Face Hub); the message says why."""


def _config(algorithm: dict[str, Any], module: Any) -> Any:
    if not algorithm.get("config_class"):
        return None
    return getattr(module, algorithm["config_class"])(**algorithm["options"])


_BUILT: dict[str, tuple[Callable[[str, str, str], dict[str, float]], list[str]]] = {}
_BUILT_LOCK = threading.Lock()


def record_scorer(algorithm: dict[str, Any]) -> tuple[Callable[[str, str, str], dict[str, float]], list[str]]:
    """A function (model_input, target_output, model_output) -> {score: value}, and notes on substitutes.

    Built once per process for each algorithm, options and online/offline mode, and shared by every
    model scored with it (fmeval's per-record code keeps no state between records)."""
    key = json.dumps([algorithm["name"], algorithm.get("module"), algorithm.get("config_class"),
                      algorithm.get("options") or {}, fmeval_offline.is_offline()], sort_keys=True, default=repr)
    with _BUILT_LOCK:  # two models scored at once build it once
        if key not in _BUILT:
            _BUILT[key] = _build_scorer(algorithm)
        scorer, notes = _BUILT[key]
    return scorer, list(notes)


def builtin_spec(algorithm: dict[str, Any]) -> AlgorithmSpec | None:
    """The table's entry for one of fmeval's own algorithms (None for a class of your own)."""
    spec = BUILTIN.get(algorithm["name"])
    return spec if spec is not None and algorithm.get("module", spec.module) == spec.module else None


def _build_scorer(algorithm: dict[str, Any]) -> tuple[Callable[[str, str, str], dict[str, float]], list[str]]:
    fmeval_offline.prepare()
    name = algorithm["name"]
    try:
        with deferred_imports.deferred():  # torch and transformers only when the algorithm uses them
            module = importlib.import_module(algorithm["module"])
    except Exception as exc:
        raise ScoringUnavailable(f"{algorithm['module']} does not import: {type(exc).__name__}: {exc}") from None
    qa_module = sys.modules.get("fmeval.eval_algorithms.qa_accuracy")  # QAAccuracy's, and its robustness's
    if qa_module is not None:
        _without_nltk(qa_module)
    _normalise_once(module)
    spec = builtin_spec(algorithm)
    if spec is not None and name == "ClassificationAccuracy":
        return _classification(algorithm, module), []
    if spec is not None and name == "FactualKnowledge":
        return _factual_knowledge(algorithm, module), []
    if spec is None or not fmeval_offline.is_offline() or not spec.hub_scores:
        return _evaluate_sample(name, lambda: _construct(algorithm, module)), []

    from lib.engine import fmeval_substitutes

    unavailable = fmeval_substitutes.unavailable_scores(spec)
    notes = offline_notes(spec, unavailable)
    if name == "QAAccuracy":
        # The full algorithm adds BERTScore, whose model comes from the Hub. fmeval's own transform
        # computes the other five scores exactly as QAAccuracy does.
        transform = module.QAAccuracyScores(
            target_output_delimiter=algorithm["options"].get("target_output_delimiter", "<OR>"))
        names = list(module.QA_ACCURACY_SCORE_NAMES)
        funcs = getattr(module, "QA_ACCURACY_SCORES_TO_FUNCS", None)
        if funcs is not None and set(names) <= set(funcs):
            return _best_over_targets(names, funcs, transform.target_output_delimiter, max), notes

        def qa(model_input: str, target: str, output: str) -> dict[str, float]:  # a fmeval made otherwise
            record = transform(_Record(target_output=target, model_output=output))
            return {n: float(record[n]) for n in names}

        return qa, notes
    if name == "SummarizationAccuracy":
        return _summarization_offline(algorithm, module, unavailable), notes
    with fmeval_substitutes.substituted():  # the toxicity family builds the profanity classifier here
        score = _evaluate_sample(name, lambda: _construct(algorithm, module))

    def available(model_input: str, target: str, output: str) -> dict[str, float]:
        return {k: v for k, v in score(model_input, target, output).items() if k not in unavailable}

    return available, notes


def _normalise_once(module: Any) -> None:
    """fmeval's `normalize_text_quac_protocol` (a pure function of the text) normalises the same texts many
    times a record: FactualKnowledge the answer once per target, QAAccuracy each text once per metric
    (eight times a record, half its cost), then each the same texts again. The algorithm module's own name
    for it becomes one memo shared by every such module, holding the last few texts, so each text is
    normalised once a record; every score is the same."""
    normalise = getattr(module, "normalize_text_quac_protocol", None)
    if normalise is None or hasattr(normalise, "cache_info"):
        return
    with _MEMO_LOCK:
        memo = _MEMOS.get(normalise)
        if memo is None:
            memo = _MEMOS[normalise] = functools.lru_cache(maxsize=32)(normalise)
    module.normalize_text_quac_protocol = memo


# the memo of each normalising function, shared by the modules that name it (FactualKnowledge's, QAAccuracy's)
_MEMOS: dict[Callable[[str], str], Callable[[str], str]] = {}
_MEMO_LOCK = threading.Lock()


def _without_nltk(module: Any) -> None:
    """QAAccuracy's module takes precision, recall and F-measure from `nltk.metrics.scores`, which
    `deferred_imports` leaves for first use: its own names for them become the same three functions
    (`set_overlap`), so nltk is never imported for them (QAAccuracy's scores, and its robustness
    algorithms', which use its functions); every score is the same."""
    from lib.scorers import set_overlap

    for name in ("precision", "recall", "f_measure"):
        setattr(module, name, getattr(set_overlap, name))


def _construct(algorithm: dict[str, Any], module: Any) -> Any:
    try:
        cls = getattr(module, algorithm["name"])
        config = _config(algorithm, module)
        return cls(config) if config is not None else cls()
    except Exception as exc:
        why = ("; offline runs lack the helper models it downloads from the Hugging Face Hub or GitHub"
               if fmeval_offline.is_offline() else "")
        raise ScoringUnavailable(f"{algorithm['name']} cannot be constructed here "
                                 f"({type(exc).__name__}: {str(exc)[:200]}){why}") from None


def _evaluate_sample(name: str, build: Callable[[], Any]) -> Callable[[str, str, str], dict[str, float]]:
    """fmeval's per-record scoring: `evaluate_sample` with the arguments its signature asks for."""
    import inspect

    algo = build()
    params = list(inspect.signature(algo.evaluate_sample).parameters)

    def score(model_input: str, target: str, output: str) -> dict[str, float]:
        available = {"model_input": model_input, "target_output": target, "model_output": output}
        scores = algo.evaluate_sample(**{p: available[p] for p in params if p in available})
        return {s.name: float(s.value) for s in scores if s.value is not None}

    return score


def _classification(algorithm: dict[str, Any], module: Any) -> Callable[[str, str, str], dict[str, float]]:
    """ClassificationAccuracy's `evaluate_sample`, with the transform pipeline it builds on every call
    built once (two thirds of its cost per record): the same transform, so the same score."""
    algo = _construct(algorithm, module)
    name = module.CLASSIFICATION_ACCURACY_SCORE
    try:  # fmeval's own builder, not public; without labels evaluate_sample refuses each record, and says why
        pipeline = algo._build_pipeline(algo.valid_labels) if algo.valid_labels else None
    except Exception:  # a fmeval without it
        pipeline = None
    if pipeline is None:
        return _evaluate_sample(algorithm["name"], lambda: algo)

    def classification(model_input: str, target: str, output: str) -> dict[str, float]:
        value = pipeline.execute_record(_Record(target_output=target, model_output=output))[name]
        return {name: float(value)} if value is not None else {}

    return classification


def _factual_knowledge(algorithm: dict[str, Any], module: Any) -> Callable[[str, str, str], dict[str, float]]:
    """FactualKnowledge's `evaluate_sample`, as the one transform of the pipeline it builds from its config
    computes it (`_best_over_targets`), without the pipeline and the score objects around it."""
    algo = _construct(algorithm, module)
    transforms = getattr(getattr(algo, "pipeline", None), "transforms", [])
    names = getattr(module, "SCORE_NAMES", None)
    funcs = getattr(module, "FACTUAL_KNOWLEDGE_SCORES_TO_FUNCS", None)
    if (len(transforms) == 1 and isinstance(transforms[0], module.FactualKnowledgeScores) and names and funcs
            and set(names) <= set(funcs) and transforms[0].logical_operator in ("OR", "AND")):
        combine = max if transforms[0].logical_operator == "OR" else min
        return _best_over_targets(names, funcs, transforms[0].target_output_delimiter, combine)
    return _evaluate_sample(algorithm["name"], lambda: algo)  # a fmeval made otherwise


def _best_over_targets(names: list[str], funcs: dict[str, Callable[[str, str], float]], delimiter: str | None,
                       combine: Callable[[list[float]], float]) -> Callable[[str, str, str], dict[str, float]]:
    """What FactualKnowledge's and QAAccuracy's transforms compute for a record (their `_get_score`): each
    score is fmeval's own function of the answer and one target, over every target the delimiter
    separates, the best of them (``max``; FactualKnowledge's "AND" takes the worst, ``min``). Called
    straight, without the transform's record, its key checks and its loop (a third to a half of their cost
    per record): the same numbers, tested against the transforms."""
    scored = [(name, funcs[name]) for name in names]

    def score(model_input: str, target: str, output: str) -> dict[str, float]:
        targets = target.split(delimiter)
        return {name: float(combine([fn(output, t) for t in targets])) for name, fn in scored}

    return score


class _Record(dict):
    """A record given to fmeval's transforms (ClassificationAccuracy's; QAAccuracy's where its score functions
    are not at hand). Their key check (`validate_call`) formats the whole record into its error message on
    every call, before it knows whether there is an error: a third of QAAccuracy's transform's cost per
    record. Shown as a fixed phrase, the check costs what a check should; its message still names the
    missing keys."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "(the record being scored)"


def _summarization_offline(algorithm: dict[str, Any], module: Any, unavailable: set[str]
                           ) -> Callable[[str, str, str], dict[str, float]]:
    """SummarizationAccuracy's own transforms (METEOR, ROUGE; BERTScore left out), built as the algorithm
    builds them, so the numbers are fmeval's."""
    from lib.engine import fmeval_substitutes

    try:
        config = _config(algorithm, module) or module.SummarizationAccuracyConfig()
        with fmeval_substitutes.substituted():
            meteor, rouge, _ = module.SummarizationAccuracy._create_transforms(
                target_output_keys=["target_output"], model_output_keys=["model_output"], meteor_keys=["meteor"],
                rouge_keys=["rouge"], bertscore_keys=["bertscore"], rouge_type=config.rouge_type,
                use_stemmer_for_rouge=config.use_stemmer_for_rouge,
                bertscore_model=fmeval_substitutes.UnavailableBertscore())
    except Exception as exc:
        raise ScoringUnavailable(f"SummarizationAccuracy cannot be constructed here "
                                 f"({type(exc).__name__}: {str(exc)[:200]})") from None
    transforms = [t for t, n in ((meteor, "meteor"), (rouge, "rouge")) if n not in unavailable]

    def summarization(model_input: str, target: str, output: str) -> dict[str, float]:
        record: dict[str, Any] = {"target_output": target, "model_output": output}
        for transform in transforms:
            record = transform(record)
        return {n: float(record[n]) for n in ("meteor", "rouge") if n in record}

    return summarization


class FmevalScorer:
    """One configured fmeval algorithm (built in, or your own class by import path). Built with the evaluate
    step's context: PromptStereotyping asks the candidate (``context["model"]``) for log-probabilities."""

    kind = "fmeval"
    takes_context = True

    def __init__(self, algorithm: dict[str, Any], context: dict[str, Any] | None = None) -> None:
        self.algorithm = algorithm
        self.context = context or {}
        self.needs_model = bool(algorithm.get("needs_model"))
        spec = builtin_spec(algorithm)
        self.lower_is_better = bool(spec and spec.lower_is_better)
        self.needs_log_probabilities = bool(spec and spec.needs_log_probabilities)

    @classmethod
    def check_models(cls, algorithm: dict[str, Any], models: list[dict[str, Any]]) -> None:
        """At validate: an algorithm that needs log-probabilities names each candidate whose provider cannot
        return them (`lib.providers.base.Provider.log_probabilities`)."""
        spec = builtin_spec(algorithm)
        if not (spec and spec.needs_log_probabilities):
            return
        from lib.engine.stereotyping import provider_problem
        from lib.scorers import ScorerConfigError

        problems = [p for p in (provider_problem(m["provider"], m["name"]) for m in models) if p]
        if problems:
            raise ScorerConfigError(["algorithm"], problems[0] + (f" (nor can {len(problems) - 1} other model(s))"
                                                                  if len(problems) > 1 else ""))

    def score(self, rows: Iterable[dict[str, Any]], out: str | None = None) -> dict[str, Any]:
        return self.scoring(out).score(rows)

    def scoring(self, out: str | None = None, limit: int | None = None) -> RowScoring:
        """`score`, given the rows one at a time (`lib.engine.score.score_together`)."""
        try:
            scorer, notes = record_scorer(self.algorithm)
        except ScoringUnavailable as exc:
            return RowScoring.unavailable(self.algorithm, str(exc))
        return RowScoring(self.algorithm, scorer, notes, failed_counts_as_zero=not self.lower_is_better, out=out,
                          limit=limit)

    def score_with_model(self, invoker: Callable, dataset: dict[str, Any], invoke: dict[str, Any],
                         limit: int) -> dict[str, Any]:
        from lib import storage

        if self.needs_log_probabilities:
            from lib.engine.invoke import RetryPolicy
            from lib.engine.stereotyping import score_stereotyping
            from lib.providers import provider_class

            model = self.context.get("model")
            if not model:
                return empty_result(self.algorithm, error="PromptStereotyping asks the candidate model itself: "
                                    "its scorer needs the evaluate step's context")
            concurrency = invoke.get("max_concurrency") or provider_class(model["provider"]).default_max_concurrency
            return score_stereotyping(self.algorithm, invoker, storage.read_jsonl(dataset["uri"])[:limit], model,
                                      concurrency, RetryPolicy(max_retries=invoke.get("max_retries", 4)))
        from lib.engine.with_model import evaluate_with_model

        return evaluate_with_model(self.algorithm, invoker, storage.local_copy(dataset["uri"]),
                                   dataset["dataset_name"], invoke["prompt_template"], limit)
