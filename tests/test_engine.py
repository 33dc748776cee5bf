"""The request cache survives a torn last line; the ledger prices from usage, refuses unknown prices, holds the cap."""
from __future__ import annotations

import json

import pytest

from agora import AgoraError
from agora.engine.cache import RequestCache, request_key
from agora.engine.ledger import Ledger, Price


def rec(key: str, i: int = 100, o: int = 50) -> dict:
    return {"key": key, "text": "x", "finish_reason": "stop", "input_tokens": i, "output_tokens": o}


def test_cache_tolerates_a_torn_last_line_and_keeps_appending(tmp_path):
    path = tmp_path / "r.jsonl"
    c = RequestCache(path)
    c.put(rec("a"))
    c.put(rec("b"))
    c.close()
    with open(path, "a") as f:
        f.write('{"key": "c", "text": "half a rec')  # the process died mid-write
    c = RequestCache(path)
    assert set(c.keys()) == {"a", "b"} and c.get("b")["key"] == "b"
    c.put(rec("d"))
    c.close()
    lines = path.read_text().splitlines()
    assert [json.loads(x)["key"] for x in lines] == ["a", "b", "d"]


def test_request_key_depends_on_what_changes_the_answer():
    base = dict(endpoint="https://api.openai.com/v1", model="m", messages=[{"role": "user", "content": "hi"}],
                sampling={"temperature": 1.0}, replicate=0)
    k = request_key(**base)
    assert k == request_key(**base)
    for change in ({"endpoint": "http://127.0.0.1:8000/v1"}, {"model": "m2"}, {"replicate": 1},
                   {"sampling": {"temperature": 0.5}}, {"messages": [{"role": "user", "content": "hi!"}]}):
        assert request_key(**{**base, **change}) != k


def test_price_from_usage_and_unknown_price_is_an_error():
    p = Price.from_table({"input": 2.5, "output": 10.0, "as_of": "2024-12"}, "gpt4o")
    assert p.cost(1_000_000, 100_000) == pytest.approx(3.5)
    with pytest.raises(AgoraError, match="no price"):
        Price.from_table({"input": None, "output": 10.0}, "mystery")


def test_cap_reservation_never_lets_spend_cross_the_cap():
    led = Ledger(Price(1.0, 1.0, "x"), max_usd=0.01)
    worst = led.worst_case(prompt_chars=2000, max_tokens=3000)  # $0.005
    assert led.reserve(worst) and led.reserve(worst)
    assert not led.reserve(worst)  # a third in flight could cross $0.01
    led.release(worst)
    led.record(rec("a", 1000, 1000), cached=False)  # $0.002 actually spent
    assert led.totals.cost_usd == pytest.approx(0.002)
    assert led.reserve(0.003) and not led.reserve(0.001)
