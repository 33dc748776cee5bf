"""The pre-flight cost of a cell: what a dry run prints before anyone buys an API key.

A cell's cost is its requests times what one request costs. The prompts are the real ones, rendered from the real
seeds with the cell's template; only the token counts are estimated (about 4 characters a token for English text
under the GPT-4o, Claude and Llama-3 tokenizers) and the length of a reply, which is taken to be the length of the
seed example it imitates (IG: a problem and its solution; RG: the seed's own response where the pool has one; QE:
the rewritten pair). Requests are the target volume divided by an assumed keep rate. The figure is an estimate and is
printed as one; the ledger of a real run is the measurement.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from agora.engine.ledger import Price

CHARS_PER_TOKEN = 4.0


@dataclass(frozen=True)
class Estimate:
    requests: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    per_request_usd: float
    sampled_prompts: int

    def as_dict(self) -> dict:
        return asdict(self)


def reply_chars(mode: str, seed_row: dict, max_tokens: int) -> int:
    """The expected length of one reply, in characters, capped at the request's max_tokens."""
    q, s = seed_row.get("question") or "", seed_row.get("solution") or ""
    if mode == "response_generation":
        chars = len(s) if s else 2 * len(q)   # no reference response: assume twice the instruction
    else:
        chars = len(q) + len(s) + 40          # IG and QE write a whole pair, plus their markers
    return min(chars, int(max_tokens * CHARS_PER_TOKEN))


def preflight(prompts: list[list[dict]], replies: list[int], n: int, price: Price, *, keep_rate: float = 1.0,
              batch: bool = False) -> Estimate:
    """Scale the sampled prompts (chat messages) and expected reply lengths (characters) to `n` kept examples."""
    if not prompts:
        raise ValueError("preflight needs at least one sampled prompt")
    requests = int(round(n / keep_rate))
    in_chars = sum(len(m["content"]) for msgs in prompts for m in msgs) / len(prompts)
    out_chars = sum(replies) / len(replies)
    tin = int(round(requests * in_chars / CHARS_PER_TOKEN))
    tout = int(round(requests * out_chars / CHARS_PER_TOKEN))
    cost = price.cost(tin, tout, batch=batch)
    return Estimate(requests, tin, tout, round(cost, 4), round(cost / max(requests, 1), 8), len(prompts))
