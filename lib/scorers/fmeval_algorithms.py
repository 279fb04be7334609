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
    needs_log_probabilities: bool = False  # the model must return a text's log-probability (a provider capability)
    # Scores fmeval computes with something it downloads (Hub weights, metric scripts, NLTK data), each with
    # what it needs. Offline (LLM_EVAL_OFFLINE, the default here) such a score is computed as `offline` says,
    # or reported as needing the network (`offline_notes`); on SageMaker, fmeval computes it its own way.
    hub_scores: dict[str, str] = field(default_factory=dict)
    offline: dict[str, str] = field(default_factory=dict)  # score -> how it is computed offline (a label)
    lower_is_better: bool = False  # toxicity: a failed record must not count as "not toxic"
    kind: str = "fmeval"  # which scorer class of `lib.scorers.SCORER_KINDS` runs it


_FM = "fmeval.eval_algorithms."

# what a score needs from the network (fmeval downloads it at construction or first use)
_BERTSCORE = "BERTScore's model, microsoft/deberta-xlarge-mnli or roberta-large-mnli, comes from the Hugging Face Hub"
_METEOR = "METEOR reads NLTK's WordNet and punkt data, which fmeval downloads (data installed under NLTK_DATA is used)"
_ROUGE_HUB = "fmeval loads the ROUGE metric script from the Hugging Face Hub"
_WER_HUB = "fmeval loads the WER metric script from the Hugging Face Hub"
_DETOXIFY = "detoxify's weights come from GitHub (toxigen's from the Hugging Face Hub)"
# how a score is computed offline instead
ROUGE_OFFLINE = ("computed offline by Google's rouge_score through a metric module of ours (the library the Hub's "
                 "script uses: the same numbers)")
WER_OFFLINE = ("computed offline by jiwer through a metric module of ours (the library the Hub's script uses: the "
               "same numbers)")
METEOR_OFFLINE = "computed offline by NLTK's METEOR with the WordNet and punkt data installed here (NLTK_DATA)"
PROFANITY_OFFLINE = ("offline substitute: profanity classifier, not detoxify (alt-profanity-check's sklearn model "
                     "gives the probability that a text is profane: not comparable with detoxify's toxicity, and "
                     "detoxify's six other scores are not computed)")


def _rouge(prefix: str = "") -> dict[str, str]:
    return {f"{prefix}meteor": _METEOR, f"{prefix}rouge": _ROUGE_HUB, f"{prefix}bertscore": _BERTSCORE}


