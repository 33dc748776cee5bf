"""Final-answer extraction and equivalence for the math benchmarks (GSM8K, MATH).

Why it exists: the student, base and reference models write answers in many shapes
(`[RESULT] x [/RESULT]`, `\\boxed{x}`, `#### x`, "The answer is x.", a bare last number), and the
gold answers come as GSM8K `#### x` fields and MATH `\\boxed{}` solutions. Scoring them the same way
for every model is what makes PGR comparable, so the parser is versioned: bump `VERSION` whenever
a change could flip a score, and stamp it into every logged evaluation.
"""
from __future__ import annotations

import math
import re
import threading
from decimal import Decimal, InvalidOperation

VERSION = 1

_RESULT_OPEN = re.compile(r"\[RESULT\]", re.IGNORECASE)
_RESULT_CLOSE = re.compile(r"\[/RESULT\]", re.IGNORECASE)
_BOXED = re.compile(r"\\(?:boxed|fbox)")
_GSM8K = re.compile(r"####\s*([^\n]*)")
_PHRASES = [
    re.compile(r"(?:final\s+answer|the\s+answer)\s*\**\s*(?:is\s*:?|:|=)\s*\**[ \t]*([^\n]+)", re.IGNORECASE),
    re.compile(r"\banswer\s*\**\s*:\s*\**[ \t]*([^\n]+)", re.IGNORECASE),
]
# A number not glued to a word on its left; thousands commas only in groups of three.
_NUMBER = re.compile(r"(?:(?<![\w)\]])-)?(?<![\d.])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?!\d)")
_NUMERIC = re.compile(r"([-+]?)((?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+)(?:\s*/\s*(\d+))?")
_NOT_UNITS = {"pi", "sqrt", "e", "i", "x", "y", "z", "n", "inf", "infinity", "times", "cdot", "frac"}


def _boxed_contents(text: str) -> list[str]:
    """Contents of every complete `\\boxed{...}` / `\\fbox{...}` (also `\\boxed 5`), in order."""
    found = []
    for m in _BOXED.finditer(text):
        i = m.end()
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] == "{":
            depth, start = 0, i
            for j in range(i, len(text)):
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                if depth == 0:
                    found.append(text[start + 1:j])
                    break
        elif i > m.end():  # `\boxed 5`: the token after the space
            token = re.match(r"[^\s$]+", text[i:])
            if token:
                found.append(token.group(0))
    return found


def _clean(ans: str) -> str:
    """Strip what wraps an answer but is not part of it: spaces, math delimiters, bold, end period."""
    ans = ans.strip()
    boxed = _boxed_contents(ans)
    if boxed:
        ans = boxed[-1].strip()
    for left, right in (("\\(", "\\)"), ("\\[", "\\]"), ("**", "**")):
        if ans.startswith(left) and ans.endswith(right) and len(ans) >= len(left) + len(right):
            ans = ans[len(left):len(ans) - len(right)].strip()
    if ans.count("$") == 2 and ans.startswith("$") and ans.index("$", 1) < len(ans) - 1 \
            and ans[ans.index("$", 1) + 1:].strip() in (".", ""):  # "$x$." -> x
        ans = ans[1:ans.index("$", 1)]
    elif len(ans) >= 2 and ans.startswith("$") and ans.endswith("$"):
        ans = ans[1:-1]
    ans = ans.strip().rstrip(".").strip()
    return ans


def _phrase_answer(text: str) -> str | None:
    best: tuple[int, str] | None = None
    for pat in _PHRASES:
        for m in pat.finditer(text):
            if best is None or m.start() > best[0]:
                best = (m.start(), m.group(1))
    if best is None:
        return None
    # Keep the first clause: a period followed by a space ends it (a decimal point does not), and
    # so do "because ..." or ", since ..." (a comma before a word, not inside "1, 2").
    return re.split(r"\.(?:\s|$)|\s+(?:because|since|as|so|which)\b|,\s+(?=[A-Za-z]{2,}\b)",
                    best[1], maxsplit=1)[0]


def extract_answer(text: str) -> str | None:
    """The model's final answer as a stripped string, or None when the text has none.

    Tries, in order: the last `[RESULT] ... [/RESULT]` (the closing tag may be missing at the end),
    the last `\\boxed{}`/`\\fbox{}`, GSM8K's `#### x`, "the answer is x" / "Answer: x" /
    "final answer: x", and finally the last number in the text. Math delimiters (`$...$`,
    `\\(...\\)`), bold markers and a sentence-final period are removed; units and currency are kept
    (`normalize_number` handles those).
    """
    if not text:
        return None
    opens = list(_RESULT_OPEN.finditer(text))
    if opens:
        rest = text[opens[-1].end():]
        close = _RESULT_CLOSE.search(rest)
        ans = _clean(rest[:close.start()] if close else rest)
        if ans:
            return ans
    for candidate in (_boxed_contents(text)[-1:] or [None])[0], \
            (_GSM8K.findall(text)[-1:] or [None])[0], _phrase_answer(text):
        if candidate is not None and _clean(candidate):
            return _clean(candidate)
    numbers = _NUMBER.findall(text)
    return numbers[-1] if numbers else None


