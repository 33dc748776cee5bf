"""The judge: verdict parsing, the length-controlled win rate against a hand computation, and a real judged run."""
from __future__ import annotations

import math

import pytest

from agora.evaluate.judge import judge, lc_win_rate, verdict
from agora.store import Store
from conftest import SHARED_DATA, compose_cfg, needs_shared


def test_verdicts_are_read_from_the_first_words():
    assert verdict("a") == "a" and verdict(" B.") == "b" and verdict("Output (a) is better") == "a"
    assert verdict("neither") is None


def test_lc_win_rate_equals_the_raw_rate_when_length_says_nothing():
    # Lengths equal: tanh(0) = 0 everywhere, so the fit is the plain log-odds of the win rate.
    prefs = [1, 1, 1, 0]
    assert lc_win_rate(prefs, [10] * 4, [10] * 4) == pytest.approx(75.0, abs=0.1)


def test_lc_win_rate_discounts_wins_bought_with_length():
    # The model wins exactly when it is longer; at equal length the fit must sit near 50%, far below the raw 50%+.
    model = [200, 210, 220, 230, 90, 95, 100, 105]
    base = [100] * 8
    prefs = [1, 1, 1, 1, 0, 0, 0, 1]                      # raw win rate 62.5%
    lc = lc_win_rate(prefs, model, base)
    assert lc < 62.5
    # A hand check of the fitted model's first-order condition: sum(y - p) = ridge * b0 (about 0).
    diffs = [m - b for m, b in zip(model, base)]
    mean = sum(diffs) / 8
    std = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 7)
    assert 0 < lc < 100 and std > 0


@pytest.mark.slow
def test_a_real_judge_prefers_answers_over_empty_outputs_and_reruns_from_cache(tmp_path):
    # judge=local: SmolLM2-135M on llama.cpp with an a/b grammar. A 135M judge is weak, so the assertion is
    # on what must hold whatever it answers: every pair judged, costed at $0, order randomised, cached.
    cfg = compose_cfg("evaluate", ["judge=local"])
    rows = [{"id": f"q{i}", "question": q, "answer": a} for i, (q, a) in enumerate([
        ("Name a primary colour.", "Red is a primary colour."),
        ("What is the capital of France?", "The capital of France is Paris."),
        ("Give a synonym of 'happy'.", "Joyful."),
        ("How many legs does a spider have?", "A spider has eight legs.")])]
    store = Store(tmp_path)
    v = judge(cfg.judge, store, rows, ["" for _ in rows], max_usd=None, seed=0)
    assert len(v.preference) == 4 and v.sent == 4 and v.unparsed == 0 and v.cost_usd == 0.0
    again = judge(cfg.judge, store, rows, ["" for _ in rows], max_usd=None, seed=0)
    assert again.sent == 0 and again.preference == v.preference      # all from the request cache


@needs_shared("alpaca_eval", "alpaca_eval.jsonl")
def test_alpaca_eval_prompts_load_from_a_local_file_with_their_baseline(tmp_path):
    from agora.domains import instruction_following as ifd

    source = {"hub": "tatsu-lab/alpaca_eval", "config": None,
              "local": str(SHARED_DATA / "alpaca_eval" / "alpaca_eval.jsonl")}
    rows = ifd.load("alpaca_eval", "test", source, None, 0)
    assert len(rows) == 805 and all(r["question"] and r["answer"] for r in rows)
    few = ifd.load("alpaca_eval", "test", source, 3, 0)
    cfg = compose_cfg("evaluate", ["judge=local"])
    v = judge(cfg.judge, Store(tmp_path), few, [r["answer"] for r in few], max_usd=None, seed=1)
    assert len(v.preference) == 3 and v.sent == 3
