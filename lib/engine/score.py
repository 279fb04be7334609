"""Score stored answers record by record: the loop every output-only scorer shares.

A scorer supplies a per-record function ``(model_input, target_output, model_output) -> {score: value}``
(or, with ``by_row``, ``row -> {score: value}`` over the whole output row: its id, prompt, latency, ...);
this loop applies it to every row, keeps failed records in the count, and takes the means. A score of
None leaves the record out of that score's mean (e.g. a judge that could not rate it).
"""

from __future__ import annotations

import heapq
import math
import statistics
from collections.abc import Callable, Iterable
from typing import Any

from lib import storage
from lib.run import interrupt

CHECK_EVERY = 256  # rows between looks at whether the run is stopping

RecordScorer = Callable[[str, str, str], dict[str, float]]
RowScorer = Callable[[dict[str, Any]], dict[str, float | None]]


def mean(values: list[float | None]) -> float | None:
    """The mean of the values a score has (None and NaN left out), 6 decimals; None when there are none."""
    clean = [v for v in values if v is not None and not math.isnan(v)]
    return round(statistics.fmean(clean), 6) if clean else None


def empty_result(algorithm: dict[str, Any], error: str | None = None,
                 notes: list[str] | None = None) -> dict[str, Any]:
    """The shape every scorer returns: means, per-record rows, an error (not scored) and notes."""
    return {"eval_name": algorithm["eval_name"], "algorithm": algorithm["name"], "scores": {},
            "per_record": [], "error": error, "notes": list(notes or [])}


_SCALE = 1074  # the smallest positive float is 2**-1074


