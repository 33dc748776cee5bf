"""Seed pools and the seeded sample (issue 12, items 3 and 5): the paper's pool sizes, LIMA's filter, the
WebInstruct split, a draw that is the same for every generator, hub files by revision, and bad local files."""
from __future__ import annotations

import json
import random

import pytest
from conftest import ROOT, SHARED_DATA, compose_cfg, needs_shared

from agora import AgoraError
from agora import sources
from agora.domains import code, instruction_following, math, pool
from agora.stages.generate import load_seeds
from agora.specs import data_spec


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@needs_shared("math", "hendrycks_math_train.jsonl.gz")
@needs_shared("gsm8k", "train.jsonl")
def test_math_instance_generation_pool_is_the_papers_14856():
    gsm = math.load("gsm8k", "train", {"local": str(SHARED_DATA / "gsm8k" / "train.jsonl")}, None, 42)
    mth = math.load("math", "train", {"local": str(SHARED_DATA / "math" / "hendrycks_math_train.jsonl.gz")}, None, 42)
    assert (len(gsm), len(mth), len(gsm) + len(mth)) == (7473, 7383, 14856)
    assert all(r["answer"] for r in mth)


def test_math_single_answer_rule():
    assert pool.math_single_answer(r"so $x=\boxed{\frac{1}{2}}$.")
    assert not pool.math_single_answer(r"$\boxed{1}$ or $\boxed{2}$")
    assert not pool.math_single_answer(r"there are $\boxed{}$ primes")
    assert not pool.math_single_answer(r"our answer is $\boxed 2$")


def test_lima_filter_keeps_single_turn_rows_of_the_listed_sources(tmp_path):
    rows = ([{"conversations": [f"Q{i}?", f"A{i}."], "source": "stackexchange"} for i in range(5)]
            + [{"conversations": [f"W{i}?", f"B{i}."], "source": "wikihow"} for i in range(3)]
            + [{"conversations": ["Hi?", "Hello.", "And then?", "Then this."], "source": "multi_turn"}])
    f = _jsonl(tmp_path / "train.jsonl", rows)
    every = instruction_following.load("lima", "train", {"local": str(f), "sources": None}, None, 0)
    assert len(every) == 8 and "Hi?" not in {r["question"] for r in every}      # the multi-turn dialogue goes
    assert all("turns" not in r for r in every)
    se = instruction_following.load("lima", "train", {"local": str(f), "sources": ["stackexchange"]}, None, 0)
    assert sorted(r["question"] for r in se) == [f"Q{i}?" for i in range(5)]


def _magpie(n):
    return [{"uuid": f"u{i}", "instruction": f"Instruction number {i}", "response": f"r{i}"} for i in range(n)]


def test_sample_is_the_same_for_the_same_seed_and_independent_of_file_order(tmp_path):
    rows = _magpie(300)
    a = _jsonl(tmp_path / "a.jsonl", rows)
    shuffled = rows[:]
    random.Random(5).shuffle(shuffled)
    b = _jsonl(tmp_path / "b.jsonl", shuffled)
    ids = lambda f, seed, n=50: [r["id"] for r in math.load("magpie_math", "train", {"local": str(f)}, n, seed)]
    assert ids(a, 42) == ids(a, 42) == ids(b, 42)          # paired: every generator, any file order
    assert len(set(ids(a, 42))) == 50
    assert set(ids(a, 42)) != set(ids(a, 43))              # another seed, another draw
    assert ids(a, 42, 100)[:50] == ids(a, 42)             # a larger draw contains the smaller one
    assert len(ids(a, 42, None)) == 300


def test_webinstruct_math_and_general_parts_split_the_file(tmp_path):
    qs = ["Solve $x^2 = 4$ for x.", "What is the role of the DNA in a cell?",
          "How do you write #y = (x - 11)^5# as a composition?", "What made Einstein unhappy at school?",
          "Calculate the monthly payment on a 150000 dollar loan at 4% over 30 years.",
          "Which of the following is not a way humans have impacted the tundra?",
          "If {eq}0.896\\ g{/eq} of a gas occupies 250 ml, find its molar mass."]
    rows = [{"question": q, "answer": f"a{i}", "source": "WebInstructFull", "index": i} for i, q in enumerate(qs)]
    f = _jsonl(tmp_path / "web_train.jsonl", rows)
    m = {r["question"] for r in math.load("webinstruct_math", "train", {"local": str(f)}, None, 0)}
    g = {r["question"] for r in instruction_following.load("webinstruct_general", "train", {"local": str(f)}, None, 0)}
    assert m == {qs[0], qs[2], qs[4], qs[6]}
    assert g == {qs[1], qs[3], qs[5]}
    assert not m & g and m | g == set(qs)
    assert pool.webinstruct_part("Why is the sky blue?", "mathstackexchange") == "math"


