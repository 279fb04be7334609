"""A content-addressed store of model outputs: the same model, request and prompt are never paid twice.

The key covers everything that shapes the answer: model identity, content template, inference
parameters, custom attributes, system prompt and the prompt itself. The model identity is the
provider's (`Provider.identity`): provider, endpoint name and URL, region, model id and version,
container image and model data, so two models sharing a ``model_id`` never share an answer.

A key is ``<setup>.<answer>``: ``setup`` hashes everything but the prompt (one model asked one way),
``answer`` everything including the prompt. The answers of one setup live together, never one file
per record:

- locally, in one append-only JSON Lines file, ``<root>/answers/<setup>.jsonl``, one line per answer.
  New answers are kept in memory and appended in batches (every `LOCAL_BATCH_ANSWERS` answers or
  `LOCAL_BATCH_SECONDS` seconds, and when the cache is closed or dropped), each batch one ``write``
  under an exclusive ``flock``, so threads and processes sharing the cache interleave whole lines.
  This process keeps only each key's line offset in memory and reads the line back when asked; what
  other processes append is picked up on a miss (at most once a second).
- in S3 (no append), in part objects ``<root>/answers/<setup>/<part>.jsonl``: new answers are buffered
  and uploaded as a new part every `S3_PART_ANSWERS` answers or `S3_PART_SECONDS` seconds, and when the
  cache is closed or dropped. Parts are never rewritten; a reader lists and reads them once, and folds
  a setup of more than `S3_COMPACT_PARTS` parts into one.

A damaged line or part (a torn write, stray bytes) is a miss, never a failure. Answers stored one file
per record by earlier releases (``<root>/outputs/ab/<answer>.json``) are still found, and copied into
the new store when they are.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lib import storage

try:
    import fcntl
except ImportError:  # not POSIX: threads of this process are still serialised by the lock
    fcntl = None  # type: ignore[assignment]

LOCAL_BATCH_ANSWERS = 64  # answers per write to a local file
LOCAL_BATCH_SECONDS = 0.25  # or fewer, when this long has passed since the last write
LOCAL_REFRESH_SECONDS = 1.0  # what other processes appended is looked for at most this often
S3_PART_ANSWERS = 1000
S3_PART_SECONDS = 30.0
S3_COMPACT_PARTS = 64
_NO_SETUP = "_"  # keys made elsewhere without a setup part share one file


def _material(identity: str, invoke: dict[str, Any]) -> dict[str, Any]:
    return {
        "identity": identity,
        "content_template": invoke.get("content_template"),
        "inference_parameters": invoke.get("inference_parameters") or {},
        "custom_attributes": invoke.get("custom_attributes"),
        "system_prompt": invoke.get("system_prompt"),
        "output": invoke.get("output"),
    }


def _digest(material: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


def setup_key(identity: str, invoke: dict[str, Any]) -> str:
    """The hash of one model asked one way (everything in the key but the prompt): one file of answers."""
    return _digest(_material(identity, invoke))[:20]


def cache_key(identity: str, invoke: dict[str, Any], prompt: str) -> str:
    return key_maker(identity, invoke)(prompt)


_PROMPT_MARK = "\x00prompt\x00"


def key_maker(identity: str, invoke: dict[str, Any]) -> Callable[[str], str]:
    """``prompt -> cache_key(identity, invoke, prompt)``, with the setup serialised once: a run asks one
    setup thousands of times, and hashing its JSON again per record was a tenth of an instant answer's
    cost. Each key is the same string `cache_key` always gave."""
    setup = setup_key(identity, invoke)
    head, _, tail = json.dumps({**_material(identity, invoke), "prompt": _PROMPT_MARK}, sort_keys=True,
                               default=str).partition(json.dumps(_PROMPT_MARK))
    head_bytes, tail_bytes = head.encode(), tail.encode()

    def key(prompt: str) -> str:
        return f"{setup}.{hashlib.sha256(head_bytes + json.dumps(prompt).encode() + tail_bytes).hexdigest()}"

    def slow(prompt: str) -> str:
        return f"{setup}.{_digest({**_material(identity, invoke), 'prompt': prompt})}"

    # a setup whose own text holds the mark would be cut in the wrong place: it keeps the slow way
    return key if key("probe") == slow("probe") else slow


def _split(key: str) -> tuple[str, str]:
    setup, dot, answer = key.rpartition(".")
    return (setup, answer) if dot and setup else (_NO_SETUP, key)


def _valid(value: Any) -> bool:
    return isinstance(value, dict) and "output" in value


def _parse(line: bytes) -> tuple[str, dict[str, Any]] | None:
    try:
        entry = storage.row_of(line)
    except ValueError:
        return None
    if isinstance(entry, dict) and isinstance(entry.get("key"), str) and _valid(entry.get("value")):
        return entry["key"], entry["value"]
    return None


def _line(key: str, value: dict[str, Any]) -> bytes:
    return (storage.line_of({"key": key, "value": value}) + "\n").encode("utf-8")


class _LocalSetup:
    """The answers of one setup in one local file: an index of line offsets (lines are read back on a
    hit), and the answers not written yet, which go in one ``write`` per batch."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.index: dict[bytes, int] = {}  # answer hash -> offset << 32 | length of its line
        self.pending: dict[bytes, dict[str, Any]] = {}  # answers not in the file yet
        self.lines: list[tuple[bytes, bytes]] = []  # and their lines
        self.scanned = 0  # bytes of the file indexed so far
        self.fd: int | None = None
        self.last_write = time.monotonic()
        self.last_refresh: float | None = None

    @staticmethod
    def _id(key: str) -> bytes:
        answer = _split(key)[1]
        try:
            return bytes.fromhex(answer)
        except ValueError:
            return key.encode()

    def _open(self, create: bool) -> int | None:
        if self.fd is None:
            try:
                self.fd = os.open(self.path, os.O_RDWR | os.O_APPEND | (os.O_CREAT if create else 0), 0o644)
            except FileNotFoundError:
                if create:
                    raise
                return None
            except PermissionError:  # a cache shared read-only: answers are read, never added
                if create:
                    raise
                self.fd = os.open(self.path, os.O_RDONLY)
        return self.fd

    def refresh(self, force: bool = False) -> None:
        """Index what was appended since the last look, by another process (this one indexes its own),
        at most once a second: a miss costs no system call."""
        now = time.monotonic()
        if not force and self.last_refresh is not None and now - self.last_refresh < LOCAL_REFRESH_SECONDS:
            return
        self.last_refresh = now
        fd = self._open(create=False)
        if fd is None:
            return
        size = os.fstat(fd).st_size
        if size <= self.scanned:
            return
        data = os.pread(fd, size - self.scanned, self.scanned)
        end = data.rfind(b"\n") + 1  # a line still being written is picked up next time
        offset = self.scanned
        for raw in data[:end].split(b"\n")[:-1]:
            parsed = _parse(raw) if raw else None
            if parsed is not None:
                self.index[self._id(parsed[0])] = offset << 32 | len(raw)
            offset += len(raw) + 1
        self.scanned += end

    def find(self, key: str) -> dict[str, Any] | tuple[int, int, int] | None:
        """The answer if it is not written yet, else (fd, offset, length) of its line, else None."""
        ident = self._id(key)
        if ident in self.pending:
            return self.pending[ident]
        where = self.index.get(ident)
        if where is None:
            self.refresh()
            where = self.index.get(ident)
        if where is None or self.fd is None:
            return None
        return self.fd, where >> 32, where & 0xFFFFFFFF

    def add(self, key: str, value: dict[str, Any]) -> None:
        ident = self._id(key)
        self.pending[ident] = value
        self.lines.append((ident, _line(key, value)))
        if len(self.lines) >= LOCAL_BATCH_ANSWERS or time.monotonic() - self.last_write >= LOCAL_BATCH_SECONDS:
            self.write()

    def write(self) -> None:
        """The pending answers, in one write under an exclusive flock (whole lines, whoever else appends)."""
        if not self.lines:
            return
        lines, self.lines = self.lines, []
        self.last_write = time.monotonic()
        data = b"".join(line for _, line in lines)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = self._open(create=True)
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:
            raise storage.refused(str(self.path), exc) from exc
        try:
            size = os.fstat(fd).st_size
            torn = size > 0 and os.pread(fd, 1, size - 1) != b"\n"
            if torn:
                data = b"\n" + data  # a line torn by a killed writer stays a damaged line of its own
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            except OSError as exc:
                try:
                    os.ftruncate(fd, size)  # no half line left behind
                except OSError:
                    pass
                raise storage.refused(str(self.path), exc) from exc
        finally:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
        offset = size + torn
        for ident, line in lines:
            self.index[ident] = offset << 32 | (len(line) - 1)
            self.pending.pop(ident, None)
            offset += len(line)
        if self.scanned == size:  # nobody else wrote since we last looked: our own lines need no rescan
            self.scanned = size + len(data)

    def close(self) -> None:
        try:
            self.write()
        finally:
            if self.fd is not None:
                try:
                    os.close(self.fd)
                except OSError:
                    pass
                self.fd = None