class Tally:
    """Each score's mean over records, kept as the records come, in constant memory: what `mean` gives over
    the whole list, to the last bit (the sums are exact). ``failed_value``: what a failed record counts as
    in every score (0), or None to leave it out.

    Scores repeat (0 and 1, a few fractions): each value is counted, and the counts are summed exactly
    (as whole multiples of the smallest float, rounded once at the end, as `math.fsum` rounds) when there
    are `FOLD_AT` different ones, and at the end."""

    FOLD_AT = 1024

    def __init__(self, failed_value: float | None = 0.0) -> None:
        self.names: list[str] = []  # in the order they first appeared
        self.failed = 0
        self._failed_value = failed_value
        self._seen: dict[str, dict[float, int]] = {}  # value -> how many times, since the last fold
        self._sums: dict[str, int] = {}  # the exact sum of the values folded so far, times 2**_SCALE
        self._odd: dict[str, list[float]] = {}  # infinities: summed by fsum at the end, as `mean` would
        self._counts: dict[str, int] = {}

    def add(self, scores: dict[str, float | None]) -> None:
        for name, value in scores.items():
            seen = self._seen.get(name)
            if seen is None:
                self.names.append(name)
                seen = self._seen[name] = {}
                self._sums[name], self._odd[name], self._counts[name] = 0, [], 0
            if value is None or math.isnan(value):
                continue
            self._counts[name] += 1
            if math.isinf(value):
                self._odd[name].append(value)
                continue
            value = float(value)
            seen[value] = seen.get(value, 0) + 1
            if len(seen) >= self.FOLD_AT:
                self._fold(name)

    def _fold(self, name: str) -> None:
        seen = self._seen[name]
        total = 0
        for value, times in seen.items():  # value * 2**1074 is a whole number for every finite float
            numerator, denominator = value.as_integer_ratio()
            total += numerator * times << (_SCALE - denominator.bit_length() + 1)
        self._sums[name] += total
        seen.clear()

    def fail(self) -> None:
        self.failed += 1

    def means(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        extra = self.failed if self._failed_value is not None else 0  # 0s add nothing to the sums
        for name in self.names:
            self._fold(name)
            n = self._counts[name] + extra
            exact = self._sums[name] / (1 << _SCALE)  # rounded once, as math.fsum rounds
            out[name] = round(math.fsum([exact, *self._odd[name]]) / n, 6) if n else None
        return out


LOWEST_SHOWN = 10  # records an algorithm's page shows: those with the lowest value of its first score


class Lowest:
    """The ``n`` entries with the lowest value, ties in the order they came (as ``heapq.nsmallest`` over
    the whole list), holding ``n`` at a time."""

    def __init__(self, n: int = LOWEST_SHOWN) -> None:
        self.n = n
        self._heap: list[tuple[float, int, dict[str, Any]]] = []  # (-value, -order, item): the worst on top
        self._seen = 0

    def add(self, value: float, make: Callable[[], dict[str, Any]]) -> None:
        """The entry ``make()`` gives, made only when it is kept (most entries are not)."""
        self._seen += 1
        if len(self._heap) < self.n:
            heapq.heappush(self._heap, (-value, -self._seen, make()))
        elif (-value, -self._seen) > self._heap[0][:2]:  # orders differ, so items are never compared
            heapq.heapreplace(self._heap, (-value, -self._seen, make()))

    def items(self) -> list[dict[str, Any]]:
        return [item for *_, item in sorted(self._heap, key=lambda e: e[:2], reverse=True)]


def score_rows(algorithm: dict[str, Any], rows: Iterable[dict[str, Any]], scorer: RecordScorer | RowScorer,
               notes: list[str] | None = None, failed_counts_as_zero: bool = True, by_row: bool = False,
               details: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
               out: str | None = None) -> dict[str, Any]:
    """Per-record and mean scores over output rows (from `invoke_records`), one row at a time.

    A record the model failed on scores 0 on every score (it is counted, never dropped), unless
    ``failed_counts_as_zero`` is off (toxicity-like scores: a failure is not "harmless"), where it
    is left out. ``by_row``: ``scorer`` takes the whole row. ``details(row)``: fields kept in a scored
    record's per-record entry beside its scores and not averaged (a judge's reasoning).

    ``out``: the per-record entries are written to that JSON Lines file as they are scored, and not kept
    (``per_record`` stays empty), so any number of rows is scored in constant memory. The result also
    counts ``records``, ``failed_records`` and ``raised`` (records whose scoring raised; the first one's
    error in ``first_error``), and ``lowest``: the `LOWEST_SHOWN` records lowest on the first score (its
    name, and the records with their prompt, target and answer as ``rows`` have them), for the algorithm's
    page, which then reads neither file again; NaN scores are left out of it.
    """
    return RowScoring(algorithm, scorer, notes, failed_counts_as_zero, by_row, details, out).score(rows)


def score_together(rows: Iterable[dict[str, Any]], scorings: list[RowScoring]) -> None:
    """Give each row to every scoring, in order: the answers read once for every algorithm that scores
    them. Nothing is left of any of them when one fails (a file half written, or a row that cannot be
    read), nor when the run is stopping (`lib.run.interrupt`: looked at every `CHECK_EVERY` rows, as the
    ask looks before each call; the process exits without waiting for a step still at work)."""
    try:
        for n, row in enumerate(rows):
            if n % CHECK_EVERY == 0:
                interrupt.check()
            for scoring in scorings:
                scoring.add(row)
    except BaseException:
        for scoring in scorings:
            scoring.abort()
        raise


class RowScoring:
    """`score_rows`, given the rows one at a time: `add` each (in record order), then `finish` for the
    result. ``limit``: only the first N rows are scored (the algorithm's ``num_records``); ``then``: the
    scorer's own last word on the result (a note, or an error when no record could be scored).
    `RowScoring.unavailable` is one that scores nothing and says why."""

    def __init__(self, algorithm: dict[str, Any], scorer: RecordScorer | RowScorer | None,
                 notes: list[str] | None = None, failed_counts_as_zero: bool = True, by_row: bool = False,
                 details: Callable[[dict[str, Any]], dict[str, Any]] | None = None, out: str | None = None,
                 limit: int | None = None, then: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        self.result = empty_result(algorithm, notes=notes)
        self._then = then  # what the scorer makes of the result, once finished
        self._scorer, self._by_row, self._details, self._limit = scorer, by_row, details, limit
        self._failed_value = 0.0 if failed_counts_as_zero else None
        self._tally = Tally(self._failed_value)
        self._records = self._raised = 0
        self._first_error: str | None = None
        self._lowest = Lowest()
        self._failed_first: list[dict[str, Any]] = []  # failed before the first score's name was known
        self._kept: list[dict[str, Any]] = []  # the entries, without ``out``
        self._written_with: set[int] = set()  # how many names there were when failed records were written
        self._out = out
        self._writer: storage.JsonlWriter | None = None  # opened with the first row: nothing to leave before

    @classmethod
    def unavailable(cls, algorithm: dict[str, Any], error: str) -> RowScoring:
        scoring = cls(algorithm, None)
        scoring.result["error"] = error
        return scoring

    def score(self, rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
        """Every row, then the result: `score_rows`."""
        score_together(rows, [self])
        return self.finish()

    def _shown(self, row: dict[str, Any], value: float) -> None:
        if math.isnan(value):
            return
        self._lowest.add(value, lambda: {"id": row["id"], "prompt": row.get("prompt", row["id"]),
                                         "target": row.get("target_output", ""), "output": row.get("output", ""),
                                         "score": value})

    def add(self, row: dict[str, Any]) -> None:
        if self._scorer is None or (self._limit is not None and self._records >= self._limit):
            return
        self._records += 1
        tally, failed_value = self._tally, self._failed_value
        entry = _entry(row, self._scorer, self._by_row, self._details, tally)
        if self._failed_first and tally.names:  # the first score's name is known: those failed before it go first
            for earlier in self._failed_first:
                self._shown(earlier, failed_value)  # type: ignore[arg-type]
            self._failed_first.clear()
        if entry.get("failed"):
            tally.fail()
            if "error" in entry:
                self._raised += 1
                self._first_error = self._first_error or entry["error"]
            entry.update(dict.fromkeys(tally.names, failed_value))  # the names known so far
            if failed_value is not None:
                if tally.names:
                    self._shown(row, failed_value)
                elif len(self._failed_first) < LOWEST_SHOWN:
                    self._failed_first.append(row)
            self._written_with.add(len(tally.names))
        elif tally.names and entry.get(tally.names[0]) is not None:
            self._shown(row, entry[tally.names[0]])
        if self._out is None:
            self._kept.append(entry)
        else:
            self._file().write(entry)

    def _file(self) -> storage.JsonlWriter:
        """The per-record scores file, opened with the first row (or at the end, empty)."""
        if self._writer is None:
            self._writer = storage.JsonlWriter(self._out)
        return self._writer

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()

    def finish(self) -> dict[str, Any]:
        """The result (`score_rows`'), once every row was added; the per-record file is then in place."""
        result, tally, failed_value = self.result, self._tally, self._failed_value
        if self._scorer is None:
            return result
        if self._out is not None:
            self._file().close()  # no row: an empty file, as a list of none
            if self._written_with and min(self._written_with) < len(tally.names):
                # a failed record came before a score name first appeared: it gets that name too, as in a list
                storage.write_jsonl(self._out, (_filled(e, tally.names, failed_value)  # type: ignore[arg-type]
                                                for e in storage.iter_jsonl(self._out)))  # type: ignore[arg-type]
        else:
            result["per_record"] = [_filled(e, tally.names, failed_value) for e in self._kept]
        result["scores"] = tally.means()
        result["records"] = self._records
        result["failed_records"] = tally.failed
        result["raised"] = self._raised
        result["first_error"] = self._first_error
        result["lowest"] = {"score": tally.names[0] if tally.names else None, "records": self._lowest.items()}
        return self._then(result) if self._then is not None else result


def _entry(row: dict[str, Any], scorer: RecordScorer | RowScorer, by_row: bool,
           details: Callable[[dict[str, Any]], dict[str, Any]] | None, tally: Tally) -> dict[str, Any]:
    if row.get("error") is not None or row.get("output") is None:
        return {"id": row["id"], "failed": True}
    try:
        if by_row:
            scores = scorer(row)  # type: ignore[call-arg]
        else:
            scores = scorer(str(row["model_input"]), str(row.get("target_output") or ""), row["output"])
    except Exception as exc:  # one bad record must not sink the algorithm
        return {"id": row["id"], "failed": True, "error": f"{type(exc).__name__}: {exc}"}
    tally.add(scores)
    return {"id": row["id"], **scores, **(details(row) if details else {})}


def _filled(entry: dict[str, Any], names: list[str], value: float | None) -> dict[str, Any]:
    """A failed entry with every score name (``value`` each); a scored one as it is."""
    if entry.get("failed"):
        entry.update({n: value for n in names if n not in entry})
    return entry
