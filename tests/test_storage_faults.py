"""Storage faults, real ones: a parent that is a file (ENOTDIR), a full disk (a 64 KiB tmpfs; skipped
where mounting is not allowed), a file-size limit (RLIMIT_FSIZE in a subprocess: EFBIG). And the lock
on an output folder, held by one real process and refused to another.

Every fault must give one `StorageError` naming the path, leave no temp file, never leave a file
that claims a success that did not happen, and leave the local registry index unchanged when
register failed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import fake_aws

from lib import storage
from lib.errors import UserError
from lib.run.layout import RunLayout
from lib.run.lock import LockHeld, run_lock
from lib.storage import StorageError

ROOT = Path(__file__).resolve().parent.parent
PAGE = 4096


# ---------------------------------------------------------------- helpers


def listing(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes): what a fault may not change or leave."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def temp_files(folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]


def python(code: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, **kwargs)


@pytest.fixture
def disk(tmp_path):
    """A 64 KiB tmpfs: writing past it fails with ENOSPC, as on a full disk."""
    mount = tmp_path / "disk"
    mount.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                              capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def free_bytes(mount: Path) -> int:
    st = os.statvfs(mount)
    return st.f_bavail * st.f_frsize


def fill(mount: Path, leave: int) -> Path:
    """Take all but ``leave`` bytes of the tmpfs."""
    filler = mount / "filler.bin"
    filler.write_bytes(b"\0" * (free_bytes(mount) - leave))
    assert free_bytes(mount) == leave
    return filler


def selection(best: str = "falcon") -> dict:
    """What select hands register: a run with one scored model."""
    from lib.run.records import ModelResult, RunSummary, Selection

    models = {best: ModelResult(best, provider="openai", model_id="gpt-x",
                                scores={"factual_knowledge": {"factual_knowledge": 0.61}})}
    sel = Selection("factual_knowledge", best=best, best_value=0.61, ranking=[{"model": best, "value": 0.61}])
    return {"status": "succeeded", "summary": RunSummary("p", "exec-1", models, sel).to_dict()}


def old_versions(index: Path, n: int, pad: int = 0) -> bytes:
    """An index that already holds ``n`` versions (from earlier runs)."""
    index.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps({"status": "succeeded", "version": v + 1, "model": "old", "note": "x" * pad}) + "\n"
                   for v in range(n)).encode()
    index.write_bytes(data)
    return data


# ---------------------------------------------------------------- write_bytes / write_json


def test_write_under_a_file_is_one_error_naming_the_path(tmp_path):
    (tmp_path / "runs").write_text("a file where a folder should be")
    target = tmp_path / "runs" / "p" / "e" / "summary.json"
    before = listing(tmp_path)
    with pytest.raises(StorageError) as caught:
        storage.write_json(str(target), {"status": "succeeded"})
    message = str(caught.value)
    assert message.startswith(f"cannot write {target}: Not a directory")
    assert f"{tmp_path / 'runs'} is a file" in message and "\n" not in message
    # the CLI prints a UserError as one paragraph and returns its exit code: 1, an environment fault
    assert isinstance(caught.value, UserError) and caught.value.exit_code == 1
    assert listing(tmp_path) == before


def test_full_disk_keeps_the_old_file_and_leaves_no_temp(disk):
    run = disk / "runs" / "p" / "e"
    summary = run / "summary.json"
    storage.write_json(str(summary), {"status": "pending"})
    fill(disk, PAGE)  # room for one page, not for the bigger summary
    with pytest.raises(StorageError) as caught:
        storage.write_json(str(summary), {"status": "succeeded", "padding": "x" * (3 * PAGE)})
    assert str(caught.value) == f"cannot write {summary}: No space left on device"
    assert json.loads(summary.read_text()) == {"status": "pending"}  # the old one, whole
    assert temp_files(disk) == [] and sorted(os.listdir(run)) == ["summary.json"]


def test_file_size_limit_on_write_and_append(tmp_path):
    """EFBIG from RLIMIT_FSIZE in a subprocess (SIGXFSZ ignored): the same clean failure."""
    done = python("""
        import json, resource, signal, sys
        from lib import storage
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, resource.RLIM_INFINITY))
        out = {}
        try:
            storage.write_bytes(sys.argv[1] + "/big.bin", b"x" * 5000)
        except storage.StorageError as exc:
            out["write"] = str(exc)
        appended = 0
        try:
            with storage.JsonlAppender(sys.argv[1] + "/rows.jsonl") as rows:
                for i in range(100):
                    rows.append({"id": i, "text": "y" * 50})
                    appended += 1
        except storage.StorageError as exc:
            out["append"] = str(exc)
        out["appended"] = appended
        print(json.dumps(out))
    """, str(tmp_path))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["write"] == f"cannot write {tmp_path / 'big.bin'}: File too large"
    assert out["append"] == f"cannot write {tmp_path / 'rows.jsonl'}: File too large"
    # the line that did not fit was cut off again: the file ends on a whole line
    rows = (tmp_path / "rows.jsonl").read_text()
    assert rows.endswith("\n")
    assert [json.loads(line)["id"] for line in rows.splitlines()] == list(range(out["appended"]))
    assert 0 < out["appended"] < 100
    assert sorted(os.listdir(tmp_path)) == ["rows.jsonl"]  # no big.bin, no temp file


# ---------------------------------------------------------------- JsonlAppender, local_copy


def test_appender_on_a_full_disk_never_leaves_half_a_line(disk):
    path = disk / "models" / "m" / "outputs.jsonl"
    fill(disk, 2 * PAGE)
    appended = 0
    with pytest.raises(StorageError) as caught:
        with storage.JsonlAppender(str(path)) as out:
            for i in range(1000):
                out.append({"id": i, "output": "z" * 100})
                appended += 1
    assert str(caught.value) == f"cannot write {path}: No space left on device"
    data = path.read_text()
    assert data.endswith("\n") and len(data.splitlines()) == appended > 0
    assert all(json.loads(line)["id"] == i for i, line in enumerate(data.splitlines()))
    # the next run resumes from the same file: it opens, and appends once there is room
    (disk / "filler.bin").unlink()
    with storage.JsonlAppender(str(path)) as out:
        out.append({"id": appended, "output": "z"})
    assert len(storage.read_jsonl(str(path))) == appended + 1


def test_appender_under_a_file_fails_on_open(tmp_path):
    (tmp_path / "models").write_text("")
    target = tmp_path / "models" / "m" / "outputs.jsonl"
    with pytest.raises(StorageError) as caught:
        storage.JsonlAppender(str(target))
    assert str(caught.value).startswith(f"cannot write {target}: Not a directory")
    assert listing(tmp_path) == {"models": b""}


@pytest.fixture
def s3_object(monkeypatch):
    moto = pytest.importorskip("moto")
    fake_aws(monkeypatch)
    with moto.mock_aws():
        import boto3

        boto3.client("s3").create_bucket(Bucket="runs")
        uri = storage.write_bytes("s3://runs/dataset/processed.jsonl", b'{"q": "x"}\n' * 2000)
        yield uri


def test_local_copy_into_a_full_temp_folder_leaves_no_partial_copy(s3_object, disk, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(disk))  # the stdlib's own setting for its temp folder
    fill(disk, PAGE)
    with pytest.raises(StorageError) as caught:
        storage.local_copy(s3_object)
    message = str(caught.value)
    assert message.startswith(f"cannot copy {s3_object}: No space left on device (copying to {disk}/")
    assert sorted(os.listdir(disk)) == ["filler.bin"]


def test_local_copy_into_a_missing_temp_folder(s3_object, tmp_path, monkeypatch):
    import tempfile

    (tmp_path / "tmp").write_text("")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp" / "sub"))
    with pytest.raises(StorageError) as caught:
        storage.local_copy(s3_object)
    assert str(caught.value).startswith(f"cannot copy {s3_object}: Not a directory")
    assert f"{tmp_path / 'tmp'} is a file" in str(caught.value)


# ---------------------------------------------------------------- register: the registry changes last


def register_step(base: Path) -> dict:
    from steps.register import register

    return register({"model_package_group_name": "g"}, selection(), None, str(base / "p" / "exec-1"), "exec-1")


def run_files(base: Path) -> tuple[dict, dict]:
    run = base / "p" / "exec-1"
    return json.loads((run / "registry.json").read_text()), json.loads((run / "summary.json").read_text())


def test_register_on_a_full_disk_leaves_the_registry_unchanged(disk):
    index = RunLayout(str(disk / "p" / "exec-1")).local_registry_index("g")
    before = old_versions(Path(index), 100, pad=200)  # ~27 KB: rewriting it needs 7 free pages
    # room for the run files written before registering (registry.json, summary.json: a page each) and a
    # temp copy of the largest, not for the new index
    fill(disk, 8 * PAGE)
    record = register_step(disk)
    assert record["status"] == "failed" and "version" not in record
    assert record["error"] == f"StorageError: cannot write {index}: No space left on device"
    assert Path(index).read_bytes() == before
    registry, summary = run_files(disk)
    assert registry["status"] == "failed" and "version" not in registry
    assert summary["registry"]["status"] == "failed" and "version" not in summary["registry"]
    assert "registered as version" not in (disk / "p" / "exec-1" / "report.html").read_text()
    assert temp_files(disk) == []


def test_register_when_the_run_folder_cannot_be_written_registers_nothing(tmp_path):
    index = Path(RunLayout(str(tmp_path / "p" / "exec-1")).local_registry_index("g"))
    before = old_versions(index, 2)
    (tmp_path / "p" / "exec-1").write_text("")  # the run's folder is a file
    with pytest.raises(StorageError) as caught:
        register_step(tmp_path)
    run = tmp_path / "p" / "exec-1"
    assert str(caught.value) == f"cannot write {run / 'registry.json'}: Not a directory ({run} is a file)"
    assert index.read_bytes() == before
    assert listing(tmp_path) == {"p/exec-1": b"", "p/model_registry/g.jsonl": before}


REGISTER_UNDER_A_LIMIT = """
    import json, resource, signal, sys
    from pathlib import Path
    from lib import storage
    from lib.run.records import ModelResult, RunSummary, Selection
    from steps.register import register

    models = {"falcon": ModelResult("falcon", provider="openai", model_id="gpt-x",
                                    scores={"factual_knowledge": {"factual_knowledge": 0.61}})}
    sel = Selection("factual_knowledge", best="falcon", best_value=0.61, ranking=[{"model": "falcon", "value": 0.61}])
    selection = {"status": "succeeded", "summary": RunSummary("p", "exec-1", models, sel).to_dict()}

    def step(base):
        return register({"model_package_group_name": "g"}, selection, None, f"{base}/p/exec-1", "exec-1")

    base, rehearsal, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if limit == 0:  # just under the largest file the step writes: its last write is the one refused
        step(rehearsal)
        limit = max(p.stat().st_size for p in Path(rehearsal, "p", "exec-1").iterdir()) - 1
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    try:
        print(json.dumps({"record": step(base)}))
    except storage.StorageError as exc:
        print(json.dumps({"raised": str(exc), "exit_code": exc.exit_code}))
