"""The control generators: `generator=human` replays the domain's human data, `generator=human_corrupted` corrupts a
share of it. Generation runs for real (`agora.stages.generate.run`, as generate.py calls it) on the composed configs, into a
tmp store; no model, no server."""
from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from agora import AgoraError
from agora.checks import check_cell
from agora.controls import corrupt
from agora.domains import math as math_domain
from agora.stages import split_rows, without_benchmarks
from agora.stages.generate import run
from agora.store import digest, read_jsonl
from agora.specs import data_spec
from agora.tracking import FileTracker
from agora.stages import train as train_stage
from agora.stages.train import training_rows
from conftest import compose_cfg

N = 12   # budget=smoke


def generate(tmp: Path, *overrides: str) -> dict:
    cfg = compose_cfg("generate", ["tracking=none", f"store_dir={tmp / 'store'}", *overrides])
    check_cell(cfg)
    tracker = FileTracker(tmp / "run")
    run(cfg, tracker)
    key = digest(data_spec(cfg))
    [d] = Path(cfg.store_dir, "data").glob(f"*/*/{cfg.generator.name}/*-{key}")
    return {"cfg": cfg, "dir": d, "rows": read_jsonl(d / "data.jsonl"), "seeds": read_jsonl(d / "seeds.jsonl"),
            "summary": json.loads((d / "manifest.json").read_text())["summary"], "metrics": tracker.metrics}


def reference_rows(cfg) -> list[dict]:
    """The rows reference=human_sft trains on, computed here as train_reference computed them before controls."""
    human = split_rows(cfg, list(cfg.domain.human[cfg.budget.data]), "train", cfg.budget.n_seeds)
    return [{"instruction": r["question"], "response": r["solution"]} for r in without_benchmarks(cfg, human)]


def test_human_is_the_reference_data_committed_like_any_cell(tmp_path):
    g = generate(tmp_path, "generator=human")
    ref = reference_rows(g["cfg"])
    assert len(ref) > N
    assert [{"instruction": r["instruction"], "response": r["response"]} for r in g["rows"]] == ref[:N]
    assert not any(r["corrupted"] for r in g["rows"])
    assert [s["question"] for s in g["seeds"]] == [r["instruction"] for r in ref[:N]]   # the human rows used
    s = g["summary"]
    assert (s["kept"], s["target"], s["dropped"], s["corrupted"], s["control"]) == (N, N, 0, 0, "human")
    assert s["cost_usd"] == 0 and s["requests"] == 0 and s["human_rows"] == len(ref)
    assert json.loads((g["dir"] / "ledger.json").read_text())["cost_usd"] == 0
    assert (g["dir"] / "dropped.jsonl").read_text() == ""
    assert g["metrics"]["gen/cache_hit"] == 0
    again = FileTracker(tmp_path / "rerun")   # a rerun is a cache hit
    run(g["cfg"], again)
    assert again.metrics["gen/cache_hit"] == 1 and again.metrics["gen/kept"] == N


def test_volume_over_the_human_set_is_exactly_the_reference_set(tmp_path):
    g = generate(tmp_path, "generator=human", "budget.n=100000")
    ref = reference_rows(g["cfg"])
    assert [{"instruction": r["instruction"], "response": r["response"]} for r in g["rows"]] == ref
    assert g["summary"]["kept"] == len(ref) == g["summary"]["human_rows"]


def test_budget_control_covers_the_human_set_with_the_measured_recipe(tmp_path):
    """budget=control (the documented control sweep): its n takes every human row, so the human control's student
    trains on exactly the reference's rows, with the 80-step, lr 1e-4 recipe measured to open the gap."""
    g = generate(tmp_path, "budget=control", "generator=human")
    cfg = g["cfg"]
    rows, _ = training_rows(cfg, g["dir"])
    assert rows == reference_rows(cfg) == train_stage.reference_rows(cfg) and len(rows) == cfg.budget.n_seeds
    # what makes train.py commit the reference's weights for it (a twin); the corrupted control's rows differ
    bad = generate(tmp_path / "bad", "budget=control", "generator=human_corrupted")
    assert training_rows(bad["cfg"], bad["dir"])[0] != train_stage.reference_rows(bad["cfg"])
    assert (cfg.train.max_steps, cfg.train.learning_rate, cfg.budget.eval_limit, cfg.intrinsic.enabled) == (
        80, 1e-4, 64, False)


def test_a_control_ignores_the_mode(tmp_path):
    ig = generate(tmp_path / "ig", "generator=human")
    rg = generate(tmp_path / "rg", "generator=human", "mode=response_generation")
    assert [(r["instruction"], r["response"]) for r in ig["rows"]] == [(r["instruction"], r["response"])
                                                                        for r in rg["rows"]]


def test_include_seeds_adds_nothing_to_a_control(tmp_path):
    g = generate(tmp_path, "generator=human", "train.include_seeds=true")
    train_cfg = compose_cfg("train", ["generator=human", "train.include_seeds=true"])
    rows, n_data = training_rows(train_cfg, g["dir"])
    assert len(rows) == n_data == N
    # The same folder read as a generator's data would take its seeds too: the guard is what keeps them out.
    other, _ = training_rows(compose_cfg("train", ["train.include_seeds=true"]), g["dir"])
    assert len(other) == 2 * N


