"""HumanEval+ and MBPP+: EvalPlus-format files load, and the differential tests in the sandbox decide pass@1.

The files in tests/data/evalplus hold real HumanEval and MBPP problems in EvalPlus's release format, with a few
plus inputs (see make_evalplus_mini.py). Each check runs real programs in the sandbox.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from agora import AgoraError
from agora.domains import code
from agora.domains.code import evalplus
from agora.scoring.sandbox import run_python
from conftest import compose_cfg

DATA = Path(__file__).parent / "data" / "evalplus"
HE = {"local": str(DATA / "HumanEvalPlus-mini.jsonl"), "url": None}
MB = {"local": str(DATA / "MbppPlus-mini.jsonl.gz"), "url": None}


@pytest.fixture(scope="module")
def he_rows():
    return {r["id"]: r for r in code.load("humaneval_plus", "test", HE, None, 0)}


@pytest.fixture(scope="module")
def mb_rows():
    return {r["id"]: r for r in code.load("mbpp_plus", "test", MB, None, 0)}


def _passes(benchmark, completion, row, base_only=False):
    return run_python(code.program_for(completion, row, benchmark), evalplus.tests_for(benchmark, row, base_only=base_only),
                      timeout_s=evalplus.TIMEOUT_S, memory_mb=evalplus.MEMORY_MB).passed


def test_rows_keep_the_prompt_the_entry_point_and_both_test_sets(he_rows, mb_rows):
    r = he_rows["HumanEval/0"]
    assert "def has_close_elements" in r["question"] and r["entry_point"] == "has_close_elements"
    assert len(r["base_input"]) == 7 and len(r["plus_input"]) == 4 and r["reference"].startswith(r["prompt"])
    m = mb_rows["Mbpp/2"]
    # EvalPlus's own user turn for a chat model, around MBPP+'s docstring prompt (evalplus 0.3.1 codegen)
    assert m["question"].startswith("Please provide a self-contained Python script that solves the following problem "
                                    'in a markdown code block:\n```\n"""\nWrite a function to find the shared elements')
    assert "assert set(" in m["question"] and m["question"].endswith('"""\n```\n')
    assert "prompt" not in m   # an MBPP+ completion is a whole program, never a continuation
    # JSON lists come back as the tuples the task takes (evalplus's mbpp_deserialize_inputs)
    assert m["base_input"][0] == [(3, 4, 5, 6), (5, 7, 4, 10)]
    assert code.load("mbpp_plus", "test", MB, 1, 0)[0]["id"] in mb_rows


def test_canonical_solutions_pass_and_empty_ones_fail(he_rows, mb_rows):
    for bench, rows in (("humaneval_plus", he_rows), ("mbpp_plus", mb_rows)):
        rows = list(rows.values())
        scores = code.score_many(bench, [r["solution"] for r in rows] + ["" for _ in rows], rows + rows)
        assert scores == [True] * len(rows) + [False] * len(rows), bench


def test_a_solution_that_passes_only_the_base_tests_fails_plus(he_rows, mb_rows):
    # has_close_elements that forgets the empty list / single element: the base asserts never try them.
    sloppy = ("```python\ndef has_close_elements(numbers, threshold):\n    s = sorted(numbers)\n"
              "    return min(b - a for a, b in zip(s, s[1:])) < threshold\n```")
    row = he_rows["HumanEval/0"]
    assert _passes("humaneval_plus", sloppy, row, base_only=True)
    assert not _passes("humaneval_plus", sloppy, row)
    assert not code.score("humaneval_plus", sloppy, row)
    # MBPP's own three asserts call 2, 10 and 35: trial division that calls 1 prime passes them, not MBPP+.
    naive = ("```python\ndef is_not_prime(n):\n    return any(n % i == 0 for i in range(2, int(n ** 0.5) + 1))\n```")
    assert _passes("mbpp_plus", naive, mb_rows["Mbpp/3"], base_only=True)
    assert not code.score("mbpp_plus", naive, mb_rows["Mbpp/3"])


