"""Instance generation's demonstration pool grows as the run goes, and a killed run resumes with the same prompts.

Generation runs for real (`agora.stages.generate.run`) against a priced loopback server (tests/pricedserver.py) that
answers every IG prompt with a kept math example. Issue 23, item 2: round 0 used to ask for a quarter of the target
and round 1 for all the rest, so a quarter of the prompts showed three seeds and every later prompt's generation
demonstration came from round 0's output; these checks failed then. The original adds each kept example to its
pool at once; here rounds grow geometrically (`open_round_size`), and a rerun after a kill must rebuild exactly the
same prompts (cache hits) and end with the same data as an uninterrupted run.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from agora import AgoraError
from agora.checks import check_cell
from agora.stages.generate import run
from agora.store import read_jsonl
from agora.tracking import FileTracker
from conftest import compose_cfg
from faultproxy import FaultProxy
from pricedserver import PricedServer

N = 40


def args(url: str, store: Path) -> list[str]:
    return ["generator=gpt4o", "generator.limits.tpm=null", "generator.sampling.max_tokens=128",
            f"generator.base_url={url}", "generator.limits.max_retries=0", "generator.limits.concurrency=4",
            f"budget.n={N}", "mode=instance_generation", "tracking=none", f"store_dir={store}"]


def generate(overrides: list[str], tmp: Path) -> dict:
    cfg = compose_cfg("generate", overrides)
    check_cell(cfg)
    run(cfg, FileTracker(tmp / "tracking", set()))
    (manifest,) = Path(cfg.store_dir, "data").rglob("manifest.json")
    return {"summary": json.loads(manifest.read_text())["summary"], "rows": read_jsonl(manifest.parent / "data.jsonl")}


def generation_demos(row: dict) -> list[int]:
    """The request positions of the earlier generations a row's prompt showed."""
    return [int(d.removeprefix("gen-")) for d in row["demo_ids"] if d.startswith("gen-")]


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-agora-ig-rounds-NOT-A-KEY")


def test_late_prompts_show_generations_of_later_rounds(tmp_path, key):
    """Nearly every prompt shows a generation, and the second half's come from well past a quarter of the run (the
    old round 0): the pool grew between rounds."""
    with PricedServer(latency_s=0.01) as srv:
        data = generate(args(srv.url, tmp_path / "store"), tmp_path)
    rows = data["rows"]
    assert len(rows) == N and data["summary"]["dropped"] == 0
    three_seeds = [r["index"] for r in rows if not generation_demos(r)]
    assert len(three_seeds) <= 2, three_seeds   # round 0 only (2 requests); it was N / 4 = 10
    late = [g for r in rows if r["index"] >= N // 2 for g in generation_demos(r)]
    assert max(late) >= N // 4 and sum(g >= math.ceil(N / 4) for g in late) >= len(late) // 3, late
    for r in rows:   # a prompt shows only what earlier requests kept, never its own round's
        assert all(g < r["index"] for g in generation_demos(r)), r


def test_a_killed_run_resumes_with_the_same_prompts(tmp_path, key):
    """A run whose server stops answering after 13 requests (mid-round) commits nothing; its rerun sends only the
    requests that never landed, and ends with exactly the data an uninterrupted run keeps."""
    with PricedServer(latency_s=0.01) as srv:
        whole = generate(args(srv.url, tmp_path / "whole"), tmp_path)
        store = tmp_path / "killed"
        with FaultProxy(srv.url, schedule={k: "500" for k in range(14, 10_000)}) as proxy:
            with pytest.raises(AgoraError, match="rerun the same command"):
                generate(args(proxy.url, store), tmp_path)
            landed = sum(proxy.served.values())
            proxy.schedule = {}   # the server is back, at the same address (the request cache is per endpoint)
            served_before = srv.served
            resumed = generate(args(proxy.url, store), tmp_path)
            sent_on_rerun = srv.served - served_before
            assert max(proxy.served.values()) == 1   # nothing was paid for twice
    assert [(r["instruction"], r["response"], r["demo_ids"]) for r in resumed["rows"]] == \
        [(r["instruction"], r["response"], r["demo_ids"]) for r in whole["rows"]]
    s = resumed["summary"]
    assert s["cached"] == landed == 13 and s["sent"] == sent_on_rerun == whole["summary"]["sent"] - landed, s
