"""The judged benchmarks: AlpacaEval 2.0's LC win rate checked against the alpaca-eval package itself,
Arena-Hard's verdicts and Bradley–Terry score on hand-made judgments, the loaders on the real file formats, and
both judge paths against a real loopback llama.cpp server."""
from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pandas as pd
import pytest

from agora import AgoraError
from agora.domains import instruction_following as ifd
from agora.domains.instruction_following import judged
from agora.engine.option import Option
from agora.scoring import judge as J
from agora.store import Store
from conftest import SHARED_DATA, compose_cfg, needs_shared

ARENA_DIR = Path(__file__).parent / "data" / "arena_hard"
ALPACA_FILE = SHARED_DATA / "alpaca_eval" / "alpaca_eval.jsonl"
ARENA_SOURCE = {"hub": "lmarena-ai/arena-hard-auto", "revision": "main",
                "questions": "data/arena-hard-v0.1/question.jsonl",
                "baseline_answers": "data/arena-hard-v0.1/model_answer/gpt-4-0314.jsonl", "local": str(ARENA_DIR)}


def make_df_gamed(path: Path, seed: int = 0) -> Path:
    """A stand-in for AlpacaEval's df_gamed.csv with its columns: a difficulty per prompt, and two gamed baselines
    (one verbose, one terse) whose preferences follow their length difference."""
    rng = random.Random(seed)
    difficulty = [rng.gauss(0, 1) for _ in range(judged.ALPACA_N)]
    rows = []
    for model, shift in (("gpt4_gamed_verbose", 1.5), ("gpt4_gamed_concise", -1.5)):
        for i in range(judged.ALPACA_N):
            d = rng.gauss(shift, 0.7)
            p = 1 / (1 + math.exp(-(1.8 * math.tanh(d) - 0.3 * difficulty[i] + rng.gauss(0, 0.5))))
            rows.append({"model": model, "index": i, "preference": p, "std_delta_len": d,
                         "instruction_difficulty": difficulty[i], "not_gamed_baseline": False})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def annotations(n: int, seed: int, length_bias: float) -> list[dict]:
    """n annotations of a model against the baseline. With a length bias the model writes longer outputs (by 200
    characters on average) and wins more often the longer it is; at equal length it loses more than it wins."""
    rng = random.Random(seed)
    out = []
    for i in rng.sample(range(judged.ALPACA_N), n):
        base_len = rng.randint(100, 800)
        model_len = max(1, base_len + int(rng.gauss(200 if length_bias else 0, 300)))
        edge = length_bias * (model_len - base_len) / 300 - (1.0 if length_bias else 0.0)
        p2 = 1 / (1 + math.exp(-(edge + rng.gauss(0, 1))))
        out.append({"instruction": f"q{i}", "output_1": "b" * base_len, "output_2": "m" * model_len,
                    "preference": 1 + p2, "index": i, "generator_1": J.ALPACA_BASELINE, "generator_2": "model",
                    "annotator": J.ALPACA_ANNOTATOR})
    return out


# ---------------------------------------------------------------- AlpacaEval 2.0

def test_lc_win_rate_is_the_alpaca_eval_packages_own(tmp_path, monkeypatch):
    from alpaca_eval.metrics import glm_winrate

    csv = make_df_gamed(tmp_path / "df_gamed.csv")
    ann = annotations(200, seed=1, length_bias=2.0)
    ours = J.lc_win_rate(ann, pd.read_csv(csv))
    # The package's function downloads df_gamed.csv from the hub; here the download is pointed at the same file.
    monkeypatch.setattr(glm_winrate, "hf_hub_download", lambda **kw: str(csv))
    theirs = glm_winrate.get_length_controlled_winrate(pd.DataFrame(ann), save_weights_dir=None)
    assert ours["length_controlled_winrate"] == pytest.approx(theirs["length_controlled_winrate"], abs=1e-9)
    assert ours["win_rate"] == pytest.approx(theirs["win_rate"], abs=1e-9)
    assert ours["length_controlled_winrate"] != pytest.approx(ours["win_rate"], abs=0.1)   # the GLM did something


def test_lc_win_rate_rises_with_preference_and_ignores_nothing_else(tmp_path):
    gamed = pd.read_csv(make_df_gamed(tmp_path / "df_gamed.csv"))
    ann = annotations(120, seed=2, length_bias=0.0)
    better = [{**a, "preference": min(2.0, a["preference"] + 0.3)} for a in ann]
    lo, hi = J.lc_win_rate(ann, gamed), J.lc_win_rate(better, gamed)
    assert hi["win_rate"] > lo["win_rate"] and hi["length_controlled_winrate"] > lo["length_controlled_winrate"]


