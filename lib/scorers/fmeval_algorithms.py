"""The fmeval algorithms we know, described without importing fmeval (so `validate` stays fast).

This is the scorer table's fmeval part (`lib.scorers.SCORERS` lists it with the other kinds).

A test checks this table against fmeval's own classes, so it cannot drift from the installed version.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, fields, is_dataclass

_SR_OPTIONS = {
    "perturbation_type": str,
    "num_perturbations": int,
    "butter_finger_perturbation_prob": float,
    "random_uppercase_corrupt_proportion": float,
    "whitespace_add_prob": float,
    "whitespace_remove_prob": float,
}


@dataclass(frozen=True)
class AlgorithmSpec:
    """One evaluation algorithm: where it lives, what its config takes, what it reports."""

    name: str  # class name, as written in the config
    module: str
    config_class: str | None
    eval_name: str
    options: dict[str, type] = field(default_factory=dict)
    score_names: tuple[str, ...] = ()
    needs_model: bool = False  # True: must call the model itself (perturbations, log-probabilities)
    # Scores that need the Hugging Face Hub (weights, metric scripts); offline runs leave them out.
    hub_scores: tuple[str, ...] = ()
    lower_is_better: bool = False  # toxicity: a failed record must not count as "not toxic"
    kind: str = "fmeval"  # which scorer class of `lib.scorers.SCORER_KINDS` runs it


_FM = "fmeval.eval_algorithms."
BUILTIN: dict[str, AlgorithmSpec] = {
    spec.name: spec
    for spec in (
        AlgorithmSpec(
            "FactualKnowledge", _FM + "factual_knowledge", "FactualKnowledgeConfig", "factual_knowledge",
            {"target_output_delimiter": str, "logical_operator": str},
            ("factual_knowledge", "factual_knowledge_quasi_exact"),
        ),
        AlgorithmSpec(
            "QAAccuracy", _FM + "qa_accuracy", "QAAccuracyConfig", "qa_accuracy",
            {"target_output_delimiter": str, "model_type_for_bertscore": str},
            ("f1_score", "exact_match_score", "quasi_exact_match_score", "precision_over_words",
             "recall_over_words", "bertscore"),
            hub_scores=("bertscore",),
        ),
        AlgorithmSpec(
            "SummarizationAccuracy", _FM + "summarization_accuracy", "SummarizationAccuracyConfig",
            "summarization_accuracy",
            {"rouge_type": str, "use_stemmer_for_rouge": bool, "model_type_for_bertscore": str},
            ("meteor", "rouge", "bertscore"), hub_scores=("meteor", "rouge", "bertscore"),
        ),
        AlgorithmSpec(
            "ClassificationAccuracy", _FM + "classification_accuracy", "ClassificationAccuracyConfig",
            "classification_accuracy",
            {"valid_labels": list, "multiclass_average_strategy": str},
            ("classification_accuracy_score", "balanced_accuracy_score", "precision_score", "recall_score"),
        ),
        AlgorithmSpec("Toxicity", _FM + "toxicity", "ToxicityConfig", "toxicity", {"model_type": str},
                      ("toxicity",), hub_scores=("toxicity",), lower_is_better=True),
        AlgorithmSpec("QAToxicity", _FM + "qa_toxicity", "ToxicityConfig", "qa_toxicity", {"model_type": str},
                      ("toxicity",), hub_scores=("toxicity",), lower_is_better=True),
        AlgorithmSpec("SummarizationToxicity", _FM + "summarization_toxicity", "ToxicityConfig",
                      "summarization_toxicity", {"model_type": str}, ("toxicity",), hub_scores=("toxicity",),
                      lower_is_better=True),
        AlgorithmSpec(
            "GeneralSemanticRobustness", _FM + "general_semantic_robustness", "GeneralSemanticRobustnessConfig",
            "general_semantic_robustness",
            {**_SR_OPTIONS, "num_baseline_samples": int, "model_type_for_bertscore": str},
            ("word_error_rate", "bertscore_dissimilarity"), needs_model=True,
            hub_scores=("word_error_rate", "bertscore_dissimilarity"),
        ),
        AlgorithmSpec(
            "QAAccuracySemanticRobustness", _FM + "qa_accuracy_semantic_robustness",
            "QAAccuracySemanticRobustnessConfig", "qa_accuracy_semantic_robustness",
            {**_SR_OPTIONS, "target_output_delimiter": str, "model_type_for_bertscore": str},
            (), needs_model=True, hub_scores=("bertscore",),
        ),
        AlgorithmSpec(
            "SummarizationAccuracySemanticRobustness", _FM + "summarization_accuracy_semantic_robustness",
            "SummarizationAccuracySemanticRobustnessConfig", "summarization_accuracy_semantic_robustness",
            {**_SR_OPTIONS, "rouge_type": str, "use_stemmer_for_rouge": bool, "model_type_for_bertscore": str},
            (), needs_model=True, hub_scores=("meteor", "rouge", "bertscore"),
        ),
        AlgorithmSpec(
            "ClassificationAccuracySemanticRobustness", _FM + "classification_accuracy_semantic_robustness",
            "ClassificationAccuracySemanticRobustnessConfig", "classification_accuracy_semantic_robustness",
            {**_SR_OPTIONS, "valid_labels": list},
            (), needs_model=True,
        ),
        AlgorithmSpec("PromptStereotyping", _FM + "prompt_stereotyping", None, "prompt_stereotyping", {},
                      ("log_probability_difference",), needs_model=True),
    )
}


class AlgorithmLookupError(ValueError):
    """The algorithm or its module cannot be found; the message says why."""


def resolve(name: str, module: str | None = None, config: str | dict | None = None) -> AlgorithmSpec:
    """Find an algorithm by class name (and optional module), importing only custom modules."""
    spec = BUILTIN.get(name)
    if spec is not None and (module is None or module == spec.module):
        return spec
    if module is None:
        from lib.errors import did_you_mean

        raise AlgorithmLookupError(
            f"unknown algorithm '{name}'{did_you_mean(name, BUILTIN)}; built-in algorithms are {', '.join(BUILTIN)}, "
            "or give 'module' with the import path of your own"
        )
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # any import failure is the user's module, reported as such
        raise AlgorithmLookupError(f"module '{module}' does not import: {type(exc).__name__}: {exc}") from None
    cls = getattr(mod, name, None)
    if cls is None:
        raise AlgorithmLookupError(f"module '{module}' has no class '{name}'")
    # a mapping of options goes to the class named in `config`, else to <Algorithm>Config by convention
    config_name = config if isinstance(config, str) else (f"{name}Config" if hasattr(mod, f"{name}Config") else None)
    options: dict[str, type] = {}
    if config_name:
        config_cls = getattr(mod, config_name, None)
        if config_cls is None:
            raise AlgorithmLookupError(f"module '{module}' has no config class '{config_name}'")
        if is_dataclass(config_cls):
            options = {f.name: object for f in fields(config_cls)}
    return AlgorithmSpec(
        name=name, module=module, config_class=config_name,
        eval_name=str(getattr(cls, "eval_name", name)).lower(), options=options,
    )
