"""All step I/O goes through here: a local path or an ``s3://`` URI, same calls, same layout.

A write that the storage refuses (a full or read-only disk, a parent that is a file, S3 saying no)
raises `StorageError` naming the path and the reason; it leaves no temp file behind and never a
half-written file where a whole one was meant.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from lib.errors import UserError


def _line_encoder(sort_keys: bool = False) -> Any:
    """`json.dumps(row, default=str, sort_keys=sort_keys)`, the same text at about half the cost: dumps builds
    a new encoder per call (3 of 6.7 us a row), and even a kept `JSONEncoder` builds its C encoder again on
    every `encode`. Here the C encoder is built once (without the check for a row that contains itself,
    which no row does; the pure-Python encoder where there is no C one)."""
    plain = json.JSONEncoder(default=str, sort_keys=sort_keys)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return plain.encode
    chunks = make(None, str, json.encoder.encode_basestring_ascii, None, plain.key_separator,
                  plain.item_separator, sort_keys, False, True)

    def line_of(value: Any) -> str:
        return "".join(chunks(value, 0))

    return line_of


line_of = _line_encoder()
sorted_line_of = _line_encoder(sort_keys=True)  # the same text whatever order a row's keys came in
_decode = json.JSONDecoder().decode


def row_of(line: bytes) -> Any:
    """`json.loads(line)`, a quarter cheaper for the UTF-8 every row is written in: json.loads first works out
    which encoding bytes are in. Anything else (a byte-order mark, UTF-16, bytes that are not UTF-8) is
    json.loads' to read, or to refuse as it would."""
    try:
        return _decode(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return json.loads(line)


class StorageError(UserError):
    """The storage refused a write: ``cannot write <path>: <reason>`` (or ``cannot copy``, ``cannot remove``).

    A `UserError` so the CLI prints it as one paragraph, never a traceback; exit code 1 because it
    is the environment (a full disk, a missing permission), not the user's input.
    """

    exit_code = 1

    def __init__(self, uri: str, reason: str, action: str = "write") -> None:
        self.uri, self.reason, self.action = str(uri), reason, action
        super().__init__(f"cannot {action} {uri}: {reason}")


def _reason(exc: BaseException, uri: str | None = None, *own: object) -> str:
    """What the OS (or S3) said, plus the path it named when that is not ``uri`` or one of ``own``
    (for a file standing where a folder should be, that file)."""
    if not isinstance(exc, OSError):
        return " ".join(str(exc).split())
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOTDIR, errno.EEXIST) and uri and not is_remote(uri):
        # a file where a folder should be: mkdir says "File exists" for the last part, "Not a
        # directory" for one above it; either way, name that file
        blocker = next((p for p in Path(uri).parents if p.exists()), None)
        if blocker is not None and not blocker.is_dir():
            return f"{os.strerror(errno.ENOTDIR)} ({blocker} is a file)"
    named = exc.filename
    if named is not None and not any(str(named).startswith(str(o)) for o in (uri, *own) if o):
        reason += f" ({named})"
    return reason


def refused(uri: str, exc: OSError, action: str = "write") -> StorageError:
    """The `StorageError` for ``exc``, an OS error met while writing ``uri``."""
    return StorageError(uri, _reason(exc, uri), action)


