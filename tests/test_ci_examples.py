"""The CI/CD examples as users wire them: well-formed, and every command they run is one our CLI
accepts (parsed by the CLI's own parser, so a renamed flag breaks this test, not a user's build)."""

from __future__ import annotations

import re
import shlex

import yaml
from conftest import ROOT

COMMAND = re.compile(r"\.venv/bin/python pipelines/build_pipeline\.py ([^;\n]+?)(?:;|$)", re.M)


def cli_commands(text: str) -> list[list[str]]:
    return [shlex.split(m.group(1).replace('"$CONFIG"', "evaluation_config.yaml")) for m in COMMAND.finditer(text)]


def test_the_github_workflow_is_well_formed_and_runs_real_commands():
    from pipelines.cli import build_parser

    text = (ROOT / "examples" / "ci" / "github-actions.yml").read_text()
    flow = yaml.safe_load(text)
    triggers = flow.get("on") or flow.get(True)  # YAML 1.1 reads a bare `on` key as true
    assert set(triggers) == {"pull_request", "push"}
    assert set(flow["jobs"]) == {"check", "ship"} and flow["jobs"]["ship"]["needs"] == "check"
    for job in flow["jobs"].values():
        assert job["runs-on"] and all(("run" in s) != ("uses" in s) for s in job["steps"])
    commands = cli_commands(text)
    assert [c[0] for c in commands] == ["validate", "plan", "upsert", "start"]
    for argv in commands:
        build_parser().parse_args(argv)  # exits (SystemExit) on a flag the CLI does not have
    assert "--wait" in commands[-1]  # the job fails on the run's exit code


def test_the_codebuild_buildspec_is_well_formed_and_runs_real_commands():
    from pipelines.cli import build_parser

    text = (ROOT / "examples" / "ci" / "buildspec.yml").read_text()
    spec = yaml.safe_load(text)
    assert spec["version"] == 0.2 and set(spec["phases"]) == {"install", "build"}
    commands = cli_commands(text)
    assert [c[0] for c in commands] == ["validate", "plan", "upsert", "start"]
    for argv in commands:
        build_parser().parse_args(argv)


# --- linted against schemas: the GitHub workflow against SchemaStore's (vendored by check-jsonschema,
# so no network), the buildspec against CodeBuild's documented 0.2 keys (AWS publishes no schema) ---

def _workflow_schema() -> dict:
    import importlib.resources
    import json

    return json.loads((importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
                       / "github-workflows.json").read_text())


def _lint(document: dict, schema: dict) -> list[str]:
    import jsonschema

    validator = jsonschema.validators.validator_for(schema)(schema)
    return sorted(f"{'/'.join(map(str, e.absolute_path)) or '<top>'}: {e.message}"
                  for e in validator.iter_errors(document))


def _workflow(text: str) -> dict:
    flow = yaml.safe_load(text)
    if True in flow:  # YAML 1.1 reads the bare `on` key as true; GitHub reads YAML 1.2
        flow["on"] = flow.pop(True)
    return flow


def test_the_github_workflow_passes_the_workflow_schema_and_a_broken_one_does_not():
    text = (ROOT / "examples" / "ci" / "github-actions.yml").read_text()
    schema = _workflow_schema()
    assert _lint(_workflow(text), schema) == []
    broken = _workflow(text)
    del broken["jobs"]["ship"]["runs-on"]
    broken["jobs"]["check"]["steps"][0]["uses"] = ["not", "a", "string"]
    assert len(_lint(broken, schema)) >= 2


_PHASE = {"type": "object", "additionalProperties": False, "properties": {
    "run-as": {"type": "string"}, "on-failure": {"enum": ["ABORT", "CONTINUE", "RETRY"]},
    "runtime-versions": {"type": "object", "additionalProperties": {"type": ["string", "number"]}},
    "commands": {"type": "array", "items": {"type": "string"}, "minItems": 1},
    "finally": {"type": "array", "items": {"type": "string"}}}}
BUILDSPEC_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object", "required": ["version", "phases"], "additionalProperties": False,
    "properties": {
        "version": {"enum": [0.2]}, "run-as": {"type": "string"},
        "env": {"type": "object", "additionalProperties": False, "properties": {
            "shell": {"type": "string"}, "git-credential-helper": {"enum": ["yes", "no"]},
            **{k: {"type": "object", "additionalProperties": {"type": ["string", "number"]}}
               for k in ("variables", "parameter-store", "secrets-manager")},
            "exported-variables": {"type": "array", "items": {"type": "string"}}}},
        "proxy": {"type": "object"}, "batch": {"type": "object"}, "reports": {"type": "object"},
        "artifacts": {"type": "object"}, "cache": {"type": "object"},
        "phases": {"type": "object", "minProperties": 1, "additionalProperties": False,
                   "properties": {k: _PHASE for k in ("install", "pre_build", "build", "post_build")}}}}


def test_the_buildspec_passes_codebuilds_documented_keys_and_a_broken_one_does_not():
    spec = yaml.safe_load((ROOT / "examples" / "ci" / "buildspec.yml").read_text())
    assert _lint(spec, BUILDSPEC_SCHEMA) == []
    broken = {**spec, "phases": {**spec["phases"], "deploy": {"commands": ["x"]}}}
    broken["env"] = {"vars": {"A": "b"}}
    assert [m.split(":")[0] for m in _lint(broken, BUILDSPEC_SCHEMA)] == ["env", "phases"]
