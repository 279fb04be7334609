"""Other runs of the same pipeline, found beside this one: the previous run (what changed since) and
the run that produced the gate's champion (what the winner is compared with).

A local run's siblings are the folders beside its folder (``runs/<pipeline>/<execution-id>``); a
SageMaker execution's are the prefixes beside its prefix (``.../<pipeline>/runs/<execution-id>``).
A sibling counts when it holds a summary; its age is the time that summary was last written. Paths
come from `RunLayout`, reads go through `lib.storage`; only listing a folder or a prefix is done
here (the storage layer has no listing).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lib import storage
from lib.run.layout import RunLayout
from lib.run.records import INTERRUPTED, SUCCEEDED, ModelResult, RunSummary

MAX_READ = 200  # summaries read at most while looking for a run (newest first)


@dataclass(frozen=True)
class PastRun:
    layout: RunLayout
    summary: RunSummary
    modified: float  # when its summary was last written (seconds since the epoch)


def _same_root(a: str, b: str) -> bool:
    if storage.is_remote(a) or storage.is_remote(b):
        return a.rstrip("/") == b.rstrip("/")
    return os.path.abspath(a) == os.path.abspath(b)


def _summary_time(layout: RunLayout) -> float | None:
    """When ``layout``'s summary was last written, or None when it has none."""
    uri = layout.summary
    if layout.is_remote:
        from lib import aws

        bucket, _, key = uri[len("s3://"):].partition("/")
        s3 = aws.client("s3")
        try:
            return s3.head_object(Bucket=bucket, Key=key)["LastModified"].timestamp()
        except s3.exceptions.ClientError:
            return None
    try:
        return os.stat(uri).st_mtime
    except OSError:
        return None


def _sibling_roots(layout: RunLayout) -> Iterator[str]:
    parent = storage.parent(layout.root)
    if layout.is_remote:
        from lib import aws

        bucket, _, prefix = parent[len("s3://"):].partition("/")
        prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        pages = aws.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix,
                                                                            Delimiter="/")
        for page in pages:
            for common in page.get("CommonPrefixes") or []:
                yield f"s3://{bucket}/{common['Prefix'].rstrip('/')}"
        return
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield str(Path(parent, entry.name))


def sibling_runs(layout: RunLayout) -> list[tuple[RunLayout, float]]:
    """The runs beside ``layout`` that hold a summary (itself excluded), newest first."""
    found = []
    for root in _sibling_roots(layout):
        if _same_root(root, layout.root):
            continue
        other = RunLayout(root)
        modified = _summary_time(other)
        if modified is not None:
            found.append((other, modified))
    found.sort(key=lambda x: (x[1], x[0].root), reverse=True)
    return found


def _past_runs(layout: RunLayout, pipeline: str) -> Iterator[PastRun]:
    """Finished runs of ``pipeline`` beside ``layout``, newest first (interrupted ones are left out:
    their numbers are incomplete); a summary that cannot be read is skipped."""
    for other, modified in sibling_runs(layout)[:MAX_READ]:
        try:
            summary = RunSummary.from_dict(storage.read_json(other.summary))
        except Exception:  # noqa: BLE001 - a torn or foreign file beside the run is not ours to judge
            continue
        if summary.pipeline == pipeline and summary.status != INTERRUPTED:
            yield PastRun(other, summary, modified)


def previous_run(layout: RunLayout, pipeline: str) -> PastRun | None:
    """The most recent other run of ``pipeline`` beside ``layout`` written before this run's summary
    (any, when this run has no summary yet)."""
    now = _summary_time(layout)
    return next((r for r in _past_runs(layout, pipeline) if now is None or r.modified <= now), None)


@dataclass(frozen=True)
class Champion:
    result: ModelResult  # its scores (and, when its run was found, its run metrics)
    version: Any
    run: PastRun | None  # the run that registered it, when it is beside this one


def champion(layout: RunLayout, summary: RunSummary) -> Champion | None:
    """The gate's champion with its numbers: from the run that registered it (found beside this run by
    its registration), else from the local registry's line for that version (scores only)."""
    gate = summary.gate
    if gate is None or not gate.champion or gate.champion.get("version") is None:
        return None
    model, version = gate.champion.get("model"), gate.champion.get("version")
    group = summary.registry.model_package_group_name if summary.registry else None
    for past in _past_runs(layout, summary.pipeline):
        reg = past.summary.registry
        if (reg is not None and reg.status == SUCCEEDED and reg.version == version and reg.model == model
                and (group is None or reg.model_package_group_name == group) and model in past.summary.models):
            return Champion(past.summary.models[model], version, past)
    if group and not layout.is_remote:
        index = layout.local_registry_index(group)
        if storage.exists(index):
            line = next((r for r in reversed(storage.read_jsonl(index))
                         if r.get("version") == version and r.get("status") == SUCCEEDED), None)
            if line is not None:
                return Champion(ModelResult(model or line.get("model") or "?", scores=line.get("metrics") or {}),
                                version, None)
    return None