def _remove_quietly(path: str | Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _s3_refused(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("botocore") and type(exc).__name__ == "ClientError"


def is_remote(uri: str) -> bool:
    return uri.startswith("s3://")


def parent(uri: str) -> str:
    if is_remote(uri):
        return uri.rstrip("/").rsplit("/", 1)[0]
    return str(Path(uri).parent)


def relative(uri: str, root: str) -> str:
    """``uri`` as a path below ``root`` (both local, or both S3)."""
    return uri[len(root):].lstrip("/") if uri.startswith(root) else uri


def join(root: str, *parts: str) -> str:
    if root.startswith("s3://"):
        return "/".join([root.rstrip("/"), *(p.strip("/") for p in parts)])
    return str(Path(root, *parts))


def _s3(uri: str):
    """(client, bucket, key): one S3 client per process (`lib.aws.client`), not one per call."""
    from lib import aws

    bucket, _, key = uri[len("s3://"):].partition("/")
    return aws.client("s3"), bucket, key


def exists(uri: str) -> bool:
    if uri.startswith("s3://"):
        client, bucket, key = _s3(uri)
        try:
            client.head_object(Bucket=bucket, Key=key)
            return True
        except client.exceptions.ClientError:
            return False
    return Path(uri).exists()


def read_bytes(uri: str) -> bytes:
    if uri.startswith("s3://"):
        client, bucket, key = _s3(uri)
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return Path(uri).read_bytes()


def read_text(uri: str) -> str:
    return read_bytes(uri).decode("utf-8")


# How many times this process has put a new local file in place of each path, or removed it. With a file's
# size and mtime it tells whether a file read before is still the one that was read: a rewrite within one
# clock tick, of the same size, can take the inode the old file had.
_CHANGES: dict[str, int] = {}
_CHANGES_LOCK = threading.Lock()


def _changed(path: str | Path) -> None:
    key = os.path.abspath(path)  # one key whichever way the path was written
    with _CHANGES_LOCK:
        _CHANGES[key] = _CHANGES.get(key, 0) + 1


def changes(uri: str) -> int:
    """How many times this process has replaced or removed the local file ``uri``."""
    return _CHANGES.get(os.path.abspath(uri), 0)


def write_bytes(uri: str, data: bytes, content_type: str = "application/octet-stream") -> str:
    """Write ``data`` to ``uri`` whole or not at all; `StorageError` if the storage refuses."""
    if uri.startswith("s3://"):
        client, bucket, key = _s3(uri)
        try:
            client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)
        except Exception as exc:
            if _s3_refused(exc):
                raise StorageError(uri, _reason(exc)) from exc
            raise
        return uri
    path = Path(uri)
    prefix = path.parent / f".{path.name}."
    tmp: str | None = None
    # write then rename: a reader never sees half a file, a crash never leaves one, and a failure
    # (ENOSPC, EACCES, ENOTDIR, Ctrl-C) removes the temp file and leaves the old file as it was
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix.name, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; run files are meant to be shared and served
        os.replace(tmp, path)
        _changed(path)
    except BaseException as exc:
        if tmp is not None:
            _remove_quietly(tmp)
        if isinstance(exc, OSError):
            raise StorageError(uri, _reason(exc, uri, prefix)) from exc
        raise
    return uri


def write_text(uri: str, text: str, content_type: str = "text/plain; charset=utf-8") -> str:
    return write_bytes(uri, text.encode("utf-8"), content_type)


def read_json(uri: str) -> Any:
    return json.loads(read_bytes(uri))


def write_json(uri: str, data: Any) -> str:
    return write_text(uri, json.dumps(data, indent=2, default=str) + "\n", "application/json")


def read_jsonl(uri: str) -> list[dict]:
    """Every complete line; a torn last line (a run killed mid-write) is skipped."""
    out = []
    for line in read_text(uri).splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def iter_jsonl(uri: str) -> Iterator[dict]:
    """Every complete line, one at a time: a file of any size in constant memory (`read_jsonl` holds
    them all). A torn or unreadable line is skipped, as `read_jsonl` skips it."""
    if uri.startswith("s3://"):
        # copied to a temp file first: no download is held open while a long step reads slowly, and a
        # line of any length is read in one go
        lines = tempfile.TemporaryFile()  # noqa: SIM115 (closed below; deleted when closed)
        client, bucket, key = _s3(uri)
        try:
            client.download_fileobj(bucket, key, lines)
            lines.seek(0)
        except BaseException as exc:
            lines.close()
            if isinstance(exc, OSError):
                raise StorageError(uri, f"{_reason(exc)} (copying to {tempfile.gettempdir()})", "copy") from exc
            if _s3_refused(exc):
                raise StorageError(uri, _reason(exc), "read") from exc
            raise
    else:
        lines = open(uri, "rb")  # noqa: SIM115 (closed below, also when the reader stops early)
    try:
        for line in lines:
            if line.strip():
                try:
                    yield row_of(line)
                except json.JSONDecodeError:
                    continue
    finally:
        close = getattr(lines, "close", None)
        if close:
            close()


def write_jsonl(uri: str, rows: Iterable[dict]) -> str:
    """Write ``rows`` whole or not at all, one at a time (a generator of any length is never held)."""
    with JsonlWriter(uri) as out:
        for row in rows:
            out.write(row)
    return uri


class JsonlWriter:
    """A JSON Lines file written line by line in constant memory, that appears whole or not at all.

    Locally the lines go to a temp file beside ``uri``, renamed over it by `close`. In S3 they go up
    as a multipart upload in parts of ``part_bytes`` (S3's minimum is 5 MiB), completed by `close`; a
    file smaller than one part is one PUT. On an error, or `abort`, nothing is left: no temp file, no
    unfinished upload, and the old file as it was.
    """

    def __init__(self, uri: str, part_bytes: int = 8 * 1024 * 1024) -> None:
        self.uri = uri
        self.rows = 0
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._part_bytes = part_bytes
        self._remote = is_remote(uri)
        self._upload: dict[str, Any] | None = None  # S3: the multipart upload, once a part went up
        self._tmp: str | None = None
        if not self._remote:
            path = Path(uri)
            self._prefix = path.parent / f".{path.name}."
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, self._tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
                self._fh = os.fdopen(fd, "wb")
            except OSError as exc:
                if self._tmp:
                    _remove_quietly(self._tmp)
                raise StorageError(uri, _reason(exc, uri, self._prefix)) from exc

    def write(self, row: dict) -> None:
        data = (line_of(row) + "\n").encode("utf-8")
        self.rows += 1
        if not self._remote:
            try:
                self._fh.write(data)
            except OSError as exc:
                self.abort()
                raise StorageError(self.uri, _reason(exc, self.uri, self._prefix)) from exc
            return
        self._buffer.append(data)
        self._buffered += len(data)
        if self._buffered >= self._part_bytes:
            self._send_part()

    def _send_part(self) -> None:
        client, bucket, key = _s3(self.uri)
        body, self._buffer, self._buffered = b"".join(self._buffer), [], 0
        try:
            if self._upload is None:
                started = client.create_multipart_upload(Bucket=bucket, Key=key, ContentType="application/jsonlines")
                self._upload = {"id": started["UploadId"], "parts": []}
            number = len(self._upload["parts"]) + 1
            sent = client.upload_part(Bucket=bucket, Key=key, UploadId=self._upload["id"], PartNumber=number,
                                      Body=body)
            self._upload["parts"].append({"PartNumber": number, "ETag": sent["ETag"]})
        except Exception as exc:
            self.abort()
            if _s3_refused(exc):
                raise StorageError(self.uri, _reason(exc)) from exc
            raise

    def close(self) -> None:
        if not self._remote:
            if self._tmp is None:
                return
            try:
                self._fh.close()
                os.chmod(self._tmp, 0o644)
                os.replace(self._tmp, self.uri)
                _changed(Path(self.uri))
                self._tmp = None
            except OSError as exc:
                self.abort()
                raise StorageError(self.uri, _reason(exc, self.uri, self._prefix)) from exc
            return
        if self._upload is None:  # small: one PUT
            write_bytes(self.uri, b"".join(self._buffer), "application/jsonlines")
            self._buffer, self._buffered = [], 0
            return
        if self._buffer:
            self._send_part()
        client, bucket, key = _s3(self.uri)
        try:
            client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=self._upload["id"],
                                             MultipartUpload={"Parts": self._upload["parts"]})
        except Exception as exc:
            self.abort()
            if _s3_refused(exc):
                raise StorageError(self.uri, _reason(exc)) from exc
            raise
        self._upload = None

    def abort(self) -> None:
        """Leave nothing: the temp file removed, or the multipart upload aborted."""
        if not self._remote:
            if self._tmp is not None:
                try:
                    self._fh.close()
                except OSError:
                    pass
                _remove_quietly(self._tmp)
                self._tmp = None
            return
        self._buffer, self._buffered = [], 0
        if self._upload is not None:
            client, bucket, key = _s3(self.uri)
            upload, self._upload = self._upload, None
            try:
                client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["id"])
            except Exception:  # noqa: S110 (the error being raised matters more; S3 expires it)
                pass

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def local_copy(uri: str) -> str:
    """A local path holding ``uri``'s content (the file itself when it is local).

    The copy goes to the system's temp folder; if that is full or unwritable, `StorageError`
    names both, and no partial copy is left.
    """
    if not uri.startswith("s3://"):
        return uri
    data = read_bytes(uri)
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(suffix=Path(uri).suffix)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    except BaseException as exc:
        if tmp is not None:
            _remove_quietly(tmp)
        if isinstance(exc, OSError):
            where = tmp or tempfile.gettempdir()
            raise StorageError(uri, f"{_reason(exc, where)} (copying to {where})", "copy") from exc
        raise
    return tmp


