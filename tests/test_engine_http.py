"""Flow control over real HTTP: the engine against the loopback latency server of `benchmarks/`.

That server enforces an RPM limit with a token bucket and answers 429 + retry-after, as providers do, and
speaks both wire protocols with `usage`. The model-backed paths are tested against llama.cpp and vLLM
elsewhere; here the server is fast, so the tests can send hundreds of requests in seconds.
"""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request

import pytest

from agora.engine.cache import RequestCache
from agora.engine.ledger import Ledger, Price
from agora.engine.runner import Limits, Request, Sampling, per_minute_bucket, run_requests
from agora.generators import make_client
from agora.generators.local_server import free_port
from conftest import ROOT

SAMPLING = Sampling(temperature=1.0, top_p=0.9, max_tokens=16, stop=None, response_format=None)


class Server:
    def __init__(self, latency: float, rpm: float | None = None):
        self.port = free_port()
        args = [sys.executable, str(ROOT / "benchmarks" / "latency_server.py"), "--port", str(self.port),
                "--latency", str(latency)] + (["--rpm", str(rpm)] if rpm else [])
        self.proc = subprocess.Popen(args)
        self.url = f"http://127.0.0.1:{self.port}"
        for _ in range(100):
            try:
                self.stats()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("latency server did not start")

    def stats(self) -> dict:
        with urllib.request.urlopen(self.url + "/stats", timeout=5) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def server(request):
    s = Server(*request.param)
    yield s
    s.stop()


def send(url: str, n: int, limits: Limits, tmp_path, provider: str = "openai", transport: str = "aiohttp"):
    base = url + "/v1" if provider == "openai" else url
    reqs = [Request(f"k{i}", [{"role": "user", "content": f"question {i}"}]) for i in range(n)]
    ledger = Ledger(Price(1.0, 2.0, "test"), max_usd=None)
    cache = RequestCache(tmp_path / f"{provider}-{transport}.jsonl")

    async def go():
        client = make_client(provider, model="bench", base_url=base, api_key=None, timeout_s=30,
                             concurrency=limits.concurrency, transport=transport)
        try:
            return await run_requests(client, reqs, SAMPLING, cache=cache, ledger=ledger, limits=limits)
        finally:
            await client.aclose()

    t0 = time.perf_counter()
    results = asyncio.run(go())
    cache.close()
    return results, ledger, time.perf_counter() - t0


@pytest.mark.parametrize("server", [(0.05, None)], indirect=True)
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("transport", ["aiohttp", "sdk"])
def test_both_protocols_and_transports_price_from_usage(server, provider, transport, tmp_path):
    results, ledger, _ = send(server.url, 40, Limits(concurrency=16), tmp_path, provider, transport)
    assert all(r.record and r.record["text"] == "42" and r.record["finish_reason"] == "stop" for r in results)
    t = ledger.totals
    assert (t.sent, t.input_tokens, t.output_tokens) == (40, 40 * 20, 40 * 8)   # the server's usage, summed
    assert t.cost_usd == pytest.approx(40 * (20 * 1.0 + 8 * 2.0) / 1e6)
    assert server.stats()["ok"] == 40


@pytest.mark.parametrize("server", [(0.02, 1200)], indirect=True)
def test_rpm_limit_is_kept_without_429s(server, tmp_path):
    # 1,200 RPM = 20/s with a one-second burst: 120 requests take about (120 - 20) / 20 = 5 s.
    results, ledger, seconds = send(server.url, 120, Limits(concurrency=64, rpm=1200), tmp_path)
    stats = server.stats()
    assert all(r.record for r in results) and stats["ok"] == 120
    assert stats["limited"] <= 6, stats           # under 5% rejected
    assert 4.0 <= seconds <= 8.0, seconds


@pytest.mark.parametrize("server", [(0.02, 600)], indirect=True)
def test_an_unannounced_limit_slows_the_run_and_loses_nothing(server, tmp_path):
    # No rpm in the option: the engine learns of the limit from 429 + retry-after, pauses every sender,
    # and still finishes every request, counting each 429 it saw.
    results, ledger, seconds = send(server.url, 30, Limits(concurrency=32, max_retries=20, backoff_base_s=0.05,
                                                           backoff_max_s=1.0), tmp_path)
    stats = server.stats()
    assert all(r.record for r in results) and stats["ok"] == 30 and ledger.totals.failed == 0
    assert stats["limited"] > 0
    assert sum(ledger.totals.errors.values()) == stats["limited"]     # every 429 counted
    assert ledger.totals.retries == stats["limited"]


def test_rate_buckets_hold_one_second_not_one_minute():
    assert per_minute_bucket(3000).max_rate == 50 and per_minute_bucket(3000).time_period == 1.0
    slow = per_minute_bucket(30)            # under one a second: one token every two seconds
    assert (slow.max_rate, slow.time_period) == (1, 2.0)


def test_batch_price_is_discounted_and_a_missing_discount_is_an_error():
    p = Price(2.5, 10.0, "2024-12", batch_discount=0.5)
    assert p.cost(1_000_000, 0, batch=True) == pytest.approx(1.25)
    from agora import AgoraError
    with pytest.raises(AgoraError, match="batch_discount"):
        Price(2.5, 10.0, "2024-12").cost(10, 10, batch=True)
