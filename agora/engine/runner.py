"""Send a list of chat requests through any `ChatClient`: bounded concurrency, cache first, cap enforced.

Each finished request is appended to the durable cache before anything else happens to it, so a kill
at any point loses at most the requests in flight. Transient failures (429, 5xx, timeouts, resets, torn
bodies) are retried with exponential backoff and full jitter, waiting at least what `retry-after` asks;
a 429 also pauses every sender, so a rate limit slows the run instead of failing it. Permanent errors
are recorded once. Failures are counted and returned, never dropped.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiolimiter import AsyncLimiter

from tqdm.auto import tqdm

from agora import AgoraError
from agora.engine.cache import RequestCache
from agora.engine.ledger import Ledger
from agora.generators.client import ChatClient, PermanentError, TransientError

log = logging.getLogger(__name__)


@dataclass
class Request:
    key: str
    messages: list[dict]
    meta: dict = field(default_factory=dict)


@dataclass
class Result:
    request: Request
    record: dict | None          # the cache record: text, finish_reason, usage, cost, latency, retries
    error: str | None = None
    cached: bool = False


@dataclass(frozen=True)
class Sampling:
    temperature: float
    top_p: float
    max_tokens: int
    stop: list[str] | None
    response_format: dict | str | None   # an OpenAI response_format ({"type": ...}); a str is the bare type
    extra_body: dict | None = None   # server-specific request fields (a llama.cpp grammar for the embedded model)


@dataclass(frozen=True)
class Limits:
    concurrency: int
    rpm: int | None = None
    tpm: int | None = None
    max_retries: int = 8
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0


def per_minute_bucket(per_minute: float) -> AsyncLimiter:
    """A leaky bucket holding one second's worth, not a minute's: a fresh minute-sized bucket would let
    a whole minute's quota out at once, and the provider's own bucket answers such a burst with 429s."""
    per_s = per_minute / 60.0
    return AsyncLimiter(per_s, 1.0) if per_s >= 1 else AsyncLimiter(1, 1.0 / per_s)


class _Flow:
    """Shared flow control for one run: RPM/TPM buckets, backoff, and a pause for everyone after a 429."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.rpm = per_minute_bucket(limits.rpm) if limits.rpm else None
        self.tpm = per_minute_bucket(limits.tpm) if limits.tpm else None
        self.resume_at = 0.0
        self.stop = asyncio.Event()
        self.in_flight = 0                  # requests holding a cap reservation
        self._settled = asyncio.Event()     # set (and replaced) whenever one lets its reservation go

    def settled(self) -> None:
        self.in_flight -= 1
        self._settled.set()
        self._settled = asyncio.Event()

    async def room(self, ledger: Ledger, usd: float) -> bool:
        """Reserve `usd` under the cap, waiting while requests in flight may still free room. False only when
        nothing is in flight and it still does not fit: the cap is reached, and every sender stops.

        Giving up at the first refusal stopped a $2 budget at $0.11: 64 reservations of 4,096 output tokens
        each held $2.6 of headroom that the replies, 64 tokens long, never used. Waiting narrows concurrency
        by itself as the budget runs out: only as many requests fly as their worst cases fit."""
        while not ledger.reserve(usd):
            if self.in_flight == 0 or self.stop.is_set():
                self.stop.set()
                return False
            await self._settled.wait()
        self.in_flight += 1
        return True

    async def admit(self, tokens: int) -> None:
        delay = self.resume_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if self.rpm:
            await self.rpm.acquire()
        if self.tpm:
            await self.tpm.acquire(min(tokens, self.tpm.max_rate))

    def backoff(self, attempt: int, err: TransientError) -> float:
        wait = random.uniform(0, min(self.limits.backoff_max_s, self.limits.backoff_base_s * 2 ** attempt))
        if err.retry_after is not None:
            wait = max(wait, err.retry_after)
        if err.rate_limited:  # everyone waits, not just this request
            self.resume_at = max(self.resume_at, time.monotonic() + wait)
        return wait


class Progress:
    """One bar per cell across its rounds: requests done/total, $ spent, tokens/s out, failures, and ETA."""

    def __init__(self, ledger: Ledger, desc: str, total: int = 0):
        self.ledger = ledger
        self.bar = tqdm(total=total, desc=desc, unit="req", dynamic_ncols=True, mininterval=0.5, delay=0.5)
        self.t0 = time.monotonic()
        self.sent_tokens = 0
        self._shown = 0.0

    def add(self, n: int) -> None:
        self.bar.total = (self.bar.total or 0) + n
        self.bar.refresh()

    def step(self, record: dict | None, cached: bool) -> None:
        if record is not None and not cached:
            self.sent_tokens += record["output_tokens"]
        self.bar.update(1)
        now = time.monotonic()
        if now - self._shown >= 0.5:
            self._shown = now
            t = self.ledger.totals
            self.bar.set_postfix_str(f"${t.cost_usd:.4f} {self.sent_tokens / max(now - self.t0, 1e-9):.0f} tok/s "
                                     f"cached={t.cached} failed={t.failed}", refresh=False)

    def close(self) -> None:
        self.bar.close()


CAP_MESSAGE = "not sent: dollar cap reached"
Health = Callable[[], "str | None"]


class UpstreamGone(AgoraError):
    """The server Agora started has died: every request would fail, so the run stops now (resumable)."""


class CapReached(Exception):
    """The next request could carry spend past budget.max_usd; the run stops, resumable.

    `results` holds what did finish (paid for and cached), so a caller can still use it."""

    def __init__(self, message: str, results: list[Result]):
        super().__init__(message)
        self.results = results


