"""The judged scores against what the originals published or computed: AlpacaEval 2.0's leaderboard columns from its
published GPT-4 Turbo annotations, Arena-Hard v0.1's `show_result.py` numbers on a fixed judgments file, and the
preset's Arena-Hard judge prompt read from the user's checkout of arena-hard-auto, hash-checked."""
from __future__ import annotations

import csv
import gzip
import hashlib
import json
import math
import shutil

import pytest
import yaml

from agora import AgoraError, originals
from agora.checks import check_cell
from agora.scoring import judge as J
from conftest import ROOT, SHARED_DATA, compose_cfg, needs_shared

ALPACA = SHARED_DATA / "alpaca_eval"
LEADERBOARD = ALPACA / "leaderboards" / "data_AlpacaEval_2" / "weighted_alpaca_eval_gpt4_turbo_leaderboard.csv"
WEIGHTS = ALPACA / "metrics" / "weights" / "weighted_alpaca_eval_gpt4_turbo" / "length_controlled_v1" / \
    "baseline_gpt4_1106_preview.csv"
# The two tables alpaca_eval's glm_winrate.py downloads from the hub dataset tatsu-lab/alpaca_eval at run time; neither
# is in the GitHub repository or in ../shared/data. Put them here to run the LC checks.
DIFFICULTY = ALPACA / "instruction_difficulty.csv"
DF_GAMED = ALPACA / "df_gamed.csv"
MODELS = ("FuseChat-Gemma-2-9B-Instruct", "claude-2", "gemma-2b-it")
ARENA = SHARED_DATA / "arena_hard"
FIXTURE = ROOT / "tests" / "data" / "arena_hard_judgments"


def _annotations(model: str) -> list[dict]:
    return json.loads((ALPACA / "results" / model / J.ALPACA_ANNOTATOR / "annotations.json").read_text())


def _csv_row(path, model: str) -> dict:
    with open(path) as f:
        return next(r for r in csv.DictReader(f) if (r.get("") or r.get("model")) == model)


# ---------------------------------------------------------------- AlpacaEval 2.0

@needs_shared("alpaca_eval", "results", "gemma-2b-it", J.ALPACA_ANNOTATOR, "annotations.json")
@pytest.mark.parametrize("model", MODELS)
def test_alpaca_win_rate_and_standard_error_are_the_leaderboards(model):
    published = _csv_row(LEADERBOARD, model)
    ours = J.alpaca_win_rate(_annotations(model))
    # The CSV prints full doubles: equal to the last printed digit.
    for column in ("win_rate", "standard_error", "discrete_win_rate"):
        assert ours[column] == pytest.approx(float(published[column]), rel=1e-13, abs=0), column
    for column in ("n_wins", "n_wins_base", "n_draws", "n_total"):
        assert ours[column] == int(published[column]), column


@needs_shared("alpaca_eval", "results", "claude-2", J.ALPACA_ANNOTATOR, "annotations.json")
def test_alpaca_eval_scores_identical_outputs_as_a_draw_without_asking_the_judge():
    # Six outputs are the baseline's word for word (FuseChat 5, claude-2 1: "The capital of Australia is Canberra."):
    # the package set 1.5 and sent nothing (no raw completion, no price).
    same = 0
    for model in MODELS:
        for a in _annotations(model):
            fixed = J.alpaca_fixed_preference(a["output_1"], a["output_2"])
            assert (fixed is not None) == (a["output_1"] == a["output_2"])
            if fixed is not None:
                same += 1
                assert fixed == a["preference"] == 1.5 and a.get("raw_completion") is None
    assert same == 6


@needs_shared("alpaca_eval", "results", "claude-2", J.ALPACA_ANNOTATOR, "annotations.json")
@pytest.mark.parametrize("model", ("claude-2", "gemma-2b-it"))   # FuseChat's file has no raw completions
def test_alpaca_preference_from_the_published_judge_logprobs(model):
    # The display order of each pair was drawn at random and is not recorded, so the parsed preference is the
    # published one or its mirror, 3 - p; both orders occur about equally often.
    orders = {"as_shown": 0, "swapped": 0}
    for a in _annotations(model):
        raw = a.get("raw_completion")
        if not raw:
            continue
        first = raw["logprobs"]["content"][0]
        p = J.alpaca_preference({"text": first["token"], "top_logprobs": first["top_logprobs"]})
        if p == pytest.approx(a["preference"], abs=1e-9):
            orders["as_shown"] += 1
        else:
            assert 3 - p == pytest.approx(a["preference"], abs=1e-9)
            orders["swapped"] += 1
    assert min(orders.values()) > 350


