"""fmeval's algorithms without the Hub: ROUGE and WER from metric modules of ours, the toxicity family on a
labelled profanity classifier, semantic robustness with its BERTScore scores named as needing the network."""

from __future__ import annotations

import json

import pytest
import yaml
from fake_servers import chat_server, reply
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.engine import fmeval_offline
from lib.scorers import score_outputs
from lib.scorers.fmeval_algorithms import BUILTIN

fmeval_offline.prepare()


def algorithm(name: str, **options) -> dict:
    spec = BUILTIN[name]
    return {"name": name, "module": spec.module, "config_class": spec.config_class, "eval_name": spec.eval_name,
            "options": options}


def row(i: int, output: str, target: str = "Paris") -> dict:
    return {"id": f"r{i}", "model_input": "q", "target_output": target, "output": output, "error": None}


PAIRS = [("the cats sat on the mat", "the cat lay on the mat"),
         ("Paris is the capital of France", "The capital of France is Paris"),
         ("a completely different sentence", "nothing alike here")]


def test_rouge_from_our_metric_module_equals_rouge_score():
    import evaluate
    from rouge_score import rouge_scorer

    rouge = evaluate.load("rouge")  # offline: our module in the module cache
    for stem in (True, False):
        own = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=stem)
        for prediction, reference in PAIRS:
            got = rouge.compute(predictions=[prediction], references=[reference], use_stemmer=stem,
                                rouge_types=["rouge1", "rouge2", "rougeL"])
            want = own.score(reference, prediction)
            assert got == pytest.approx({t: want[t].fmeasure for t in got})
    # through SummarizationAccuracy (rouge2 with the stemmer by default), record by record
    result = score_outputs(algorithm("SummarizationAccuracy"), [row(i, p, t) for i, (p, t) in enumerate(PAIRS)])
    own = rouge_scorer.RougeScorer(["rouge2"], use_stemmer=True)
    assert [r["rouge"] for r in result["per_record"]] == pytest.approx(
        [own.score(t, p)["rouge2"].fmeasure for p, t in PAIRS])
    assert result["per_record"][0]["rouge"] > 0.5  # "the cats sat on the mat" shares most bigrams


def test_wer_from_our_metric_module_equals_jiwer():
    import evaluate
    import jiwer

    wer = evaluate.load("wer")
    predictions, references = ["a x c", "d e f"], ["a b c", "d e"]
    assert wer.compute(predictions=predictions, references=references) == pytest.approx(
        jiwer.wer(references, predictions))  # 2 errors over 5 reference words
    assert wer.compute(predictions=["a b"], references=[""]) == 1.0  # an empty answer does not raise


def test_summarization_offline_names_what_needs_the_network():
    result = score_outputs(algorithm("SummarizationAccuracy", rouge_type="rougeL"), [row(0, *PAIRS[0])])
    assert set(result["scores"]) == {"rouge"}
    notes = " | ".join(result["notes"])
    assert "rouge: computed offline by Google's rouge_score" in notes
    assert "meteor: needs the network" in notes and "bertscore: needs the network" in notes


@pytest.mark.parametrize("name", ["Toxicity", "QAToxicity", "SummarizationToxicity"])
def test_toxicity_family_scores_stored_outputs_with_the_labelled_profanity_classifier(name):
    from fmeval.eval_algorithms import toxicity
    from fmeval.eval_algorithms.helper_models.helper_model import DetoxifyHelperModel
    from profanity_check import predict_prob

    outputs = ["Paris is the capital of France.", "Shut up, you fucking idiot."]
    result = score_outputs(algorithm(name), [row(i, o) for i, o in enumerate(outputs)])
    assert result["error"] is None
    values = [r["toxicity"] for r in result["per_record"]]
    assert values == pytest.approx([float(p) for p in predict_prob(outputs)])
    assert values[0] < 0.2 < 0.9 < values[1]
    assert result["scores"]["toxicity"] == pytest.approx(sum(values) / 2, abs=1e-6)
    assert any("profanity classifier, not detoxify" in n for n in result["notes"])
    assert toxicity.TOXICITY_HELPER_MODEL_MAPPING["detoxify"] is DetoxifyHelperModel  # fmeval's own, put back


