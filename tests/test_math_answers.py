"""Final-answer extraction and equivalence on the answer shapes real models and datasets produce.

The corpus test scores tests/data/math_outputs.jsonl (hand-written outputs in the styles of Llama-3 instruct, GPT-4o,
Claude, base models prompted few-shot and Agora's own student, each labelled by a person; see
tests/data/make_math_outputs.py) and requires 99% agreement with the labels.
"""
from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

import pytest

from agora.scoring.math_answers import (VERSION, cut_runon, extract_answer, gsm8k_gold, is_correct, math_gold,
                                        normalize_number)
from conftest import SHARED_DATA, compose_cfg, needs_shared

GSM8K_TEST = SHARED_DATA / "gsm8k" / "test.jsonl"
MATH500 = SHARED_DATA / "math" / "math500_test.jsonl"
CORPUS = Path(__file__).parent / "data" / "math_outputs.jsonl"


def corpus() -> list[dict]:
    return [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]


def test_version_is_an_int():
    assert isinstance(VERSION, int) and VERSION >= 1


@pytest.mark.parametrize("text, expected", [
    ("[RESULT] 42 [/RESULT]", "42"),
    ("First [RESULT] 1 [/RESULT] then [RESULT] 2 [/RESULT]", "2"),
    ("So the total is 12.\n[RESULT] 12", "12"),                        # closing tag missing
    ("[result]  12 [/result] and some trailing 13", "12"),
    ("[RESULT] \\boxed{9} [/RESULT]", "9"),
    ("Thus \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
    ("so \\boxed{ {3} }", "{3}"),
    ("first \\boxed{1} then \\boxed{\\sqrt{2}}", "\\sqrt{2}"),
    ("The final answer is $\\boxed{2\\sqrt{3}}$. I hope it is correct.", "2\\sqrt{3}"),
    ("\\fbox{12}", "12"),
    ("$\\boxed 5$", "5"),
    ("Janet sells 9 eggs.\n#### 18", "18"),
    ("#### 1,000", "1,000"),
    ("The answer is $1,234.", "$1,234"),
    ("The answer is 18 because 9*2 = 18", "18"),
    ("Therefore, the answer is: 7 apples.", "7 apples"),
    ("**Final Answer:** 17", "17"),
    ("Answer: \\(\\dfrac{3}{4}\\)", "\\dfrac{3}{4}"),
    ("The final answer is $\\frac{3}{4}$.", "\\frac{3}{4}"),
    ("He pays 72 dollars.", "72"),
    ("x = -5", "-5"),
    ("It is 3.75 meters long", "3.75"),
    ("pages 3-4", "4"),
    ("We have 1,234,567 grains", "1,234,567"),
    ("no number here", None),
    ("", None),
])
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize("raw, expected", [
    ("42", "42"), ("$1,234", "1234"), ("1,234.50 dollars", "1234.5"), ("-$5", "-5"), ("$-5", "-5"),
    ("50%", "50"), ("50\\%", "50"), ("3.0", "3"), ("7.", "7"), ("0.50", "0.5"), (".5", "0.5"), ("+7", "7"),
    ("\u22123", "-3"), ("1/4", "0.25"), ("10,\\!000", "10000"), ("10{,}000", "10000"), ("{3}", "3"),
    ("90^\\circ", "90"), ("5\\text{ cm}", "5"), ("72 dollars", "72"), ("12 km/h", "12"),
    ("1,2", None), ("2 pi", None), ("3x", None), ("2\\sqrt{3}", None), ("\\frac{1}{2}", None), ("1/0", None),
    ("abc", None), ("", None),
])
def test_normalize_number(raw, expected):
    assert normalize_number(raw) == expected


def test_gsm8k_gold():
    assert gsm8k_gold("She makes 9 * 2 = $<<9*2=18>>18.\n#### 18") == "18"
    assert gsm8k_gold("...\n#### 1,600") == "1600"
    assert gsm8k_gold("...\n#### -3") == "-3"
    with pytest.raises(ValueError, match="####"):
        gsm8k_gold("no final answer")


def test_math_gold():
    assert math_gold("So $x = \\boxed{\\frac{1}{2}}$.") == "\\frac{1}{2}"
    assert math_gold("a \\boxed{1} b \\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}.") == \
        "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert math_gold("nested \\boxed{\\{1, 2\\}^{\\{3\\}}}") == "\\{1, 2\\}^{\\{3\\}}"
    with pytest.raises(ValueError, match="boxed"):
        math_gold("no box")


@pytest.mark.parametrize("pred, gold", [
    ("[RESULT] 42 [/RESULT]", "42"),
    ("The answer is $1,234.", "1234"),
    ("So he earns 72 dollars.", "72"),
    ("#### 18", "18.00"),
    ("\\boxed{-7}", "-7"),
    ("The answer is 0.333333333", "0.3333333333"),   # within 1e-6 relative
    ("Total: 5 [RESULT] 5", "5"),
])
def test_is_correct_numeric(pred, gold):
    assert is_correct(pred, gold)


@pytest.mark.parametrize("pred, gold", [
    ("[RESULT] 41 [/RESULT]", "42"),
    ("no number at all", "42"),
    ("The answer is 0.33", "0.3333333333"),
    ("\\boxed{7}", "-7"),
    ("\\boxed{\\frac{1}{2}}", "0.5"),    # LaTeX needs latex=True
])
def test_is_wrong_numeric(pred, gold):
    assert not is_correct(pred, gold)


@pytest.mark.parametrize("pred, gold", [
    ("\\boxed{\\frac{1}{2}}", "0.5"),
    ("\\boxed{0.5}", "\\frac{1}{2}"),
    ("\\boxed{\\dfrac{1}{2}}", "\\frac12"),
    ("\\boxed{ {3} }", "3"),
    ("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "(3,\\frac{\\pi}{2})"),
    ("\\boxed{(3, \\pi/2)}", "\\left( 3, \\frac{\\pi}{2} \\right)"),
    ("\\boxed{90^\\circ}", "90"),
    ("\\boxed{5\\text{ cm}}", "5"),
    ("\\boxed{x^2+2x+1}", "(x+1)^2"),
    ("\\boxed{\\text{(C)}}", "\\text{(C)}"),
    ("[RESULT] 2\\sqrt{3} [/RESULT]", "\\sqrt{12}"),
])
def test_is_correct_latex(pred, gold):
    assert is_correct(pred, gold, latex=True)


@pytest.mark.parametrize("pred, gold", [
    ("\\boxed{\\frac{1}{3}}", "\\frac{1}{2}"),
    ("\\boxed{(3, \\pi)}", "\\left( 3, \\frac{\\pi}{2} \\right)"),
    ("\\boxed{x^2+1}", "(x+1)^2"),
    ("nothing here", "\\frac{1}{2}"),
])
def test_is_wrong_latex(pred, gold):
    assert not is_correct(pred, gold, latex=True)


def test_latex_check_works_off_the_main_thread():
    # math_verify's own timeout uses signal.alarm, which only works in the main thread
    out: list[bool] = []
    t = threading.Thread(target=lambda: out.append(is_correct("\\boxed{0.5}", "\\frac{1}{2}", latex=True)))
    t.start()
    t.join()
    assert out == [True]


@needs_shared("gsm8k", "test.jsonl")
def test_gsm8k_gold_parses_every_test_record():
    rows = [json.loads(line) for line in GSM8K_TEST.read_text().splitlines() if line.strip()]
    assert len(rows) == 1319
    for r in rows:
        gold = gsm8k_gold(r["answer"])
        assert normalize_number(gold) == gold, r["answer"][-60:]
        assert is_correct(r["answer"], gold)  # the worked solution scores as correct against itself


@needs_shared("math", "math500_test.jsonl")
def test_math_gold_agrees_with_math500_answers():
    rows = [json.loads(line) for line in MATH500.read_text().splitlines() if line.strip()]
    assert len(rows) == 500
    agree = sum(is_correct(f"\\boxed{{{math_gold(r['solution'])}}}", r["answer"], latex=True) for r in rows)
    assert agree >= 0.98 * len(rows), agree


# ---- the labelled corpus ------------------------------------------------------------------------------------------
def test_corpus_is_large_and_balanced():
    rows = corpus()
    assert len(rows) >= 200
    assert len({r["id"] for r in rows}) == len(rows)
    cells = Counter((r["benchmark"], r["correct"]) for r in rows)
    for bench in ("gsm8k", "math"):
        for label in (True, False):
            assert cells[bench, label] >= 0.15 * len(rows), cells
    styles = Counter(r["style"] for r in rows)
    assert {"llama3_instruct", "gpt4o", "claude", "base_fewshot"} <= set(styles), styles
    runons = [r for r in rows if r["style"] == "base_fewshot" and cut_runon(r["output"])[1]]
    assert len(runons) >= 15   # base models writing on into a next "Question:" / "Problem:" / chat turn


def test_scorer_agrees_with_human_labels():
    from agora.domains import math as math_domain   # scored the way evaluation scores: through the domain

    rows = corpus()
    wrong = [r for r in rows if math_domain.score(r["benchmark"], r["output"],
                                                  {"answer": r["gold"], "question": r["question"]}) != r["correct"]]
    report = "\n".join(
        f"{r['id']}: label {r['correct']}, extracted "
        f"{extract_answer(r['output'], question=r['question'], latex=r['benchmark'] == 'math')!r}, gold {r['gold']!r}"
        for r in wrong)
    assert len(wrong) <= 0.01 * len(rows), f"{len(wrong)} of {len(rows)} disagree with the labels:\n{report}"


@needs_shared("gsm8k", "test.jsonl")
@needs_shared("math", "math500_test.jsonl")
def test_corpus_rows_are_real_test_problems():
    gsm = [json.loads(line) for line in GSM8K_TEST.read_text().splitlines() if line.strip()]
    math500 = {r["unique_id"]: r for r in map(json.loads, MATH500.read_text().splitlines())}
    for r in corpus():
        if r["benchmark"] == "gsm8k":
            src = gsm[int(r["problem"].rsplit("#", 1)[1])]
            assert (src["question"], gsm8k_gold(src["answer"])) == (r["question"], r["gold"]), r["id"]
        else:
            src = math500[r["problem"]]
            assert (src["problem"], src["answer"]) == (r["question"], r["gold"]), r["id"]


# ---- the holes of VERSION 1 (issue 12, item 8): each of these failed on it ----------------------------------------
@pytest.mark.parametrize("text, extracted, gold", [
    ("The final answer is **18**.", "18", "18"),
    ("**Final Answer: 18**", "18", "18"),
    ("Janet makes **$18** every day at the farmers' market.", "$18", "18"),
    ("It takes Carla **160 minutes** (2 hours and 40 minutes) to download the file.", "160 minutes", "160"),
])
def test_bold_answers(text, extracted, gold):
    assert extract_answer(text) == extracted
    assert is_correct(text, gold)


@pytest.mark.parametrize("text, gold, latex", [
    ("Each friend gets 3/4 of the pizza", "0.75", False),
    ("Sum: 2 + 5/3 + 1 = 14/3", "\\frac{14}{3}", True),
    ("The probability is 1/3.", "\\frac{1}{3}", True),
])
def test_fraction_is_one_number_in_the_fallback(text, gold, latex):
    assert is_correct(text, gold, latex=latex)


@pytest.mark.parametrize("text", ["[RESULT] - 3 [/RESULT]", "[RESULT] -  3 [/RESULT]", "[RESULT] − 3 [/RESULT]",
                                  "The sum is **−3**."])
def test_signed_answers_with_spaces_or_unicode_minus(text):
    assert is_correct(text, "-3")
    assert is_correct(text, "-3", latex=True)
    assert not is_correct(text, "3")


RUNON_GSM8K = """ Janet sells 16 - 3 - 4 = 9 duck eggs a day.
She makes 9 * 2 = $18 every day at the farmer's market.
#### 18

Question: A robe takes 2 bolts of blue fiber and half that much white fiber.  How many bolts in total does it take?
Answer: It takes 2/2 = 1 bolt of white fiber.
So the total amount of fabric is 2 + 1 = 3 bolts of fabric.
#### 3"""
RUNON_MATH = """We have $f(-2)=2$, $f(-1)=\\frac53$ and $f(0)=1$, so the sum is $\\boxed{\\frac{14}{3}}$.
Final Answer: The final answer is $\\frac{14}{3}$. I hope it is correct.

Problem:
If $g(x)=\\frac{x+1}{x-1}$, what is $g(2)+g(3)$?

Solution:
$g(2)=3$ and $g(3)=2$, so the sum is $\\boxed{5}$.
Final Answer: The final answer is $5$. I hope it is correct."""
RUNON_CHAT = """He runs 3*3=9 sprints a week, 9*60=540 meters.
[RESULT] 540 [/RESULT]
user
Every day, Wendi feeds each of her chickens three cups of feed. How many cups does she need for 20 chickens?
assistant
She needs 3*20=60 cups of feed.
[RESULT] 60 [/RESULT]"""


@pytest.mark.parametrize("text, gold, latex, other", [
    (RUNON_GSM8K, "18", False, "3"),
    (RUNON_MATH, "\\frac{14}{3}", True, "5"),
    (RUNON_CHAT, "540", False, "60"),
    ("So the answer is 12.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nThe answer is 13.", "12", False, "13"),
    ("3 * 4 = 12. The answer is 12.\n\nQ: What is 2 + 2?\nA: 2 + 2 = 4. The answer is 4.", "12", False, "4"),
])
def test_a_few_shot_run_on_is_not_scored(text, gold, latex, other):
    assert is_correct(text, gold, latex=latex)
    assert not is_correct(text, other, latex=latex)


def test_a_restated_problem_at_the_top_is_kept():
    text = "**Problem:** Janet has 16 eggs and uses 7.\n\nShe has 16 - 7 = 9 left.\n\n**Answer:** 9"
    assert cut_runon(text) == (text, False)
    assert is_correct(text, "9")


def test_the_latest_answer_wins_over_an_earlier_box():
    text = "So the total is $\\boxed{54}$.\n\nWait, let me recheck: 40 + 24 = 64. The answer is 64."
    assert is_correct(text, "64") and not is_correct(text, "54")


def test_a_truncated_output_has_no_answer():
    text = ("12 miles / 4 mph = 3 hours. She has 3 - 1 - 1 = 1 hour left for 12 - 4 - 2 = 6 miles.\n"
            "Now divide the remaining distance by the remaining time to find how fast Marissa has to")
    assert extract_answer(text) is None
    assert not is_correct(text, "6")


@pytest.mark.parametrize("text, gold, question", [
    ("Cynthia will spend $16.00 on ice cream after 60 days.", "16",
     "After 60 days, how much will she spend on ice cream?"),
    ("So the candle will be 8 centimeters shorter after burning from 1:00 PM to 5:00 PM.", "8", None),
    ("Total water: 9 + 6 = 15 liters", "15", "15 liters of pineapple drink that is three-fifths water"),
])
def test_numbers_that_restate_the_question_are_not_the_answer(text, gold, question):
    assert is_correct(text, gold, question=question)


def test_evaluation_scores_with_the_question():
    from agora.domains import math as math_domain

    row = {"answer": "16", "question": "After 60 days, how much will she spend on ice cream?"}
    assert math_domain.score("gsm8k", "Cynthia will spend $16.00 on ice cream after 60 days.", row)


# ---- few-shot prompting of the base model -------------------------------------------------------------------------
@needs_shared("gsm8k", "train.jsonl")
@needs_shared("math", "hendrycks_math_train.jsonl.gz")
def test_base_fewshot_counts_shots_not_shots_per_source():
    from agora.stages.evaluate import fewshot_examples

    cfg = compose_cfg("evaluate", [
        "budget=n10k", "domain=math", "eval.base_fewshot=3",
        f"domain.sources.gsm8k.local={SHARED_DATA / 'gsm8k' / 'train.jsonl'}",
        f"domain.sources.math.local={SHARED_DATA / 'math' / 'hendrycks_math_train.jsonl.gz'}"])
    assert list(cfg.domain.human[cfg.budget.data]) == ["gsm8k", "math"]   # two human sources at hub scale
    shots = fewshot_examples(cfg)
    assert len(shots) == 3
    gsm_questions = {json.loads(line)["question"] for line in (SHARED_DATA / "gsm8k" / "train.jsonl").open()}
    assert sum(q in gsm_questions for q, _ in shots) == 2   # drawn in turn: GSM8K, MATH, GSM8K
    assert all(a.rstrip().endswith("[/RESULT]") for _, a in shots)
    assert fewshot_examples(compose_cfg("evaluate", ["budget=n10k", "domain=math", "eval.base_fewshot=0"])) == []
