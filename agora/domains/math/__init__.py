"""The math domain: GSM8K and MATH at paper scale, Agora's own GSM-style problems offline.

Every record is `{"id", "question", "solution", "answer"}`. Solutions are rewritten into the
AgoraBench output format, ending in `[RESULT] answer [/RESULT]`, so human data, generated data and
the student all speak it.
"""
from __future__ import annotations

import random
import re

from agora import AgoraError
from agora import sources
from agora.domains import pool
from agora.domains.math import synthetic as synthetic_math
from agora.scoring import math_answers

VERSION = 1   # the domain's code and its embedded data (synthetic.py): in every data and evaluation key
# The answer's shape for the embedded generator's llama.cpp grammar (agora/modes `gbnf`): free-form, and in JSON.
ANSWER_GBNF = ("text result", r'jtext " [RESULT] " [^"\\\n\[\]]{1,30} " [/RESULT]"')
RESULT_RE = re.compile(r"\[RESULT\](.*?)\[/RESULT\]", re.S)
PLACEHOLDER_RE = re.compile(r"<\s*(the |a |your )?(new |math )?(problem|solution|question|answer|input|output)[^>]*>|"
                            r"\[insert|\.\.\.\s*\]|\{\{|TODO", re.I)
# The 36 topics drawn into math instance generation, one per request: the paper's list (neulab/data-agora's
# run.py), where "combinatorics" appears twice and so is drawn twice as often; kept that way, as the paper drew it.
THEMES = [
    "algebra", "counting and probability", "geometry", "number theory", "calculus", "conic sections",
    "group theory and ring theory", "field theory and vector spaces", "differential equations", "linear algebra",
    "real analysis", "complex analysis", "combinatorics", "topology", "trigonometry", "combinatorics",
    "graph theory", "set theory",
    *(f"math word problems with {t}" for t in (
        "the GCD of polynomials", "probability and number theory", "matrices", "partial derivatives",
        "areas, lengths and volumes", "sinusoidal functions", "complex numbers", "multiplication", "addition",
        "subtraction", "division", "fractions", "remainders", "rounding", "percentages", "ratios", "proportions",
        "exponents and logarithms")),
]
assert len(THEMES) == 36
OPENERS: list[str] = []   # an opening word is drawn in instruction following only


def _with_result(solution: str, answer: str) -> str:
    return f"{solution.rstrip()}\n[RESULT] {answer} [/RESULT]"


def _from_gsm8k(i: int, r: dict) -> dict:
    body, _, final = r["answer"].rpartition("####")
    body = re.sub(r"<<[^>]*>>", "", body)  # calculator annotations
    ans = math_answers.gsm8k_gold(r["answer"])
    return {"id": f"gsm8k-{i}", "question": r["question"], "solution": _with_result(body, ans), "answer": ans}


def _from_math(i: int, r: dict) -> dict:
    ans = r.get("answer") or math_answers.math_gold(r["solution"])
    rid = r.get("unique_id") or f"math-{i}"
    return {"id": rid, "question": r["problem"], "solution": _with_result(r["solution"], ans), "answer": ans}


def _from_instruction(i: int, r: dict) -> dict:
    q = r.get("instruction") or r.get("question") or r.get("prompt")
    rid = r.get("uuid") or r.get("index") or i
    return {"id": f"{rid}", "question": q, "solution": r.get("response") or r.get("answer") or "", "answer": "",
            "source": r.get("source") or ""}


def _load_rows(name: str, split: str, source: dict) -> list[dict]:
    if name == "math" and not source.get("local") and source.get("hub") and not source.get("config") \
            and not source.get("data_files"):   # EleutherAI/hendrycks_math: one config per subject
        import datasets

        try:
            subjects = datasets.get_dataset_config_names(source["hub"], revision=source.get("revision"))
        except Exception as e:
            raise AgoraError(f"could not list the subjects of {source['hub']} on the Hugging Face hub: {e}. Offline, "
                             f"set domain.sources.{name}.local=/path/to/file.jsonl, or use budget=smoke") from e
        return [r for s in subjects for r in sources.load_hub(name, source, split, config=s)]
    return list(sources.load_rows(name, split, source))


_CONVERT = {"gsm8k": _from_gsm8k, "math": _from_math, "math500": _from_math,
            "magpie_math": _from_instruction, "webinstruct_math": _from_instruction}
LATEX_BENCHMARKS = {"math", "math500"}


GENERATED = ("synthetic_gsm",)   # made by Agora from a seed, never loaded: a `local=` file for it is an error

