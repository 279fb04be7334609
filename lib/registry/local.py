"""A registry on disk beside a pipeline's local runs: one JSON line per registered version."""

from __future__ import annotations

import json
from pathlib import Path

from lib import storage
from lib.run.records import SUCCEEDED, Registration


def register_locally(registration: Registration, index_uri: str) -> Registration:
    """Append ``registration`` as the next version; the file changes only by this one append."""
    index = Path(index_uri)
    index.parent.mkdir(parents=True, exist_ok=True)
    versions = storage.read_jsonl(str(index)) if index.exists() else []
    registration.version = len(versions) + 1
    registration.registry = str(index)
    registration.status = SUCCEEDED
    with open(index, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(registration.to_dict()) + "\n")
    return registration
