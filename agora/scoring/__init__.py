"""Every scorer in one place: how a completion is judged right or wrong, whatever the domain.

- `math_answers`: the final answer of a math completion, extracted and compared (GSM8K, MATH);
- `sandbox`: model-written Python run in isolation, tests and all (HumanEval, MBPP and their EvalPlus versions);
- `ifeval`: IFEval's and IFBench's verifiable-instruction checkers, offline;
- `judge`: the pairwise LLM judge of AlpacaEval 2.0 and Arena-Hard v0.1.

A domain's YAML names each benchmark's scorer (`domain.scoring.<benchmark>.scorer`): one of these, or `domain` for
a user's domain that scores its own benchmarks (its `SCORER_VERSION`). The scorer's `VERSION` enters the evaluation
key (`scoring.<benchmark>.version`, agora/specs.py). The domain binds its benchmarks to the scorer
(`score_many`); a `judge` benchmark goes to the pairwise judge instead.
"""
from __future__ import annotations

from types import ModuleType

from agora import AgoraError

SCORERS = ("math_answers", "sandbox", "ifeval", "judge")
DOMAIN = "domain"   # the domain package's own scorer (its `score_many`, versioned by its SCORER_VERSION)


def scorer_version(scorer: str, domain: ModuleType) -> int:
    """The version of a benchmark's scorer: Agora's module's `VERSION`, or the domain's `SCORER_VERSION`."""
    import importlib

    if scorer == DOMAIN:
        if not hasattr(domain, "SCORER_VERSION"):
            raise AgoraError(f"scorer: domain needs SCORER_VERSION in {domain.__name__} (the version of its "
                             "score_many, part of every evaluation key)")
        return int(domain.SCORER_VERSION)
    if scorer not in SCORERS:
        raise AgoraError(f"unknown scorer {scorer!r}; known: {[*SCORERS, DOMAIN]}")
    return int(importlib.import_module(f"agora.scoring.{scorer}").VERSION)

