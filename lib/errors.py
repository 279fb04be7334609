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


def did_you_mean(word: object, choices: Iterable[object]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or nothing."""
    import difflib

    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def yaml_path(parts: list[str | int] | tuple[str | int, ...]) -> str:
    """Render ``["models", 1, "name"]`` as ``models[1].name``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
