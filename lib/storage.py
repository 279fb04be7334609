"""All step I/O goes through here: a local path or an ``s3://`` URI, same calls, same layout."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def is_remote(uri: str) -> bool:
    return uri.startswith("s3://")


def parent(uri: str) -> str:
    if is_remote(uri):
        return uri.rstrip("/").rsplit("/", 1)[0]
    return str(Path(uri).parent)


def join(root: str, *parts: str) -> str:
    if root.startswith("s3://"):
        return "/".join([root.rstrip("/"), *(p.strip("/") for p in parts)])
    return str(Path(root, *parts))


def _s3(uri: str):
    import boto3

    bucket, _, key = uri[len("s3://"):].partition("/")
    return boto3.client("s3"), bucket, key


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


def write_bytes(uri: str, data: bytes, content_type: str = "application/octet-stream") -> str:
    if uri.startswith("s3://"):
        client, bucket, key = _s3(uri)
        client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)
        return uri
    path = Path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    # write then rename: a reader never sees half a file, a crash never leaves one
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; run files are meant to be shared and served
    os.replace(tmp, path)
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


def write_jsonl(uri: str, rows: Iterable[dict]) -> str:
    return write_text(uri, "".join(json.dumps(r, default=str) + "\n" for r in rows), "application/jsonlines")


def local_copy(uri: str) -> str:
    """A local path holding ``uri``'s content (the file itself when it is local)."""
    if not uri.startswith("s3://"):
        return uri
    fd, tmp = tempfile.mkstemp(suffix=Path(uri).suffix)
    with os.fdopen(fd, "wb") as fh:
        fh.write(read_bytes(uri))
    return tmp


def upload_file(local: str | Path, uri: str) -> str:
    if uri.startswith("s3://"):
        client, bucket, key = _s3(uri)
        client.upload_file(str(local), bucket, key)
        return uri
    return write_bytes(uri, Path(local).read_bytes())


def _drop_torn_tail(path: Path) -> None:
    """Cut a last line left half-written by a killed run, so appends start on a line of their own."""
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


class JsonlAppender:
    """Append records to a JSON Lines file as they arrive (flushed per line).

    Locally the file itself grows, so a killed run keeps every finished line. In S3 (no append)
    the lines are buffered and the object rewritten every ``flush_every`` records and at close.
    """

    def __init__(self, uri: str, flush_every: int = 50) -> None:
        self.uri = uri
        self._remote = uri.startswith("s3://")
        self._rows: list[str] = []
        self._flush_every = flush_every
        if self._remote:
            self._rows = [json.dumps(r) for r in read_jsonl(uri)] if exists(uri) else []
        else:
            path = Path(uri)
            path.parent.mkdir(parents=True, exist_ok=True)
            _drop_torn_tail(path)
            self._fh = open(path, "a", encoding="utf-8")

    def append(self, row: dict) -> None:
        line = json.dumps(row, default=str)
        if self._remote:
            self._rows.append(line)
            if len(self._rows) % self._flush_every == 0:
                self.flush()
        else:
            self._fh.write(line + "\n")
            self._fh.flush()

    def flush(self) -> None:
        if self._remote:
            write_text(self.uri, "".join(r + "\n" for r in self._rows), "application/jsonlines")

    def close(self) -> None:
        if self._remote:
            self.flush()
        else:
            self._fh.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
