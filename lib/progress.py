"""What a run shows while it works: messages (`say`) and structured progress (`track`) from steps that
run in parallel, credentials redacted (`lib.redact`).

Two displays take them. `PlainDisplay` (the default, and what a CI log or a pipe gets) prints one line
per message, records progress with rate and ETA every tenth of a model's records, fine-tune steps as the
trainer reports them: a sane rate, no redraws. `LiveDisplay` (a terminal, `run` without --quiet) keeps
one live table (rich) of the steps: state, records done / total, errors, rate, ETA, training step and
loss, with the messages scrolling above it. Steps report through a `Reporter` and never know which.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from lib.redact import redact

_lock = threading.Lock()
_quiet = False


@dataclass
class StepState:
    """What the display knows of one step."""

    name: str
    state: str = "waiting"  # waiting | running | succeeded | failed | skipped | interrupted | partial
    started: float | None = None
    done: int = 0  # records
    total: int = 0
    errors: int = 0
    first_done_at: tuple[float, int] | None = None  # (time, done) when counting began: the rate's origin
    train_step: int = 0
    train_total: int = 0
    loss: float | None = None
    printed_tenth: int = -1

    def rate(self, now: float) -> float | None:
        """Records per second since counting began (resumed and cached rows arrive at once: left out)."""
        if self.first_done_at is None:
            return None
        t0, d0 = self.first_done_at
        return (self.done - d0) / (now - t0) if now > t0 and self.done > d0 else None

    def eta(self, now: float) -> float | None:
        rate = self.rate(now)
        return (self.total - self.done) / rate if rate and self.total > self.done else None


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds + 0.5)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class PlainDisplay:
    """Lines on stderr: messages as they come, records every tenth, training steps as reported."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream
        self.steps: dict[str, StepState] = {}

    def line(self, step: str, message: str) -> None:
        # one write per line: print's separate write of the newline let parallel steps' lines run together
        stream = self.stream or sys.stderr
        stream.write(redact(f"{time.strftime('%H:%M:%S')} {step:<28} {message}") + "\n")
        stream.flush()

    def update(self, step: str, **fields: Any) -> None:
        s = self.steps.setdefault(step, StepState(step))
        now = time.monotonic()
        apply(s, fields, now)
        if "done" in fields and s.total:
            tenth = s.done * 10 // s.total
            if tenth > s.printed_tenth and (tenth > 0 or s.done == s.total):
                s.printed_tenth = tenth
                self.line(step, records_text(s, now))

    def close(self) -> None:
        pass


def apply(s: StepState, fields: dict[str, Any], now: float) -> None:
    """Fold one report into a step's state."""
    if "state" in fields:
        s.state = fields["state"]
        if s.state == "running" and s.started is None:
            s.started = now
    if "total" in fields:
        s.total = fields["total"]
    if "done" in fields:
        if s.first_done_at is None or fields["done"] < s.done:
            s.first_done_at = (now, fields["done"])
        s.done = fields["done"]
    if "errors" in fields:
        s.errors = fields["errors"]
    if "train_step" in fields:
        s.train_step, s.train_total = fields["train_step"], fields.get("train_total", s.train_total)
        s.loss = fields.get("loss", s.loss)


def records_text(s: StepState, now: float) -> str:
    rate, eta = s.rate(now), s.eta(now)
    text = f"{s.done}/{s.total} records"
    if s.errors:
        text += f", {s.errors} errors"
    if rate:
        text += f", {rate:.1f}/s"
    if eta:
        text += f", ETA {_clock(eta)}"
    return text


class LiveDisplay:
    """One live table of the steps (rich), redrawn a few times a second; messages scroll above it.
    Finished steps fold into a count so a 50-model plan still fits a screen."""

    def __init__(self, steps: list[str], console: Any = None, refresh_per_second: float = 4) -> None:
        from rich.console import Console
        from rich.live import Live

        self.steps = {name: StepState(name) for name in steps}
        self.console = console or Console(stderr=True)
        self.live = Live(console=self.console, refresh_per_second=refresh_per_second, transient=True,
                         get_renderable=self.render)
        self.live.start()

    def line(self, step: str, message: str) -> None:
        self.live.console.print(redact(f"{time.strftime('%H:%M:%S')} {step:<28} {message}"), markup=False,
                                highlight=False, soft_wrap=True)

    def update(self, step: str, **fields: Any) -> None:
        apply(self.steps.setdefault(step, StepState(step)), fields, time.monotonic())

    def render(self) -> Any:
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        now = time.monotonic()
        with _lock:
            states = list(self.steps.values())
        table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
        for column in ("step", "state", "", "records", "errors", "rate", "ETA", ""):
            table.add_column(column, no_wrap=True, justify="right" if column in ("records", "errors", "rate",
                                                                                   "ETA") else "left")
        shown = [s for s in states if s.state in ("running", "failed", "interrupted")]
        for s in shown:
            elapsed = now - s.started if s.started else 0.0
            if s.train_total:
                bar = ProgressBar(total=s.train_total, completed=s.train_step, width=20)
                detail = f"step {s.train_step}/{s.train_total}" + (f" loss {s.loss:.3f}" if s.loss is not None
                                                                    else "")
            elif s.total:
                bar = ProgressBar(total=s.total, completed=s.done, width=20)
                detail = ""
            else:
                bar, detail = ProgressBar(total=None, width=20), ""
            rate = s.rate(now)
            table.add_row(s.name, f"{s.state} {_clock(elapsed)}" if s.state == "running" else s.state, bar,
                          f"{s.done}/{s.total}" if s.total else "", str(s.errors) if s.errors else "",
                          f"{rate:.1f}/s" if rate else "", _clock(s.eta(now)), detail,
                          style="red" if s.state in ("failed", "interrupted") else None)
        counts: dict[str, int] = {}
        for s in states:
            counts[s.state] = counts.get(s.state, 0) + 1
        table.caption = " · ".join(f"{n} {state}" for state, n in counts.items())
        return table

    def close(self) -> None:
        self.live.stop()


_display: PlainDisplay | LiveDisplay = PlainDisplay()


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def use(display: PlainDisplay | LiveDisplay | None) -> PlainDisplay | LiveDisplay:
    """Route what steps report to ``display`` (None: plain lines again); the one it replaces."""
    global _display
    with _lock:
        previous, _display = _display, display or PlainDisplay()
    return previous


def live_display_wanted(stream: Any = None) -> bool:
    """A live table only on a terminal (a CI log or a pipe gets plain lines), and never when quiet."""
    stream = stream or sys.stderr
    return not _quiet and hasattr(stream, "isatty") and stream.isatty()


def say(step: str, message: str) -> None:
    if _quiet:
        return
    with _lock:
        display = _display
    display.line(step, message)


def track(step: str, **fields: Any) -> None:
    """Structured progress: ``state=``, ``done=``/``total=``/``errors=`` (records),
    ``train_step=``/``train_total=``/``loss=`` (a fine-tune)."""
    if _quiet:
        return
    with _lock:
        display = _display
        display.update(step, **fields)


class Reporter:
    """What a step hands down: call it with a message; ``track`` for structured progress."""

    def __init__(self, step: str) -> None:
        self.step = step

    def __call__(self, message: str) -> None:
        say(self.step, message)

    def track(self, **fields: Any) -> None:
        track(self.step, **fields)


def reporter(step: str) -> Reporter:
    """A one-argument callable that reports under ``step``."""
    return Reporter(step)