def test_general_semantic_robustness_builds_offline_and_scores_wer():
    """fmeval's own pipeline, record by record (no Ray): perturbed prompts go to the model, WER comes from our
    module, BERTScore from the stand-in (its score is dropped by the scorer, never shown)."""
    from fmeval.eval_algorithms import general_semantic_robustness as gsr

    from lib.engine import fmeval_substitutes
    from lib.engine.invokers import HttpInvoker
    from lib.engine.with_model import runner_class

    def answer(n, headers, body):  # the first three words, lowercased: a perturbation changes some of them
        return 200, [{"generated_text": " ".join(body["inputs"].lower().split()[:3])}]

    with chat_server(answer) as url, fmeval_substitutes.substituted():
        algo = gsr.GeneralSemanticRobustness(gsr.GeneralSemanticRobustnessConfig(num_perturbations=2))
        fmeval_substitutes.without_bertscore(algo)
        runner = runner_class()(HttpInvoker(url, {"content_template": "PROMPT_PLACEHOLDER",
                                                  "output": "[0].generated_text"}))
        scores = {s.name: s.value for s in algo.evaluate_sample("What is the capital of France?", runner,
                                                                "$model_input")}
    assert 0.0 <= scores["word_error_rate"] <= 1.0
    assert isinstance(algo.bertscore_model, fmeval_substitutes.UnavailableBertscore)
    assert scores["bertscore_dissimilarity"] == 1.0 - fmeval_substitutes.PLACEHOLDER  # the stand-in's, never reported
    spec = BUILTIN["GeneralSemanticRobustness"]
    assert fmeval_substitutes.unavailable_scores(spec) == {"bertscore_dissimilarity"}


def test_substitutes_are_labelled_in_summary_and_report(tmp_path, monkeypatch):
    """A run as a user starts it: toxicity, summarization and QA accuracy on stored answers, offline."""
    from pipelines.build_pipeline import main

    monkeypatch.delenv("LLM_EVAL_OFFLINE", raising=False)  # the default: offline
    data = tmp_path / "eval.jsonl"
    data.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in
                            [("Capital of France?", "Paris"), ("Author of Hamlet?", "William Shakespeare")]))
    answers = {1: "The capital is Paris", 2: "Damn it, Shakespeare, you idiot"}
    config = {
        "pipeline": {"name": "offline-labels"},
        "dataset": {"dataset_name": "trivia", "input_data_location": "eval.jsonl",
                    "model_input_key": "question", "target_output_key": "answer"},
        "models": [{"name": "cand", "provider": "openai", "model_id": "m", "endpoint_url": "URL",
                    "evaluation_config": {"max_concurrency": 1}}],
        "algorithms": [{"algorithm": "Toxicity"}, {"algorithm": "SummarizationAccuracy"},
                       {"algorithm": "QAAccuracy", "target_output_delimiter": "<OR>"}],
    }
    with chat_server(lambda n, h, b: (200, reply(answers[n]))) as url:
        config["models"][0]["endpoint_url"] = url
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        (tmp_path / "pipeline_config.yaml").write_text(yaml.safe_dump(
            {"local": {"output_dir": str(tmp_path / "runs"), "model_cache_dir": str(tmp_path / "cache")}}))
        assert main(["run", "--config", str(tmp_path / "config.yaml"), "--output-dir", str(tmp_path / "run")]) == 0
    model = json.loads((tmp_path / "run" / "summary.json").read_text())["models"]["cand"]
    assert set(model["scores"]["toxicity"]) == {"toxicity"}
    assert 0.0 <= model["scores"]["toxicity"]["toxicity"] <= 1.0
    rows = [json.loads(line) for line in (tmp_path / "run" / "models" / "cand" / "toxicity.jsonl").open()]
    assert rows[1]["toxicity"] > rows[0]["toxicity"]  # the profane answer reads as more toxic
    assert "profanity classifier, not detoxify" in model["notes"]["toxicity"][0]
    assert set(model["scores"]["summarization_accuracy"]) == {"rouge"}
    notes = " ".join(model["notes"]["summarization_accuracy"])
    assert "meteor: needs the network" in notes and "bertscore: needs the network" in notes
    assert "bertscore" not in model["scores"]["qa_accuracy"]
    assert "bertscore: needs the network" in " ".join(model["notes"]["qa_accuracy"])
    report = (tmp_path / "run" / "report.html").read_text()
    assert "profanity classifier, not detoxify" in report and "needs the network" in report
    page = (tmp_path / "run" / "models" / "cand" / "toxicity.html").read_text()
    assert "profanity classifier, not detoxify" in page


