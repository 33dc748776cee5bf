"""Seed pools: which rows of a source may seed a cell, and the seeded sample every generator gets.

The paper pairs its generators by giving each one the same seeds: the whole filtered pool for instance
generation, and the same random 10K for response generation and quality enhancement (the paper, "The grid").
This module holds the two things that make that true here (reading the sources is agora/sources.py's):

- the pool filters the paper's counts imply (`math_single_answer`, `lima_single_turn`, `webinstruct_part`);
- `sample`: a draw of `n` rows ranked by a hash of (seed, row content), so the same seed gives the same rows
  whatever the generator, the file order or the other sources of the cell, and a larger draw contains a smaller one.

`VERSION` goes into the data key (agora/store.py): a change here makes a new cell, never a stale cache hit.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from typing import Any

from agora import AgoraError

VERSION = 1

# ------------------------------------------------------------------ the seeded sample


def _rank(seed: int, text: str) -> str:
    return hashlib.sha256(f"{seed}\x00{text}".encode()).hexdigest()


def sample(rows: list[dict], n: int | None, seed: int,
           key: Callable[[dict], str] = lambda r: f"{r['question']}\x00{r.get('solution', '')}") -> list[dict]:
    """`n` rows ranked by sha256(seed, key(row)); all of them, in source order, when `n` is None or covers them.

    The draw depends only on the rows' content and the seed: the same pool gives the same rows to every generator
    (the paired design), whatever order the files list them in, and the first 10K of a 50K draw are the 10K draw.
    A draw comes back in rank order, which is the order response generation and quality enhancement walk it.
    """
    if n is not None and n < 0:
        raise AgoraError(f"a sample size must be >= 0, got {n}")
    if n is None or n >= len(rows):   # the whole pool: as the source lists it
        return rows
    return sorted(rows, key=lambda r: _rank(seed, key(r)))[:n]


# ------------------------------------------------------------------ pool filters


BOXED = "\\boxed{"


def math_single_answer(solution: str) -> bool:
    """A MATH solution with exactly one `\\boxed{...}` and something in it.

    MATH train has 7,500 problems; 115 have no or several `\\boxed{`, 2 more box nothing. Dropping those 117 gives
    7,383, and with GSM8K's 7,473 the paper's 14,856 instance-generation seeds exactly.
    """
    if solution.count(BOXED) != 1:
        return False
    start = solution.index(BOXED) + len(BOXED)
    depth, i = 1, start
    while i < len(solution) and depth:
        depth += {"{": 1, "}": -1}.get(solution[i], 0)
        i += 1
    return bool(solution[start:i - 1].strip()) if depth == 0 else False


def lima_single_turn(conversations: list[str], source: str, sources: Iterable[str] | None) -> bool:
    """A LIMA row usable as an instance-generation seed: one question and one answer (LIMA's 30 multi-turn
    dialogues are not), from one of `sources` when that list is given (LIMA's `source` field)."""
    if len(conversations) != 2:
        return False
    return sources is None or source in set(sources)


# WebInstruct's split into a math and a general part. The paper classifies each pair with an LLM prompt; that prompt
# and its labels are not published, so a rule stands in for it (a named deviation): a pair is math when its question
# carries math notation (TeX, WebInstruct's `#...#` and `{eq}` markup) or comes from a math site, or when it asks for
# a computation with numbers. The two parts are complements, so no pair is in both and none is lost.
_MATH_MARKUP = re.compile(r"\$|\\\(|\\\[|\\frac|\\sqrt|\{eq\}|#[^#\n]{1,80}#|\^\{?\d")
_MATH_ASK = re.compile(r"\b(calculate|compute|evaluate|solve|simplify|find the (value|sum|product|derivative|integral|"
                       r"area|volume|roots?|limit|probability|equation)|how many|how much|what is \d)", re.I)
_MATH_SOURCES = ("math",)   # mathstackexchange; socratic spans every school subject


def webinstruct_part(question: str, source: str = "") -> str:
    """"math" or "general": which part of WebInstruct a question belongs to (see the rule above)."""
    src = source.lower()
    if any(s in src for s in _MATH_SOURCES) or _MATH_MARKUP.search(question):
        return "math"
    if _MATH_ASK.search(question) and re.search(r"\d", question):
        return "math"
    return "general"


# ------------------------------------------------------------------ the student-token limit of IG seeds

# Special tokens and headers the Llama-3 template wraps around a turn pair: a generous bound.
TEMPLATE_OVERHEAD_TOKENS = 64


def within_bytes(row: dict, max_tokens: int, system: str | None) -> bool:
    """True when the row cannot exceed `max_tokens` under any byte-level BPE tokenizer (a token covers at least
    one UTF-8 byte), so it needs no tokenizer; False means it must be counted."""
    size = sum(len((t or "").encode()) for t in (system, row["question"], row.get("solution")))
    return size + TEMPLATE_OVERHEAD_TOKENS <= max_tokens


def drop_long(rows: list[dict], max_tokens: int, system: str | None,
              count: Callable[[dict], int] | None) -> tuple[list[dict], int, int]:
    """(kept, dropped, unchecked): rows whose chat-formatted seed is longer than `max_tokens` student tokens go.

    Only rows that could be too long are tokenized (`count(row)` gives the student tokens of the rendered example).
    With `count=None` (a dry run, which loads no model) those rows are kept and reported as unchecked.
    """
    kept: list[dict] = []
    dropped = unchecked = 0
    for r in rows:
        if within_bytes(r, max_tokens, system):
            kept.append(r)
        elif count is None:
            kept.append(r)
            unchecked += 1
        elif count(r) <= max_tokens:
            kept.append(r)
        else:
            dropped += 1
    return kept, dropped, unchecked


def as_list(value: Any) -> list[str] | None:
    return None if value is None else [str(v) for v in value]
