"""The pages' Jinja templates, compiled once per machine rather than once per process.

Compiling the run page's templates takes 0.16 s here, every run, for the same few kilobytes of source.
Jinja's own file cache keeps each compiled template in the tool's cache folder
(``~/.cache/llm-eval-pipelines/jinja2``), checked against the source's checksum (and Jinja's and Python's
versions) when loaded, and written whole or not at all. A cache that cannot be read or written only means
compiling again.
"""

from __future__ import annotations

import os
from pathlib import Path

import jinja2

CACHE_DIR = "~/.cache/llm-eval-pipelines/jinja2"


class _Quiet(jinja2.FileSystemBytecodeCache):
    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except OSError:  # Jinja passes over a missing file, not one under a file or unreadable
            pass

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            os.makedirs(self.directory, exist_ok=True)
            super().dump_bytecode(bucket)
        except OSError:  # not ours to write: the next process compiles it again
            pass


def environment(sources: dict[str, str], cache_dir: str | Path = CACHE_DIR) -> jinja2.Environment:
    """An autoescaping environment whose templates are ``sources`` (by name), compiled on first use."""
    return jinja2.Environment(autoescape=True, loader=jinja2.DictLoader(sources),
                              bytecode_cache=_Quiet(os.path.expanduser(str(cache_dir)), "%s.cache"))
