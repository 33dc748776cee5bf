"""Domains: where seeds, human data and benchmarks come from, and how outputs are validated and scored.

A domain is a module with the functions of `Domain`; the registry is a plain dict.
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path
from types import ModuleType
from typing import Protocol

from agora import AgoraError


class Domain(Protocol):
    VERSION: int
    THEMES: list[str]   # drawn into instance generation, one per request
    OPENERS: list[str]  # opening words drawn likewise (instruction following); empty: none

    def load(self, name: str, split: str, source: dict, limit: int | None, seed: int) -> list[dict]: ...
    def validate(self, instruction: str, response: str) -> str | None: ...
    def score(self, benchmark: str, completion: str, row: dict) -> bool: ...
    def score_many(self, benchmark: str, completions: list[str], rows: list[dict]) -> list[bool]: ...


def get_domain(name: str) -> ModuleType:
    import importlib

    known = ("math", "code", "instruction_following")
    if name not in known:
        raise AgoraError(f"unknown domain {name!r}; known: {sorted(known)}")
    return importlib.import_module(f"agora.domains.{name}")


def check_jsonl(path: Path) -> None:
    """Name the file and line of the first record of a JSONL file (plain or .gz) that is not JSON."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    json.loads(line)
                except json.JSONDecodeError as e:
                    raise AgoraError(f"{path}:{n}: not a JSON record ({e.msg}); fix or remove that line") from None
