"""Agora's `anthropic` client against a real Anthropic Messages server: vLLM's CPU build serving SmolLM2.

Why it exists: without a key or a network there is no Claude, but vLLM answers `/v1/messages` with real
usage, stop reasons and errors, so the client, the engine (cache, ledger, retries through
`tests/faultproxy.py`) and a whole `generate.py` cell run over the Anthropic protocol for real. vLLM's own
Prometheus counters are the server-side count that Agora's ledger must match. One server per test session
(conftest.py `vllm_server`; the first run also builds vLLM's venv, see tests/vllm_server.py).
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections import Counter

import pytest

from agora.engine.cache import RequestCache, request_key
from agora.engine.ledger import Ledger, Price
from agora.engine.runner import Limits, Request, Sampling, run_requests
from agora.generators import make_client
from conftest import ROOT
from faultproxy import FaultProxy

pytestmark = pytest.mark.slow  # minutes the first time (venv + server start); runs in the default suite
TRANSPORTS = ["aiohttp", "sdk"]
Q = [{"role": "system", "content": "You are terse."},
     {"role": "user", "content": "What is 2+3? Answer with a number."}]


def client(url: str, model: str, transport: str = "aiohttp"):
    return make_client("anthropic", model=model, base_url=url, api_key=None, timeout_s=120, concurrency=4,
                       transport=transport)


def metrics(url: str) -> Counter:
    """vLLM's server-side totals: finished requests, prompt tokens and generated tokens."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as r:
        text = r.read().decode()
    out: Counter = Counter()
    for line in text.splitlines():
        name = line.split("{")[0].split(" ")[0]
        if name in ("vllm:request_success_total", "vllm:prompt_tokens_total", "vllm:generation_tokens_total"):
            out[name.removeprefix("vllm:").removesuffix("_total")] += int(float(line.rsplit(" ", 1)[1]))
    return out


def served_since(url: str, before: Counter, requests: int) -> Counter:
    """The server's counts since `before`, once it has counted `requests` (its counters trail the replies)."""
    deadline = time.monotonic() + 10
    while True:
        delta = metrics(url) - before
        if delta["request_success"] >= requests or time.monotonic() > deadline:
            return delta
        time.sleep(0.2)


async def complete(url, model, transport, **kw):
    c = client(url, model, transport)
    try:
        return await c.complete(Q, **{"temperature": 0.0, "top_p": 1.0, "max_tokens": 64, "stop": None,
                                      "response_format": None, **kw})
    finally:
        await c.aclose()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_complete_normalises_stop_reasons_and_reads_usage(vllm_server, transport):
    url, model = vllm_server
    before = metrics(url)
    full = asyncio.run(complete(url, model, transport))
    assert full.text.strip() and full.finish_reason == "stop"          # end_turn
    assert full.input_tokens > 0 and 0 < full.output_tokens < 64
    cut = asyncio.run(complete(url, model, transport, max_tokens=5))
    assert cut.finish_reason == "length" and cut.output_tokens == 5    # max_tokens
    stopped = asyncio.run(complete(url, model, transport, stop=["="]))
    assert stopped.finish_reason == "stop" and "=" not in stopped.text  # stop_sequence
    served = served_since(url, before, 3)
    assert served["request_success"] == 3
    assert served["prompt_tokens"] == sum(c.input_tokens for c in (full, cut, stopped))
    assert served["generation_tokens"] == sum(c.output_tokens for c in (full, cut, stopped))


def engine_requests(url: str, model: str, n: int) -> list[Request]:
    msgs = [[{"role": "user", "content": f"Write one sentence about the number {i}."}] for i in range(n)]
    return [Request(request_key(endpoint=url, model=model, messages=m, sampling={}, replicate=i), m)
            for i, m in enumerate(msgs)]


async def engine(url, model, reqs, cache, ledger, limits, transport="aiohttp"):
    c = client(url, model, transport)
    try:
        return await run_requests(c, reqs, Sampling(1.0, 0.9, 48, None, None), cache=cache, ledger=ledger,
                                  limits=limits)
    finally:
        await c.aclose()


