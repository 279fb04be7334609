"""Exit codes and model statuses as a contract: what CI/CD and a schedule gate on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, write_dataset
from fake_servers import chat_server, reply


def write_config(tmp_path: Path, urls: dict[str, str], n: int = 20, **evaluation: object) -> Path:
    write_dataset(tmp_path / "eval.jsonl", n)
    config = {
        "pipeline": {"name": "gate"},
        "dataset": {"dataset_name": "trivia", "input_data_location": "eval.jsonl",
                    "model_input_key": "question", "target_output_key": "answer"},
        "models": [{"name": name, "provider": "openai", "model_id": "m", "endpoint_url": url,
                    "evaluation_config": {"max_retries": 0, "max_concurrency": 2, **evaluation}}
                   for name, url in urls.items()],
        "algorithms": [{"algorithm": "FactualKnowledge", "target_output_delimiter": "<OR>"}],
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    # a cache of its own: another test's server on the same port must not answer for this one
    (tmp_path / "pipeline_config.yaml").write_text(yaml.safe_dump(
        {"local": {"output_dir": str(tmp_path / "runs"), "model_cache_dir": str(tmp_path / "cache")}}))
    return tmp_path / "config.yaml"


def run(config: Path, out: Path) -> subprocess.CompletedProcess:
    """The CLI as CI runs it: a real process, its exit code and its last lines."""
    return subprocess.run([sys.executable, str(ROOT / "pipelines" / "build_pipeline.py"), "run", "--config",
                           str(config), "--output-dir", str(out)], capture_output=True, text=True, timeout=300)


def always(status: int, payload: dict):
    return lambda n, headers, body: (status, payload)


def counted_failures(asked: list[int]):
    """A server's answer that fails every request, noting each in ``asked``."""
    def down(n, headers, body):
        asked.append(n)
        return 500, {"error": "model crashed"}

    return down


def sharded(config: Path, shards: int | None) -> Path:
    if shards:
        data = yaml.safe_load(config.read_text())
        data["dataset"]["shards"] = shards
        config.write_text(yaml.safe_dump(data))
    return config


def test_every_model_failing_every_record_exits_4_and_says_why(tmp_path):
    with chat_server(always(500, {"error": "model crashed"})) as down, \
            chat_server(always(404, {"error": "no such model"})) as missing:
        proc = run(write_config(tmp_path, {"down": down, "missing": missing}, n=5), tmp_path / "run")
    assert proc.returncode == 4, proc.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    for name, why in (("down", "HTTP 500"), ("missing", "HTTP 404")):
        model = summary["models"][name]
        assert model["status"] == "failed" and model["errors"] == 5 and model["scores"] == {}
        assert why in model["first_error"] and "5 of 5 records failed" in model["error"]
    assert summary["selection"]["best"] is None
    # the console's last lines: every failed model and why, then the verdict
    tail = proc.stderr.strip().splitlines()[-4:]
    assert tail[0].startswith("problem: down: failed: 5 of 5 records failed") and "HTTP 500" in tail[0]
    assert tail[1].startswith("problem: missing: failed: 5 of 5 records failed") and "HTTP 404" in tail[1]
    assert tail[2].startswith("problem: no model was selected")
    assert tail[3] == "exit code 4: nothing could be selected"
    report = (tmp_path / "run" / "report.html").read_text()
    top = report[:report.index("<h2>Leaderboard</h2>")]
    assert "Needs attention" in top and "down: failed" in top and "missing: failed" in top


