"""Send a list of chat requests through any `ChatClient`: bounded concurrency, cache first, cap enforced.

Each finished request is appended to the durable cache before anything else happens to it, so a kill
at any point loses at most the requests in flight. Failures are counted and returned, never dropped.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from tqdm.auto import tqdm

from agora.engine.cache import RequestCache
from agora.engine.ledger import Ledger
from agora.generators.client import ChatClient, PermanentError

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
    response_format: str | None
    extra_body: dict | None = None   # server-specific request fields (a llama.cpp grammar for the embedded model)


class CapReached(Exception):
    """The next request could carry spend past budget.max_usd; the run stops, resumable."""


async def _one(client: ChatClient, req: Request, s: Sampling, cache: RequestCache, ledger: Ledger,
               sem: asyncio.Semaphore, stop: asyncio.Event) -> Result:
    hit = cache.get(req.key)
    if hit is not None:
        ledger.record(hit, cached=True)
        return Result(req, hit, cached=True)
    async with sem:
        if stop.is_set():
            return Result(req, None, error="not sent: dollar cap reached")
        worst = ledger.worst_case(sum(len(m["content"]) for m in req.messages), s.max_tokens)
        if not ledger.reserve(worst):
            stop.set()
            return Result(req, None, error="not sent: dollar cap reached")
        try:
            c = await client.complete(req.messages, temperature=s.temperature, top_p=s.top_p,
                                      max_tokens=s.max_tokens, stop=s.stop, response_format=s.response_format,
                                      extra_body=s.extra_body)
        except PermanentError as e:
            ledger.totals.failed += 1
            return Result(req, None, error=str(e))
        except Exception as e:  # retries are exhausted inside the SDK
            ledger.totals.failed += 1
            return Result(req, None, error=f"{type(e).__name__}: {e}")
        finally:
            ledger.release(worst)
    rec = {"key": req.key, "text": c.text, "finish_reason": c.finish_reason, "input_tokens": c.input_tokens,
           "output_tokens": c.output_tokens, "latency_s": round(c.latency_s, 4), "retries": c.retries,
           "ts": time.time()}
    rec["cost_usd"] = ledger.record(rec, cached=False)
    cache.put(rec)
    return Result(req, rec)


async def _run(client: ChatClient, requests: list[Request], s: Sampling, cache: RequestCache, ledger: Ledger,
               concurrency: int, desc: str) -> list[Result]:
    sem, stop = asyncio.Semaphore(concurrency), asyncio.Event()
    t0 = time.perf_counter()
    bar = tqdm(total=len(requests), desc=desc, unit="req", dynamic_ncols=True)
    tasks = [asyncio.create_task(_one(client, r, s, cache, ledger, sem, stop)) for r in requests]
    try:
        for fut in asyncio.as_completed(tasks):
            await fut
            t = ledger.totals
            bar.update(1)
            bar.set_postfix_str(f"${t.cost_usd:.4f} {t.output_tokens / max(time.perf_counter() - t0, 1e-9):.0f} tok/s"
                                f" failed={t.failed}", refresh=False)
    finally:
        bar.close()
    return [t.result() for t in tasks]


async def run_requests(client: ChatClient, requests: list[Request], sampling: Sampling, *, cache: RequestCache,
                       ledger: Ledger, concurrency: int, desc: str = "generate") -> list[Result]:
    """Results in request order. Raises CapReached when the cap stopped any request from being sent."""
    results = await _run(client, requests, sampling, cache, ledger, concurrency, desc)
    if any(r.error == "not sent: dollar cap reached" for r in results):
        raise CapReached(f"spent ${ledger.totals.cost_usd:.4f} of budget.max_usd=${ledger.max_usd}")
    return results