class _S3Setup:
    """The answers of one setup in S3: part objects read once, new answers uploaded as new parts."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix  # s3://bucket/.../answers/<setup>/
        self.values: dict[str, dict[str, Any]] = {}
        self.pending: list[bytes] = []
        self.loaded = False
        self.last_upload = time.monotonic()
        self.session = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{secrets.token_hex(3)}"
        self.parts_written = 0

    def _list(self) -> list[str]:
        client, bucket, key = storage._s3(self.prefix)
        keys: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
            keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".jsonl")]
        return [f"s3://{bucket}/{k}" for k in sorted(keys)]

    def load(self) -> None:
        if self.loaded:
            return
        parts = self._list()
        self.loaded = True
        for uri in parts:
            try:
                data = storage.read_bytes(uri)
            except Exception:  # gone (folded by another reader) or unreadable: its answers are misses
                continue
            for raw in data.split(b"\n"):
                parsed = _parse(raw) if raw.strip() else None
                if parsed is not None:
                    self.values.setdefault(parsed[0], parsed[1])
        if len(parts) > S3_COMPACT_PARTS and self.values:
            merged = storage.join(self.prefix, f"{self.session}-merged.jsonl")
            storage.write_bytes(merged, b"".join(_line(k, v) for k, v in self.values.items()),
                                "application/jsonlines")
            for uri in parts:  # a reader that listed them before sees a miss at worst, never a wrong answer
                try:
                    storage.remove(uri)
                except Exception:
                    pass

    def add(self, key: str, value: dict[str, Any]) -> bool:
        """Keep the answer; True when a part is due."""
        self.values[key] = value
        self.pending.append(_line(key, value))
        return (len(self.pending) >= S3_PART_ANSWERS
                or time.monotonic() - self.last_upload >= S3_PART_SECONDS)

    def take(self) -> tuple[str, bytes] | None:
        """The next part to upload (and forget the pending answers), or None."""
        if not self.pending:
            return None
        self.parts_written += 1
        data, self.pending = b"".join(self.pending), []
        self.last_upload = time.monotonic()
        return storage.join(self.prefix, f"{self.session}-{self.parts_written:05d}.jsonl"), data


def _close(local: dict[str, _LocalSetup], remote: dict[str, _S3Setup], lock: threading.Lock) -> None:
    """Upload what is pending and close files: when the cache is closed, dropped, or the process exits."""
    with lock:
        parts = [p for p in (s.take() for s in remote.values()) if p is not None]
        for setup in local.values():
            try:
                setup.close()
            except Exception:  # at exit nobody can be told; the answers are asked again next time
                pass
    for uri, data in parts:
        try:
            storage.write_bytes(uri, data, "application/jsonlines")
        except Exception:  # at exit nobody can be told; the answers are asked again next time
            pass


class OutputCache:
    def __init__(self, root: str) -> None:
        self.root = root
        self.remote = storage.is_remote(root)
        self._lock = threading.Lock()
        self._local: dict[str, _LocalSetup] = {}
        self._s3: dict[str, _S3Setup] = {}
        self._legacy: bool | None = None  # None: not looked yet
        self._finalizer = weakref.finalize(self, _close, self._local, self._s3, self._lock)

    def _setup(self, name: str) -> _LocalSetup | _S3Setup:
        if self.remote:
            if name not in self._s3:
                self._s3[name] = _S3Setup(storage.join(self.root, "answers", name) + "/")
            return self._s3[name]
        if name not in self._local:
            self._local[name] = _LocalSetup(Path(self.root, "answers", f"{name}.jsonl"))
        return self._local[name]

    def get(self, key: str) -> dict[str, Any] | None:
        name, answer = _split(key)
        try:
            value = self._get(name, key)
        except (ValueError, OSError):  # unreadable: a miss, not a failure
            value = None
        except Exception as exc:  # S3: an absent object is a miss; anything else is a real error
            if getattr(exc, "response", {}).get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
                raise
            value = None
        if value is None:
            value = self._legacy_get(answer)
            if value is not None:
                self.put(key, value)
        return value

    def _get(self, name: str, key: str) -> dict[str, Any] | None:
        with self._lock:
            setup = self._setup(name)
            if isinstance(setup, _S3Setup):
                setup.load()
                return setup.values.get(key)
            found = setup.find(key)
        if not isinstance(found, tuple):
            return found
        fd, offset, length = found  # read outside the lock: the other threads go on meanwhile
        parsed = _parse(os.pread(fd, length, offset))
        return parsed[1] if parsed is not None and parsed[0] == key else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        name, _ = _split(key)
        part = None
        with self._lock:
            setup = self._setup(name)
            if isinstance(setup, _S3Setup):
                if setup.add(key, value):
                    part = setup.take()
            else:
                setup.add(key, value)
        if part is not None:  # uploaded outside the lock: other threads keep answering from memory
            storage.write_bytes(part[0], part[1], "application/jsonlines")

    def flush(self) -> None:
        """Write the answers still pending (local: into the file; S3: as a new part)."""
        with self._lock:
            for local in self._local.values():
                local.write()
            parts = [p for p in (s.take() for s in self._s3.values()) if p is not None]
        for uri, data in parts:
            storage.write_bytes(uri, data, "application/jsonlines")

    def close(self) -> None:
        self.flush()
        self._finalizer()

    def __enter__(self) -> OutputCache:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ one file per record (before)
    def _legacy_uri(self, answer: str) -> str:
        return storage.join(self.root, "outputs", answer[:2], f"{answer}.json")

    def _legacy_get(self, answer: str) -> dict[str, Any] | None:
        if self._legacy is None:  # looked for once: a cache without the old layout costs nothing per miss
            try:
                if self.remote:
                    client, bucket, prefix = storage._s3(storage.join(self.root, "outputs") + "/")
                    self._legacy = bool(client.list_objects_v2(Bucket=bucket, Prefix=prefix,
                                                               MaxKeys=1).get("KeyCount"))
                else:
                    self._legacy = Path(self.root, "outputs").is_dir()
            except Exception:
                self._legacy = False
        if not self._legacy or len(answer) != 64:
            return None
        try:
            value = storage.read_json(self._legacy_uri(answer))
        except Exception:  # absent or damaged
            return None
        return value if _valid(value) else None