def test_a_model_over_its_error_budget_fails_one_within_it_is_partial(tmp_path):
    def flaky(every: int):
        return lambda n, headers, body: (500, {"error": "overloaded"}) if n % every == 0 else (200, reply("Paris"))

    # 20 records: every 10th failing is 10% (the default budget: partial); every 4th is 25% (failed)
    with chat_server(flaky(10)) as ten, chat_server(flaky(4)) as four:
        proc = run(write_config(tmp_path, {"ten-percent": ten, "quarter": four}), tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["models"]["ten-percent"]["status"] == "partial"
    assert summary["models"]["quarter"]["status"] == "failed"
    assert summary["selection"]["best"] == "ten-percent"
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "exit code 3" in proc.stderr


def test_the_error_budget_is_configurable_and_a_clean_run_exits_0(tmp_path):
    with chat_server(lambda n, h, b: (500, {}) if n % 4 == 0 else (200, reply("Paris"))) as four:
        proc = run(write_config(tmp_path, {"quarter": four}, max_error_rate=0.3), tmp_path / "a")
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["models"]["quarter"]["status"] == "partial"
    assert proc.returncode == 3
    with chat_server(always(200, reply("Paris"))) as fine:
        proc = run(write_config(tmp_path, {"fine": fine}), tmp_path / "b")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "problem:" not in proc.stderr and "exit code" not in proc.stderr


def test_a_model_past_its_error_budget_is_not_asked_the_rest_and_a_rerun_asks_them(tmp_path):
    # 60 records against a server that fails everything: the model has failed once 7 have (10% of 60 is
    # 6), so the others are not sent; a rerun, once the server is back, asks every record again
    asked: list[int] = []
    with chat_server(counted_failures(asked)) as url:
        proc = run(write_config(tmp_path, {"down": url}, n=60), tmp_path / "run")
    assert proc.returncode == 4, proc.stderr[-2000:]
    model = json.loads((tmp_path / "run" / "summary.json").read_text())["models"]["down"]
    assert model["status"] == "failed" and model["errors"] == 60 and "HTTP 500" in model["first_error"]
    assert 7 <= len(asked) == model["invocations"] <= 20  # the 7, and those already under way (2 at a time)
    rows = [json.loads(line) for line in (tmp_path / "run" / "models" / "down" / "outputs.jsonl").open()]
    assert rows[-1]["error"] == ("not asked: 7 of 60 records failed, more than its error budget allows "
                                 "(max_error_rate 0.1); a rerun asks the rest") and rows[-1]["attempts"] == 0
    assert "stopped asking: 7 of 60 records failed" in proc.stderr
    with chat_server(always(200, reply("Paris"))) as url:
        proc = run(write_config(tmp_path, {"down": url}, n=60), tmp_path / "run")
    model = json.loads((tmp_path / "run" / "summary.json").read_text())["models"]["down"]
    assert proc.returncode == 0 and model["invocations"] == 60 and model["errors"] == 0


def test_the_shards_of_a_model_spend_one_error_budget(tmp_path):
    # 10 shards of 6 records: no shard alone can fail more than the model's budget (6 of 60), together
    # they stop once 7 have failed, as one unsharded ask does
    asked: list[int] = []
    with chat_server(counted_failures(asked)) as url:
        proc = run(sharded(write_config(tmp_path, {"down": url}, n=60, max_concurrency=1), 10), tmp_path / "run")
    assert proc.returncode == 4, proc.stderr[-2000:]
    model = json.loads((tmp_path / "run" / "summary.json").read_text())["models"]["down"]
    assert model["status"] == "failed" and model["errors"] == 60
    assert 7 <= len(asked) <= 7 + 2 * 2  # two shards at a time, one call in flight each
    assert "stopped asking: 7 of 60 records failed" in proc.stderr


@pytest.mark.parametrize("shards", [None, 2])
def test_a_run_stopped_while_its_model_fails_says_how_many_failed_and_why(tmp_path, shards):
    # Ctrl-C during a run whose every answer is an error (a budget that lets it go on): the summary and
    # the console say how far it got and the first error, not just "interrupted" (sharded: its shards')
    def slow_failure(n, headers, body):
        time.sleep(0.05)
        return 500, {"error": "model crashed"}

    with chat_server(slow_failure) as url:
        config = sharded(write_config(tmp_path, {"down": url}, n=60, max_error_rate=1.0, max_concurrency=1), shards)
        proc = subprocess.Popen([sys.executable, str(ROOT / "pipelines" / "build_pipeline.py"), "run", "--config",
                                 str(config), "--output-dir", str(tmp_path / "run")], stderr=subprocess.PIPE, text=True)
        for line in proc.stderr:
            if f"/{60 // (shards or 1)} records" in line:  # the first progress line: some have failed
                break
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130, rest[-2000:]
    model = json.loads((tmp_path / "run" / "summary.json").read_text())["models"]["down"]
    assert model["status"] == "interrupted" and model["records"] == 60 and 0 < model["errors"] < 60
    assert model["first_error"] == 'gave up after 1 attempts: HTTP 500: {"error": "model crashed"}'
    assert model["error"].startswith("interrupted after ") and f"{model['errors']} of them failed (first: gave up" \
        in model["error"]
    assert "of them failed (first: gave up after 1 attempts: HTTP 500" in rest


def test_the_exit_codes_are_in_the_help():
    proc = subprocess.run([sys.executable, str(ROOT / "pipelines" / "build_pipeline.py"), "run", "--help"],
                          capture_output=True, text=True)
    for code in ("0", "3", "4", "5", "130", "143"):
        assert f"  {code:>3}  " in proc.stdout


def test_a_stopped_rerun_counts_each_record_once_by_its_latest_answer(tmp_path):
    # a run whose every answer failed, then a rerun into the same folder against a working (slow) server,
    # stopped part-way: the file holds the old failures and the new answers after them
    with chat_server(always(500, {"error": "old failure"})) as url:
        proc = run(write_config(tmp_path, {"m": url}, n=30, max_error_rate=1.0), tmp_path / "run")
    assert proc.returncode == 4

    def slow(n, headers, body):
        time.sleep(0.05)
        return 200, reply("Paris")

    with chat_server(slow) as url:
        config = write_config(tmp_path, {"m": url}, n=30, max_error_rate=1.0, max_concurrency=1)
        proc = subprocess.Popen([sys.executable, str(ROOT / "pipelines" / "build_pipeline.py"), "run", "--config",
                                 str(config), "--output-dir", str(tmp_path / "run")], stderr=subprocess.PIPE, text=True)
        for line in proc.stderr:
            if "/30 records" in line:
                break
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    model = json.loads((tmp_path / "run" / "summary.json").read_text())["models"]["m"]
    assert model["error"].startswith("interrupted after 30 of 30 records, ")  # not the file's line count
    latest = {}
    for line in (tmp_path / "run" / "models" / "m" / "outputs.jsonl").read_text().splitlines():
        row = json.loads(line)
        latest[row["id"]] = row["error"]
    still_failed = sum(e is not None for e in latest.values())
    assert 0 < still_failed <= model["errors"] <= still_failed + 1  # + the answer that may have landed after
    assert model["errors"] < 30 and "old failure" in model["first_error"]


def test_a_second_run_into_the_same_output_dir_is_refused_naming_the_holder(tmp_path, capsys):
    from lib.run.lock import run_lock
    from pipelines.build_pipeline import main

    out = tmp_path / "run"
    out.mkdir()
    with chat_server(always(200, reply("Paris"))) as fine:
        config = write_config(tmp_path, {"fine": fine}, n=2)
        with run_lock(str(out)):  # the first run, still going
            assert main(["run", "--config", str(config), "--output-dir", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"pid {os.getpid()}" in err and str(out) in err
        assert "steps into" not in err  # it never said it started
        assert sorted(p.name for p in out.iterdir()) == []  # nothing of the second run was written
        assert main(["run", "--config", str(config), "--output-dir", str(out)]) == 0  # free again


# Ctrl-C `delay` seconds after the tool's own code begins (the interpreter's start-up before it, which
# Python itself reports, is not ours to handle): an interval timer sends SIGINT, as a terminal would
CTRL_C_AFTER = """
import os, signal, sys
# Ctrl-C's default, as a terminal's foreground process has it: a test run started in the background by a
# shell without job control inherits SIGINT ignored, and Python then keeps it ignored
signal.signal(signal.SIGINT, signal.default_int_handler)
delay = float(sys.argv.pop(1))
sys.argv[0] = path = os.path.abspath("pipelines/build_pipeline.py")
code = compile(open(path).read(), path, "exec")  # Python's own work, done before the clock starts
signal.signal(signal.SIGALRM, lambda *args: os.kill(os.getpid(), signal.SIGINT))
signal.setitimer(signal.ITIMER_REAL, delay)
exec(code, {"__name__": "__main__", "__file__": path, "__package__": None})
"""


def test_ctrl_c_at_any_moment_of_start_up_exits_130_with_one_line(tmp_path):
    # SIGINT while the commands load, while the arguments are read, or once the run has begun: always
    # exit 130 and a line saying so, never a traceback
    def slow(n: int, headers: dict, body: dict) -> tuple[int, dict]:
        time.sleep(3)
        return 200, reply("Paris")

    with chat_server(slow) as url:
        config = write_config(tmp_path, {"m": url}, n=5)
        for delay in (0.001, 0.02, 0.05, 0.1, 0.2, 0.4):
            proc = subprocess.run([sys.executable, "-c", CTRL_C_AFTER, str(delay), "run", "--config", str(config),
                                   "--output-dir", str(tmp_path / f"out-{delay}")], cwd=ROOT, text=True,
                                  capture_output=True, timeout=120)
            assert proc.returncode == 130, (delay, proc.returncode, proc.stderr[:1500], proc.stderr[-1500:])
            lines = proc.stderr.strip().splitlines()
            assert "Traceback" not in proc.stderr and lines[-1].startswith("interrupted"), (delay, proc.stderr)


# The tool leaves without the interpreter's teardown: what exit does that matters must still happen
LEAVING = """
import atexit, logging, os, sys, tempfile, threading, time
sys.argv[0] = path = os.path.abspath("pipelines/build_pipeline.py")
folder = tempfile.TemporaryDirectory()  # removed by its finalizer, which exit runs
open(sys.argv.pop(1), "w").write(folder.name)
marker = sys.argv.pop(1)
atexit.register(lambda: (open(marker, "w").write("ran"), print("bye")))  # its output flushed too
logging.basicConfig(filename=sys.argv.pop(1), level=logging.INFO)
logging.getLogger("t").info("kept")
if sys.argv[1] == "thread":  # a thread still at work: waited for, as exit waits
    sys.argv.pop(1)
    threading.Thread(target=lambda: (time.sleep(0.5), open(marker + ".thread", "w").write("done"))).start()
sys.stdout.write("x" * 100_000)  # more than a pipe's buffer: flushed before leaving
exec(compile(open(path).read(), path, "exec"), {"__name__": "__main__", "__file__": path, "__package__": None})
"""


def test_a_profiled_run_keeps_its_profile(tmp_path):
    # cProfile writes its file once the script returns: leaving at once would lose it
    config = write_config(tmp_path, {"m": "http://127.0.0.1:9/v1"}, n=2)
    proc = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(tmp_path / "prof"),
                           "pipelines/build_pipeline.py", "validate", "--config", str(config)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "prof").stat().st_size > 0


@pytest.mark.parametrize("thread", [False, True])
def test_leaving_runs_the_exit_handlers_flushes_and_waits_for_a_thread_at_work(tmp_path, thread):
    config = write_config(tmp_path, {"m": "http://127.0.0.1:9/v1"}, n=2)
    where, marker, log = tmp_path / "where", tmp_path / "marker", tmp_path / "log"
    proc = subprocess.run([sys.executable, "-c", LEAVING, str(where), str(marker), str(log)]
                          + (["thread"] if thread else []) + ["validate", "--config", str(config)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"})  # buffered, as piped
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("x" * 100_000) and "valid" in proc.stdout[100_000:]
    assert proc.stdout.endswith("bye\n")
    assert marker.read_text() == "ran" and "kept" in log.read_text()
    assert not Path(where.read_text()).exists()  # the temporary folder's finalizer ran
    assert (tmp_path / "marker.thread").exists() == thread