def _strip_latex_noise(s: str) -> str:
    s = s.replace("\\!", "").replace("{,}", ",").replace("\\$", "").replace("$", "")
    s = s.replace("\\%", "").replace("%", "")
    s = re.sub(r"\^\s*\{?\\circ\}?", "", s)
    s = re.sub(r"\\(?:left|right)\b", "", s)
    s = re.sub(r"\\(?:text|textbf|mbox|mathrm)\{([^{}]*)\}", r" \1 ", s)
    return s.strip()


def _strip_braces(s: str) -> str:
    while len(s) >= 2 and s[0] == "{" and s[-1] == "}":
        depth = 0
        for i, ch in enumerate(s):  # only strip a pair that wraps the whole string
            depth += {"{": 1, "}": -1}.get(ch, 0)
            if depth == 0 and i < len(s) - 1:
                return s
        s = s[1:-1].strip()
    return s


def normalize_number(s: str) -> str | None:
    """Canonical string of the number in `s` ("1,234.50 dollars" -> "1234.5"), or None if not numeric.

    Removes `$`, thousands commas, a percent sign, degree marks, `\\text{}` wrappers, trailing unit
    words and a trailing period. `a/b` is read as a fraction. Integers print without a decimal point.
    """
    if s is None:
        return None
    s = _strip_braces(_strip_latex_noise(s.strip().replace("\u2212", "-")))
    m = _NUMERIC.match(s)
    if not m:
        return None
    tail = s[m.end():].strip().rstrip(".").strip()
    words = re.findall(r"[A-Za-z]+", tail)
    if tail and (re.sub(r"[A-Za-z]+(?:\^\d)?|[\s/]", "", tail) or any(w.lower() in _NOT_UNITS for w in words)):
        return None  # something other than unit words follows the number
    sign, digits, denom = m.group(1), m.group(2).replace(",", ""), m.group(3)
    try:
        value = Decimal(digits)
        if denom is not None:
            if int(denom) == 0:
                return None
            value = value / Decimal(denom)
    except InvalidOperation:
        return None
    if sign == "-":
        value = -value
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def gsm8k_gold(answer_field: str) -> str:
    """The gold answer of a GSM8K record: the text after its last `####`, normalized."""
    if "####" not in answer_field:
        raise ValueError(f"GSM8K answer field has no '####' final answer: {answer_field[-80:]!r}")
    raw = answer_field.rsplit("####", 1)[1].strip()
    return normalize_number(raw) or raw


def math_gold(solution: str) -> str:
    """The gold answer of a MATH record: the content of the last `\\boxed{}` in its solution."""
    boxed = _boxed_contents(solution)
    if not boxed:
        raise ValueError(f"MATH solution has no \\boxed{{}} answer: {solution[-80:]!r}")
    return boxed[-1].strip()


def _normalize_latex(s: str) -> str:
    s = _strip_latex_noise(s)
    s = re.sub(r"(\d)\s+(?:[A-Za-z]+\s*)+$", r"\1", s)  # units left behind by \text{...}
    s = re.sub(r"\\[dt]frac", r"\\frac", s)
    s = re.sub(r"\\[,;:! ]", "", s)
    s = s.replace(" ", "").rstrip(".")
    return _strip_braces(s)


def _math_verify_equal(pred: str, gold: str) -> bool:
    import math_verify  # deferred: it pulls in sympy, which only the MATH benchmark needs

    # math_verify's timeout uses signal.alarm, which raises outside the main thread.
    timeout = 5 if threading.current_thread() is threading.main_thread() else None
    try:
        g = math_verify.parse(f"${gold}$", parsing_timeout=timeout)
        p = math_verify.parse(f"${pred}$", parsing_timeout=timeout)
        return bool(g and p and math_verify.verify(g, p, timeout_seconds=timeout))
    except Exception:  # noqa: BLE001 - any parser failure means "not shown equal"
        return False


def is_correct(pred_text: str, gold: str, latex: bool = False) -> bool:
    """Whether the final answer in a model's `pred_text` equals the `gold` answer.

    Numbers compare with a relative tolerance of 1e-6. With `latex=True` (MATH), non-numeric
    answers compare first as normalized LaTeX strings, then through math_verify.
    """
    pred = extract_answer(pred_text)
    if pred is None:
        return False
    p_num, g_num = normalize_number(pred), normalize_number(gold)
    if p_num is not None and g_num is not None:
        return math.isclose(float(p_num), float(g_num), rel_tol=1e-6) or p_num == g_num
    if not latex:
        return pred.strip().rstrip(".").lower() == gold.strip().rstrip(".").lower()
    if _normalize_latex(pred) == _normalize_latex(gold):
        return True
    return _math_verify_equal(pred, gold)