"""


def test_register_over_the_size_limit_leaves_the_registry_unchanged(tmp_path):
    index = Path(RunLayout(str(tmp_path / "p" / "exec-1")).local_registry_index("g"))
    before = old_versions(index, 100, pad=100)  # ~17 KB, bigger than any of the run's files (report ~10 KB)
    done = python(REGISTER_UNDER_A_LIMIT, str(tmp_path), "-", "12000")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)["record"]
    assert record["status"] == "failed" and record["error"] == f"StorageError: cannot write {index}: File too large"
    assert index.read_bytes() == before
    registry, summary = run_files(tmp_path)
    assert registry["status"] == summary["registry"]["status"] == "failed"
    assert "version" not in registry and "version" not in summary["registry"]
    assert temp_files(tmp_path) == []


def test_register_whose_result_cannot_be_recorded_is_withdrawn(tmp_path):
    """The registry took the line, then the run could not write that it did: the line goes again."""
    base, rehearsal = tmp_path / "a", tmp_path / "b"  # same path lengths, so the same file sizes
    for where in (base, rehearsal):
        old_versions(Path(RunLayout(str(where / "p" / "exec-1")).local_registry_index("g")), 1)
    index = Path(RunLayout(str(base / "p" / "exec-1")).local_registry_index("g"))
    before = index.read_bytes()
    done = python(REGISTER_UNDER_A_LIMIT, str(base), str(rehearsal), "0")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["exit_code"] == 1 and out["raised"].startswith(f"cannot write {base / 'p' / 'exec-1'}/")
    assert out["raised"].endswith(": File too large")
    assert index.read_bytes() == before  # withdrawn
    assert "withdrawn" in done.stderr
    # nothing that is left claims the version: each file says failed, or still pending, or is gone
    run = base / "p" / "exec-1"
    for name, key in (("registry.json", None), ("summary.json", "registry")):
        if (run / name).exists():
            data = json.loads((run / name).read_text())
            data = data[key] if key else data
            assert data["status"] in ("failed", "pending") and "version" not in data, name
    if (run / "report.html").exists():
        assert "registered as version" not in (run / "report.html").read_text()
    assert temp_files(tmp_path) == []
    # the rehearsal, with no limit, did register: the limit is what made the difference
    assert Path(RunLayout(str(rehearsal / "p" / "exec-1")).local_registry_index("g")).read_text().count("\n") == 2


def test_register_appends_one_whole_line_per_version(tmp_path):
    index = Path(RunLayout(str(tmp_path / "p" / "exec-1")).local_registry_index("g"))
    index.parent.mkdir(parents=True)
    index.write_bytes(b'{"status": "succeeded", "version": 1}\n{"status": "succ')  # torn by a killed run
    record = register_step(tmp_path)
    assert record["status"] == "succeeded" and record["version"] == 2
    lines = index.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["version"] == 2 and index.read_text().endswith("\n")
    registry, summary = run_files(tmp_path)
    assert registry["version"] == summary["registry"]["version"] == 2 and registry["status"] == "succeeded"


REGISTER_MANY = """
    import sys, time
    from lib.registry.local import register_locally
    from lib.run.records import Registration
    while time.time() < float(sys.argv[2]):  # all start together
        time.sleep(0.001)
    for i in range(10):
        register_locally(Registration(status="pending", model=sys.argv[3], execution_id=str(i)), sys.argv[1])
