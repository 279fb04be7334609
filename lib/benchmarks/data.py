"""Reading a benchmark's data: the user's files, local or in S3 (nothing is downloaded from a hub).

A location is one file or a folder (an S3 prefix) of them, read in name order. Formats, by extension:

- ``.jsonl``: one JSON object per line (GSM8K's ``test.jsonl``; a Hugging Face dataset saved with
  ``to_json``);
- ``.json``: a JSON list of objects (or JSON Lines under a ``.json`` name, as ``to_json`` writes);
- ``.csv``: with a header row naming the columns, or MMLU's own header-less layout (question, one
  column per choice, the answer letter), recognised when the first row does not name the question
  and answer columns.

A record without a subtask column takes the subtask from its file's name when the data is a folder or
the name ends in a split (MMLU's ``data/test/astronomy_test.csv`` is ``astronomy``). Every problem is a
`DataFileError` naming the file and line.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lib import storage
from lib.benchmarks.suites import SUITES, RowError, Suite, subtask_name
from lib.config import data_files
from lib.config.data_files import DataFileError

FORMATS = (".jsonl", ".json", ".csv")
_SPLITS = ("_test", "_val", "_validation", "_dev", "_train")


def _name(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1]


def files(uri: str) -> list[str]:
    """The data files at ``uri``: the file itself, or a folder's (a prefix's) files of a known format."""
    if storage.is_remote(uri):
        if _name(uri).lower().endswith(FORMATS):
            return [uri]
        found = [f for f in storage.list_files(uri) if f.lower().endswith(FORMATS)]
    else:
        kind = data_files.kind_of(Path(uri), "the benchmark data")
        if kind == "missing":
            raise DataFileError(f"the benchmark data {uri} does not exist")
        if kind == "other":
            raise DataFileError(f"the benchmark data {uri} is not a regular file (a device, pipe or socket)")
        if kind == "file":
            if not uri.lower().endswith(FORMATS):
                raise DataFileError(f"{uri} is not a .jsonl, .json or .csv file; a benchmark is read from those")
            return [uri]
        found = [f for f in storage.list_files(uri) if f.lower().endswith(FORMATS)]
    if not found:
        raise DataFileError(f"{uri} holds no .jsonl, .json or .csv file")
    return found


def file_subtask(uri: str, in_folder: bool) -> str | None:
    """The subtask a file's name gives: ``astronomy_test.csv`` -> ``astronomy`` (in a folder, any name)."""
    stem = _name(uri).rsplit(".", 1)[0]
    for split in _SPLITS:
        if stem.lower().endswith(split):
            return subtask_name(stem[: -len(split)])
    return subtask_name(stem) if in_folder else None