def load(name: str, split: str, source: dict, limit: int | None, seed: int) -> list[dict]:
    """Records of data set `name` (a key of domain.sources), `limit` of them drawn with `seed`."""
    if name == "synthetic_gsm":
        return synthetic_math.make_problems(limit or 1000, split=split, seed=seed)
    if name not in _CONVERT:
        raise AgoraError(f"unknown math data set {name!r}; known: {sorted(['synthetic_gsm', *_CONVERT])}")
    if name == "math500":
        split = "test"
    raw = _load_rows(name, split, source)
    if name == "math" and split == "train":   # the seed pool's rule: one boxed answer (7,500 -> 7,383 train problems; pool.py)
        raw = [r for r in raw if r.get("answer") or pool.math_single_answer(r["solution"])]
    if name == "magpie_math" and raw and "task_category" in raw[0]:   # Magpie-Reasoning-V1-150K: its math rows
        raw = [r for r in raw if str(r["task_category"]).strip().lower() == "math"]
    rows = [_CONVERT[name](i, r) for i, r in enumerate(raw)]
    rows = [r for r in rows if r["question"]]
    if name == "webinstruct_math":   # WebInstruct's math part (the general part is instruction following's)
        rows = [r for r in rows if pool.webinstruct_part(r["question"], r.get("source", "")) == "math"]
    return pool.sample(rows, limit, seed)


def validate(instruction: str, response: str, rules: str = "agora") -> str | None:
    """Why a generated math example is dropped (None: kept). `agora`: the result tag once, at the end, not empty, and
    no placeholder in either text. `original` (neulab/data-agora's MathValidator, beside the stage's placeholder and
    length checks): exactly one `[RESULT]` and one `[/RESULT]` in the response, which ends with `[/RESULT]`."""
    if not instruction.strip():
        return "empty_instruction"
    if not response.strip():
        return "empty_response"
    if rules == "original":
        opened, closed = response.count("[RESULT]"), response.count("[/RESULT]")
        if opened > 1 or closed > 1:
            return "several_result_tags"
        if opened != 1 or closed != 1:
            return "no_result_tag"
        return None if response.endswith("[/RESULT]") else "result_not_at_end"
    for text in (instruction, response):
        if PLACEHOLDER_RE.search(text):
            return "placeholder"
    tags = RESULT_RE.findall(response)
    if len(tags) != 1:
        return "no_result_tag" if not tags else "several_result_tags"
    if not response.rstrip().endswith("[/RESULT]"):
        return "result_not_at_end"
    if not tags[0].strip():
        return "empty_result"
    return None


# The final answer of a solution, as the scorer reads it: [RESULT] x [/RESULT], \boxed{x} (one level of braces
# inside), #### x; the last one wins.
FINAL_RE = re.compile(r"\[RESULT\](.*?)\[/RESULT\]|\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}|####[ \t]*([^\n]*)", re.S)


def wrong_answer(solution: str, rng: random.Random) -> str | None:
    """`solution` with its final answer replaced by a different number (the negative control
    `generator=human_corrupted generator.corrupt.how=wrong_answer`, agora/controls.py); None when it has no final
    answer. A number moves by a nonzero offset of at most 9, keeping its decimals; anything else becomes an integer."""
    marks = list(FINAL_RE.finditer(solution))
    if not marks:
        return None
    m = marks[-1]
    g = next(i for i in (1, 2, 3) if m.group(i) is not None)
    old = m.group(g)
    if not old.strip():
        return None
    value = old.strip().replace(",", "").lstrip("$").removesuffix("\\%").rstrip("%")
    offset = rng.choice([d for d in range(-9, 10) if d])
    if re.fullmatch(r"-?\d+", value):
        new = str(int(value) + offset)
    elif re.fullmatch(r"-?\d*\.\d+", value):
        new = f"{float(value) + offset:.{len(value.split('.')[1])}f}"
    else:
        new = str(rng.randint(10, 999))
    lead = old[:len(old) - len(old.lstrip())]
    trail = old[len(old.rstrip()):]
    return solution[:m.start(g)] + lead + new + trail + solution[m.end(g):]


def score(benchmark: str, completion: str, row: dict) -> bool:
    # The question lets an answer with no mark skip the numbers it restates ("... after 60 days").
    return math_answers.is_correct(completion, row["answer"], latex=benchmark in LATEX_BENCHMARKS,
                                   question=row["question"])


def score_many(benchmark: str, completions: list[str], rows: list[dict]) -> list[bool]:
    return [score(benchmark, c, r) for c, r in zip(completions, rows)]