"""


def test_runs_registering_at_once_each_get_their_own_version(tmp_path):
    index = tmp_path / "model_registry" / "g.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = str(time.time() + 2)
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(REGISTER_MANY), str(index), start, f"run-{n}"],
                              cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True) for n in range(4)]
    for proc in procs:
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    lines = [json.loads(line) for line in index.read_text().splitlines()]
    assert sorted(line["version"] for line in lines) == list(range(1, 41))  # none lost, none twice
    assert sorted((line["model"], line["execution_id"]) for line in lines) == sorted(
        (f"run-{n}", str(i)) for n in range(4) for i in range(10))
    assert temp_files(tmp_path) == []


# ---------------------------------------------------------------- the lock on an output folder

HOLDER = """
    import signal, sys, time
    from lib.run.lock import run_lock
    # a shell without job control starts background jobs with SIGINT ignored: take Ctrl-C as a user would
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with run_lock(sys.argv[1]):
        print("held", flush=True)
        if sys.argv[2] == "wait-for-stdin":
            sys.stdin.readline()
        else:
            time.sleep(60)
    print("released", flush=True)
"""


def start_holder(root: Path, mode: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(HOLDER), str(root), mode], cwd=ROOT, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held", proc.stderr.read()
    return proc


def test_a_second_run_is_refused_naming_the_holder(tmp_path):
    root = tmp_path / "out"
    root.mkdir()
    (root / "summary.json").write_text("{}")
    holder = start_holder(root, "wait-for-stdin")
    try:
        before = listing(root)
        with pytest.raises(LockHeld) as caught:
            with run_lock(str(root)):
                pytest.fail("entered a folder another run holds")
        message = str(caught.value)
        assert f"pid {holder.pid} on host {socket.gethostname()}" in message
        assert "started 20" in message and "wait-for-stdin" in message and str(root / ".lock") in message
        assert caught.value.exit_code == 2 and "\n" not in message
        assert listing(root) == before  # refused: nothing changed
    finally:
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.wait(timeout=30) == 0
    assert not (root / ".lock").exists()  # released on exit
    with run_lock(str(root)):  # and free again
        assert json.loads((root / ".lock").read_text())["pid"] == os.getpid()
    assert sorted(os.listdir(root)) == ["summary.json"]


def test_the_lock_goes_on_ctrl_c_and_on_an_exception(tmp_path):
    holder = start_holder(tmp_path, "sleep")
    assert (tmp_path / ".lock").exists()
    holder.send_signal(signal.SIGINT)
    holder.wait(timeout=30)
    assert "KeyboardInterrupt" in holder.stderr.read()
    assert not (tmp_path / ".lock").exists()
    with pytest.raises(RuntimeError):
        with run_lock(str(tmp_path)):
            assert (tmp_path / ".lock").exists()
            raise RuntimeError("a step failed")
    assert not (tmp_path / ".lock").exists()


def test_a_lock_left_by_a_killed_run_is_taken_over_with_a_note(tmp_path, capfd):
    holder = start_holder(tmp_path, "sleep")
    holder.kill()  # SIGKILL: no finally, the lock stays behind naming a dead pid
    holder.wait(timeout=30)
    left = json.loads((tmp_path / ".lock").read_text())
    assert left["pid"] == holder.pid
    capfd.readouterr()
    with run_lock(str(tmp_path)):
        assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
    err = capfd.readouterr().err
    assert f"taking over the lock {tmp_path / '.lock'}" in err and f"pid {holder.pid} is no longer running" in err
    assert not (tmp_path / ".lock").exists()


def test_a_lock_naming_a_reused_pid_or_nobody_is_taken_over(tmp_path, capfd):
    lock = tmp_path / ".lock"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:  # a live process, but one that started long after the lock was taken: the number was reused
        lock.write_text(json.dumps({"pid": other.pid, "host": socket.gethostname(),
                                    "started": "2000-01-01T00:00:00Z", "argv": ["run"]}))
        with run_lock(str(tmp_path)):
            assert json.loads(lock.read_text())["pid"] == os.getpid()
        assert f"pid {other.pid} is a newer process that reused the number" in capfd.readouterr().err
    finally:
        other.kill()
        other.wait()
    lock.write_text("")  # its writer died between creating it and writing it
    with pytest.raises(LockHeld, match="holder unknown"):  # a fresh one may still be being written
        with run_lock(str(tmp_path)):
            pytest.fail("took a lock that is being written")
    os.utime(lock, (time.time() - 60, time.time() - 60))
    with run_lock(str(tmp_path)):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert "it is empty or damaged" in capfd.readouterr().err and not lock.exists()


def test_a_lock_from_another_host_is_never_taken_over(tmp_path):
    lock = tmp_path / ".lock"
    lock.write_text(json.dumps({"pid": 1, "host": "elsewhere.example", "started": "2020-01-01T00:00:00Z",
                                "argv": ["build_pipeline.py", "run"]}))
    with pytest.raises(LockHeld) as caught:
        with run_lock(str(tmp_path)):
            pytest.fail("took a lock that cannot be checked")
    assert "pid 1 on host elsewhere.example, started 2020-01-01T00:00:00Z" in str(caught.value)
    assert json.loads(lock.read_text())["host"] == "elsewhere.example"


def test_an_s3_root_has_no_lock(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    started = time.monotonic()
    with run_lock("s3://runs/p/exec-1"):
        pass
    assert os.listdir(tmp_path) == []  # not taken for a local path named "s3:"
    assert time.monotonic() - started < 1  # and no call to AWS
