"""Domains: where seeds, human data and benchmarks come from, and how outputs are validated and scored.

A domain is a module with the functions of `Domain`; the registry is a plain dict.
"""
from __future__ import annotations

from types import ModuleType
from typing import Protocol

from agora import AgoraError


class Domain(Protocol):
    VERSION: int
    THEMES: list[str]

    def load(self, name: str, split: str, source: dict, limit: int | None, seed: int) -> list[dict]: ...
    def validate(self, instruction: str, response: str) -> str | None: ...
    def score(self, benchmark: str, completion: str, row: dict) -> bool: ...
    def score_many(self, benchmark: str, completions: list[str], rows: list[dict]) -> list[bool]: ...


def get_domain(name: str) -> ModuleType:
    from agora.domains import math

    known = {"math": math}
    if name in known:
        return known[name]
    if name in ("code", "instruction_following"):
        raise AgoraError(f"domain={name} composes, but its seeds, validators and benchmarks are not built yet; "
                         f"working domains: {sorted(known)}")
    raise AgoraError(f"unknown domain {name!r}; known: {sorted(known)}")
