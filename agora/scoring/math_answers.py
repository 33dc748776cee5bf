"""Final-answer extraction and equivalence for the math benchmarks (GSM8K, MATH).

Why it exists: the student, base and reference models write answers in many shapes
(`[RESULT] x [/RESULT]`, `\\boxed{x}`, `#### x`, "The answer is x.", a bare last number), and the
gold answers come as GSM8K `#### x` fields and MATH `\\boxed{}` solutions. Scoring them the same way
for every model is what makes PGR comparable, so the parser is versioned: bump `VERSION` whenever
a change could flip a score, and stamp it into every logged evaluation. What "right" means is fixed by people:
tests/data/math_outputs.jsonl holds hand-labelled outputs of instruct, frontier and base models, and the tests
require 99% agreement with those labels (benchmarks/bench_math_scoring.py compares lm-evaluation-harness).
"""
from __future__ import annotations

import math
import re
import threading
from decimal import Decimal, InvalidOperation

VERSION = 2   # 2: bold answers, "[RESULT] - 3", fractions in the fallback, few-shot run-ons cut, latest marker wins

_RESULT_OPEN = re.compile(r"\[RESULT\]", re.IGNORECASE)
_RESULT_CLOSE = re.compile(r"\[/RESULT\]", re.IGNORECASE)
_BOXED = re.compile(r"\\(?:boxed|fbox)")
_GSM8K = re.compile(r"####\s*([^\n]*)")
_PHRASES = [
    re.compile(r"(?:final\s+answer|the\s+answer)\s*\**\s*(?:is\s*:?|:|=)\s*\**[ \t]*([^\n]+)", re.IGNORECASE),
    re.compile(r"^[ \t#*>]*answer\s*\**\s*:\s*\**[ \t]*([^\n]+)", re.IGNORECASE | re.MULTILINE),   # a label
]
# Where a completion stops being an answer: a chat template's special token left in the text, or the start of
# the next few-shot example ("Question:", "Problem:", "Q:", a bare "user" turn header whose special tokens were
# skipped when decoding). A base model prompted few-shot often writes on into such an example, with an answer.
_SPECIAL_TOKEN = re.compile(r"<\|(?:eot_id|im_end|im_start|end_of_text|endoftext|start_header_id|end|user)\|>|"
                            r"</s>|<(?:start|end)_of_turn>")
_NEXT_EXAMPLE = re.compile(r"^[ \t#*>]*(?:(?:question|problem|q|human|user)(?:[ \t]+\d+)?[ \t]*\**[ \t]*:"
                           r"|(?:user|assistant|system)[ \t]*$)", re.IGNORECASE | re.MULTILINE)
# A number: a clock time (skipped: "from 1:00 PM to 5:00 PM" restates the question), a LaTeX fraction, a root
# ("2\sqrt{5}" is not 5), or a decimal with thousands commas in groups of three, optionally `/ denominator`
# ("3/4" is one number, not 4) or a factor of pi ("12\pi" is not 12).
_NUMBER = re.compile(r"(?P<time>(?<!\d)\d{1,2}:\d{2}(?!\d))"
                     r"|(?P<frac>-?\\[dt]?frac\{(?P<fn>\d+)\}\{(?P<fd>\d+)\})"
                     r"|(?P<root>(?:(?<![\w)\]])-)?(?<![\d.])(?:\d+\s*)?\\sqrt\{\d+\})"
                     r"|(?P<num>(?:(?<![\w)\]])-)?(?<![\d.])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
                     r"(?:/\d+(?!\d|[.,]\d))?(?!\d)(?:\s*\\pi\b)?)")
