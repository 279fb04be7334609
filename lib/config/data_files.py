"""The data files a config names (the dataset, fine-tune training and validation data), checked at
validate time so that nothing about them breaks a run later.

A location is a local path or ``s3://bucket/key`` (what `lib.storage` reads). A local file is read a
line at a time, each line at most `MAX_LINE_BYTES`, so checking a large file takes bounded memory; every
line must be UTF-8, a JSON object, and hold the keys the caller needs as text. Each problem is one
sentence naming the file and its line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MAX_LINE_BYTES = 1024 * 1024  # one record; a question and its answers are a few hundred bytes
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


class DataFileError(ValueError):
    """A data file (or its location) is wrong; the message names the file and, when it is about a record,
    its line."""


def check_location(value: str, folder_ok: bool) -> None:
    """Refuse a location no reader here can read: only local paths and ``s3://bucket/key`` are."""
    if any(ord(c) < 32 or c == "\x7f" for c in value):
        raise DataFileError(f"{json.dumps(value[:80])} holds a control character; a location is a path or "
                            "s3://bucket/key")
    if "://" not in value:
        if re.match(r"^s3:/?[^/]", value, re.IGNORECASE):
            raise DataFileError(f"'{value}' looks like an S3 location missing a slash: write s3://bucket/key")
        return
    scheme, rest = value.split("://", 1)
    example = "s3://bucket/path/" if folder_ok else "s3://bucket/path/data.jsonl"
    if scheme.lower() != "s3":
        extra = (" (download the file, or copy it to S3, first)" if scheme.lower() in ("http", "https", "ftp")
                 else " (write a local path without file://)" if scheme.lower() == "file" else "")
        raise DataFileError(f"'{scheme}://' is not a location this tool reads{extra}: give a local path or "
                            f"{example}")
    if scheme != "s3":
        raise DataFileError(f"write the scheme in lowercase: s3://{rest}")
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise DataFileError(f"'{value}' names no bucket: give {example}")
    if not _BUCKET_RE.match(bucket) or ".." in bucket:
        raise DataFileError(f"'{bucket}' is not an S3 bucket name (3-63 lowercase letters, digits, dots and "
                            "hyphens)")
    if not key.strip("/"):
        raise DataFileError(f"'{value}' names a bucket, not {'data' if folder_ok else 'a file'}: give "
                            f"{example}")
    if key.endswith("/") and not folder_ok:
        raise DataFileError(f"'{value}' names a folder; this is one JSON Lines file: give {example}")


def kind_of(path: Path, what: str) -> str:
    """"missing", "folder", "file" (regular) or "other" (a device, pipe or socket); never an OSError."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "missing"
    except (OSError, ValueError) as exc:  # a name too long, a NUL byte, a folder we may not enter
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise DataFileError(f"cannot read {what} {str(path)[:200]}: {reason}") from None
    import stat

    return "folder" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"


def local_files(path: Path, what: str, folder_ok: bool) -> list[Path]:
    """The JSON Lines files at a local ``path`` (the file, or a folder's ``*.jsonl``), each a regular file."""
    kind = kind_of(path, what)
    if kind == "missing":
        raise DataFileError(f"{what} {str(path)[:200]} does not exist")
    if kind == "folder":
        if not folder_ok:
            raise DataFileError(f"{what} {path} is a folder; it must be one JSON Lines file")
        try:
            files = sorted(path.glob("*.jsonl"))
        except OSError as exc:
            raise DataFileError(f"cannot list {what} {path}: {exc.strerror or exc}") from None
    else:
        files = [path]
    for file in files:
        if kind_of(file, what) != "file":
            raise DataFileError(f"{what} {file} is not a regular file (a device, pipe or socket cannot be read "
                                "as data)")
    return files


def records(file: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for each non-blank line of a local JSON Lines file, streamed."""
    try:
        fh = open(file, "rb")  # noqa: SIM115 - closed below; a generator
    except OSError as exc:
        raise DataFileError(f"cannot read {file}: {exc.strerror or exc}") from None
    with fh:
        number = 0
        while True:
            try:
                raw = fh.readline(MAX_LINE_BYTES + 1)
            except OSError as exc:
                raise DataFileError(f"cannot read {file}: {exc.strerror or exc}") from None
            if not raw:
                return
            number += 1
            if len(raw) > MAX_LINE_BYTES:
                raise DataFileError(f"{file} line {number} is longer than {MAX_LINE_BYTES // 2**20} MB; a record "
                                    "is one line of JSON (is this a JSON Lines file?)")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataFileError(f"{file} line {number} is not UTF-8 text: byte 0x{raw[exc.start]:02x} at "
                                    f"column {exc.start + 1} cannot be decoded; save the file as UTF-8") from None
            if number == 1:
                text = text.removeprefix("\ufeff")
            if not text.strip():
                continue
            try:
                record = json.loads(text.rstrip("\n"))  # an error at the line's end is on this line, not the next
            except json.JSONDecodeError as exc:
                raise DataFileError(f"{file} line {number} is not valid JSON ({exc.msg}, column {exc.colno})") \
                    from None
            except RecursionError:
                raise DataFileError(f"{file} line {number} is JSON nested too deeply to be a record") from None
            except ValueError as exc:  # e.g. an integer of more than 4300 digits
                raise DataFileError(f"{file} line {number} cannot be read as a record ({exc})") from None
            if not isinstance(record, dict):
                raise DataFileError(f"{file} line {number} is not a JSON object ({{\"key\": value, ...}})")
            yield number, record


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    return {dict: "an object", list: "a list"}.get(type(value), type(value).__name__)


def text_of(file: Path, number: int, record: dict[str, Any], key: str, role: str) -> str:
    """``record[key]`` when it is non-blank text; else a DataFileError naming the file, line and key."""
    if key not in record:
        keys = ", ".join(list(record)[:12]) or "none"
        raise DataFileError(f"{file} line {number} has no key '{key}' ({role}); it has: {keys}")
    value = record[key]
    if not isinstance(value, str):
        hint = "; write it as text (in quotes)" if isinstance(value, (int, float)) and value is not None else ""
        raise DataFileError(f"{file} line {number}: '{key}' ({role}) is {_kind(value)}, not text{hint}")
    if not value.strip():
        raise DataFileError(f"{file} line {number}: '{key}' ({role}) is empty")
    return value


def check_dataset(path: Path, input_key: str, target_key: str) -> int:
    """The number of records of a local dataset file whose every record has text under both keys."""
    count = 0
    for file in local_files(path, "the dataset file", folder_ok=False):
        for number, record in records(file):
            text_of(file, number, record, input_key, "the model input")
            text_of(file, number, record, target_key, "the target output")
            count += 1
        if count == 0:
            raise DataFileError(f"the dataset file {file} holds no records")
    return count


def check_jsonl_files(path: Path, what: str) -> list[Path]:
    """Every ``.jsonl`` file at ``path`` (a file or a folder) reads as JSON objects; the files."""
    files = local_files(path, what, folder_ok=True)
    for file in files:
        for _ in records(file):
            pass
    return files