async def _one(client: ChatClient, req: Request, s: Sampling, cache: RequestCache, ledger: Ledger,
               flow: _Flow, health: Health | None) -> Result:
    hit = cache.get(req.key)
    if hit is not None:
        ledger.record(hit, cached=True)
        return Result(req, hit, cached=True)
    prompt_chars = sum(len(m["content"]) for m in req.messages)
    retries = 0
    # The worker that took this request carries it from its first try to its last retry.
    while True:
        if flow.stop.is_set():
            return Result(req, None, error=CAP_MESSAGE)
        worst = ledger.worst_case(prompt_chars, s.max_tokens)
        if not await flow.room(ledger, worst):
            return Result(req, None, error=CAP_MESSAGE)
        try:
            await flow.admit(prompt_chars // 3 + s.max_tokens)
            c = await client.complete(req.messages, temperature=s.temperature, top_p=s.top_p,
                                      max_tokens=s.max_tokens, stop=s.stop, response_format=s.response_format,
                                      extra_body=s.extra_body)
            break
        except PermanentError as e:
            ledger.totals.failed += 1
            return Result(req, None, error=f"permanent: {e}")
        except TransientError as e:
            if health is not None and (why := health()) is not None:
                raise UpstreamGone(why) from None   # a dead server is not retried for minutes
            kind = str(e).split(":")[0]
            ledger.totals.errors[kind] = ledger.totals.errors.get(kind, 0) + 1
            if retries >= flow.limits.max_retries:
                ledger.totals.failed += 1
                ledger.totals.retries += retries
                return Result(req, None, error=f"gave up after {retries} retries: {e}")
            wait = flow.backoff(retries, e)
            retries += 1
            log.debug("retry %d of %s in %.2f s: %s", retries, req.key[:8], wait, e)
        finally:
            ledger.release(worst)
            flow.settled()
        await asyncio.sleep(wait)
    rec = {"key": req.key, "text": c.text, "finish_reason": c.finish_reason, "input_tokens": c.input_tokens,
           "output_tokens": c.output_tokens, "latency_s": round(c.latency_s, 4), "retries": retries,
           "ts": time.time()}
    if c.top_logprobs is not None:   # only requests that asked for them (the AlpacaEval judge's preference)
        rec["top_logprobs"] = c.top_logprobs
    if c.prompt_logprobs is not None:   # a served perplexity (eval.backend=vllm)
        rec["prompt_logprobs"] = c.prompt_logprobs
    if c.token_ids is not None:   # a served evaluation decodes them itself (eval.backend=vllm)
        rec["token_ids"] = c.token_ids
    rec["cost_usd"] = ledger.record(rec, cached=False)
    cache.put(rec)
    return Result(req, rec)


async def _run(client: ChatClient, requests: list[Request], s: Sampling, cache: RequestCache, ledger: Ledger,
               limits: Limits, progress: Progress, sink: Callable[[int, Result], None],
               health: Health | None) -> None:
    # A fixed pool of `concurrency` workers pulls from one iterator: the number of live coroutines stays
    # the concurrency bound whatever N is, so the engine's memory does not grow with the size of the run.
    flow = _Flow(limits)
    todo = iter(enumerate(requests))

    async def worker() -> None:
        for i, req in todo:
            r = await _one(client, req, s, cache, ledger, flow, health)
            progress.step(r.record, r.cached)
            sink(i, r)

    async def watchdog() -> None:   # a request hanging on a dead server would otherwise wait for its timeout
        while True:
            await asyncio.sleep(0.25)
            if (why := health()) is not None:
                raise UpstreamGone(why)

    tasks = [asyncio.ensure_future(worker()) for _ in range(max(1, min(limits.concurrency, len(requests))))]
    everyone = [*tasks, *([asyncio.ensure_future(watchdog())] if health is not None else [])]
    workers = asyncio.gather(*tasks)
    try:
        # Until the workers are done, or the first of them (or the watchdog) raises: then the rest are cancelled.
        done, _ = await asyncio.wait([workers, *everyone[len(tasks):]], return_when=asyncio.FIRST_COMPLETED)
        for f in done:
            f.result()
    finally:
        for t in everyone:
            t.cancel()
        await asyncio.gather(*everyone, return_exceptions=True)
        await asyncio.gather(workers, return_exceptions=True)   # its outcome was raised above, or it was cancelled


async def run_requests(client: ChatClient, requests: list[Request], sampling: Sampling, *, cache: RequestCache,
                       ledger: Ledger, limits: Limits, progress: Progress | None = None,
                       on_result: Callable[[int, Result], None] | None = None,
                       desc: str = "generate", health: Health | None = None) -> list[Result]:
    """Results in request order. Raises CapReached when the cap stopped any request from being sent.

    Pass a `Progress` to carry one bar across several calls (rounds); its total grows by len(requests).
    Pass `on_result(index, result)` to take each result as it lands instead: nothing is held, and the
    returned list is empty, so memory stays flat however many requests there are.
    Pass `health()` (None while the server lives, else why it is gone) to stop at once, raising UpstreamGone,
    when a server that Agora started dies, instead of retrying every request against nothing."""
    own = progress is None
    progress = progress or Progress(ledger, desc)
    progress.add(len(requests))
    held: list[tuple[int, Result]] = []
    capped = False

    def sink(i: int, r: Result) -> None:
        nonlocal capped
        capped = capped or r.error == CAP_MESSAGE
        if on_result is None:
            held.append((i, r))
        else:
            on_result(i, r)

    try:
        await _run(client, requests, sampling, cache, ledger, limits, progress, sink, health)
    finally:
        if own:
            progress.close()
    results = [r for _, r in sorted(held, key=lambda x: x[0])]
    if capped:
        raise CapReached(f"spent ${ledger.totals.cost_usd:.4f} of budget.max_usd=${ledger.max_usd}", results)
    return results