def test_alpaca_preference_comes_from_the_logprobs_of_m_and_M():
    rec = {"text": "M", "top_logprobs": [{"token": "M", "logprob": math.log(0.6)},
                                         {"token": "m", "logprob": math.log(0.2)},
                                         {"token": "The", "logprob": math.log(0.1)}]}
    assert J.alpaca_preference(rec) == pytest.approx(1 + 0.6 / 0.8)
    assert J.alpaca_preference({"text": "m", "top_logprobs": [{"token": "m", "logprob": 0.0}]}) == 1.0
    assert J.alpaca_preference({"text": "M"}) == 2.0 and J.alpaca_preference({"text": "m"}) == 1.0   # no logprobs
    assert J.alpaca_preference({"text": "Both"}) is None and J.alpaca_preference(None) is None


def test_alpaca_prompt_is_the_packages_template_as_chat_messages():
    _, template = J._alpaca_config()
    msgs = J.alpaca_messages(template, "Say hi", "Hi!", "Hello there.")
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert '"instruction": """Say hi"""' in msgs[1]["content"] and '"output": """Hi!"""' in msgs[1]["content"]
    assert msgs[1]["content"].index("Hi!") < msgs[1]["content"].index("Hello there.")
    assert msgs[1]["content"].rstrip().endswith("## Best Model Identifier")


@needs_shared("alpaca_eval", "alpaca_eval.jsonl")
def test_alpaca_eval_rows_keep_their_position_among_the_805(tmp_path):
    source = {"hub": "tatsu-lab/alpaca_eval", "file": "alpaca_eval_gpt4_baseline.json", "local": str(ALPACA_FILE)}
    rows = ifd.load("alpaca_eval", "test", source, None, 0)
    assert len(rows) == 805 and [r["index"] for r in rows] == list(range(805)) and all(r["answer"] for r in rows)
    few = ifd.load("alpaca_eval", "test", source, 3, 0)
    assert all(rows[r["index"]]["question"] == r["question"] for r in few)
    short = tmp_path / "short.json"
    short.write_text(json.dumps([{"instruction": "a", "output": "b"}]))
    with pytest.raises(AgoraError, match="1 AlpacaEval prompts, not 805"):
        ifd.load("alpaca_eval", "test", {**source, "local": str(short)}, None, 0)


def test_df_gamed_must_be_alpaca_evals_file(tmp_path):
    bad = tmp_path / "x.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(AgoraError, match="not AlpacaEval's df_gamed.csv"):
        J.load_df_gamed({"glm_local": str(bad)})
    with pytest.raises(AgoraError, match="glm_local=.*no such file"):
        J.load_df_gamed({"glm_local": str(tmp_path / "nope.csv")})


# ---------------------------------------------------------------- Arena-Hard v0.1

def test_arena_labels_are_read_like_arena_hard_auto():
    assert J.arena_label("... so my final verdict is: [[B>>A]]") == ("B>>A", False)
    assert J.arena_label("A>B at first... My final verdict is [[A=B]]. I repeat: [[A=B]]") == ("A=B", False)
    assert J.arena_label("no verdict yet") == (None, True)                 # asked to continue
    assert J.arena_label("[[A>B]] or maybe [[B>A]]") == (None, False)       # two verdicts: dropped


def test_arena_battles_weigh_strong_verdicts_three_times_and_swap_sides():
    # game 1: the baseline is A; game 2: the model is A
    assert J.arena_battles([("B>>A", "A>>B")]) == [1.0] * 6
    assert J.arena_battles([("A>B", "B>A")]) == [0.0, 0.0]
    assert J.arena_battles([("A=B", None)]) == [0.5]
    assert J.arena_battles([("nonsense", "A>B")]) == [1.0]


def test_bradley_terry_win_rate_and_bootstrap_on_hand_made_verdicts():
    all_wins = J.arena_battles([("B>>A", "A>>B")] * 50)
    assert J.bradley_terry_win_rate(all_wins) == pytest.approx(100.0)
    assert J.bootstrap_interval(all_wins) == (pytest.approx(100.0), pytest.approx(100.0))
    symmetric = J.arena_battles([("B>A", "B>A")] * 40 + [("A=B", "A=B")] * 20)   # a win and a loss each, and ties
    assert J.bradley_terry_win_rate(symmetric) == pytest.approx(50.0)
    lo, hi = J.bootstrap_interval(symmetric)
    assert lo < 50 < hi and hi - lo < 30
    mostly = J.arena_battles([("B>A", "A>B")] * 30 + [("A>B", "B>A")] * 10)
    assert J.bradley_terry_win_rate(mostly) == pytest.approx(75.0)
    assert J.bradley_terry_win_rate([]) != J.bradley_terry_win_rate([])   # nan: nothing judged


