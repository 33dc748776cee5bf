"""Contamination check: does generated data repeat the benchmarks the student is scored on?

A generator that has seen GSM8K or HumanEval can write their test problems back as "new" instructions,
and a student trained on them scores well for the wrong reason. Before the data set is committed, every
generated instruction is checked for a shared word n-gram (13 words by default, as in the GPT-3 and
Llama decontamination reports) with any test question of the domain's benchmarks. The rate is logged
as `gen/contamination_rate`; with `contamination.drop=true` flagged rows move to `dropped.jsonl`.
"""
from __future__ import annotations

import re

_WORD = re.compile(r"[a-z0-9]+")


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    """Lower-cased word n-grams; a text shorter than n words is one n-gram of all its words."""
    words = _WORD.findall(text.lower())
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


class Index:
    """The n-grams of a benchmark's test questions."""

    def __init__(self, texts: list[str], n: int):
        self.n = n
        self.grams: set[tuple[str, ...]] = set()
        for t in texts:
            self.grams |= ngrams(t, n)

    def hits(self, text: str) -> bool:
        return not self.grams.isdisjoint(ngrams(text, self.n))


def flag(rows: list[dict], benchmark_texts: list[str], n: int = 13) -> list[bool]:
    """For each generated row, whether its instruction shares an n-gram with a benchmark question."""
    index = Index(benchmark_texts, n)
    return [index.hits(r["instruction"]) for r in rows]
