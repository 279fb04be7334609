"""Errors the CLI turns into one clear paragraph and exit code 2 (never a traceback)."""

from __future__ import annotations

from collections.abc import Iterable


class UserError(Exception):
    """Bad input from the user: a config, a flag or a file. The message is shown as is."""

    exit_code = 2


class ConfigError(UserError):
    """A config file is wrong at one place.

    ``where`` is the YAML path (``models[1].deployment_config.num_instances``), empty for the
    whole file; ``line`` is 1-based when known.
    """

    def __init__(self, file: str, where: str, message: str, line: int | None = None) -> None:
        self.file = str(file)
        self.where = where
        self.message = " ".join(message.split())  # one paragraph, whatever a library said
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        place = self.file
        if self.line is not None:
            place += f", line {self.line}"
        if self.where:
            place += f", at {self.where}"
        return f"{place}: {self.message}"


def _folded(word: str) -> str:
    return word.lower().replace("-", "_").replace(" ", "_")


def did_you_mean(word: object, choices: Iterable[object], prefer: Iterable[object] = ()) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or nothing. A choice equal but for case,
    hyphens or spaces wins (``Models``, ``model-id``); then the closest of ``prefer`` (say, the keys still
    missing), then of all ``choices``."""
    import difflib

    word = str(word)
    if len(word) > 200:  # nothing that long is a typo of a key
        return ""
    options = [str(c) for c in choices]
    folded = [c for c in options if _folded(c) == _folded(word)]
    close = folded or difflib.get_close_matches(word, [str(p) for p in prefer], n=1, cutoff=0.6) \
        or difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def shown_key(key: object) -> str:
    """A key as a message shows it: as written, or JSON-quoted when it holds spaces at its ends, control
    characters or quotes (``"\\n"``), so that a message stays one readable paragraph."""
    import json

    text = str(key)
    if text and text == text.strip() and text.isprintable() and not any(c in text for c in "'\"[]"):
        return text if len(text) <= 80 else text[:77] + "..."
    return json.dumps(text if len(text) <= 80 else text[:77] + "...")


def yaml_path(parts: list[str | int] | tuple[str | int, ...]) -> str:
    """Render ``["models", 1, "name"]`` as ``models[1].name``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = shown_key(part)
            if text.startswith('"'):
                out += f"[{text}]"
            else:
                out += f".{text}" if out else text
    return out