_NUMERIC = re.compile(r"([-+]?)\s*((?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+)(?:\s*/\s*(\d+))?")
_NOT_UNITS = {"pi", "sqrt", "e", "i", "x", "y", "z", "n", "inf", "infinity", "times", "cdot", "frac"}
_BOLD = re.compile(r"\*\*(?!\s)(.+?)(?<!\s)\*\*")
_MATH_SPAN = re.compile(r"\$\$(.+?)\$\$|\\\[(.+?)\\\]|\\\((.+?)\\\)|(?<![\\$])\$(?!\$)(.+?)(?<!\\)\$", re.DOTALL)
# A text that stops on one of these was cut off mid-sentence (max_new_tokens): it has no final answer yet.
_UNFINISHED = re.compile(r"(?:[,:;=+\-/×(]|\b(?:the|a|an|to|of|is|are|and|or|by|for|with|so|that|then|at|from|as|"
                         r"be|was|has|have|will|would|can|makes?|gets?|needs?))\s*$", re.IGNORECASE)


def _boxed_contents(text: str) -> list[str]:
    """Contents of every complete `\\boxed{...}` / `\\fbox{...}` (also `\\boxed 5`), in order."""
    return [c for _, c in _boxed_spans(text)]


def _boxed_spans(text: str) -> list[tuple[int, str]]:
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
                    found.append((m.start(), text[start + 1:j]))
                    break
        elif i > m.end():  # `\boxed 5`: the token after the space
            token = re.match(r"[^\s$]+", text[i:])
            if token:
                found.append((m.start(), token.group(0)))
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
    ans = ans.strip("*").strip()   # bold cut in half by a phrase: "The final answer is **18**." -> "18**"
    if ans.count("$") == 2 and ans.startswith("$") and ans.index("$", 1) < len(ans) - 1 \
            and ans[ans.index("$", 1) + 1:].strip() in (".", ""):  # "$x$." -> x
        ans = ans[1:ans.index("$", 1)]
    elif len(ans) >= 2 and ans.startswith("$") and ans.endswith("$"):
        ans = ans[1:-1]
    ans = ans.strip().rstrip(".").strip()
    return ans


def cut_runon(text: str) -> tuple[str, bool]:
    """The completion up to where it stops answering, and whether anything was cut.

    A special token left in the text ends it. So does the start of a new few-shot example (a line opening with
    "Question:", "Problem:", "Q:", "User:", or a bare "user"/"assistant" turn header) once the text before it
    holds a number or an answer mark, so that a restated "Problem:" at the top is kept.
    """
    cut = False
    special = _SPECIAL_TOKEN.search(text)
    if special:
        text, cut = text[:special.start()], True
    for m in _NEXT_EXAMPLE.finditer(text):
        before = text[:m.start()]
        if re.search(r"\d|\\boxed|\[RESULT\]|####", before, re.IGNORECASE):
            return before.rstrip(), True
    return text, cut


def _phrase_answers(text: str) -> list[tuple[int, str]]:
    found = []
    for pat in _PHRASES:
        for m in pat.finditer(text):
            # Keep the first clause: a period followed by a space ends it (a decimal point does not), and so
            # do "because ..." or ", since ..." (a comma before a word, not inside "1, 2").
            found.append((m.start(), re.split(r"\.(?:\s|$)|\s+(?:because|since|as|so|which)\b|,\s+(?=[A-Za-z]{2,}\b)",
                                              m.group(1), maxsplit=1)[0]))
    return found


def _marked_answer(text: str) -> str | None:
    """The last answer the text marks as final: `[RESULT]`, `\\boxed{}`, `####`, or "the answer is".

    The latest mark wins, so an answer restated and then corrected is scored on the correction. A phrase
    after a tag or box counts only when it reads as an answer, a number or math without prose ("the answer is
    reasonable" or "the answer is consistent: 17 * 44 = 748" does not).
    """
    strong: list[tuple[int, str]] = []
    opens = list(_RESULT_OPEN.finditer(text))
    for k, m in enumerate(opens):
        end = opens[k + 1].start() if k + 1 < len(opens) else len(text)
        close = _RESULT_CLOSE.search(text, m.end(), end)
        strong.append((m.start(), text[m.end():close.start() if close else end]))
    strong += _boxed_spans(text)
    strong += [(m.start(), m.group(1)) for m in _GSM8K.finditer(text)]
    strong = [(pos, _clean(a)) for pos, a in strong if _clean(a)]
    last = max(strong, default=None)
    phrases = [(pos, _clean(a)) for pos, a in _phrase_answers(text) if _clean(a)]
    if last is not None:
        phrases = [(pos, a) for pos, a in phrases if pos > last[0] and re.search(r"[\d\\]", a) and (
            normalize_number(a) is not None or not re.search(r"[A-Za-z]{3,}", re.sub(r"\\[A-Za-z]+", "", a)))]
    best = max(phrases + ([last] if last else []), default=None)
    return best[1] if best else None