@pytest.mark.parametrize("domain, name", [(instruction_following, "lima"), (code, "xp3x_code"),
                                          (instruction_following, "magpie_pro"), (math, "webinstruct_math")])
def test_a_corrupt_local_file_names_file_and_line(tmp_path, domain, name):
    f = tmp_path / f"{name}_train.jsonl"
    f.write_text('{"conversations": ["q", "a"], "inputs": "q", "targets": "a", "instruction": "q", "question": "q"}\n'
                 '{"broken": \n')
    with pytest.raises(AgoraError, match=rf"{name}_train\.jsonl:2: not"):
        domain.load(name, "train", {"local": str(f)}, None, 0)


def test_hub_files_by_pinned_revision_from_the_real_config():
    code_cfg = compose_cfg("generate", ["domain=code"]).domain.sources
    kind, urls = sources.hub_files("conala", dict(code_cfg.conala), "train")
    assert kind == "parquet"
    assert urls == ["hf://datasets/neulab/conala@e59f9e28f593cd63530fa06f164d9ceb7ed35c96/mined/conala-train.parquet"]
    kind, urls = sources.hub_files("xp3x_code", dict(code_cfg.xp3x_code), "train")
    assert kind == "json" and urls[0].startswith("hf://datasets/CohereLabs/xP3x@c233c7ec")
    if_cfg = compose_cfg("generate", ["domain=instruction_following"]).domain.sources
    assert sources.hub_files("lima", dict(if_cfg.lima), "train") == ("json", ["hf://datasets/GAIR/lima/train.jsonl"])
    conv = {"hub": "org/ds", "revision": "refs/convert/parquet", "data_files": "default/train/*.parquet"}
    assert sources.hub_files("x", conv, "train")[1] == ["hf://datasets/org/ds@refs%2Fconvert%2Fparquet/default/train/*.parquet"]
    with pytest.raises(AgoraError, match=r"domain\.sources\.lima\.data_files has no 'validation'"):
        sources.hub_files("lima", dict(if_cfg.lima), "validation")
    # offline in the tests: the failure is one line naming the file and the `local` override
    with pytest.raises(AgoraError, match=r"hf://datasets/neulab/conala@.*domain\.sources\.conala\.local="):
        code.load("conala", "train", dict(code_cfg.conala), 10, 0)


def test_code_instance_generation_pool_is_mbpp_train_plus_500_xp3x(tmp_path):
    x = _jsonl(tmp_path / "xp3x.jsonl", [{"inputs": f"Write code number {i}", "targets": f"print({i})"}
                                         for i in range(700)])
    mbpp = _jsonl(tmp_path / "mbpp.jsonl", [{"task_id": t, "text": f"Task {t}", "code": f"def f{t}(): pass",
                                             "test_list": [f"assert f{t}() is None"], "test_setup_code": "",
                                             "challenge_test_list": []} for t in range(1, 975)])
    he = _jsonl(tmp_path / "he.jsonl", [{"task_id": "HumanEval/0", "prompt": "def g():\n", "canonical_solution": "  pass\n",
                                          "test": "def check(c): pass", "entry_point": "g"}])
    over = ["budget=n10k", "domain=code", "mode=instance_generation", f"domain.sources.xp3x_code.local={x}",
            f"domain.sources.mbpp.local={mbpp}", f"domain.sources.humaneval.local={he}", "budget.eval_limit=5",
            "domain.benchmarks.hub=[humaneval]"]   # the overlap check reads the benchmarks; HumanEval+ is not offline
    cfg = compose_cfg("generate", over)
    seeds, dropped = load_seeds(cfg)
    assert dropped == 0 and len(seeds) == 374 + 500
    again, _ = load_seeds(compose_cfg("generate", over))
    assert [s["question"] for s in again] == [s["question"] for s in seeds]


