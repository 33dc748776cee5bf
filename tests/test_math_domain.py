"""Math seeds and benchmarks load through `datasets` (local override), errors name file and line, modes parse both formats."""
from __future__ import annotations

import pytest

from agora import AgoraError
from agora.domains import get_domain, math as m
from agora.modes import ParseError, get_mode, load_template
from conftest import SHARED_DATA, needs_shared

needs_gsm8k = needs_shared("gsm8k", "test.jsonl")


@needs_gsm8k
def test_gsm8k_local_override_loads_through_datasets():
    rows = m.load("gsm8k", "test", {"hub": "openai/gsm8k", "local": str(SHARED_DATA / "gsm8k")}, None, 0)
    assert len(rows) == 1319
    assert all(r["solution"].rstrip().endswith(f"[RESULT] {r['answer']} [/RESULT]") for r in rows)
    assert "<<" not in rows[0]["solution"]  # calculator annotations removed
    train = m.load("gsm8k", "train", {"local": str(SHARED_DATA / "gsm8k")}, 50, 0)
    assert len(train) == 50 and not {r["question"] for r in train} & {r["question"] for r in rows}


@needs_gsm8k
def test_math500_and_full_math_local():
    rows = m.load("math500", "test", {"local": str(SHARED_DATA / "math" / "math500_test.jsonl")}, None, 0)
    assert len(rows) == 500 and rows[0]["answer"]
    train = m.load("math", "train", {"local": str(SHARED_DATA / "math" / "hendrycks_math_train.jsonl.gz")}, 20, 1)
    assert len(train) == 20 and all(r["answer"] for r in train)


def test_corrupt_seed_file_names_file_and_line(tmp_path):
    f = tmp_path / "seeds_train.jsonl"
    f.write_text('{"question": "1+1?", "answer": "#### 2"}\n{"question": "broken\n')
    with pytest.raises(AgoraError, match=r"seeds_train\.jsonl:2"):
        m.load("gsm8k", "train", {"local": str(f)}, None, 0)


def test_unknown_domain_lists_known_ones():
    with pytest.raises(AgoraError, match="chemistry.*cannot import"):
        get_domain("chemistry")
    with pytest.raises(AgoraError, match="is not a domain: it lacks VERSION"):
        get_domain("agora.modes")


def test_validators():
    ok = "Step 1: 2+2=4.\n[RESULT] 4 [/RESULT]"
    assert m.validate("What is 2+2?", ok) is None
    assert m.validate("What is 2+2?", "It is 4.") == "no_result_tag"
    assert m.validate("What is 2+2?", "[RESULT] 4 [/RESULT] and [RESULT] 5 [/RESULT]") == "several_result_tags"
    assert m.validate("What is 2+2?", "[RESULT] 4 [/RESULT] then more") == "result_not_at_end"
    assert m.validate("<the new problem>", ok) == "placeholder"


@pytest.mark.parametrize("mode", ["instance_generation", "response_generation", "quality_enhancement"])
@pytest.mark.parametrize("fmt", ["free_form", "json"])
def test_every_mode_builds_and_parses_both_formats(mode, fmt):
    mod = get_mode(mode)
    seeds = [{"id": f"s{i}", "question": f"Q{i}: 2+{i}?", "solution": f"2+{i}={2 + i}\n[RESULT] {2 + i} [/RESULT]",
              "answer": str(2 + i)} for i in range(5)]
    tpl = load_template("agora.domains.math", mode)
    messages, meta = mod.build(0, seeds, [], template=tpl, fmt=fmt, themes=m.THEMES, seed=1, n_demos=3,
                               demos_from_generations=1)
    assert messages[0]["role"] == "system" and "{" + "format_instructions}" not in messages[1]["content"]
    good = {
        ("instance_generation", "free_form"): "INPUT: What is 3+3?\nOUTPUT: 3+3=6\n[RESULT] 6 [/RESULT]\n[END]",
        ("instance_generation", "json"): '{"input": "What is 3+3?", "output": "3+3=6\\n[RESULT] 6 [/RESULT]"}',
        ("response_generation", "free_form"): "2+0=2\n[RESULT] 2 [/RESULT]",
        ("response_generation", "json"): '{"output": "2+0=2\\n[RESULT] 2 [/RESULT]"}',
        ("quality_enhancement", "free_form"): "Revised Question: What is 3+3?\nRevised Answer: 6\n[RESULT] 6 [/RESULT]",
        ("quality_enhancement", "json"): '{"revised_question": "What is 3+3?", "revised_answer": "[RESULT] 6 [/RESULT]"}',
    }[(mode, fmt)]
    q, a = mod.parse(good, fmt, meta)
    assert q and a.endswith("[/RESULT]") and m.validate(q, a) is None
    with pytest.raises(ParseError):
        mod.parse("not what was asked" if fmt == "json" or mode != "response_generation" else "", fmt, meta)


def test_instance_generation_mixes_two_seeds_and_one_generation():
    mod = get_mode("instance_generation")
    seeds = [{"id": f"s{i}", "question": f"q{i}", "solution": "a", "answer": "1"} for i in range(10)]
    pool = [{"id": "gen-0", "instruction": "gq", "response": "ga"}]
    _, meta = mod.build(3, seeds, pool, template=load_template("agora.domains.math", "instance_generation"), fmt="free_form",
                        themes=m.THEMES, seed=0, n_demos=3, demos_from_generations=1)
    assert sorted(d.startswith("gen-") for d in meta["demo_ids"]) == [False, False, True]