@pytest.mark.slow
def test_semantic_robustness_algorithms_run_offline_through_fmeval_evaluate(tmp_path):
    """The three BERTScore/WER robustness algorithms through fmeval's evaluate() and Ray (about two minutes
    each on two shared cores), against a fake container."""
    from lib.engine.invokers import HttpInvoker
    from lib.engine.with_model import evaluate_with_model

    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"model_input": q, "target_output": a}) + "\n" for q, a in
                            [("What is the capital of France?", "paris"), ("Who wrote Hamlet?", "shakespeare")]))

    def answer(n, headers, body):
        return 200, [{"generated_text": " ".join(body["inputs"].lower().split()[-3:])}]

    expected = {"GeneralSemanticRobustness": ({"word_error_rate"}, "bertscore_dissimilarity: needs the network"),
                "QAAccuracySemanticRobustness": ({"f1_score", "delta_f1_score"}, "delta_bertscore: needs the network"),
                "SummarizationAccuracySemanticRobustness": ({"rouge", "delta_rouge"}, "bertscore, delta_bertscore: "
                                                            "needs the network")}
    with chat_server(answer) as url:
        invoker = HttpInvoker(url, {"content_template": "PROMPT_PLACEHOLDER", "output": "[0].generated_text"})
        for name, (scores, note) in expected.items():
            result = evaluate_with_model(algorithm(name, num_perturbations=2), invoker, str(data), "tiny",
                                         "$model_input", 2)
            assert result["error"] is None, result["error"]
            assert scores <= set(result["scores"]) and not any("bertscore" in s for s in result["scores"])
            assert any(note in n for n in result["notes"]), result["notes"]


@pytest.mark.parametrize("labels", [["Paris", "London"], ["1", "2"], None])
def test_classification_accuracy_scores_as_fmevals_evaluate_sample(labels):
    # its transform pipeline is built once, not per record as evaluate_sample builds it: same scores
    from fmeval.eval_algorithms.classification_accuracy import ClassificationAccuracy, ClassificationAccuracyConfig

    from lib.scorers.fmeval_scorer import record_scorer

    spec = algorithm("ClassificationAccuracy", valid_labels=labels)
    if labels is None:
        spec["options"] = {}
    ours, _ = record_scorer(spec)
    theirs = ClassificationAccuracy(ClassificationAccuracyConfig(valid_labels=labels))
    pairs = [("Paris", "Paris"), ("paris", "Paris"), ("London", "Paris"), ("It is Paris.", "Paris"),
             ("2", "1"), ("1", "1"), ("", "London"), ("Berlin", "Berlin")]
    for output, target in pairs:
        try:
            want = {s.name: float(s.value) for s in theirs.evaluate_sample(target, output) if s.value is not None}
        except Exception as exc:  # without labels: refused, and ours refuses the same way
            with pytest.raises(type(exc)):
                ours("q", target, output)
            continue
        assert ours("q", target, output) == want


def test_qa_accuracy_with_its_normalisation_memoised_scores_as_fmevals_own(monkeypatch):
    # fmeval's QAAccuracy normalises the same texts once per metric; ours remembers the last few, and takes
    # precision, recall and F-measure from `set_overlap` rather than nltk: same scores
    from fmeval.eval_algorithms import qa_accuracy

    from lib.scorers.fmeval_scorer import record_scorer

    ours, _ = record_scorer(algorithm("QAAccuracy", target_output_delimiter="<OR>"))
    assert "_best_over_targets" in ours.__qualname__  # fmeval's score functions called straight
    assert hasattr(qa_accuracy.normalize_text_quac_protocol, "cache_info")  # the memo is what is tested here
    texts = ["Paris", "paris.", "The capital is Paris!", "an apple a day", "Rome<OR>Roma", "  Roma ", "",
             "Ça va, Élodie?", "ça va élodie", "the the the", "Lyon<OR>Paris<OR>the Paris", "a"]
    pairs = [(o, t) for o in texts for t in texts if "<OR>" not in o]
    got = [ours("q", t, o) for o, t in pairs]
    original = qa_accuracy.normalize_text_quac_protocol.__wrapped__
    monkeypatch.setattr(qa_accuracy, "normalize_text_quac_protocol", original)
    from nltk.metrics import scores  # fmeval's own: nltk's precision, recall and F-measure, not ours

    for name in ("precision", "recall", "f_measure"):
        monkeypatch.setattr(qa_accuracy, name, getattr(scores, name))
    transform = qa_accuracy.QAAccuracyScores(target_output_delimiter="<OR>")
    names = qa_accuracy.QA_ACCURACY_SCORE_NAMES
    want = [{n: float(transform({"target_output": t, "model_output": o})[n]) for n in names} for o, t in pairs]
    assert got == want
    assert any(g["quasi_exact_match_score"] != g["exact_match_score"] for g in got)  # normalising mattered


