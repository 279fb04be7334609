"""No process we start outlives its run, and nothing we start listens beyond 127.0.0.1."""

from __future__ import annotations

import os
from pathlib import Path


def listening_sockets() -> dict[str, str]:
    """inode -> local address of every listening TCP socket on this machine."""
    socks = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            parts = line.split()
            if parts[3] == "0A":  # LISTEN
                socks[parts[9]] = parts[1].split(":")[0]
    return socks


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def addresses_of(pids: set[int]) -> list[str]:
    socks, out = listening_sockets(), []
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:[") and link[8:-1] in socks:
                out.append(socks[link[8:-1]])
    return out


LOOPBACK = {"0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000"}


def test_ray_for_fmeval_listens_on_loopback_only_and_is_gone_afterwards():
    from lib.engine.with_model import local_ray

    before = descendants(os.getpid())
    with local_ray():
        ours = descendants(os.getpid()) - before
        addresses = addresses_of(ours | {os.getpid()})
        assert ours and addresses, "Ray started its processes and they listen"
        assert set(addresses) <= LOOPBACK, addresses  # 0.0.0.0 / :: would be 00000000 / 000…0
    import time

    deadline = time.monotonic() + 15
    while alive(ours) and time.monotonic() < deadline:  # shutdown signals them; give them a moment
        time.sleep(0.2)
    assert alive(ours) == [], f"no Ray process outlives the algorithm: {described(alive(ours))}"


def alive(pids: set[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":  # a zombie has exited; only its parent's bookkeeping is left
            out.append(pid)
    return out


def described(pids: list[int]) -> list[str]:
    """Each process's command line, for the failure message."""
    out = []
    for pid in pids:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            out.append(f"{pid}: {command[:200]}")
        except OSError:
            out.append(f"{pid}: gone")
    return out


def test_a_ray_process_that_outlives_its_shutdown_is_ended():
    # Ray's agents notice late that their raylet is gone; closing the cluster ends any that linger
    import subprocess
    import sys

    import psutil

    from lib.engine.with_model import _RayCluster

    lingering = subprocess.Popen([sys.executable, "-c", "import signal, time; "
                                  "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"])
    process = psutil.Process(lingering.pid)
    try:
        _RayCluster([process]).close(grace_s=0.5)
        assert not process.is_running()  # killed (and reaped), not left sleeping for two minutes
    finally:
        if lingering.poll() is None:
            lingering.kill()
