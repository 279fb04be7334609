"""The seams of the house: typed records, one layout, providers that own their rules, one scorer
table, sinks, an executor-neutral plan, and a CLI package without an import cycle."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from conftest import ROOT, base_config

from lib.plan import STEP_KINDS, Param, Plan, PlanError, Ref, Step
from lib.run.layout import RunLayout, local_root_template, s3_root_template
from lib.run.records import ModelResult, Registration, RunSummary, Selection

SOURCES = [p for d in ("lib", "steps", "pipelines") for p in (ROOT / d).rglob("*.py")]


def test_records_round_trip_through_json():
    result = ModelResult("m", provider="local", model_id="x", records=3, errors=1, latency_mean_s=0.5,
                         scores={"factual_knowledge": {"factual_knowledge": 0.5}})
    summary = RunSummary("p", "e1", {"m": result}, Selection("factual_knowledge", best="m", best_value=0.5,
                                                             ranking=[{"model": "m", "value": 0.5}]),
                         Registration("succeeded", model="m", version=2))
    data = json.loads(json.dumps(summary.to_dict()))
    # README's contract: these keys per model, the model name as the key and not repeated inside
    entry = data["models"]["m"]
    for key in ("status", "error", "records", "invocations", "errors", "cache_hits", "scores",
                "latency_p50_s", "latency_p95_s", "latency_mean_s", "prompt_tokens", "generated_tokens"):
        assert key in entry
    assert "model" not in entry
    assert RunSummary.from_dict(data) == summary
    # a record written by an older or newer version still loads: unknown keys are ignored
    assert ModelResult.from_dict({"model": "m", "status": "failed", "from_the_future": 1}).status == "failed"


def test_a_registration_as_a_dict_is_a_copy_equal_to_asdict():
    # its per_record (a number per record) is copied whole rather than value by value, as asdict copies it
    from dataclasses import asdict

    record = Registration("succeeded", model="m", version=2, metrics={"qa": {"f1": 0.5}}, created=[{"arn": "a"}],
                          deployment={"environment": {"K": "v"}}, per_record={f"r{i}": i / 7 for i in range(50)},
                          recipe={"model": {"name": "m", "invoke": {"inference_parameters": {"top_p": 0.9}}}})
    data = record.to_dict()
    assert data == {k: v for k, v in asdict(record).items() if v is not None}
    assert "error" not in data and data["per_record"]["r7"] == 1.0
    data["per_record"]["r0"] = 9.0
    data["recipe"]["model"]["invoke"]["inference_parameters"]["top_p"] = 0.1
    data["created"].append({"arn": "b"})
    assert record.per_record["r0"] == 0.0 and record.created == [{"arn": "a"}]  # the record is untouched
    assert record.recipe["model"]["invoke"]["inference_parameters"]["top_p"] == 0.9


def test_layout_knows_every_path_local_and_s3(tmp_path):
    s3 = RunLayout.resolve(s3_root_template("s3://b/pre/pipe"), "exec-1")
    assert s3.root == "s3://b/pre/pipe/runs/exec-1" and s3.is_remote
    assert s3.outputs("m") == "s3://b/pre/pipe/runs/exec-1/models/m/outputs.jsonl"
    assert s3.scores("m", "qa_accuracy") == "s3://b/pre/pipe/runs/exec-1/models/m/qa_accuracy.jsonl"
    assert s3.registry_metrics == "s3://b/pre/pipe/runs/exec-1/registry/evaluation.json"
    local = RunLayout.resolve(local_root_template(str(tmp_path), "pipe"), "exec-2")
    assert local.summary == str(tmp_path / "pipe" / "exec-2" / "summary.json") and not local.is_remote
    assert local.local_registry_index("g") == str(tmp_path / "pipe" / "model_registry" / "g.jsonl")
    # a root without the placeholder (run --output-dir) is used as it is
    assert RunLayout.resolve(str(tmp_path), "exec-3").root == str(tmp_path)


def test_only_the_layout_names_the_files_of_a_run():
    names = ("summary.json", "selection.json", "registry.json", "report.html", "outputs.jsonl",
             "processed.jsonl", "execution.json")
    # as a string in code (f-strings and joins included); docstrings may mention them
    literal = re.compile(r"""["'][^"'\n]*\b(""" + "|".join(re.escape(n) for n in names) + r""")["']""")
    offenders = [f"{p.relative_to(ROOT)}: {m.group(1)}" for p in SOURCES if p.name != "layout.py"
                 for m in literal.finditer(p.read_text())]
    assert offenders == []


def test_config_plan_and_executors_never_branch_on_a_provider_name():
    from lib.providers import BUILTIN

    names = "|".join(BUILTIN)
    branch = re.compile(rf"""(==|!=|\bin\b)\s*\(?\s*["']({names})["']""")
    places = [p for p in SOURCES if p.parts[-2] in ("config", "plan", "pipelines", "cli")]
    offenders = [f"{p.relative_to(ROOT)}:{i}" for p in places
                 for i, line in enumerate(p.read_text().splitlines(), 1) if branch.search(line)]
    assert places and offenders == []


def echo_config(greeting: str | None = "Answer:", provider: str = "plugin_providers:EchoProvider") -> dict:
    data = base_config(1)
    model = {"name": "echo", "provider": provider, "model_id": "rules"}
    if greeting is not None:
        model["greeting"] = greeting
    data["models"] = [model]
    return data


def test_a_plugin_provider_declares_its_own_key_and_runs(write_config, config_dir, capsys):
    from pipelines.build_pipeline import main

    out = config_dir / "run"
    assert main(["run", "--config", str(write_config(echo_config())), "--output-dir", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["models"]["echo"]["status"] == "succeeded" and summary["models"]["echo"]["records"] == 5
    first = json.loads((out / "models" / "echo" / "outputs.jsonl").read_text().splitlines()[0])
    assert first["output"].startswith("Answer: ")
    assert "cleanup-echo" not in (out / "execution.json").read_text()  # it declares that it deploys nothing


def test_a_provider_key_is_refused_where_it_does_not_belong(write_config, capsys):
    from pipelines.build_pipeline import main

    data = base_config(1)
    data["models"][0]["greeting"] = "hi"  # jumpstart has no such key
    assert main(["validate", "--config", str(write_config(data))]) == 2
    assert "models[0].greeting: unknown key 'greeting'" in capsys.readouterr().err
    assert main(["validate", "--config", str(write_config(echo_config(greeting=None)))]) == 2
    assert "needs 'greeting', what every answer starts with" in capsys.readouterr().err
    assert main(["validate", "--config", str(write_config(echo_config(provider="plugin_providers:Nope")))]) == 2
    assert "has no provider class 'Nope'" in capsys.readouterr().err


def test_the_plan_refuses_cycles_and_unknown_dependencies():
    def step(name: str, *reads: str, after: tuple[str, ...] = ()) -> Step:
        return Step(name, "select", "steps.select:select", {f"a{i}": Ref(r) for i, r in enumerate(reads)},
                    after=list(after))

    with pytest.raises(PlanError, match="cycle"):
        Plan("p", [step("a", "b"), step("b", after=("a",))])
    with pytest.raises(PlanError, match="'ghost', which is not a step"):
        Plan("p", [step("a", "ghost")])
    # a dependency declared once (a Ref) orders the steps, whatever order they were given in
    plan = Plan("p", [step("late", "early"), Step("early", "preprocess", "f:g", {"x": Param("run_root")})])
    assert [s.name for s in plan.steps] == ["early", "late"] and plan.step("late").depends_on == ["early"]


def test_every_step_kind_is_one_importable_function_and_an_instance_parameter(write_config):
    import importlib

    from lib.config import load_config
    from lib.config.schema import pipeline_schema

    instance_keys = pipeline_schema()["properties"]["sagemaker"]["properties"]["instance_types"]["properties"]
    for kind in STEP_KINDS.values():
        module, _, fn = kind.function.partition(":")
        assert callable(getattr(importlib.import_module(module), fn))
        assert kind.name in instance_keys
    load_config(write_config(base_config(1)))  # the shipped schema still validates


def test_scorers_come_from_one_table():
    from lib.scorers import SCORER_KINDS, SCORERS, lower_is_better, scorer_for

    assert set(SCORER_KINDS) >= {spec.kind for spec in SCORERS.values()}
    assert lower_is_better("toxicity") and not lower_is_better("factual_knowledge")
    spec = SCORERS["ClassificationAccuracySemanticRobustness"]
    scorer = scorer_for({"kind": spec.kind, "name": spec.name, "needs_model": spec.needs_model})
    assert scorer.needs_model and scorer.kind == "fmeval"


def test_sinks_receive_the_same_record_and_one_failing_does_not_stop_the_others(tmp_path, capsys):
    from lib import sinks

    seen = []

    class Recording:
        name = "recording"

        def publish(self, summary, layout):
            seen.append((summary, layout))

    class Broken:
        name = "broken"

        def publish(self, summary, layout):
            raise ConnectionError("tracking server down")

    summary = RunSummary("p", "e", {"m": ModelResult("m")}, Selection("x"))
    layout = RunLayout(str(tmp_path))
    assert sinks.publish(summary, layout, [Broken(), Recording()]) == ["broken"]
    assert seen == [(summary, layout)]
    assert "broken failed: ConnectionError: tracking server down" in capsys.readouterr().err
    sinks.publish(summary, layout)  # the default: the run's own files
    assert RunSummary.from_dict(json.loads((tmp_path / "summary.json").read_text())) == summary


def test_the_cli_package_has_no_import_cycle_and_the_script_still_works():
    code = ("import sys, pipelines.cli; assert 'pipelines.build_pipeline' not in sys.modules; "
            "from pipelines.cli import COMMAND_GROUPS; print(len(COMMAND_GROUPS))")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip() == "3"
    proc = subprocess.run([sys.executable, str(ROOT / "pipelines" / "build_pipeline.py"), "--help"],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "validate" in proc.stdout and "upsert" in proc.stdout