def _text(uri: str) -> str:
    try:
        data = storage.read_bytes(uri)
    except OSError as exc:
        raise DataFileError(f"cannot read {uri}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataFileError(f"{uri} line {line} is not UTF-8 text; save the file as UTF-8") from None


def _json_lines(uri: str, lines: Iterator[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError, ValueError) as exc:
            why = exc.msg if isinstance(exc, json.JSONDecodeError) else "it cannot be read"
            raise DataFileError(f"{uri} line {number} is not valid JSON ({why})") from None
        if not isinstance(row, dict):
            raise DataFileError(f"{uri} line {number} is not a JSON object ({{\"key\": value, ...}})")
        yield f"line {number}", row


def _rows_jsonl(uri: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if storage.is_remote(uri):
        yield from _json_lines(uri, iter(_text(uri).splitlines()))
        return
    for number, row in data_files.records(Path(uri)):  # streamed, each line bounded
        yield f"line {number}", row


def _rows_json(uri: str) -> Iterator[tuple[str, dict[str, Any]]]:
    text = _text(uri)
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        yield from _json_lines(uri, iter(text.splitlines()))  # JSON Lines under a .json name
        return
    except (RecursionError, ValueError):
        raise DataFileError(f"{uri} cannot be read as JSON") from None
    if isinstance(data, dict):
        yield "line 1", data
        return
    if not isinstance(data, list):
        raise DataFileError(f"{uri} is not a list of JSON objects")
    for number, row in enumerate(data, 1):
        if not isinstance(row, dict):
            raise DataFileError(f"{uri} item {number} is not a JSON object")
        yield f"item {number}", row


def _rows_csv(uri: str, suite: Suite, columns: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    reader = csv.reader(io.StringIO(_text(uri), newline=""))
    header: list[str] | None = None
    try:
        for raw in reader:
            if not any(cell.strip() for cell in raw):
                continue
            if header is None:
                cells = [c.strip() for c in raw]
                if columns["question"] in cells and columns["answer"] in cells:
                    header = cells
                    continue
                header = suite.positional(len(raw), columns) or []
                if not header:
                    raise DataFileError(f"{uri} line {reader.line_num}: the first row names neither the question "
                                        f"column '{columns['question']}' nor the answer column '{columns['answer']}', "
                                        f"and {len(raw)} columns are not the header-less {suite.title} layout")
            if len(raw) != len(header):
                raise DataFileError(f"{uri} line {reader.line_num} has {len(raw)} columns; the first row has "
                                    f"{len(header)}")
            yield f"line {reader.line_num}", dict(zip(header, raw, strict=True))
    except csv.Error as exc:
        raise DataFileError(f"{uri} line {reader.line_num} is not valid CSV ({exc})") from None


def rows(uri: str, suite: Suite, columns: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(``line N`` or ``item N``, row) for each row of one data file."""
    lower = uri.lower()
    if lower.endswith(".csv"):
        return _rows_csv(uri, suite, columns)
    if lower.endswith(".json"):
        return _rows_json(uri)
    return _rows_jsonl(uri)


def read_items(uri: str, benchmark: dict[str, Any], limit: int | None = None,
               only: list[str] | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """The items of a benchmark (``benchmark`` is the normalised ``dataset.benchmark``), in file order: of
    the subtasks in ``only`` (all when None), at most ``max_per_subtask`` of each, the first ``limit``.
    Also every subtask the data holds, filter or not (to tell a misspelt one)."""
    suite = SUITES[benchmark["suite"]]
    columns = benchmark["columns"]
    paths = files(uri)
    in_folder = len(paths) > 1 or not _name(uri).lower().endswith(FORMATS)
    items: list[dict[str, Any]] = []
    seen: list[str] = []
    per_subtask: dict[str | None, int] = {}
    cap = benchmark.get("max_per_subtask")
    for path in paths:
        fallback = file_subtask(path, in_folder)
        for where, row in rows(path, suite, columns):
            try:
                item = suite.item(row, columns, fallback)
            except RowError as exc:
                text = str(exc)
                raise DataFileError(f"{path} {where}{' ' if text.startswith('has ') else ': '}{text}") from None
            subtask = item["subtask"]
            if subtask and subtask not in seen:
                seen.append(subtask)
            if only is not None and subtask not in only:
                continue
            if cap and per_subtask.get(subtask, 0) >= cap:
                continue
            per_subtask[subtask] = per_subtask.get(subtask, 0) + 1
            if limit is None or len(items) < limit:
                items.append(item)
    return items, seen


def processed_records(uri: str, benchmark: dict[str, Any], limit: int | None = None) -> list[dict[str, Any]]:
    """The records preprocess writes: the suite's prompt as ``model_input``, the right answer as
    ``target_output`` (a letter, a number), and the item under ``benchmark`` for the scorer."""
    suite = SUITES[benchmark["suite"]]
    items, _ = read_items(uri, benchmark, limit, benchmark.get("subtasks"))
    return [{"id": f"r{i:05d}", "model_input": suite.prompt(item), "target_output": item["answer"],
             "benchmark": {"suite": suite.name, **item}} for i, item in enumerate(items)]
