"""Control generators: the domain's human-written data as a cell's data, clean (`generator=human`) or with a share of
it corrupted (`generator=human_corrupted`).

A measurement needs controls. The positive one: `generator=human` writes exactly the rows that `reference=human_sft`
is fine-tuned on (the first budget.n of them, in the same order), so when budget.n covers the human set and the train
settings match, its student *is* the reference and PGR(human) is 100% up to training nondeterminism: a check of the
whole pipeline. The negative one: `generator=human_corrupted` corrupts round(rate x n) of those rows. If a benchmark
cannot tell it from the clean control at a volume, it cannot tell a good generator from a bad one there either.

No model, no request, no key, no server, no request cache and $0: generate.py commits the rows through the same path
as any generator's (data.jsonl, dropped.jsonl, seeds.jsonl = the human rows used, ledger.json, manifest). A control
ignores the mode: the cell's mode and meta-prompt change nothing in its rows, and train.py never adds IG seeds to it.
"""
from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Callable

from agora import AgoraError

PROVIDER = "human"                     # generator.provider of a control
HOWS = ("shuffle", "wrong_answer")     # generator.corrupt.how


def is_control(provider: str) -> bool:
    """Whether a generator option (its `provider`) is a control."""
    return provider == PROVIDER


def check_corrupt(corrupt: Mapping | None, domain: str) -> None:
    """`generator.corrupt` is null (the clean control) or {rate in [0, 1], how in HOWS}; wrong_answer needs a domain
    that can write one (a `wrong_answer` function in its module)."""
    if corrupt is None:
        return
    rate, how = corrupt["rate"], corrupt["how"]
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
        raise AgoraError(f"generator.corrupt.rate={rate}: the share of rows to corrupt must be a number in [0, 1]")
    if how not in HOWS:
        raise AgoraError(f"generator.corrupt.how={how}: known: {list(HOWS)}")
    if how == "wrong_answer":
        _wrong_answer_of(domain)


def _wrong_answer_of(domain: str) -> Callable[[str, random.Random], str | None]:
    from agora.domains import get_domain

    fn = getattr(get_domain(domain), "wrong_answer", None)
    if fn is None:
        raise AgoraError(f"generator.corrupt.how=wrong_answer: domain={domain} has no final answer to replace (math "
                         "has); use generator.corrupt.how=shuffle, which works in every domain")
    return fn


def control_rows(human: list[dict], *, n: int | None, corrupt_: Mapping | None, name: str, domain: str,
                 seed: int) -> list[dict]:
    """The control's data: the first min(n, len(human)) human rows as instruction/response rows (all of them when
    `n` is None), with the corruption `corrupt_` ({rate, how}) applied; every row says whether it was corrupted and
    which human row it came from. `name` is the generator option's, `domain` the domain package."""
    if not human:
        raise AgoraError(f"generator={name}: the domain has no human data at this budget.data (domain.human)")
    n = len(human) if n is None else min(int(n), len(human))
    rows = human[:n]
    responses = [r["solution"] for r in rows]
    corrupted = [False] * n
    if corrupt_ is not None:
        check_corrupt(corrupt_, domain)
        wrong = _wrong_answer_of(domain) if corrupt_["how"] == "wrong_answer" else None
        responses, corrupted = corrupt(responses, float(corrupt_["rate"]), corrupt_["how"], seed, wrong)
    return [{"id": f"{name}-{i}", "instruction": r["question"], "response": resp, "seed_id": r["id"],
             "corrupted": bad} for i, (r, resp, bad) in enumerate(zip(rows, responses, corrupted))]


def corrupt(responses: list[str], rate: float, how: str, seed: int,
            wrong_answer: Callable[[str, random.Random], str | None] | None = None) -> tuple[list[str], list[bool]]:
    """(responses, corrupted?) with exactly round(rate x n) rows corrupted, the same ones and the same way for the
    same seed. `shuffle`: the chosen rows' responses rotate among them in a random order, so each gets another row's
    response (one chosen row alone takes an unchosen row's). `wrong_answer`: each chosen row's final answer is
    replaced by a different number (the domain's `wrong_answer`), chosen among the rows that have one."""
    n, k = len(responses), round(rate * len(responses))
    rng = random.Random(f"agora-control:{how}:{seed}")
    out, flags = list(responses), [False] * n
    if k == 0:
        return out, flags
    if how == "shuffle":
        if n < 2:
            raise AgoraError("generator.corrupt.how=shuffle needs at least 2 rows to swap responses between; "
                             "raise budget.n")
        chosen = rng.sample(range(n), k)
        if k == 1:
            donor = rng.choice([j for j in range(n) if j != chosen[0]])
            out[chosen[0]] = responses[donor]
        else:
            for a, b in zip(chosen, chosen[1:] + chosen[:1]):
                out[a] = responses[b]
    elif how == "wrong_answer":
        assert wrong_answer is not None
        # Each row's wrong answer from its own generator, so it does not depend on which other rows were chosen.
        wrong = {i: wrong_answer(r, random.Random(f"agora-control:wrong_answer:{seed}:{i}"))
                 for i, r in enumerate(responses)}
        eligible = [i for i, w in wrong.items() if w is not None and w != responses[i]]
        if len(eligible) < k:
            raise AgoraError(f"generator.corrupt.how=wrong_answer: only {len(eligible)} of {n} rows have a final "
                             f"answer to replace, and rate={rate} asks for {k}; lower generator.corrupt.rate")
        chosen = rng.sample(eligible, k)
        for i in chosen:
            out[i] = wrong[i]
    else:
        raise AgoraError(f"generator.corrupt.how={how}: known: {list(HOWS)}")
    for i in chosen:
        flags[i] = True
    return out, flags
