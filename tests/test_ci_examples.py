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