def test_shuffle_corrupts_round_rate_n_rows_and_only_those(tmp_path):
    human = generate(tmp_path / "h", "generator=human")["rows"]
    for rate in (0.5, 0.25):
        g = generate(tmp_path / str(rate), "generator=human_corrupted", f"generator.corrupt.rate={rate}")
        rows = g["rows"]
        bad = [i for i, r in enumerate(rows) if r["corrupted"]]
        assert len(bad) == round(rate * N) == g["summary"]["corrupted"]
        assert [r["instruction"] for r in rows] == [r["instruction"] for r in human]
        for i, (r, h) in enumerate(zip(rows, human)):
            assert (r["response"] != h["response"]) == (i in bad)
        # shuffled among themselves: the corrupted rows hold the same responses, each at another row
        assert sorted(rows[i]["response"] for i in bad) == sorted(human[i]["response"] for i in bad)


def test_wrong_answer_changes_the_result_value_only(tmp_path):
    human = generate(tmp_path / "h", "generator=human")["rows"]
    g = generate(tmp_path / "w", "generator=human_corrupted", "generator.corrupt.how=wrong_answer")
    rows, result = g["rows"], re.compile(r"\[RESULT\](.*?)\[/RESULT\]")
    assert sum(r["corrupted"] for r in rows) == round(0.5 * N)
    for r, h, seed in zip(rows, human, g["seeds"]):
        right = math_domain.score("synthetic_gsm", r["response"], seed)   # the benchmark's own scorer
        if not r["corrupted"]:
            assert r["response"] == h["response"] and right
            continue
        assert not right
        assert result.search(r["response"]).group(1).strip() != seed["answer"]
        assert result.sub("", r["response"]) == result.sub("", h["response"])   # the working is untouched


def test_wrong_answer_marks():
    rng = random.Random(0)
    assert math_domain.wrong_answer("so x = 4.\n#### 4", rng).startswith("so x = 4.\n#### ")
    assert math_domain.wrong_answer("so x = 4.\n#### 4", rng) != "so x = 4.\n#### 4"
    boxed = math_domain.wrong_answer(r"hence $\boxed{2.50}$ and", rng)
    assert re.fullmatch(r"hence \$\\boxed\{-?\d+\.\d\d\}\$ and", boxed) and "2.50" not in boxed
    frac = math_domain.wrong_answer(r"\boxed{\frac{1}{2}}", rng)
    assert re.fullmatch(r"\\boxed\{\d+\}", frac)
    assert math_domain.wrong_answer("no answer here", rng) is None


def test_corruption_is_deterministic_per_seed_and_differs_across_seeds():
    responses = [f"answer {i}\n[RESULT] {i} [/RESULT]" for i in range(40)]
    for how, fn in (("shuffle", None), ("wrong_answer", math_domain.wrong_answer)):
        a = corrupt(responses, 0.3, how, 1, fn)
        assert a == corrupt(responses, 0.3, how, 1, fn)
        assert sum(a[1]) == 12
        assert a != corrupt(responses, 0.3, how, 2, fn)
    out, flags = corrupt(responses, 1 / 40, "shuffle", 3)   # one row: it takes another row's response
    assert sum(flags) == 1 and out[flags.index(True)] != responses[flags.index(True)]
    assert corrupt(responses, 0.0, "shuffle", 3) == (responses, [False] * 40)


def test_rerun_with_the_same_seed_is_the_same_data(tmp_path):
    a = generate(tmp_path / "a", "generator=human_corrupted")
    b = generate(tmp_path / "b", "generator=human_corrupted")
    assert (a["dir"] / "data.jsonl").read_bytes() == (b["dir"] / "data.jsonl").read_bytes()


def test_the_data_key_follows_the_corruption():
    keys = {digest(data_spec(compose_cfg("generate", o))) for o in (
        ["generator=human"], ["generator=human_corrupted"], ["generator=human_corrupted", "generator.corrupt.rate=0.25"],
        ["generator=human_corrupted", "generator.corrupt.how=wrong_answer"])}
    assert len(keys) == 4
    assert "control" not in data_spec(compose_cfg("generate", []))   # other generators' keys are as they were


@pytest.mark.parametrize("overrides,words", [
    (["generator.corrupt.rate=1.5"], "generator.corrupt.rate=1.5"),
    (["generator.corrupt.how=reverse"], "generator.corrupt.how=reverse"),
    (["generator.corrupt.how=wrong_answer", "domain=code"], "use generator.corrupt.how=shuffle"),
])
def test_bad_corruption_is_one_line(overrides, words):
    with pytest.raises(AgoraError) as e:
        check_cell(compose_cfg("generate", ["generator=human_corrupted", *overrides]))
    assert words in str(e.value) and "\n" not in str(e.value)


def test_a_dollar_budget_is_refused(tmp_path):
    with pytest.raises(AgoraError, match="costs \\$0"):
        generate(tmp_path, "generator=human", "budget=usd", "budget.usd=5")