def remove(uri: str) -> None:
    """Delete ``uri`` if it exists (a local removal needs no free space)."""
    if uri.startswith("s3://"):
        client, bucket, key = _s3(uri)
        client.delete_object(Bucket=bucket, Key=key)
        return
    try:
        os.unlink(uri)
        _changed(Path(uri))
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise StorageError(uri, _reason(exc, uri), "remove") from exc


def list_files(uri: str) -> list[str]:
    """The files directly in a local folder, or every object under an S3 prefix (``uri`` + ``/``), sorted."""
    if uri.startswith("s3://"):
        client, bucket, prefix = _s3(uri.rstrip("/") + "/")
        keys: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", []) if not o["Key"].endswith("/")]
        return [f"s3://{bucket}/{k}" for k in sorted(keys)]
    return sorted(str(p) for p in Path(uri).iterdir() if p.is_file())


def upload_file(local: str | Path, uri: str) -> str:
    if uri.startswith("s3://"):
        client, bucket, key = _s3(uri)
        client.upload_file(str(local), bucket, key)
        return uri
    return write_bytes(uri, Path(local).read_bytes())


def _drop_torn_tail(path: Path) -> None:
    """Cut a last line left half-written by a killed run, so appends start on a line of their own
    (a truncate: it needs no free space)."""
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        os.truncate(path, data.rfind(b"\n") + 1)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]  # a short write (disk filling up) is followed by an error


