"""Domains: where seeds, human data and benchmarks come from, and how outputs are validated and scored.

A domain is one package (the functions and constants of `Domain`, its prompts, rubrics and offline data) and one
YAML that names it; `get_domain` imports it from the YAML's `_target_`, so a user's domain needs no edit here.
"""
from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from types import ModuleType
from typing import Protocol

from agora import AgoraError


class Domain(Protocol):
    """What a domain package (`agora/domains/<name>/__init__.py`, or a user's own package) provides.

    Beside the module: `prompts/<mode>.txt` (the meta-prompts), `rubrics/{difficulty,quality}.txt` (the intrinsic
    judge's rubrics) and whatever offline data it ships. Its YAML (`conf/domain/<name>.yaml`, or one on Hydra's search
    path) names the package in `_target_` and holds its sources, seeds per mode, benchmarks and evaluation settings.
    """
    VERSION: int
    THEMES: list[str]   # drawn into instance generation, one per request
    OPENERS: list[str]  # opening words drawn likewise (instruction following); empty: none
    ANSWER_GBNF: tuple[str, str]   # the answer's llama.cpp grammar, free-form and inside a JSON string (agora/modes)
    # SCORER_VERSION: int, only where the YAML says `scorer: domain` (its own score_many); Agora's scorers carry theirs

    def load(self, name: str, split: str, source: dict, limit: int | None, seed: int) -> list[dict]: ...
    # Why a generated example is dropped (None: kept). `rules="original"` (validation.rules, experiment=agorabench)
    # asks for the original's domain checks only; the stage adds its placeholders and the length check itself.
    def validate(self, instruction: str, response: str, rules: str = "agora") -> str | None: ...
    def score(self, benchmark: str, completion: str, row: dict) -> bool: ...
    def score_many(self, benchmark: str, completions: list[str], rows: list[dict]) -> list[bool]: ...


REQUIRED = ("VERSION", "THEMES", "OPENERS", "ANSWER_GBNF", "load", "validate", "score", "score_many")


@cache
def get_domain(target: str) -> ModuleType:
    """The domain package named by a domain YAML's `_target_` (a module path, e.g. `agora.domains.math`).

    The YAML files of the `domain` config group are the registry: Agora's own in `conf/domain/`, a user's anywhere on
    Hydra's search path (`hydra.searchpath=[file://...]`), with a `_target_` that Python can import.
    """
    import importlib

    try:
        module = importlib.import_module(target)
    except ImportError as e:
        raise AgoraError(f"domain._target_={target}: cannot import it ({e}); a domain's YAML names an importable "
                         "package (on PYTHONPATH)") from None
    missing = [a for a in REQUIRED if not hasattr(module, a)]
    if missing:
        raise AgoraError(f"domain._target_={target} is not a domain: it lacks {', '.join(missing)} "
                         "(agora/domains/__init__.py, `Domain`)")
    return module


def package_text(target: str, *parts: str) -> str | None:
    """A text file shipped inside a domain package (`prompts/<mode>.txt`, `rubrics/<aspect>.txt`), or None."""
    from importlib import resources

    f = resources.files(target).joinpath(*parts)
    return f.read_text(encoding="utf-8") if f.is_file() else None


def forbidden_anywhere(text: str, words: Iterable[str]) -> str | None:
    """The first of `words` that occurs anywhere in `text`, ignoring case; None when none does. The original's
    validators (neulab/data-agora, core/validators.py) drop a response that holds any of its placeholders or
    triggers this way: mid-line, in any case, inside code or prose alike."""
    low = text.lower()
    return next((w for w in words if w.lower() in low), None)
