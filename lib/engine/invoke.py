"""Invoke a model once per record: bounded concurrency, timeout, retries with backoff and jitter,
outputs written as they arrive, a content-addressed cache, and resumption of a killed run."""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from string import Template
from typing import Any

from lib import storage
from lib.engine.cache import OutputCache, cache_key
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
    invocations: int = 0  # records sent to the model in this run (cache hits and resumed rows excluded)
    attempts: int = 0  # including retries
    errors: int = 0
    first_error: str | None = None  # of the first failed record, in dataset order
    cached: int = 0
    resumed: int = 0
    latencies: list[float] = field(default_factory=list)
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


def answered_rows(outputs_uri: str, prompts: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The rows of an earlier, interrupted ask that a resume keeps: answered, and asked with the same
    prompt (failed rows are tried again; a changed prompt is asked anew)."""
    if not storage.exists(outputs_uri):
        return {}
    return {row["id"]: row for row in storage.read_jsonl(outputs_uri)
            if row.get("error") is None and row.get("prompt") == prompts.get(row.get("id"))}


def count_rows(stats: InvocationStats, rows: list[dict[str, Any]]) -> InvocationStats:
    """Fold the answers in ``rows`` into ``stats``: errors, cache hits, latencies, tokens."""
    for row in rows:
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
    return stats


def make_prompt(template: str, model_input: str) -> str:
    """fmeval's prompt templating: ``$model_input`` replaced, other ``$`` text left alone."""
    return Template(template).safe_substitute(model_input=model_input)


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


def invoke_records(
    records: list[dict[str, Any]],
    *,
    invoke: dict[str, Any],
    invoker: Invoker,
    identity: str,
    outputs_uri: str,
    cache: OutputCache | None,
    max_concurrency: int = 4,
    policy: RetryPolicy | None = None,
    progress: Callable[[str], None] = lambda m: None,
    spend: Spend | None = None,
) -> tuple[list[dict[str, Any]], InvocationStats]:
    """One output row per record, in record order. Rows already in ``outputs_uri`` are kept as they are.
    With ``spend``, no new call starts once its limit is spent (those records fail with the reason and
    are asked again by a rerun)."""
    policy = policy or RetryPolicy()
    stats = InvocationStats(records=len(records))
    prompts = {r["id"]: make_prompt(invoke["prompt_template"], str(r["model_input"])) for r in records}
    done = answered_rows(outputs_uri, prompts)
    stats.resumed = sum(1 for r in records if r["id"] in done)
    todo = [r for r in records if r["id"] not in done]
    lock = threading.Lock()
    finished = [stats.resumed]
    failures = [0]
    step = max(1, len(records) // 10)
    track = getattr(progress, "track", None)  # a step's `lib.progress.Reporter`: the display paces itself
    if track:
        track(total=len(records), done=finished[0], errors=0)

    with storage.JsonlAppender(outputs_uri) as out:
        def one(record: dict[str, Any]) -> None:
            if interrupt.requested():  # the run is stopping: ask nothing new (a rerun resumes here)
                return
            prompt = prompts[record["id"]]
            key = cache_key(identity, invoke, prompt)
            hit = cache.get(key) if cache else None
            row: dict[str, Any] = {
                "id": record["id"], "model_input": record["model_input"], "prompt": prompt,
                "target_output": record.get("target_output"),
            }
            if hit is None and spend is not None and spend.exhausted():
                row.update(output=None, error=f"not asked: {spend.why()}", latency_s=None, attempts=0,
                           prompt_tokens=None, generated_tokens=None, cached=False)
            elif hit is not None:
                row.update(output=hit["output"], error=None, latency_s=hit.get("latency_s"), attempts=0,
                           prompt_tokens=hit.get("prompt_tokens"), generated_tokens=hit.get("generated_tokens"),
                           cached=True)
            else:
                started = time.perf_counter()
                answer, error, attempts = call_with_retries(invoker, prompt, policy)
                latency = round(time.perf_counter() - started, 4)
                row.update(output=answer.text if answer else None, error=error, latency_s=latency,
                           attempts=attempts, prompt_tokens=answer.prompt_tokens if answer else None,
                           generated_tokens=answer.generated_tokens if answer else None, cached=False)
                if spend is not None:
                    spend.charge(latency, row["prompt_tokens"], row["generated_tokens"], max_concurrency)
                if answer is not None and cache is not None:
                    cache.put(key, {"output": answer.text, "latency_s": latency,
                                    "prompt_tokens": answer.prompt_tokens,
                                    "generated_tokens": answer.generated_tokens})
            with lock:
                out.append(row)
                done[record["id"]] = row
                finished[0] += 1
                failures[0] += row["error"] is not None
                if track:
                    track(done=finished[0], errors=failures[0])
                elif finished[0] % step == 0 or finished[0] == len(records):
                    progress(f"{finished[0]}/{len(records)} records")

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=max(1, max_concurrency)) as pool:
            for future in [pool.submit(one, r) for r in todo]:
                future.result()
        stats.wall_s = time.perf_counter() - started
        interrupt.check()

    rows = [done[r["id"]] for r in records]
    storage.write_jsonl(outputs_uri, rows)  # compact: one line per record, in dataset order
    count_rows(stats, rows)
    for record in todo:
        row = done[record["id"]]
        if not row.get("cached"):
            stats.invocations += 1
            stats.attempts += row.get("attempts") or 0
    return rows, stats
