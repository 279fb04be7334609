"""What the terminal shows: the version, quiet and JSON modes, a ranked final table, and pipes that
close early ending quietly."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from conftest import ROOT
from fake_servers import chat_server, reply
from test_exit_codes import write_config

CLI = [sys.executable, str(ROOT / "pipelines" / "build_pipeline.py")]
PROGRESS = re.compile(r"^\d\d:\d\d:\d\d \S")


def test_version_and_a_pipe_that_closes_early():
    version = subprocess.run([*CLI, "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and re.match(r"llm-eval-pipelines \S+", version.stdout)
    piped = subprocess.run(f"{sys.executable} {ROOT / 'pipelines' / 'build_pipeline.py'} plan --json "
                           f"--config {ROOT / 'evaluation_config.yaml'} | head -c 20", shell=True,
                           capture_output=True, text=True)
    assert piped.stdout.startswith("{") and piped.stderr == ""  # no BrokenPipe traceback


def test_json_quiet_and_the_ranked_table(tmp_path):
    def knows(good: bool):
        return lambda n, h, b: (200, reply("Ottawa Paris Tokyo Canberra Rome" if good else "no idea"))

    with chat_server(knows(False)) as poor, chat_server(knows(True)) as good:
        config = write_config(tmp_path, {"poor": poor, "good": good}, n=4)
        as_json = subprocess.run([*CLI, "run", "-q", "--config", str(config), "--output-dir", str(tmp_path / "a"),
                                  "--json"], capture_output=True, text=True, timeout=300)
        table = subprocess.run([*CLI, "run", "--config", str(config), "--output-dir", str(tmp_path / "c")],
                               capture_output=True, text=True, timeout=300)
    # --json: stdout is the summary and nothing else
    assert json.loads(as_json.stdout) == json.loads((tmp_path / "a" / "summary.json").read_text())
    # --quiet: no progress lines
    assert not [line for line in as_json.stderr.splitlines() if PROGRESS.match(line)], as_json.stderr
    # the final table ranks the winner first, whatever the config's order; then the verdict
    assert table.stdout.strip().splitlines()[-2].startswith("best: good")
    rows = [line.split() for line in table.stdout.splitlines() if re.match(r"^\s*[\d-]+ (good|poor) ", line)]
    assert [r[1] for r in rows] == ["good", "poor"] and rows[0][0] == "1"
    assert PROGRESS.match(table.stderr.splitlines()[0])  # progress shown by default
