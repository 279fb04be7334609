"""Invoke a model once per record: bounded concurrency, timeout, retries with backoff and jitter,
outputs written as they arrive, a content-addressed cache, and resumption of a killed run."""

from __future__ import annotations

import functools
import itertools
import random
import statistics
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from string import Template
from typing import Any

from lib import storage
from lib.engine.cache import OutputCache, key_maker
from lib.engine.invokers import Answer, PermanentError, TransientError
from lib.run import interrupt

Invoker = Callable[[str], Answer]


@dataclass
class RetryPolicy:
    max_retries: int = 4
    base_delay: float = 0.5
    max_delay: float = 20.0

    def delay(self, attempt: int) -> float:
        """Exponential backoff with full jitter (attempt 1 -> up to 0.5 s, 2 -> 1 s, ...)."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


class Spend:
    """What evaluating one model has cost so far, against its limit: a token price per answer, or an hourly
    price over the time the answer took (shared by the requests in flight). ``priced`` gives another
    price (a judge's) charging the same account, so a judge's calls count against the model's share."""

    def __init__(self, price: dict[str, float] | None, limit_usd: float,
                 _account: dict[str, Any] | None = None) -> None:
        self.price = price or {}
        self._account = _account if _account is not None else {"limit": limit_usd, "spent": 0.0,
                                                                 "lock": threading.Lock()}

    @property
    def limit_usd(self) -> float:
        return self._account["limit"]

    @property
    def spent_usd(self) -> float:
        return self._account["spent"]

    def priced(self, price: dict[str, float] | None) -> Spend:
        return Spend(price, self.limit_usd, self._account)

    def charge(self, latency_s: float, prompt_tokens: int | None, generated_tokens: int | None,
               concurrency: int) -> None:
        usd = self.price.get("usd_per_hour", 0.0) * latency_s / 3600 / max(1, concurrency)
        usd += self.price.get("usd_per_1k_input_tokens", 0.0) * (prompt_tokens or 0) / 1000
        usd += self.price.get("usd_per_1k_output_tokens", 0.0) * (generated_tokens or 0) / 1000
        with self._account["lock"]:
            self._account["spent"] += usd

    def exhausted(self) -> bool:
        return self.spent_usd >= self.limit_usd

    def why(self) -> str:
        return f"this model's share of the budget (${self.limit_usd:.4g}) was spent (${self.spent_usd:.4g})"


@dataclass
class InvocationStats:
    records: int = 0
    invocations: int = 0  # records sent to the model in this run (not cache hits, resumed or unasked rows)
    attempts: int = 0  # including retries
    errors: int = 0
    first_error: str | None = None  # of the first failed record, in dataset order
    cached: int = 0
    resumed: int = 0
    latencies: array = field(default_factory=lambda: array("d"))  # 8 bytes each, not a float object
    prompt_tokens: int = 0
    generated_tokens: int = 0
    tokens_reported: bool = False
    wall_s: float = 0.0  # asking the model, first call to last answer (0 when everything was cached)

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies)

        def pct(p: float) -> float | None:
            if not lat:
                return None
            return round(lat[min(len(lat) - 1, int(round(p * (len(lat) - 1))))], 4)

        return {
            "records": self.records, "invocations": self.invocations, "attempts": self.attempts,
            "errors": self.errors, "first_error": self.first_error, "cache_hits": self.cached, "resumed": self.resumed,
            "latency_p50_s": pct(0.5), "latency_p95_s": pct(0.95),
            "latency_mean_s": round(statistics.fmean(lat), 4) if lat else None,
            "wall_s": round(self.wall_s, 3),
            "tokens_per_s": round(self.generated_tokens / self.wall_s, 3)
            if self.tokens_reported and self.wall_s > 0 and self.invocations else None,
            "prompt_tokens": self.prompt_tokens if self.tokens_reported else None,
            "generated_tokens": self.generated_tokens if self.tokens_reported else None,
        }


def answered_rows(outputs_uri: str) -> dict[str, dict[str, Any]]:
    """The answered rows of an earlier, interrupted ask, by record id (failed rows are tried again)."""
    if not storage.exists(outputs_uri):
        return {}
    return {row["id"]: row for row in storage.iter_jsonl(outputs_uri) if row.get("error") is None}


def kept_row(done: dict[str, dict[str, Any]], record_id: str, prompt: str) -> dict[str, Any] | None:
    """The earlier row (`answered_rows`) a resume keeps for a record: only one asked with the same prompt
    (a changed prompt is asked anew)."""
    earlier = done.get(record_id)
    return earlier if earlier is not None and earlier.get("prompt") == prompt else None


