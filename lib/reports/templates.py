"""The pages' Jinja templates, compiled once per machine rather than once per process.

Compiling the run page's templates takes 0.16 s here, every run, for the same few kilobytes of source.
Jinja's own file cache keeps each compiled template in the tool's cache folder
(``~/.cache/llm-eval-pipelines/jinja2``), checked against the source's checksum (and Jinja's and Python's
versions) when loaded, and written whole or not at all. The folder is used only when it is this user's
own and nobody else can write to it (its files are code this process runs), as Jinja requires of the
folder it picks itself. A file that cannot be read, or is damaged, is compiled again and replaced; a
folder that cannot be written only means compiling again.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import jinja2

CACHE_DIR = "~/.cache/llm-eval-pipelines/jinja2"


class _Quiet(jinja2.FileSystemBytecodeCache):
    """Jinja's file cache, used only in a folder that passes `_own_folder` (looked at, and made, on first use:
    importing the pages changes nothing on disk)."""

    def _usable(self) -> bool:
        if not hasattr(self, "_own"):
            self._own = _own_folder(self.directory)
        return self._own

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        if not self._usable():
            return
        try:
            super().load_bytecode(bucket)
        except Exception:  # unreadable, or damaged (Jinja unpickles its header unguarded): compiled again
            bucket.reset()

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        if not self._usable():
            return
        try:
            super().dump_bytecode(bucket)
        except OSError:  # not ours to write: the next process compiles it again
            pass


def _own_folder(path: str) -> bool:
    """Whether ``path`` is (now) a folder of this user's that no one else can write to."""
    if not os.path.isabs(path) or not hasattr(os, "getuid"):  # no home to expand, or not POSIX
        return False
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o022


def environment(sources: dict[str, str], cache_dir: str | Path = CACHE_DIR) -> jinja2.Environment:
    """An autoescaping environment whose templates are ``sources`` (by name), compiled on first use."""
    return jinja2.Environment(autoescape=True, loader=jinja2.DictLoader(sources),
                              bytecode_cache=_Quiet(os.path.expanduser(str(cache_dir)), "%s.cache"))
