"""Issue 23, items 5 and 8: under `experiment=agorabench` the SFT recipe and the sources are the original's.

- Gradient clipping: llama-recipes' `train_config` (the original's `train/src/llama_recipes/configs/training.py` at
  d7e66e1) has `gradient_clipping: bool = False`; the Trainer's default clips at 1.0.
- IG seeds in training: the original's training sets are `math_*_25000` (10K generated + the 14.9K seeds) but
  `code_*_10000` and `general_*_10000` (`train/src/llama_recipes/datasets2/synthetic_dataset.py`).
- Math RG reads Magpie-Reasoning V1's math rows (V2 appeared after the authors' data sets), as code reads V1's coding
  rows; Claude 3.5 Sonnet is the June 2024 snapshot.
The keys of students trained before these fields existed do not change.
"""
from __future__ import annotations

import json

import pytest

from agora import AgoraError
from agora.domains import math
from agora.specs import include_seeds, train_spec
from agora.stages.train import sft_config, training_rows
from agora.store import write_jsonl
from agora.train.sft import _training_kwargs
from conftest import compose_cfg


def test_the_preset_trains_without_gradient_clipping(tmp_path):
    cfg = compose_cfg("train", ["experiment=agorabench"])
    sft = sft_config(cfg)
    assert sft.max_grad_norm == 0.0
    assert _training_kwargs(sft, tmp_path)["max_grad_norm"] == 0.0   # what the Trainer (and DeepSpeed's "auto") get
    assert "max_grad_norm" in train_spec(cfg)["train"]               # a different student from a clipped one


def test_a_clipped_student_keeps_its_key():
    """Students trained before `train.max_grad_norm` existed were clipped at the Trainer's 1.0: their spec (and so
    their folder in the store) is the same dict as before, with include_seeds as the bool it always was."""
    for overrides in ([], ["budget=control"], ["student=llama31_8b", "budget=n10k"]):
        cfg = compose_cfg("train", overrides)
        t = train_spec(cfg)["train"]
        assert "max_grad_norm" not in t and t["include_seeds"] is cfg.train.include_seeds


@pytest.mark.parametrize("domain,joins", [("math", True), ("code", False), ("instruction_following", False)])
def test_ig_seeds_join_the_training_set_in_math_only_under_the_preset(tmp_path, domain, joins):
    cfg = compose_cfg("train", ["experiment=agorabench", f"domain={domain}", "mode=instance_generation"])
    assert include_seeds(cfg) is joins
    write_jsonl(tmp_path / "data.jsonl", [{"instruction": f"new {i}", "response": f"r{i}"} for i in range(3)])
    write_jsonl(tmp_path / "seeds.jsonl", [{"id": f"s{i}", "question": f"seed {i}", "solution": f"s{i}"}
                                           for i in range(2)])
    rows, n_data = training_rows(cfg, tmp_path)
    assert n_data == 3 and len(rows) == (5 if joins else 3)
    assert train_spec(cfg)["train"]["include_seeds"] is joins   # keyed as the value it resolved to


def test_include_seeds_domain_needs_the_domains_answer():
    cfg = compose_cfg("train", ["train.include_seeds=domain", "~domain.modes.instance_generation.seeds_in_training"])
    with pytest.raises(AgoraError, match="seeds_in_training"):
        include_seeds(cfg)
    with pytest.raises(AgoraError, match="known: true, false, domain"):
        include_seeds(compose_cfg("train", ["train.include_seeds=sometimes"]))


def test_math_response_generation_reads_magpie_reasoning_v1_math_rows(tmp_path):
    cfg = compose_cfg("generate", ["experiment=agorabench", "domain=math", "mode=response_generation"])
    assert cfg.domain.sources.magpie_math.hub == "Magpie-Align/Magpie-Reasoning-V1-150K"
    assert cfg.domain.sources.magpie_math.hub == compose_cfg("generate", ["domain=code"]).domain.sources.magpie_code.hub
    f = tmp_path / "magpie.jsonl"   # V1-150K's rows carry task_category: Math, Coding & Debugging, Reasoning, ...
    f.write_text("".join(json.dumps({"uuid": f"u{i}", "instruction": q, "response": "r", "task_category": c}) + "\n"
                         for i, (q, c) in enumerate([("What is 2+2?", "Math"), ("Write a quicksort.",
                                                     "Coding & Debugging"), ("Who is taller?", "Reasoning"),
                                                    ("Solve x^2 = 4.", "Math")])))
    got = math.load("magpie_math", "train", {"local": str(f)}, None, 0)
    assert sorted(r["question"] for r in got) == ["Solve x^2 = 4.", "What is 2+2?"]


def test_claude_is_the_snapshot_of_the_authors_data():
    assert compose_cfg("generate", ["generator=claude35_sonnet"]).generator.model == "claude-3-5-sonnet-20240620"