def count_row(stats: InvocationStats, row: dict[str, Any]) -> None:
    """Fold one answer into ``stats``: errors, cache hits, latencies, tokens."""
    if row["error"] is not None:
        stats.errors += 1
        stats.first_error = stats.first_error or row["error"]
    if row.get("cached"):
        stats.cached += 1
    if row["latency_s"] is not None and row["error"] is None:
        stats.latencies.append(row["latency_s"])
    if row.get("generated_tokens") is not None:
        stats.tokens_reported = True
        stats.prompt_tokens += row.get("prompt_tokens") or 0
        stats.generated_tokens += row["generated_tokens"]


def make_prompt(template: str, model_input: str) -> str:
    """fmeval's prompt templating: ``$model_input`` replaced, other ``$`` text left alone."""
    return prompt_maker(template)(model_input)


@functools.lru_cache(maxsize=64)
def prompt_maker(template: str) -> Callable[[str], str]:
    """``model_input -> Template(template).safe_substitute(model_input=model_input)``, with the template
    read once: the text around each ``$model_input``, joined by the input. safe_substitute reads it again
    for every record, through a regular expression and a call per placeholder (4% of an instant answer)."""
    parts, text, at = [], [], 0
    for found in Template.pattern.finditer(template):
        text.append(template[at:found.start()])
        at = found.end()
        if (found.group("named") or found.group("braced")) == "model_input":
            parts.append("".join(text))
            text = []
        elif found.group("escaped") is not None:
            text.append(Template.delimiter)
        else:  # another name, or a lone $: left as it is
            text.append(found.group())
    parts.append("".join(text) + template[at:])
    return lambda model_input: model_input.join(parts)


