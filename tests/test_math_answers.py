"""Final-answer extraction and equivalence on the answer shapes real models and datasets produce."""
from __future__ import annotations

import json
import threading

import pytest

from agora.evaluate.math_answers import (VERSION, extract_answer, gsm8k_gold, is_correct, math_gold,
                                         normalize_number)
from conftest import SHARED_DATA, needs_shared

GSM8K_TEST = SHARED_DATA / "gsm8k" / "test.jsonl"
MATH500 = SHARED_DATA / "math" / "math500_test.jsonl"


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