class JsonlAppender:
    """Append records to a JSON Lines file as they arrive (flushed per line).

    Locally the file itself grows, so a killed run keeps every finished line; a line the disk
    refused is cut off again (the file ends on a whole line) and `StorageError` is raised. In S3
    (no append) the new lines go up as part objects beside the file, ``<uri>.parts/<n>.jsonl``, each
    holding only lines not uploaded before (at least ``flush_every`` of them, at most one part per
    ``part_seconds``), so what is uploaded grows with the lines, never with their square. `close`
    writes the whole file once (streamed: the old file, the parts, the last lines; multipart when
    large) and deletes the parts; parts a killed run left are folded into the file by the next
    appender opened on it. Only the lines not in a part yet are held in memory.

    ``had_lines``: the file held lines when it was opened (a killed run's parts included).
    """

    def __init__(self, uri: str, flush_every: int = 50, part_seconds: float = 2.0) -> None:
        self.uri = uri
        self._remote = uri.startswith("s3://")
        self._lock = threading.Lock()
        self._rows: list[str] = []
        self._flush_every = flush_every
        if self._remote:
            self._part_seconds = part_seconds
            self._pending = 0  # lines at the end of _rows not in any part yet
            self._parts: list[str] = []
            self._last_part = 0.0
            self._session = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{secrets.token_hex(3)}"
            left = self._list_parts()
            if left:  # a killed run's lines: into the file now, so every reader sees them
                self._compose(left, [])
            self.had_lines = bool(left) or exists(uri)
        else:
            path = Path(uri)
            self._fd: int | None = None
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                _drop_torn_tail(path)
                self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
                self._size = os.fstat(self._fd).st_size
                self.had_lines = self._size > 0
            except OSError as exc:
                raise StorageError(uri, _reason(exc, uri)) from exc

    # ---------------------------------------------------------------- S3 parts
    def _parts_prefix(self) -> str:
        return self.uri + ".parts/"

    def _list_parts(self) -> list[str]:
        client, bucket, prefix = _s3(self._parts_prefix())
        keys: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", [])]
        return [f"s3://{bucket}/{k}" for k in sorted(keys)]

    def _remove_parts(self, parts: list[str]) -> None:
        client, bucket, _ = _s3(self.uri)
        for i in range(0, len(parts), 1000):
            client.delete_objects(Bucket=bucket, Delete={"Objects": [
                {"Key": p[len(f"s3://{bucket}/"):]} for p in parts[i:i + 1000]], "Quiet": True})

    def _compose(self, parts: list[str], lines: list[str]) -> None:
        """The file rewritten as itself, then ``parts``' lines, then ``lines``, streamed; the parts deleted."""
        def rows() -> Iterator[dict]:
            if exists(self.uri):
                yield from iter_jsonl(self.uri)
            for part in parts:
                yield from iter_jsonl(part)
            for line in lines:
                yield json.loads(line)

        write_jsonl(self.uri, rows())
        if parts:
            self._remove_parts(parts)

    def _upload_part(self) -> None:
        """Called with the lock held: the lines not in a part yet become one."""
        if not self._pending:
            return
        part = f"{self._parts_prefix()}{self._session}-{len(self._parts) + 1:06d}.jsonl"
        write_text(part, "".join(r + "\n" for r in self._rows), "application/jsonlines")
        self._parts.append(part)
        self._rows, self._pending = [], 0
        self._last_part = time.monotonic()

    def append(self, row: dict) -> None:
        line = line_of(row)
        if self._remote:
            with self._lock:
                self._rows.append(line)
                self._pending += 1
                if (self._pending >= self._flush_every
                        and time.monotonic() - self._last_part >= self._part_seconds):
                    self._upload_part()
            return
        data = (line + "\n").encode("utf-8")
        with self._lock:
            if self._fd is None:
                raise StorageError(self.uri, "the file is closed")
            try:
                _write_all(self._fd, data)
            except OSError as exc:
                try:
                    os.ftruncate(self._fd, self._size)  # no half line left behind
                except OSError:
                    pass  # read_jsonl skips a torn last line, and the next open cuts it
                raise StorageError(self.uri, _reason(exc, self.uri)) from exc
            self._size += len(data)

    def flush(self) -> None:
        """S3: upload the lines not in a part yet (locally every line is already in the file)."""
        if self._remote:
            with self._lock:
                self._upload_part()

    def close(self) -> None:
        if self._remote:
            with self._lock:
                parts, self._parts = self._parts, []
                lines, self._rows, self._pending = self._rows, [], 0
            self._compose(parts, lines)
        elif self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