def test_response_generation_draws_10k_and_the_draw_is_in_the_data_key(tmp_path):
    f = _jsonl(tmp_path / "magpie.jsonl", _magpie(10_400))
    over = ["budget=n10k", "domain=instruction_following", "mode=response_generation",
            f"domain.sources.magpie_pro.local={f}"]
    cfg = compose_cfg("generate", over)
    assert cfg.domain_mode.sample.magpie_pro == 10000
    rows = instruction_following.load("magpie_pro", "train", {"local": str(f)}, 10000, cfg.seed)
    assert len(rows) == 10000 and len({r["id"] for r in rows}) == 10000
    base = data_spec(cfg)
    assert base["pool"]["sample"] == {"magpie_pro": 10000} and base["pool"]["max_seed_tokens"] is None
    assert data_spec(compose_cfg("generate", over + ["domain.modes.response_generation.sample.magpie_pro=5000"])) != base
    assert data_spec(compose_cfg("generate", over + ["seed=7"])) != base
    ig = data_spec(compose_cfg("generate", ["budget=n10k", "mode=instance_generation"]))
    assert ig["pool"]["max_seed_tokens"] == 4096 and ig["pool"]["tokenizer"]["student"]


def test_long_seeds_are_dropped_only_when_counted():
    short = {"question": "q" * 100, "solution": "a" * 100}
    long_ = {"question": "q" * 5000, "solution": "a" * 5000}
    assert pool.within_bytes(short, 4096, "sys") and not pool.within_bytes(long_, 4096, "sys")
    words = lambda r: len(f"{r['question']} {r['solution']}".split()) + 30   # a whitespace "tokenizer"
    assert pool.drop_long([short, long_], 4096, "sys", words) == ([short, long_], 0, 0)   # 2 words: fits
    by_char = lambda r: len(r["question"]) + len(r["solution"])
    assert pool.drop_long([short, long_], 4096, "sys", by_char) == ([short], 1, 0)
    assert pool.drop_long([short, long_], 4096, "sys", None) == ([short, long_], 0, 1)


def test_smoke_seeds_still_load_fast():
    seeds, _ = load_seeds(compose_cfg("generate", []))
    assert 0 < len(seeds) <= 200


def test_a_seed_whose_task_mbpp_plus_tests_is_held_out_though_reworded(tmp_path):
    """MBPP+ keeps some MBPP train-split tasks (e.g. 726) with reworded prompts: the task id holds them out of the
    seeds and the human data, where the question text alone would not."""
    import gzip
    import json

    from agora.sources import task_of
    from agora.stages import without_benchmarks

    assert task_of("mbpp-726") == task_of("Mbpp/726") == "mbpp/726" and task_of("HumanEval/3") == "humaneval/3"
    assert task_of("lima-3") is None
    plus = [json.loads(line) for line in gzip.open(ROOT / "tests/data/evalplus/MbppPlus-mini.jsonl.gz", "rt")]
    plus[0]["task_id"] = "Mbpp/726"
    bench = _jsonl(tmp_path / "mbpp_plus.jsonl", plus)
    mbpp = _jsonl(tmp_path / "mbpp.jsonl", [{"task_id": t, "text": f"Task {t}", "code": f"def f{t}(): pass",
                                             "test_list": [f"assert f{t}() is None"], "test_setup_code": "",
                                             "challenge_test_list": []} for t in range(1, 975)])
    x = _jsonl(tmp_path / "xp3x.jsonl", [{"inputs": f"Write code number {i}", "targets": f"print({i})"}
                                         for i in range(700)])
    over = ["budget=n10k", "domain=code", "mode=instance_generation", f"domain.sources.xp3x_code.local={x}",
            f"domain.sources.mbpp.local={mbpp}", f"domain.sources.mbpp_plus.local={bench}",
            "domain.benchmarks.hub=[mbpp_plus]"]
    seeds, dropped = load_seeds(compose_cfg("generate", over))
    assert dropped == 1 and len(seeds) == 373 + 500 and "mbpp-726" not in {s["id"] for s in seeds}
    human = without_benchmarks(compose_cfg("train", over), [{"id": "mbpp-726", "question": "other words"},
                                                          {"id": "mbpp-727", "question": "Task 727"}])
    assert [r["id"] for r in human] == ["mbpp-727"]