@needs_shared("alpaca_eval", "metrics")
@pytest.mark.parametrize("model", MODELS)
def test_alpaca_lc_from_the_stored_glm_weights_needs_the_hubs_instruction_difficulty(model):
    published = float(_csv_row(LEADERBOARD, model)["length_controlled_winrate"])
    weights = {k: float(v) for k, v in _csv_row(WEIGHTS, model).items() if k}
    # What the stored weights give alone: every instruction at difficulty 0. It is 2.9 to 4.8 points from the published
    # LC, so the 805 difficulties are a material input, not a detail.
    alone = J.lc_from_weights(weights, [0.0] * 805)
    assert alone == pytest.approx(100 / (1 + math.exp(-weights["not_gamed_baseline.astype(float)"])))
    assert abs(alone - published) > 2
    if not DIFFICULTY.is_file():
        pytest.skip(f"the LC needs tatsu-lab/alpaca_eval's instruction_difficulty.csv (HF dataset; glm_winrate.py "
                    f"downloads it at run time), not in ../shared/data: put it at {DIFFICULTY}")
    import pandas as pd

    difficulty = pd.read_csv(DIFFICULTY, index_col=0).squeeze()
    assert J.lc_from_weights(weights, difficulty.to_numpy()) == pytest.approx(published, abs=0.1)


@needs_shared("alpaca_eval", "results", "gemma-2b-it", J.ALPACA_ANNOTATOR, "annotations.json")
@pytest.mark.parametrize("model", MODELS)
def test_alpaca_lc_refit_from_the_published_annotations_needs_the_hubs_df_gamed(model):
    if not DF_GAMED.is_file():
        pytest.skip(f"the LC refit needs tatsu-lab/alpaca_eval's df_gamed.csv (HF dataset: the gamed baselines' "
                    f"annotations and the instruction difficulties), not in ../shared/data: put it at {DF_GAMED}")
    published = float(_csv_row(LEADERBOARD, model)["length_controlled_winrate"])
    ann = [{**a, "index": i} for i, a in enumerate(_annotations(model))]   # the files keep AlpacaEval's order
    assert J.lc_win_rate(ann, J.load_df_gamed({"glm_local": str(DF_GAMED)}))["length_controlled_winrate"] == \
        pytest.approx(published, abs=0.1)


# ---------------------------------------------------------------- Arena-Hard v0.1: scoring

# From `python benchmarks/bench_arena_hard_original.py --repo <arena-hard-auto clone> --write-fixture`: arena-hard-auto's
# show_result.py at b00effb, `--num-rounds 100`, in a venv with numpy 1.26.4, pandas 2.2.2 and scikit-learn 1.5.1.
# The fixture's verdicts are synthetic (seeded mixes with strong, missing and conflicting labels); its model names are
# only names. (score, lower, upper) as the original's leaderboard CSV prints them.
ORIGINAL_ALONE = {   # each model's file alone in its judge folder
    "gpt-4-0613": (29.98, 28.03, 32.04),
    "gpt-3.5-turbo-0125": (16.84, 15.32, 18.48),
    "synthetic-strong": (81.11, 79.39, 82.99),
}
ORIGINAL_JOINT = {   # the three files in one folder, in the order the original's glob read them
    "synthetic-strong": (81.11, 79.69, 82.73),
    "gpt-4-0613": (29.98, 27.67, 31.69),
    "gpt-3.5-turbo-0125": (16.84, 15.31, 18.55),
}
JOINT_ORDER = ("synthetic-strong", "gpt-3.5-turbo-0125", "gpt-4-0613")


def _judgments(model: str) -> list[dict]:
    with gzip.open(FIXTURE / f"{model}.jsonl.gz", "rt") as f:
        return [json.loads(line) for line in f]


@pytest.mark.parametrize("model", sorted(ORIGINAL_ALONE))
def test_arena_hard_one_model_gives_show_results_numbers(model):
    battles = [o for _, o in J.arena_judgment_battles(_judgments(model))]
    lo, hi = J.bootstrap_interval(battles, rounds=100, seed=42)
    assert tuple(round(x, 2) for x in (J.bradley_terry_win_rate(battles), lo, hi)) == ORIGINAL_ALONE[model]


def test_arena_hard_leaderboard_fits_models_jointly_as_show_result_does():
    battles = [b for m in JOINT_ORDER for b in J.arena_judgment_battles(_judgments(m))]
    ours = J.arena_hard_leaderboard(battles, rounds=100, seed=42)
    assert {m: tuple(round(x, 2) for x in v) for m, v in ours.items()} == ORIGINAL_JOINT
    # The joint fit changes each model's interval (the resamples are shared), never its score.
    assert all(ORIGINAL_JOINT[m][0] == ORIGINAL_ALONE[m][0] for m in ORIGINAL_JOINT)


def test_arena_hard_battles_skip_missing_and_conflicting_labels():
    recs = [{"model": "m", "games": [{"score": None}, {"score": "A>>B"}]},
            {"model": "m", "games": [{"score": "B>A"}, {"score": "A=B"}]}]
    assert J.arena_judgment_battles(recs) == [("m", 1.0)] * 3 + [("m", 1.0), ("m", 0.5)]


