"""The offline synthetic math problems: deterministic, split-disjoint, and scoreable by our own parser."""
from __future__ import annotations

import re

import pytest

from agora.domains.math.synthetic import TEMPLATES, make_problems, split_of
from agora.scoring.math_answers import extract_answer


def test_deterministic_and_prefix():
    assert make_problems(50, "train", seed=3) == make_problems(50, "train", seed=3)
    assert make_problems(5, "train", seed=3) == make_problems(50, "train", seed=3)[:5]
    assert make_problems(5, "test", seed=1) == make_problems(40, "test", seed=1)[:5]
    assert make_problems(20, "train", seed=0) != make_problems(20, "train", seed=1)


def test_splits_disjoint_and_unique():
    train, test = make_problems(2000, "train"), make_problems(500, "test")
    train_q, test_q = {p["question"] for p in train}, {p["question"] for p in test}
    assert len(train_q) == 2000 and len(test_q) == 500
    assert not train_q & test_q
    # the split comes from the text alone, so other seeds cannot leak into the other split either
    assert all(split_of(p["question"]) == "test" for p in make_problems(200, "test", seed=7))
    assert not {p["question"] for p in make_problems(500, "train", seed=9)} & test_q
    assert len({p["id"] for p in train + test}) == 2500


def test_solutions_end_with_result_and_parse_back():
    for p in make_problems(500, "train") + make_problems(200, "test"):
        assert set(p) >= {"id", "question", "solution", "answer"}
        assert re.fullmatch(r"[1-9]\d*", p["answer"]), p
        assert p["solution"].rstrip().endswith(f"[RESULT] {p['answer']} [/RESULT]"), p
        assert p["solution"].count("[RESULT]") == 1
        assert "<<" not in p["solution"]
        assert extract_answer(p["solution"]) == p["answer"]
        # the last line of the worked steps states the answer, so the steps reach it
        steps = p["solution"].splitlines()[:-1]
        assert 2 <= len(steps) <= 4 and p["answer"] in steps[-1], p


def test_at_least_15_templates_used():
    assert len(TEMPLATES) >= 15
    used = {p["template"] for p in make_problems(500, "train")}
    assert len(used) >= 15 and used <= set(TEMPLATES)


def test_many_seeds_never_break_a_template():
    for seed in range(10):
        make_problems(300, "train", seed=seed)


def test_bad_split_is_named():
    with pytest.raises(ValueError, match="split='dev'"):
        make_problems(1, "dev")
