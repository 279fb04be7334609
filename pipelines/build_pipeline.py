"""The documented entry point: `python pipelines/build_pipeline.py COMMAND --config FILE`.

The commands live in `pipelines/cli/` (one module per command group); this file only makes the
project importable when run as a script and hands over.
"""

from __future__ import annotations

import sys

try:  # Ctrl-C from here on is ours to report, finding the project included
    if __package__ in (None, ""):  # run as a script: make the project importable
        from pathlib import Path

        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from pipelines.cli import build_parser, entry, main
except KeyboardInterrupt:  # Ctrl-C while the commands load: nothing has started, nothing to undo
    if __name__ != "__main__":
        raise
    print("interrupted", file=sys.stderr)
    sys.exit(130)

__all__ = ["build_parser", "entry", "main"]

if __name__ == "__main__":
    entry()