def call_with_retries(invoker: Invoker, prompt: str, policy: RetryPolicy) -> tuple[Answer | None, str | None, int]:
    """(answer, error, attempts). Transient failures are retried; the last error is returned, not raised."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return invoker(prompt), None, attempt
        except TransientError as exc:
            if attempt > policy.max_retries:
                return None, f"gave up after {attempt} attempts: {exc}", attempt
            time.sleep(policy.delay(attempt))
        except PermanentError as exc:
            return None, str(exc), attempt
        except Exception as exc:  # an invoker bug or an SDK error we do not classify: fail the record only
            return None, f"{type(exc).__name__}: {exc}", attempt


AHEAD = 4096  # rows (about 1 KB each) that may wait to be written behind one that takes long to answer


class StoredRows:
    """The rows of a JSON Lines file (a model's answers), read one at a time each time they are iterated:
    what scorers take, so no step holds a run's answers in memory. ``limit``: the first N only."""

    def __init__(self, uri: str, limit: int | None = None) -> None:
        self.uri, self.limit = uri, limit

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return itertools.islice(storage.iter_jsonl(self.uri), self.limit)


def invoke_records(records: list[dict[str, Any]], **kwargs: Any) -> tuple[list[dict[str, Any]], InvocationStats]:
    """`ask_records` for a list small enough to hold (a judge's ratings): its rows too, in record order."""
    stats = ask_records(records, total=len(records), **kwargs)
    return storage.read_jsonl(kwargs["outputs_uri"]), stats


# a record that was not asked: its row has the reason as its error and nothing else
UNASKED = {"output": None, "latency_s": None, "attempts": 0, "prompt_tokens": None, "generated_tokens": None,
           "cached": False}


def ask_records(
    records: Iterable[dict[str, Any]],
    *,
    total: int,
    invoke: dict[str, Any],
    invoker: Invoker,
    identity: str,
    outputs_uri: str,
    cache: OutputCache | None,
    max_concurrency: int = 4,
    policy: RetryPolicy | None = None,
    progress: Callable[[str], None] = lambda m: None,
    spend: Spend | None = None,
    give_up: Callable[[int], str | None] | None = None,
) -> InvocationStats:
    """Ask the model once per record (``total`` of them, read one at a time) and write one output row per
    record to ``outputs_uri``, in record order. Rows already there (an interrupted run's) are kept when
    they were answered with the same prompt. With ``spend``, no new call starts once its limit is spent
    (those records fail with the reason and are asked again by a rerun). ``give_up(failed)``: why asking
    more is pointless once ``failed`` records have failed (the model's error budget is spent), or None;
    from then on no new call starts either, in the same way.

    Memory stays flat: at most `AHEAD` rows wait to be written (asked, or answered while one before
    them is still being asked), and each is written as soon as the ones before it are; only a resumed
    run holds the earlier run's answers (to put the file back in order)."""
    policy = policy or RetryPolicy()
    stats = InvocationStats(records=total)
    order: dict[str, int] = {}  # a resumed run's record order, to put its file back in
    finished, failures = 0, 0
    step = max(1, total // 10)
    track = getattr(progress, "track", None)  # a step's `lib.progress.Reporter`: the display paces itself
    track_every = max(1, total // 1000)  # told each thousandth of the records, and each failure (a lock each)
    window: deque[tuple[Future, bool]] = deque()  # (the row to come, whether it is an earlier run's)
    ahead = max(AHEAD, 64 * max_concurrency)

    ready = getattr(invoker, "ready", None)  # a server that loads its model when first asked
    stopped: list[str] = []  # why no more records are asked (`give_up`), once it says so
    cache_key = key_maker(identity, invoke)
    fill = prompt_maker(invoke["prompt_template"])

    # New answers for the cache, appended by the threads that ask and put by this one: the cache is then
    # used by one thread only (eight threads taking its lock tripled its cost per record).
    answered: deque[tuple[str, dict[str, Any]]] = deque()
    # prompts sent in this run whose answers are not in the cache yet (the row of the last record sending
    # each): a record asking the same waits for that answer rather than paying for it again
    asking: dict[str, Future] = {}

    def to_cache() -> None:
        while answered:
            key, value = answered.popleft()
            cache.put(key, value)  # type: ignore[union-attr]
            asking.pop(key, None)  # a repeat finds it in the cache from now on

    def new_row(record: dict[str, Any], prompt: str) -> dict[str, Any]:
        return {"id": record["id"], "model_input": record["model_input"], "prompt": prompt,
                "target_output": record.get("target_output")}

    def one(record: dict[str, Any], prompt: str, key: str, before: Future | None = None) -> dict[str, Any] | None:
        if interrupt.requested():  # the run is stopping: ask nothing new (a rerun resumes here)
            return None
        if before is not None:  # the same prompt went out before this one (the queue is in order: it is
            try:                # being asked, or answered), so this waits one call at most
                earlier = before.result()
            except Exception:  # cancelled, or it raised: this one asks for itself
                earlier = None
            if earlier is not None and earlier["error"] is None:
                return hit_row(record, prompt, earlier)
        row = new_row(record, prompt)
        if spend is not None and spend.exhausted():
            row.update(UNASKED, error=f"not asked: {spend.why()}")
            return row
        if stopped:
            row.update(UNASKED, error=f"not asked: {stopped[0]}")
            return row
        if ready is not None:
            try:
                ready(progress)  # once loaded, at once: the load is not this call's latency
            except Exception as exc:
                row.update(UNASKED, error=f"the model did not load: {type(exc).__name__}: {exc}")
                return row
        started = time.perf_counter()
        answer, error, attempts = call_with_retries(invoker, prompt, policy)
        latency = round(time.perf_counter() - started, 4)
        row.update(output=answer.text if answer else None, error=error, latency_s=latency,
                   attempts=attempts, prompt_tokens=answer.prompt_tokens if answer else None,
                   generated_tokens=answer.generated_tokens if answer else None, cached=False)
        if spend is not None:
            spend.charge(latency, row["prompt_tokens"], row["generated_tokens"], max_concurrency)
        if answer is not None and cache is not None:
            answered.append((key, {"output": answer.text, "latency_s": latency,
                                   "prompt_tokens": answer.prompt_tokens,
                                   "generated_tokens": answer.generated_tokens}))
        return row

    def hit_row(record: dict[str, Any], prompt: str, hit: dict[str, Any]) -> dict[str, Any]:
        """The record's row from an answer given before (the cache's, or this run's to the same prompt)."""
        row = new_row(record, prompt)
        row.update(output=hit["output"], error=None, latency_s=hit.get("latency_s"), attempts=0,
                   prompt_tokens=hit.get("prompt_tokens"), generated_tokens=hit.get("generated_tokens"),
                   cached=True)
        return row

    def submit(record: dict[str, Any], prompt: str) -> Future:
        """The record's row to come: at once from the cache, else asked (or, for a prompt already sent in
        this run, taken from that answer)."""
        key = cache_key(prompt)
        if cache is None:
            return pool.submit(one, record, prompt, key)
        hit = cache.get(key)
        if hit is not None:
            answered_row: Future = Future()
            answered_row.set_result(hit_row(record, prompt, hit))
            return answered_row
        # after the last record that sent it: that one waited for the one before it, so a failed answer is
        # asked again once, and its repeats take the new answer
        future = asking[key] = pool.submit(one, record, prompt, key, asking.get(key))
        return future

    def settle(row: dict[str, Any], new: bool) -> None:
        nonlocal finished, failures
        count_row(stats, row)
        if new and row.get("attempts"):  # sent to the model (not a cache hit, nor a record left unasked)
            stats.invocations += 1
            stats.attempts += row.get("attempts") or 0
        finished += 1
        failures += row["error"] is not None
        # a record sent and failed (not one left unasked by the spend limit: the limit says why itself)
        if give_up is not None and row["error"] is not None and row.get("attempts") and not stopped:
            why = give_up(failures)
            if why:
                stopped.append(why)
                progress(f"stopped asking: {why}")
        if track:
            if finished % track_every == 0 or finished == total or row["error"] is not None:
                track(done=finished, errors=failures)
        elif finished % step == 0 or finished == total:
            progress(f"{finished}/{total} records")

    if track:
        track(total=total, done=0, errors=0)
    if give_up is not None and (why := give_up(0)):  # spent before this ask began (by the model's other shards)
        stopped.append(why)
        progress(f"not asking: {why}")
    started = time.perf_counter()
    # a fresh run writes the file in record order as it goes; a resumed one appends, then puts it in order
    complete = resuming = False
    try:
        with storage.JsonlAppender(outputs_uri) as out, ThreadPoolExecutor(max_workers=max(1, max_concurrency)) as pool:
            # decided once the appender has folded in what a killed run left (its S3 parts)
            resuming = out.had_lines
            done = answered_rows(outputs_uri) if resuming else {}
            written: Future | None = None  # the head's row, appended but not yet taken off the window

            def write_ready(wait_above: int) -> None:
                """Write the rows at the head of the window that are answered; wait for the head only while
                more than ``wait_above`` rows are waiting."""
                nonlocal written
                to_cache()
                while window and (window[0][0].done() or len(window) > wait_above):
                    future, earlier = window[0]
                    while not future.done():  # a slow answer at the head: the others reach the cache meanwhile
                        wait((future,), timeout=0.25)
                        to_cache()
                    row = future.result()  # looked at first, taken off once written: Ctrl-C loses no answer
                    if row is not None and not earlier:
                        out.append(row)
                    written = future
                    window.popleft()
                    if row is not None:
                        settle(row, new=not earlier)
                        if asking and row["error"] is not None:  # not cached: no longer held for repeats
                            key = cache_key(row["prompt"])
                            if asking.get(key) is future:
                                del asking[key]

            try:
                for record in records:
                    if resuming:
                        order[record["id"]] = len(order)
                    prompt = fill(str(record["model_input"]))
                    earlier = kept_row(done, record["id"], prompt)
                    if earlier is not None:
                        kept: Future = Future()  # in its place in the window: counted in record order, never waited on
                        kept.set_result(earlier)
                        window.append((kept, True))
                        stats.resumed += 1
                    elif interrupt.requested():
                        break
                    else:
                        window.append((submit(record, prompt), False))
                    write_ready(ahead)
                else:
                    complete = True
                write_ready(0)
                to_cache()
            except BaseException:  # Ctrl-C, a refused write: keep every answer already in hand (a rerun resumes)
                for future, _ in window:
                    future.cancel()
                try:
                    for future, earlier in window:
                        if future is written or earlier or future.cancelled() or future.exception():
                            continue
                        row = future.result()
                        if row is not None:
                            out.append(row)
                finally:  # the answers in hand into the cache too, once those still being asked are in
                    try:
                        to_cache()
                    except Exception:  # a refused write: what is raised already says what went wrong
                        pass
                raise
    finally:
        if resuming:  # also when stopped: the wind-down's report reads the file in record order
            _in_record_order(outputs_uri, order, complete)
    stats.wall_s = time.perf_counter() - started
    interrupt.check()
    return stats


def _in_record_order(outputs_uri: str, order: dict[str, int], complete: bool) -> None:
    """A resumed run's file holds the earlier run's rows, then this run's (a record's latest row last).
    Rewrite it with each record's latest row, once, in record order. Rows of records not met (yet) go
    last, in the order they were in, when the records were not all read (``complete`` off); when they
    were, those records are no longer in the dataset and their rows are dropped."""
    latest: dict[str, dict[str, Any]] = {}
    for row in storage.iter_jsonl(outputs_uri):
        if complete and row["id"] not in order:
            continue
        latest.pop(row["id"], None)  # a later row of the same record wins, in its first place below
        latest[row["id"]] = row
    last = len(order)
    position = {rid: order.get(rid, last + i) for i, rid in enumerate(latest)}
    storage.write_jsonl(outputs_uri, sorted(latest.values(), key=lambda row: position[row["id"]]))