def test_floats_are_compared_with_atol_and_exact_types(he_rows):
    row = he_rows["HumanEval/2"]
    assert code.score("humaneval_plus", "```python\ndef truncate_number(number):\n    return number - int(number)\n```",
                      row)                                         # equal within 1e-6, not bit for bit
    assert not code.score("humaneval_plus", "```python\ndef truncate_number(number):\n"
                                            "    return round(number % 1.0, 2)\n```", row)   # 0.456 vs 0.46
    assert not code.score("humaneval_plus", "```python\ndef truncate_number(number):\n"
                                            "    return str(number % 1.0)\n```", row)        # a str is not a float


def test_special_oracles_find_zero_and_set_equality(he_rows, mb_rows):
    # HumanEval/32: any root passes (checked by evaluating the polynomial), not only the canonical one.
    newton = ("```python\ndef find_zero(xs):\n    x = 0.5\n    for _ in range(200):\n"
              "        f = sum(c * x ** i for i, c in enumerate(xs))\n"
              "        d = sum(i * c * x ** (i - 1) for i, c in enumerate(xs) if i) or 1.0\n"
              "        x -= f / d\n    return x\n```")
    assert code.score("humaneval_plus", newton, he_rows["HumanEval/32"])
    assert not code.score("humaneval_plus", "```python\ndef find_zero(xs):\n    return 0.123\n```",
                          he_rows["HumanEval/32"])
    # Mbpp/2 is compared as sets: another order of the same elements passes, a missing element fails.
    assert code.score("mbpp_plus", "```python\ndef similar_elements(a, b):\n"
                                   "    return tuple(sorted(set(a) & set(b), reverse=True))\n```", mb_rows["Mbpp/2"])
    assert not code.score("mbpp_plus", "```python\ndef similar_elements(a, b):\n"
                                       "    return tuple(sorted(set(a) & set(b))[1:])\n```", mb_rows["Mbpp/2"])


def test_a_slow_solution_fails_on_time_like_evalplus(mb_rows):
    # Past max(1 s, 4 x the canonical time) on one input, a correct but slow answer fails.
    slow = ("```python\nimport time\ndef is_not_prime(n):\n    if n == 7919:\n        time.sleep(1.5)\n"
            "    return n == 1 or any(n % i == 0 for i in range(2, int(n ** 0.5) + 1))\n```")
    fast = slow.replace("time.sleep(1.5)", "pass")
    assert code.score("mbpp_plus", fast, mb_rows["Mbpp/3"])
    assert not code.score("mbpp_plus", slow, mb_rows["Mbpp/3"])


def test_the_data_file_comes_from_local_then_the_override_variable_then_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("HUMANEVAL_OVERRIDE_PATH", raising=False)
    with pytest.raises(AgoraError, match="humaneval_plus.*url is null"):
        evalplus.data_file("humaneval_plus", {"local": None, "url": None})
    monkeypatch.setenv("HUMANEVAL_OVERRIDE_PATH", HE["local"])
    assert evalplus.data_file("humaneval_plus", {"local": None, "url": None}) == Path(HE["local"])
    monkeypatch.delenv("HUMANEVAL_OVERRIDE_PATH")
    cached = evalplus.cache_path("humaneval_plus")
    assert cached == tmp_path / "cache" / "evalplus" / "HumanEvalPlus-v0.1.10.jsonl"
    cached.parent.mkdir(parents=True)
    cached.write_text(Path(HE["local"]).read_text())
    assert len(code.load("humaneval_plus", "test", {"local": None, "url": None}, None, 0)) == 3
    with pytest.raises(AgoraError, match=r"domain.sources.mbpp_plus.local=.*no such file"):
        evalplus.data_file("mbpp_plus", {"local": str(tmp_path / "nope.jsonl")})
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task_id": "HumanEval/0"}\n')
    with pytest.raises(AgoraError, match="bad.jsonl:1: an EvalPlus record needs"):
        code.load("humaneval_plus", "test", {"local": str(bad)}, None, 0)


def test_hub_scale_code_benchmarks_are_evalplus_and_the_embedded_default_stays_humaneval():
    cfg = compose_cfg("evaluate", ["domain=code"])
    assert list(cfg.domain.benchmarks.hub) == ["mbpp_plus", "humaneval_plus"]
    assert list(cfg.domain.benchmarks.embedded) == ["humaneval"]
    assert cfg.domain.sources.humaneval_plus.url.endswith("/v0.1.10/HumanEvalPlus.jsonl.gz")
    assert cfg.domain.sources.mbpp_plus.url.endswith("/v0.2.0/MbppPlus.jsonl.gz")
