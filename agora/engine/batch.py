"""Send a round through the provider's batch API (`generator.batch=true`) at its discount, resumably.

The batch APIs trade latency (up to 24 h) for half the price. What must hold is what holds for live
requests: nothing is paid for twice, every failure is counted, and spend stays under the cap.
- Before a batch is submitted, the worst case of every request in it (at the batch price) is reserved
  against `budget.max_usd`; requests that do not fit are not submitted, and the run stops at the cap.
- The batch id is written to a journal beside the request cache *before* anything else happens, so a
  run killed while a batch is in flight picks the same batch up again on rerun instead of paying twice.
- Results land in the request cache (flagged `batch`, priced at the discount) as each batch ends.
- Only the requests that failed transiently or expired are resubmitted, up to `max_resubmits` times;
  permanent errors (400 and kin) are recorded once.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path

from agora import AgoraError
from agora.engine.cache import RequestCache
from agora.engine.ledger import Ledger
from agora.engine.runner import CAP_MESSAGE, CapReached, Progress, Request, Result, Sampling
from agora.generators.client import BatchClient, Completion, PermanentError, TransientError

log = logging.getLogger(__name__)


class BatchJournal:
    """Append-only: {"batch_id", "keys"} when a batch is submitted, {"batch_id", "closed": true} once collected."""

    def __init__(self, path: Path):
        self.path = path
        self.open: dict[str, list[str]] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue   # a torn last line: that batch was never recorded as submitted
                if row.get("closed"):
                    self.open.pop(row["batch_id"], None)
                else:
                    self.open[row["batch_id"]] = row["keys"]

    def _append(self, row: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def submitted(self, batch_id: str, keys: list[str]) -> None:
        self._append({"batch_id": batch_id, "keys": keys, "ts": time.time()})
        self.open[batch_id] = keys

    def closed(self, batch_id: str) -> None:
        self._append({"batch_id": batch_id, "closed": True, "ts": time.time()})
        self.open.pop(batch_id, None)


def _sampling_kw(s: Sampling) -> dict:
    return {"temperature": s.temperature, "top_p": s.top_p, "max_tokens": s.max_tokens, "stop": s.stop,
            "response_format": s.response_format, "extra_body": s.extra_body}


async def _with_retries(call, what: str, attempts: int = 6, base_s: float = 1.0):
    """A control-plane call (submit, poll, download) retried on transient errors; permanent ones stop the run."""
    for attempt in range(attempts):
        try:
            return await call()
        except TransientError as e:
            if attempt == attempts - 1:
                raise AgoraError(f"batch API: {what} kept failing: {e}. Rerun to resume; in-flight batches "
                                 "are in the journal and will be picked up, not resubmitted") from e
            await asyncio.sleep(max(e.retry_after or 0.0, base_s * 2 ** attempt))
        except PermanentError as e:
            raise AgoraError(f"batch API: {what}: {e}") from e


async def run_batch(client: BatchClient, requests: list[Request], s: Sampling, *, cache: RequestCache,
                    ledger: Ledger, progress: Progress, poll_s: float, max_resubmits: int) -> list[Result]:
    """Results in request order, as `run_requests` returns them. Raises CapReached like it, with the results."""
    if ledger.price.batch_discount is None:
        raise AgoraError("generator.batch=true needs generator.price_usd_per_mtok.batch_discount (0.5 for OpenAI "
                         "and Anthropic); this generator has no batch API price")
    journal = BatchJournal(cache.path.with_suffix(".batches.jsonl"))
    progress.add(len(requests))
    by_key = {r.key: r for r in requests}
    results: dict[str, Result] = {}
    for r in requests:
        hit = cache.get(r.key)
        if hit is not None:
            ledger.record(hit, cached=True)
            results[r.key] = Result(r, hit, cached=True)
            progress.step(hit, cached=True)
    kw = _sampling_kw(s)

    def worst(key: str) -> float:
        return ledger.worst_case(sum(len(m["content"]) for m in by_key[key].messages), s.max_tokens, batch=True)

    # Batches a killed run left in flight come first, all of them: they are paid for already.
    inflight = {bid: list(keys) for bid, keys in journal.open.items()}
    held = {bid: sum(worst(k) for k in keys if k in by_key and k not in results) for bid, keys in inflight.items()}
    for usd in held.values():
        ledger.reserved_usd += usd
    attempts: dict[str, int] = {}
    capped = False
    while True:
        busy = {k for keys in inflight.values() for k in keys}
        todo = [k for k in by_key if k not in results and k not in busy]
        todo = [k for k in todo if attempts.get(k, 0) <= max_resubmits]
        if todo and not capped:
            fit, usd = [], 0.0
            for k in todo:
                w = worst(k)
                if not ledger.reserve(w):
                    capped = True
                    break
                fit.append(k)
                usd += w
            if fit:
                bid = await _with_retries(lambda fit=fit: client.batch_submit([(k, client.body(by_key[k].messages, **kw))
                                                                            for k in fit]), "submit")
                journal.submitted(bid, fit)
                log.info("batch %s submitted: %d requests", bid, len(fit))
                inflight[bid], held[bid] = fit, usd
                for k in fit:
                    attempts[k] = attempts.get(k, 0) + 1
        if not inflight:
            break
        await _collect_one(client, inflight, held, journal, by_key, results, cache, ledger, progress, poll_s)
    for k, r in by_key.items():
        if k not in results:
            if capped and attempts.get(k, 0) == 0:
                results[k] = Result(r, None, error=CAP_MESSAGE)
            else:
                ledger.totals.failed += 1
                results[k] = Result(r, None, error=f"gave up after {max_resubmits} batch resubmissions")
                progress.step(None, cached=False)
    ordered = [results[r.key] for r in requests]
    if capped:
        raise CapReached(f"spent ${ledger.totals.cost_usd:.4f} of budget.max_usd=${ledger.max_usd}", ordered)
    return ordered


def _record(key: str, c: Completion, batch_id: str, ledger: Ledger) -> dict:
    rec = {"key": key, "text": c.text, "finish_reason": c.finish_reason, "input_tokens": c.input_tokens,
           "output_tokens": c.output_tokens, "latency_s": 0.0, "retries": 0, "batch": batch_id, "ts": time.time()}
    rec["cost_usd"] = ledger.price.cost(c.input_tokens, c.output_tokens, batch=True)
    return rec


async def _collect_one(client: BatchClient, inflight: dict[str, list[str]], held: dict[str, float],
                       journal: BatchJournal, by_key: dict[str, Request], results: dict[str, Result],
                       cache: RequestCache, ledger: Ledger, progress: Progress, poll_s: float) -> None:
    """Wait until one in-flight batch ends, then take in its results."""
    while True:
        for bid in list(inflight):
            state = await _with_retries(lambda bid=bid: client.batch_state(bid), f"poll {bid}")
            progress.bar.set_postfix_str(f"batch {bid[-12:]} {state.status} {state.done}/{state.total} "
                                         f"${ledger.totals.cost_usd:.4f}", refresh=True)
            if state.ended:
                break
        else:
            await asyncio.sleep(poll_s)
            continue
        break
    got = await _with_retries(lambda: client.batch_results(bid), f"results of {bid}")
    for k in inflight.pop(bid):
        out = got.get(k, TransientError("batch expired: no result"))
        req = by_key.get(k)
        if req is None or k in results:   # another round's request from a batch a killed run left: cache it
            if isinstance(out, Completion) and cache.get(k) is None:
                cache.put(_record(k, out, bid, ledger))
            continue
        if isinstance(out, Completion):
            rec = _record(k, out, bid, ledger)
            ledger.record(rec, cached=False)
            cache.put(rec)
            results[k] = Result(req, rec)
            progress.step(rec, cached=False)
        elif isinstance(out, PermanentError):
            ledger.totals.failed += 1
            results[k] = Result(req, None, error=f"permanent: {out}")
            progress.step(None, cached=False)
        else:   # transient, expired, canceled: counted, and resubmitted by the caller
            kind = str(out).split(":")[0]
            ledger.totals.errors[kind] = ledger.totals.errors.get(kind, 0) + 1
            ledger.totals.retries += 1
    ledger.release(held.pop(bid))
    journal.closed(bid)