def _numbers(text: str) -> list[re.Match]:
    return [m for m in _NUMBER.finditer(text) if not m.group("time")]


def _number_text(m: re.Match) -> str:
    if m.group("root"):
        return m.group("root")
    if m.group("frac"):
        sign = "-" if m.group("frac").startswith("-") else ""
        return f"{sign}{m.group('fn')}/{m.group('fd')}"
    return m.group("num")


def _value(s: str) -> float | None:
    v = normalize_number(s)
    return float(v) if v is not None else None


def _last_paragraph(text: str) -> str:
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    return paragraphs[-1] if paragraphs else ""


def _unmarked_answer(text: str, question: str | None, latex: bool) -> str | None:
    """The answer of a text with no answer mark, read the way a grader reads the last lines."""
    last = _last_paragraph(text)
    bold = [b.strip().rstrip(".").strip() for b in _BOLD.findall(last)]
    # A label ("**Total:**") or a one-letter name ("**u**" for a vector) is not an answer.
    bold = [b for b in bold if not b.endswith(":") and (re.search(r"\d", b) or
                                                        (len(b.split()) <= 3 and re.search(r"[A-Za-z]{2}", b)))]
    if bold:
        return _clean(bold[-1])
    if latex:
        spans = [next(g for g in m.groups() if g is not None) for m in _MATH_SPAN.finditer(last)]
        spans = [s for s in spans if s.strip()]
        if spans:
            return _clean(spans[-1].split("=")[-1])
        lines = [ln for ln in last.splitlines() if "=" in ln]
        rhs = lines[-1].rsplit("=", 1)[1] if lines else ""
        if rhs.strip() and not re.search(r"[A-Za-z]{2}", re.sub(r"\\[A-Za-z]+", "", rhs)):  # "= (-1, 6)", no prose
            return _clean(rhs)
    numbers = _numbers(text)
    if not numbers:
        return None
    # The last sentence that holds a number; in it, the result after its last "=", else the last number the
    # question did not already give ("She will spend $16.00 after 60 days": 60 restates the question), else
    # its last number.
    ends = [m.end() for m in re.finditer(r"[.!?](?=\s|$)|\n", text)]
    start = max((e for e in ends if e <= numbers[-1].start()), default=0)
    sentence = [m for m in numbers if m.start() >= start]
    # A parenthesis in it converts or recaps ("140 minutes (2 hours and 20 minutes)"): read outside it first.
    inside = [g.span() for g in re.finditer(r"\([^()]*\)", text[start:])]
    outside = [m for m in sentence if not any(a <= m.start() - start < b for a, b in inside)]
    sentence = outside or sentence
    equals = max((m.end() for m in re.finditer(r"=|\bequals?\b", text[start:numbers[-1].start()])), default=-1)
    after = [m for m in sentence if m.start() - start >= equals] if equals >= 0 else []
    if len(after) == 1:   # "Total: 9 + 6 = 15 liters" or "32 minus 30 equals 2", even when the question has it
        return _number_text(after[0])
    given = ({_value(_number_text(m)) for m in _numbers(question)} if question else set()) - {None}
    fresh = [m for m in sentence if _value(_number_text(m)) not in given]
    return _number_text((fresh or sentence)[-1])


