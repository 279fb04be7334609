"""lib/algorithms.py describes fmeval's algorithms without importing fmeval; check it against fmeval."""

from __future__ import annotations

import dataclasses
import importlib

import pytest

from lib.engine import fmeval_offline
from lib.scorers import fmeval_algorithms as algorithms


@pytest.mark.parametrize("name", list(algorithms.BUILTIN))
def test_table_matches_installed_fmeval(name):
    fmeval_offline.prepare()
    spec = algorithms.BUILTIN[name]
    module = importlib.import_module(spec.module)
    cls = getattr(module, name)
    assert cls.__name__ == name
    if spec.config_class:
        config = getattr(module, spec.config_class)
        fields = {f.name for f in dataclasses.fields(config)}
        assert set(spec.options) <= fields, set(spec.options) - fields
        # every option a YAML file can hold is listed (callables like converter_fn cannot be written in YAML)
        assert fields - set(spec.options) <= {"converter_fn"}
    from fmeval.eval_algorithms import EvalAlgorithm

    assert spec.eval_name in {e.value for e in EvalAlgorithm}


def test_custom_algorithm_by_import_path(capsys, write_config):
    from conftest import base_config

    from lib.scorers import score_outputs
    from pipelines.build_pipeline import main

    spec = algorithms.resolve("ExactAnswer", "plugin_algorithms", "ExactAnswerConfig")
    assert spec.eval_name == "exact_answer" and set(spec.options) == {"case_sensitive"}
    algorithm = {"name": spec.name, "module": spec.module, "config_class": spec.config_class,
                 "eval_name": spec.eval_name, "options": {"case_sensitive": False}}
    rows = [{"id": "a", "model_input": "q", "target_output": "Paris<OR>Lutetia", "output": " paris", "error": None},
            {"id": "b", "model_input": "q", "target_output": "Rome", "output": "Milan", "error": None}]
    assert score_outputs(algorithm, rows)["scores"] == {"exact_answer": 0.5}
    data = base_config()
    data["algorithms"].append({"algorithm": "ExactAnswer", "module": "plugin_algorithms",
                               "config": {"case_sensitiv": True}})
    assert main(["validate", "--config", str(write_config(data))]) == 2
    assert "did you mean 'case_sensitive'" in capsys.readouterr().err
    data["algorithms"][1]["config"] = {"case_sensitive": True}
    assert main(["validate", "--config", str(write_config(data))]) == 0