def test_arena_hard_loads_the_repository_layout_and_a_single_file(tmp_path):
    rows = ifd.load("arena_hard", "test", ARENA_SOURCE, None, 0)
    assert len(rows) == 3 and rows[0]["id"] == "arena-b73a766af676460dabf4a58788c10b29"
    assert rows[0]["answer"] == "After waiting for 1.65 hours, it will be 2:39 AM."
    one = tmp_path / "arena.jsonl"
    one.write_text(json.dumps({"uid": "u1", "prompt": "Hi?", "baseline": "Hello."}) + "\n")
    assert ifd.load("arena_hard", "test", {**ARENA_SOURCE, "local": str(one)}, None, 0)[0]["answer"] == "Hello."
    with pytest.raises(AgoraError, match="no data/arena-hard-v0.1/question.jsonl in that folder"):
        ifd.load("arena_hard", "test", {**ARENA_SOURCE, "local": str(tmp_path)}, None, 0)


def test_the_judge_group_defaults_to_the_authors_gpt4_turbo():
    cfg = compose_cfg("evaluate", ["domain=instruction_following", "budget=n10k"])
    assert cfg.judge.name == "gpt4_turbo" and cfg.judge.model == "gpt-4-1106-preview"
    assert list(cfg.domain.benchmarks.hub) == ["alpaca_eval", "arena_hard"]
    assert cfg.domain.sources.alpaca_eval.file == "alpaca_eval_gpt4_baseline.json"
    for option in ("gpt4o", "gpt4o_mini", "claude35_sonnet", "local", "vllm"):
        cfg = compose_cfg("evaluate", [f"generator@judge={option}"])
        assert cfg.judge.name == option and cfg.eval.arena_hard_prompt is None and cfg.generator.name == "local"


# ---------------------------------------------------------------- real judge runs (llama.cpp on loopback)

@needs_shared("alpaca_eval", "alpaca_eval.jsonl")
def test_a_real_judge_scores_alpaca_eval_from_logprobs_and_reruns_from_cache(tmp_path):
    # generator@judge=local: SmolLM2-135M on llama.cpp, its answer held to "m"/"M" by a grammar. A 135M judge is weak, so
    # the assertions are on what must hold whatever it prefers: every pair judged from logprobs, at $0, cached.
    cfg = compose_cfg("evaluate", ["generator@judge=local"])
    source = {"hub": None, "file": "alpaca_eval_gpt4_baseline.json", "local": str(ALPACA_FILE),
              "glm_local": str(make_df_gamed(tmp_path / "df_gamed.csv"))}
    every = ifd.load("alpaca_eval", "test", source, None, 0)
    rows = [r for r in every if r["index"] in (199, 113, 232, 211)] + [every[0]]
    # The last output is the baseline's own: a draw (1.5) that AlpacaEval never sends to the judge.
    outputs = ["Test", "", "It is a fruit.", "It is an abstract data type (ADT).", every[0]["answer"]]
    store = Store(tmp_path / "store")
    s = J.score("alpaca_eval", Option.from_cfg(cfg.judge), store, rows, outputs, source=source, max_usd=None, seed=0)
    d = s.details
    assert d["sent"] == 4 and d["unparsed"] == 0 and d["no_logprobs"] == 0 and d["cost_usd"] == 0.0
    assert 0.0 <= s.score <= 100.0 and 0.0 <= d["win_rate"] <= 100.0 and len(s.won) == 5 and not s.won[-1]
    records = [json.loads(line) for line in next((store.root).rglob("*.jsonl")).read_text().splitlines()]
    assert all({t["token"] for t in r["top_logprobs"]} & {"m", "M"} for r in records)
    again = J.score("alpaca_eval", Option.from_cfg(cfg.judge), store, rows, outputs, source=source, max_usd=None, seed=0)
    assert again.details["sent"] == 0 and again.score == s.score       # all from the request cache


def test_a_real_judge_plays_arena_hard_twice_per_pair_with_the_order_swapped(tmp_path):
    cfg = compose_cfg("evaluate", ["generator@judge=local"])
    rows = ifd.load("arena_hard", "test", ARENA_SOURCE, None, 0)
    outputs = [r["answer"] for r in rows]        # the baseline against itself
    store = Store(tmp_path)
    s = J.score("arena_hard", Option.from_cfg(cfg.judge), store, rows, outputs, source=ARENA_SOURCE, max_usd=None, seed=0)
    d = s.details
    assert d["sent"] == 6 and d["unparsed"] == 0 and d["cost_usd"] == 0.0
    assert d["battles"] >= 6 and 0.0 <= s.score <= 100.0 and d["ci_low"] <= s.score <= d["ci_high"]
    again = J.score("arena_hard", Option.from_cfg(cfg.judge), store, rows, outputs, source=ARENA_SOURCE, max_usd=None, seed=0)
    assert again.details["sent"] == 0 and again.score == s.score