def test_engine_ledger_matches_the_server_and_a_rerun_is_all_cache_hits(vllm_server, tmp_path):
    url, model = vllm_server
    reqs, price = engine_requests(url, model, 6), Price(1.0, 2.0, "test")
    cache, ledger = RequestCache(tmp_path / "r.jsonl"), Ledger(price, max_usd=1.0)
    before = metrics(url)
    results = asyncio.run(engine(url, model, reqs, cache, ledger, Limits(concurrency=3)))
    cache.close()
    assert all(r.record and not r.error and not r.cached for r in results)
    t = ledger.totals
    assert (t.requests, t.sent, t.cached, t.failed, t.retries) == (6, 6, 0, 0, 0)
    assert t.input_tokens == sum(r.record["input_tokens"] for r in results) > 0
    assert t.output_tokens == sum(r.record["output_tokens"] for r in results) > 0
    assert t.cost_usd == pytest.approx(price.cost(t.input_tokens, t.output_tokens))
    served = served_since(url, before, 6)
    assert (served["request_success"], served["prompt_tokens"], served["generation_tokens"]) == \
        (6, t.input_tokens, t.output_tokens)

    cache2, ledger2 = RequestCache(tmp_path / "r.jsonl"), Ledger(price, max_usd=1.0)  # as a rerun reads it back
    again = asyncio.run(engine(url, model, reqs, cache2, ledger2, Limits(concurrency=3)))
    cache2.close()
    assert all(r.cached for r in again) and [r.record for r in again] == [r.record for r in results]
    t2 = ledger2.totals
    assert (t2.requests, t2.sent, t2.cached, t2.input_tokens, t2.output_tokens) == \
        (6, 0, 6, t.input_tokens, t.output_tokens)
    assert metrics(url)["request_success"] == before["request_success"] + 6  # nothing was sent again


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_faults_through_the_anthropic_client_are_retried_and_counted(vllm_server, tmp_path, transport):
    url, model = vllm_server
    schedule = {1: "truncate", 2: "429", 4: "500", 6: "reset"}   # proxy POST numbers; concurrency 1 keeps order
    cache, ledger = RequestCache(tmp_path / "r.jsonl"), Ledger(Price(0.0, 0.0, "test"), max_usd=None)
    limits = Limits(concurrency=1, max_retries=5, backoff_base_s=0.05, backoff_max_s=0.2)
    with FaultProxy(f"{url}/v1", schedule) as proxy:
        t0 = time.monotonic()
        results = asyncio.run(engine(proxy.url.removesuffix("/v1"), model, engine_requests(url, model, 4), cache,
                                     ledger, limits, transport))
        elapsed = time.monotonic() - t0
    cache.close()
    assert all(r.record and not r.error for r in results)
    assert proxy.injected == Counter(schedule.values())
    t = ledger.totals
    assert t.failed == 0 and t.retries == len(schedule) and sum(t.errors.values()) == len(schedule), t.errors
    assert t.errors.get("HTTP 429") == 1 and t.errors.get("JSONDecodeError") == 1, t.errors
    assert [r.record["retries"] for r in results] == [2, 1, 1, 0]   # truncate then 429 hit the first request
    assert elapsed >= 0.5                                             # the 429's retry-after: 0.5 was honoured
    # Only the torn reply reached vLLM and was paid for twice; the other faults never left the proxy.
    assert sum(proxy.served.values()) == 4 + 1 and max(proxy.served.values()) == 2
    assert t.output_tokens == sum(r.record["output_tokens"] for r in results)


