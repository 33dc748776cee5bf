"""The dry run's pre-flight cost: real prompts from the real seeds, scaled to the cell's volume."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from agora.engine.ledger import Price
from agora.estimate import CHARS_PER_TOKEN, preflight, reply_chars
from conftest import ROOT, SHARED_DATA, needs_shared


def test_preflight_scales_the_sampled_prompts_to_the_volume():
    price = Price(2.5, 10.0, "2024-12", 0.5)
    prompts = [[{"role": "system", "content": "s" * 100}, {"role": "user", "content": "u" * 300}],
               [{"role": "user", "content": "u" * 800}]]
    est = preflight(prompts, [400, 1200], 1000, price)
    # 600 prompt characters and 800 reply characters on average, 4 a token, 1,000 requests
    assert (est.requests, est.input_tokens, est.output_tokens) == (1000, 150_000, 200_000)
    assert est.cost_usd == pytest.approx(150_000 * 2.5e-6 + 200_000 * 10e-6)
    assert preflight(prompts, [400, 1200], 1000, price, batch=True).cost_usd == pytest.approx(est.cost_usd / 2)
    assert preflight(prompts, [400, 1200], 1000, price, keep_rate=0.5).requests == 2000


def test_reply_length_follows_the_seed_example_and_the_token_cap():
    row = {"question": "q" * 100, "solution": "s" * 300}
    assert reply_chars("response_generation", row, 4096) == 300
    assert reply_chars("instance_generation", row, 4096) == 440
    assert reply_chars("response_generation", {"question": "q" * 50, "solution": ""}, 4096) == 100
    assert reply_chars("quality_enhancement", {"question": "q" * 9000, "solution": ""}, 100) == 100 * CHARS_PER_TOKEN


def test_dry_run_prints_the_cost_and_warns_past_the_cap(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    out = subprocess.run([sys.executable, str(ROOT / "generate.py"), "generator=gpt4o", "mode=response_generation",
                          "budget.n=5000", "dry_run=true", "tracking=none", f"store_dir={tmp_path}"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    line = next(x for x in out.stdout.splitlines() if "pre-flight estimate" in x)
    usd = float(line.split("= $")[1].split()[0].replace(",", ""))
    assert "5000 requests" in line and usd > 1.0    # 5,000 GPT-4o answers cost dollars, not cents
    assert "over budget.max_usd=$1.0" in out.stdout
    assert not list(tmp_path.rglob("data.jsonl"))   # nothing generated, nothing committed


@needs_shared("gsm8k", "train.jsonl")
def test_one_agorabench_cell_priced_on_stand_ins(tmp_path):
    """benchmarks/dry_run_agorabench.py on one cell: the preset's -m sweep with every hub source pointed at a
    stand-in file (the other domains' too), no API key, no model; the paper's 14,856 math IG seeds, 10,000 requests."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "dry_run_agorabench.py"), "--out", str(tmp_path),
                          "--data", str(SHARED_DATA), "--generators", "gpt4o", "--domains", "math", "--modes",
                          "instance_generation"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    result = json.loads((tmp_path / "dry_run_agorabench.json").read_text())
    (cell,) = result["cells"]
    assert (cell["generator"], cell["domain"], cell["mode"]) == ("gpt4o", "math", "instance_generation")
    assert cell["seeds"] == 14856 and cell["requests"] == 10000 and not result["errors"]
    assert cell["usd"] == pytest.approx(cell["input_tokens"] * 2.5e-6 + cell["output_tokens"] * 10e-6, abs=0.01)
    assert 500 < cell["input_tokens"] / cell["requests"] < 3000   # three demonstrations and the rules, in tokens