# ---------------------------------------------------------------- Arena-Hard v0.1: the judge prompt

@needs_shared("arena_hard", "config", "judge_config.yaml")
def test_original_arena_prompt_is_the_checkouts_judge_config_and_agoras_constants_match_it():
    config = yaml.safe_load((ARENA / "config" / "judge_config.yaml").read_text())
    p = J.arena_prompt("original", str(ARENA))
    assert p.system == config["system_prompt"] and p.template == config["prompt_template"][0]
    assert p.sha256 == originals.ARENA_HARD_AUTO.files["config/judge_config.yaml"]
    assert p.user("Q?", "first", "second") == config["prompt_template"][0].format(
        question_1="Q?", answer_1="first", answer_2="second")
    # The settings Agora keeps as constants are the config's.
    assert (config["temperature"], config["max_tokens"], config["number_of_judgment_attempts"]) == \
        (0, J.ARENA_MAX_TOKENS, J.ARENA_ATTEMPTS)
    assert config["regex_pattern"] == J.ARENA_LABEL.pattern and config["pairwise"] and config["baseline"]
    assert config["baseline_model"] == "gpt-4-0314"
    assert compose_cfg("evaluate", ["generator@judge=gpt4_turbo"]).judge.model == config["judge_model"]
    # Agora's paraphrase is not the original's text, and its template renders the same user message.
    agora = J.arena_prompt("agora")
    assert agora.system != p.system and J.arena_prompt(None) == agora and agora.sha256 is None
    assert agora.user("Q?", "first", "second") == p.user("Q?", "first", "second")


@needs_shared("arena_hard", "config", "judge_config.yaml")
def test_the_judge_prompt_file_enters_the_evaluation_key_and_agoras_keeps_the_old_key(tmp_path):
    assert J.judge_spec("openai", "gpt-4-1106-preview", J.arena_prompt("agora")) == \
        {"provider": "openai", "model": "gpt-4-1106-preview", "version": J.VERSION}
    original = J.judge_spec("openai", "gpt-4-1106-preview", J.arena_prompt("original", str(ARENA)))
    assert original["arena_hard_prompt"] == {"name": "original",
                                             "sha256": originals.ARENA_HARD_AUTO.files["config/judge_config.yaml"]}
    mine = tmp_path / "system.txt"
    mine.write_text("Judge fairly.")
    spec = J.judge_spec("openai", "m", J.arena_prompt(str(mine)))
    assert spec["arena_hard_prompt"] == {"name": str(mine), "sha256": hashlib.sha256(b"Judge fairly.").hexdigest()}
    with pytest.raises(AgoraError, match="no such file; the choices are original"):
        J.arena_prompt(str(tmp_path / "nope.txt"))


@needs_shared("arena_hard", "config", "judge_config.yaml")
@needs_shared("data_agora", "agora_scripts", "prompts")
def test_the_preset_judges_arena_hard_with_the_original_prompt_or_stops_before_any_cost(tmp_path):
    base = ["experiment=agorabench", "domain=instruction_following", "mode=response_generation",
            f"originals.data_agora={SHARED_DATA / 'data_agora'}"]
    cfg = compose_cfg("generate", base + [f"originals.arena_hard_auto={ARENA}"])
    assert cfg.eval.arena_hard_prompt == "original"
    check_cell(cfg)
    for stage in ("generate", "evaluate"):
        with pytest.raises(AgoraError) as e:
            check_cell(compose_cfg(stage, base + ["originals.arena_hard_auto=null"]))
        msg = str(e.value)
        assert "\n" not in msg and "originals.arena_hard_auto is not set" in msg
        assert "git clone https://github.com/lmarena/arena-hard-auto" in msg and "eval.arena_hard_prompt=agora" in msg
    check_cell(compose_cfg("generate", base + ["originals.arena_hard_auto=null", "eval.arena_hard_prompt=agora"]))
    # A checkout whose judge config differs by one byte is refused, in one line.
    bad = tmp_path / "arena-hard-auto"
    shutil.copytree(ARENA / "config", bad / "config")
    raw = (bad / "config" / "judge_config.yaml").read_bytes()
    (bad / "config" / "judge_config.yaml").write_bytes(raw[:-1] + bytes([raw[-1] ^ 1]))
    with pytest.raises(AgoraError, match=r"judge_config.yaml has sha256 .*, not 6e001736baca") as e:
        check_cell(compose_cfg("generate", base + [f"originals.arena_hard_auto={bad}"]))
    assert "\n" not in str(e.value) and "eval.arena_hard_prompt=agora" in str(e.value)
    # Outside the preset nothing changes: Agora's paraphrase, no checkout needed.
    check_cell(compose_cfg("generate", ["domain=instruction_following", "budget=n10k", "originals.arena_hard_auto=null"]))