def generate(url: str, model: str, cwd, store) -> subprocess.CompletedProcess:
    # Instruction following x response generation: SmolLM2-135M, unconstrained, rarely follows the math meta-prompt,
    # and a cell that keeps nothing is a failed cell (exit 2); plain answers to instructions it mostly gets through,
    # but it samples at temperature 1 and often runs past max_tokens (finish_length) on an essay: 4 instructions,
    # 4 tries each (with 2, the first two seeds are both essays, cut off on 60-85% of tries: CI once saw all 8 cut
    # off; with 4, 3 runs here dropped 7, 3 and 1 of 9-16 tries and kept 4).
    args = ["generator=vllm_anthropic", f"generator.model={model}", f"generator.base_url={url}", "budget=smoke",
            "domain=instruction_following", "mode=response_generation", "budget.n=4", "budget.max_attempts_factor=4",
            "tracking=none"]
    env = {**os.environ, "AGORA_STORE": str(store), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    p = subprocess.run([sys.executable, str(ROOT / "generate.py"), *args], cwd=cwd, env=env, capture_output=True,
                       text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    return p


def test_generate_cell_over_the_anthropic_protocol(vllm_server, tmp_path):
    """The accounting over the Anthropic protocol: every request the server served is in the ledger, and every reply
    is kept or dropped with a reason."""
    url, model = vllm_server
    store = tmp_path / "store"
    before = metrics(url)
    p = generate(url, model, tmp_path, store)
    out = next((store / "data").rglob("manifest.json")).parent
    manifest = json.loads((out / "manifest.json").read_text())
    s = manifest["summary"]
    assert 4 <= s["requests"] <= 16 and s["sent"] == s["requests"] and s["failed"] == 0, s
    served = served_since(url, before, s["sent"])
    assert (served["request_success"], served["prompt_tokens"], served["generation_tokens"]) == \
        (s["sent"], s["input_tokens"], s["output_tokens"]), (served, s)
    assert s["input_tokens"] > 0 and s["output_tokens"] > 0 and s["cost_usd"] == 0.0
    assert s["kept"] + s["surplus"] + s["dropped"] == s["requests"] and s["kept"] >= 1
    dropped = [json.loads(x) for x in (out / "dropped.jsonl").read_text().splitlines()]
    assert len(dropped) == s["dropped"] == sum(manifest["drop_reasons"].values())
    assert all(d["reason"] for d in dropped) and Counter(d["reason"] for d in dropped) == manifest["drop_reasons"]
    assert len((out / "data.jsonl").read_text().splitlines()) == s["kept"]
    assert f"kept {s['kept']}/4" in p.stdout

    again = generate(url, model, tmp_path, store)
    assert "cache hit" in again.stdout
    assert metrics(url)["request_success"] == before["request_success"] + s["sent"]  # nothing sent twice


def test_message_batches_resubmit_only_the_expired(vllm_server, tmp_path):
    # Anthropic Message Batches through the official SDK, against tests/batchserver.py, which runs every
    # request on vLLM's /v1/messages. Request 1 expires in the first batch and is resubmitted alone.
    from agora.engine.batch import run_batch
    from agora.engine.runner import Progress
    from batchserver import BatchServer

    url, model = vllm_server
    reqs = [Request(f"b{i}", [{"role": "user", "content": f"What is {i}+{i}? Answer with a number."}])
            for i in range(4)]
    s = Sampling(temperature=0.0, top_p=1.0, max_tokens=16, stop=None, response_format=None)
    ledger = Ledger(Price(3.0, 15.0, "test", batch_discount=0.5), max_usd=None)
    cache = RequestCache(tmp_path / "requests.jsonl")

    async def go(bs):
        c = client(bs.url, model)
        try:
            return await run_batch(c, reqs, s, cache=cache, ledger=ledger, progress=Progress(ledger, "batch"),
                                   poll_s=0.2, max_resubmits=2)
        finally:
            await c.aclose()

    with BatchServer(url + "/v1", faults={1: "expire"}, process_delay_s=0.2) as bs:
        results = asyncio.run(go(bs))
    cache.close()
    assert all(r.record and r.record["output_tokens"] > 0 for r in results)
    batches = list(bs.batches.values())
    assert [len(b["requests"]) for b in batches] == [4, 1] and batches[1]["requests"][0]["custom_id"] == "b1"
    assert max(bs.served.values()) == 1 and len(bs.served) == 4
    t = ledger.totals
    assert t.cost_usd == pytest.approx((t.input_tokens * 3.0 + t.output_tokens * 15.0) / 1e6 * 0.5)
    assert t.errors == {"batch expired": 1} and t.failed == 0