def extract_answer(text: str, question: str | None = None, latex: bool = False) -> str | None:
    """The model's final answer as a stripped string, or None when the text has none.

    First the text is cut where a base model runs on into a new few-shot example (`cut_runon`). Then the
    latest answer mark wins: `[RESULT] ... [/RESULT]` (the closing tag may be missing), `\\boxed{}`/`\\fbox{}`,
    GSM8K's `#### x`, "the answer is x" / "Answer: x" / "final answer: x" (bold allowed). With no mark, a text
    cut off mid-sentence has no answer; otherwise the last bold phrase of the last paragraph, then (with
    `latex`, for MATH) the last math span or `= x` of the last paragraph, then the last number of the last
    sentence that has one, skipping numbers the `question` already gives and clock times. Math delimiters,
    bold markers and a sentence-final period are removed; units and currency are kept (`normalize_number`
    handles those).
    """
    if not text:
        return None
    text = text.replace("\u2212", "-").replace("{,}", ",").replace("\u03c0", "\\pi ").replace("\u221e", "\\infty ")
    text = re.sub(r"\u221a\s*(?:\(([^()]*)\)|(\d+|[A-Za-z]))", lambda m: f"\\sqrt{{{m.group(1) or m.group(2)}}}", text)
    text, was_cut = cut_runon(text)
    marked = _marked_answer(text)
    if marked is not None:
        return marked
    if not was_cut and _UNFINISHED.search(text.rstrip().rstrip("*_")):   # "**" closes bold, not a product
        return None
    return _unmarked_answer(text, question, latex)


def _strip_latex_noise(s: str) -> str:
    s = re.sub(r",\\!\s*", ",", s)   # MATH writes 11,\! 111,\! 100
    s = s.replace("\\!", "").replace("{,}", ",").replace("\\$", "").replace("$", "")
    s = s.replace("\\%", "").replace("%", "").replace("\u00b0", "")
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
    if tail and (re.sub(r"[A-Za-z]+|\^\{?\d\}?|[\s/]", "", tail) or any(w.lower() in _NOT_UNITS for w in words)):
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
    s = _strip_braces(s)
    s = re.sub(r"^([0-9A-Za-z]+)_\{?\d+\}?$", r"\1", s)   # a base subscript: 52_8 -> 52
    s = re.sub(r"^\(([A-Za-z])\)$", r"\1", s)              # a multiple-choice letter: (C) -> C
    return s.lower() if re.fullmatch(r"[A-Za-z]+", s) else s   # a word answer: East -> east


def _reduce(pred: str, gold: str) -> str:
    """A stated answer cut down to what the gold has: `x = 5` -> `5` when the gold is no equation, and a short
    sentence with a single number ("Billy sold 7 DVDs") -> that number when the gold is a number."""
    if "=" not in gold and pred.count("=") == 1:
        pred = pred.split("=")[1].strip()
    if normalize_number(gold) is not None and normalize_number(pred) is None and "\\" not in pred:
        numbers = _numbers(pred)
        if len(numbers) == 1:
            return _number_text(numbers[0])
    return pred


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


def is_correct(pred_text: str, gold: str, latex: bool = False, question: str | None = None) -> bool:
    """Whether the final answer in a model's `pred_text` equals the `gold` answer.

    `question` (optional) lets an answer with no answer mark skip numbers that merely restate the question
    (see `extract_answer`). Numbers compare with a relative tolerance of 1e-6. With `latex=True` (MATH),
    non-numeric answers compare first as normalized LaTeX strings, then through math_verify.
    """
    pred = extract_answer(pred_text, question=question, latex=latex)
    if pred is None:
        return False
    pred = _reduce(pred, gold)
    p_num, g_num = normalize_number(pred), normalize_number(gold)
    if p_num is not None and g_num is not None:
        return math.isclose(float(p_num), float(g_num), rel_tol=1e-6) or p_num == g_num
    if not latex:
        return pred.strip().rstrip(".").lower() == gold.strip().rstrip(".").lower()
    if _normalize_latex(pred) == _normalize_latex(gold):
        return True
    return _math_verify_equal(pred, gold)
