"""What the terminal shows: the version, quiet and JSON modes, a ranked final table, and pipes that
close early ending quietly."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

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


def test_a_ci_log_gets_plain_records_lines_with_rate_and_eta_at_a_sane_rate(tmp_path):
    with chat_server(lambda n, h, b: (200, reply("Paris"))) as url:
        config = write_config(tmp_path, {"bot": url}, n=40)
        proc = subprocess.run([*CLI, "run", "--config", str(config), "--output-dir", str(tmp_path / "a")],
                              capture_output=True, text=True, timeout=300)
    assert proc.returncode in (0, 6), proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if re.search(r"evaluate-bot\s+\d+/40 records", line)]
    assert 5 <= len(lines) <= 10  # every tenth of the records, not one line per record, no redraws
    assert lines[-1].split("evaluate-bot")[1].strip().startswith("40/40 records")
    assert all(re.search(r"records(, \d+ errors)?, [\d.]+/s", line) for line in lines[1:])
    assert any("ETA " in line for line in lines[:-1])
    assert "\x1b[" not in proc.stderr  # no cursor movement or colour in a log


def test_a_terminal_gets_one_live_table_of_the_steps(tmp_path):
    """A real pseudo-terminal: the live table draws the steps with records, rate and ETA, then goes, and
    the messages and the final table stay."""
    import os
    import pty
    import select

    def answer(n: int, headers: dict, body: dict) -> tuple[int, dict]:
        time.sleep(0.1)  # the ask lasts about a second: long enough for the table (4 a second) to show it
        return 200, reply("Paris")

    with chat_server(answer) as url:
        config = write_config(tmp_path, {"bot": url}, n=40)
        main_fd, child_fd = pty.openpty()
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "140", "LINES": "40"}
        proc = subprocess.Popen([*CLI, "run", "--config", str(config), "--output-dir", str(tmp_path / "a")],
                                stdin=child_fd, stdout=child_fd, stderr=child_fd, env=env)
        os.close(child_fd)
        chunks = []
        while True:
            ready, _, _ = select.select([main_fd], [], [], 60)
            if not ready:
                break
            try:
                data = os.read(main_fd, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        proc.wait(timeout=60)
        os.close(main_fd)
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode in (0, 6), screen[-2000:]
    assert "\x1b[1A" in screen  # drawn in place (cursor up), not printed line after line
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)
    assert re.search(r"step\s+state\s+records\s+errors\s+rate\s+ETA", screen)  # the table's header
    assert re.search(r"evaluate-bot\s+running", screen)
    assert re.search(r"\d+ succeeded", screen)  # the caption counts steps by state
    assert "best: bot" in screen and "evaluate-bot" in screen  # messages and the final table stay


def test_the_live_table_shows_records_rate_eta_and_a_fine_tunes_loss():
    import io

    from rich.console import Console

    from lib.progress import LiveDisplay

    console = Console(file=io.StringIO(), force_terminal=True, width=140, record=True)
    display = LiveDisplay(["finetune-a", "evaluate-a", "select"], console=console, refresh_per_second=1)
    try:
        display.update("finetune-a", state="running")
        display.update("finetune-a", train_step=12, train_total=60, loss=1.2345)
        display.update("evaluate-a", state="running")
        display.update("evaluate-a", total=40, done=0, errors=0)
        import time

        time.sleep(0.2)
        display.update("evaluate-a", done=10, errors=2)
        console.print(display.render())
    finally:
        display.close()
    text = console.export_text()
    assert re.search(r"finetune-a\s+running.*step 12/60 loss 1\.234", text)
    assert re.search(r"evaluate-a\s+running \d+s\s+.*10/40\s+2\s+[\d.]+/s\s+\d+s", text)
    assert "1 waiting" in text and "2 running" in text and "select" not in text.split("waiting")[0]


def test_plain_lines_of_parallel_steps_never_run_together(tmp_path):
    import io
    import threading

    from lib.progress import PlainDisplay

    # as stderr is under PYTHONUNBUFFERED: each write goes to the file at once
    stream = io.TextIOWrapper(open(tmp_path / "log", "wb", buffering=0), write_through=True)
    display, before = PlainDisplay(stream), sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: print's two writes were split
    try:
        threads = [threading.Thread(target=lambda n=n: [display.line(f"step-{n}", f"message {i}") for i in range(300)])
                   for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(before)
        display.stream.close()
    lines = (tmp_path / "log").read_text().splitlines()
    assert len(lines) == 1800
    assert all(re.fullmatch(r"\d\d:\d\d:\d\d step-\d +message \d+", line) for line in lines)