_TOXICITY = {"toxicity": _DETOXIFY}
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
            hub_scores={"bertscore": _BERTSCORE},
        ),
        AlgorithmSpec(
            "SummarizationAccuracy", _FM + "summarization_accuracy", "SummarizationAccuracyConfig",
            "summarization_accuracy",
            {"rouge_type": str, "use_stemmer_for_rouge": bool, "model_type_for_bertscore": str},
            ("meteor", "rouge", "bertscore"), hub_scores=_rouge(),
            offline={"rouge": ROUGE_OFFLINE, "meteor": METEOR_OFFLINE},
        ),
        AlgorithmSpec(
            "ClassificationAccuracy", _FM + "classification_accuracy", "ClassificationAccuracyConfig",
            "classification_accuracy",
            {"valid_labels": list, "multiclass_average_strategy": str},
            ("classification_accuracy_score", "balanced_accuracy_score", "precision_score", "recall_score"),
        ),
        AlgorithmSpec("Toxicity", _FM + "toxicity", "ToxicityConfig", "toxicity", {"model_type": str},
                      ("toxicity",), hub_scores=_TOXICITY, offline={"toxicity": PROFANITY_OFFLINE},
                      lower_is_better=True),
        AlgorithmSpec("QAToxicity", _FM + "qa_toxicity", "ToxicityConfig", "qa_toxicity", {"model_type": str},
                      ("toxicity",), hub_scores=_TOXICITY, offline={"toxicity": PROFANITY_OFFLINE},
                      lower_is_better=True),
        AlgorithmSpec("SummarizationToxicity", _FM + "summarization_toxicity", "ToxicityConfig",
                      "summarization_toxicity", {"model_type": str}, ("toxicity",), hub_scores=_TOXICITY,
                      offline={"toxicity": PROFANITY_OFFLINE}, lower_is_better=True),
        AlgorithmSpec(
            "GeneralSemanticRobustness", _FM + "general_semantic_robustness", "GeneralSemanticRobustnessConfig",
            "general_semantic_robustness",
            {**_SR_OPTIONS, "num_baseline_samples": int, "model_type_for_bertscore": str},
            ("word_error_rate", "bertscore_dissimilarity"), needs_model=True,
            hub_scores={"word_error_rate": _WER_HUB, "bertscore_dissimilarity": _BERTSCORE},
            offline={"word_error_rate": WER_OFFLINE},
        ),
        AlgorithmSpec(
            "QAAccuracySemanticRobustness", _FM + "qa_accuracy_semantic_robustness",
            "QAAccuracySemanticRobustnessConfig", "qa_accuracy_semantic_robustness",
            {**_SR_OPTIONS, "target_output_delimiter": str, "model_type_for_bertscore": str},
            ("f1_score", "exact_match_score", "quasi_exact_match_score", "precision_over_words", "recall_over_words",
             "bertscore", "delta_f1_score", "delta_exact_match_score", "delta_quasi_exact_match_score",
             "delta_precision_over_words", "delta_recall_over_words", "delta_bertscore"),
            needs_model=True, hub_scores={"bertscore": _BERTSCORE, "delta_bertscore": _BERTSCORE},
        ),
        AlgorithmSpec(
            "SummarizationAccuracySemanticRobustness", _FM + "summarization_accuracy_semantic_robustness",
            "SummarizationAccuracySemanticRobustnessConfig", "summarization_accuracy_semantic_robustness",
            {**_SR_OPTIONS, "rouge_type": str, "use_stemmer_for_rouge": bool, "model_type_for_bertscore": str},
            ("meteor", "rouge", "bertscore", "delta_meteor", "delta_rouge", "delta_bertscore"), needs_model=True,
            hub_scores={**_rouge(), **_rouge("delta_")},
            offline={"rouge": ROUGE_OFFLINE, "delta_rouge": ROUGE_OFFLINE,
                     "meteor": METEOR_OFFLINE, "delta_meteor": METEOR_OFFLINE},
        ),
        AlgorithmSpec(
            "ClassificationAccuracySemanticRobustness", _FM + "classification_accuracy_semantic_robustness",
            "ClassificationAccuracySemanticRobustnessConfig", "classification_accuracy_semantic_robustness",
            {**_SR_OPTIONS, "valid_labels": list},
            ("classification_accuracy_score", "delta_classification_accuracy_score"), needs_model=True,
        ),
        AlgorithmSpec("PromptStereotyping", _FM + "prompt_stereotyping", None, "prompt_stereotyping", {},
                      ("prompt_stereotyping", "log_probability_difference"), needs_model=True,
                      needs_log_probabilities=True),
    )
}


def offline_notes(spec: AlgorithmSpec, unavailable: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """What an offline run says about ``spec``'s scores: how each is computed instead of fmeval's way, and
    which are not scored (``unavailable``) because they need the network. Scores with the same story share
    a note."""
    said: dict[str, list[str]] = {}
    for score, how in spec.offline.items():
        if score not in unavailable:
            said.setdefault(f"{how}. On SageMaker (LLM_EVAL_OFFLINE=0) fmeval's defaults apply.", []).append(score)
    for score in spec.hub_scores:
        if score in unavailable:
            said.setdefault(f"needs the network, not scored offline: {spec.hub_scores[score]}. On SageMaker "
                            "(LLM_EVAL_OFFLINE=0) fmeval computes it.", []).append(score)
    return [f"{', '.join(scores)}: {text}" for text, scores in said.items()]


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