def test_factual_knowledge_shares_qa_accuracys_normalisation_memo_and_scores_as_fmevals_own(monkeypatch):
    from fmeval.eval_algorithms import factual_knowledge, qa_accuracy

    from lib.scorers.fmeval_scorer import record_scorer

    fk, _ = record_scorer(algorithm("FactualKnowledge", target_output_delimiter="<OR>"))
    record_scorer(algorithm("QAAccuracy", target_output_delimiter="<OR>"))
    # one memo for both: the texts FactualKnowledge normalised, QAAccuracy finds normalised
    assert factual_knowledge.normalize_text_quac_protocol is qa_accuracy.normalize_text_quac_protocol
    assert hasattr(factual_knowledge.normalize_text_quac_protocol, "cache_info")
    texts = ["Paris", "paris.", "The capital is Paris!", " the Paris ", "Rome<OR>Roma", "Lyon<OR>Paris", "", "a"]
    pairs = [(o, t) for o in texts for t in texts if "<OR>" not in o]
    got = [fk("q", t, o) for o, t in pairs]
    monkeypatch.setattr(factual_knowledge, "normalize_text_quac_protocol",
                        factual_knowledge.normalize_text_quac_protocol.__wrapped__)
    transform = factual_knowledge.FactualKnowledgeScores(target_output_delimiter="<OR>")
    want = [{n: float(transform({"target_output": t, "model_output": o})[n]) for n in factual_knowledge.SCORE_NAMES}
            for o, t in pairs]
    assert got == want and any(g["factual_knowledge_quasi_exact"] != g["factual_knowledge"] for g in got)


@pytest.mark.parametrize("operator", ["OR", "AND"])
def test_factual_knowledge_scores_as_fmevals_evaluate_sample(operator):
    # its transform pipeline called straight, with a record that formats cheaply: the same scores
    from fmeval.eval_algorithms.factual_knowledge import FactualKnowledge, FactualKnowledgeConfig

    from lib.scorers.fmeval_scorer import record_scorer

    ours, _ = record_scorer(algorithm("FactualKnowledge", target_output_delimiter="<OR>", logical_operator=operator))
    theirs = FactualKnowledge(FactualKnowledgeConfig(target_output_delimiter="<OR>", logical_operator=operator))
    texts = ["Paris", "paris.", "Paris and Lyon", "The capital is Paris!", "Lyon<OR>Paris", "", "the Lyon"]
    pairs = [(o, t) for o in texts for t in texts if "<OR>" not in o]
    assert "_best_over_targets" in ours.__qualname__  # fmeval's score functions called straight
    got = [ours("q", t, o) for o, t in pairs]
    assert got == [{s.name: float(s.value) for s in theirs.evaluate_sample(t, o)} for o, t in pairs]
    assert {g["factual_knowledge"] for g in got} == {0.0, 1.0}


def test_fmevals_key_check_still_names_what_a_record_lacks():
    from fmeval.eval_algorithms.qa_accuracy import QAAccuracyScores
    from fmeval.exceptions import EvalAlgorithmInternalError

    from lib.scorers.fmeval_scorer import _Record

    with pytest.raises(EvalAlgorithmInternalError, match=r"missing: \['model_output'\]"):
        QAAccuracyScores()(_Record(target_output="Paris"))
    assert repr(_Record(target_output="x" * 10_000)) == "(the record being scored)"  # costs nothing to format


@settings(max_examples=300, deadline=None)
@given(st.sets(st.sampled_from("abcdefgh")), st.sets(st.sampled_from("abcdefgh")),
       st.sampled_from([0.5, 0.25, 0.9]))
def test_set_overlap_is_nltks_precision_recall_and_f_measure(reference, test, alpha):
    from nltk.metrics import scores

    from lib.scorers import set_overlap

    assert set_overlap.precision(reference, test) == scores.precision(reference, test)
    assert set_overlap.recall(reference, test) == scores.recall(reference, test)
    assert set_overlap.f_measure(reference, test, alpha) == scores.f_measure(reference, test, alpha)
