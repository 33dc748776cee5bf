"""Judge-based benchmarks (AlpacaEval 2, Arena-Hard): a pairwise LLM judge against a fixed baseline.

The judge is any generator option (`judge=gpt4o`, `judge=local`, ...), and its calls go through the same
engine as generation: the durable request cache (a rerun re-judges nothing), the priced ledger and the
dollar cap. Each pair is shown in a seeded random order so the judge's position bias cancels out.

The score is a length-controlled win rate in the spirit of AlpacaEval 2: a logistic regression of the
judge's preference on tanh(length difference / its spread), read off at equal length. AlpacaEval's own
GLM also has a per-instruction difficulty term fitted across many models; with one model and one
baseline that term cannot be fitted, so it is left out (the raw win rate is reported beside it).
"""
from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from agora.engine.cache import RequestCache, request_key
from agora.engine.ledger import Ledger, Price
from agora.engine.option import run_on_option
from agora.engine.runner import Request, Sampling
from agora.generate import endpoint_of
from agora.generators import require_key
from agora.store import Store, digest

VERSION = 1
JUDGED = {"alpaca_eval", "arena_hard"}
SYSTEM = ("You are a fair and careful judge of AI assistants. You compare two outputs to the same instruction "
          "and pick the one a thoughtful user would prefer: correct, helpful, and following the instruction. "
          "Length alone is not quality.")
USER = ("## Instruction\n{instruction}\n\n## Output (a)\n{a}\n\n## Output (b)\n{b}\n\n"
        "Which output is better? Answer with a single letter: a or b.")
_VERDICT = re.compile(r"\b([ab])\b", re.IGNORECASE)


@dataclass
class Verdicts:
    preference: list[float]      # per item: 1 the model won, 0 the baseline won, 0.5 no usable verdict
    unparsed: int
    cost_usd: float
    sent: int


def verdict(text: str) -> str | None:
    m = _VERDICT.search(text.strip().lower()[:40])
    return m.group(1).lower() if m else None


def lc_win_rate(preference: list[float], model_len: list[int], base_len: list[int]) -> float:
    """Win rate (%) at equal length: logistic fit of preference on tanh(length diff / std), read at 0."""
    diffs = [m - b for m, b in zip(model_len, base_len)]
    mean = sum(diffs) / len(diffs)
    std = math.sqrt(sum((d - mean) ** 2 for d in diffs) / max(len(diffs) - 1, 1)) or 1.0
    x = [math.tanh(d / std) for d in diffs]
    b0, b1 = 0.0, 0.0
    for _ in range(50):   # Newton's method with a small ridge, so a separable table stays finite
        g0 = g1 = 0.0
        h00, h01, h11 = 1e-3, 0.0, 1e-3
        for xi, yi in zip(x, preference):
            p = 1 / (1 + math.exp(-(b0 + b1 * xi)))
            w = p * (1 - p)
            g0 += yi - p
            g1 += (yi - p) * xi
            h00 += w
            h01 += w * xi
            h11 += w * xi * xi
        g0 -= 1e-3 * b0
        g1 -= 1e-3 * b1
        det = h00 * h11 - h01 * h01
        d0, d1 = (h11 * g0 - h01 * g1) / det, (h00 * g1 - h01 * g0) / det
        b0, b1 = b0 + d0, b1 + d1
        if abs(d0) + abs(d1) < 1e-10:
            break
    return 100 / (1 + math.exp(-b0))


def judge(judge_cfg: DictConfig, store: Store, rows: list[dict], outputs: list[str], *, max_usd: float | None,
          seed: int) -> Verdicts:
    """The judge's preference for each model output over the row's baseline `answer`."""
    j = judge_cfg
    price = Price.from_table(OmegaConf.to_container(j.price_usd_per_mtok), j.name)
    api_key = require_key(j.api_key_env, j.name)
    swapped = [random.Random(f"{seed}-judge-{r['id']}").random() < 0.5 for r in rows]
    endpoint = endpoint_of(j)
    sampling = Sampling(temperature=0.0, top_p=1.0, max_tokens=4, stop=None, response_format=None,
                        extra_body={"grammar": 'root ::= "a" | "b"'} if j.constrain else None)
    skey = {"judge_version": VERSION, "max_tokens": 4, "constrain": bool(j.constrain)}
    reqs = []
    for r, out, swap in zip(rows, outputs, swapped):
        a, b = (r["answer"], out) if swap else (out, r["answer"])
        messages = [{"role": "system", "content": SYSTEM},
                    {"role": "user", "content": USER.format(instruction=r["question"], a=a, b=b)}]
        reqs.append(Request(request_key(endpoint=endpoint, model=j.model, messages=messages, sampling=skey,
                                        replicate=0), messages))
    ledger = Ledger(price, max_usd)
    cache = RequestCache(store.requests_path(digest({"endpoint": endpoint, "model": j.model})))
    try:
        results = run_on_option(j, reqs, sampling, cache=cache, ledger=ledger, api_key=api_key, desc=f"judge {j.name}",
                                server_log=store.root / "judge_server.log")
    finally:
        cache.close()
    prefs, unparsed = [], 0
    for res, swap in zip(results, swapped):
        v = verdict(res.record["text"]) if res.record else None
        if v is None:
            unparsed += 1
            prefs.append(0.5)
        else:
            model_won = (v == "b") if swap else (v == "a")
            prefs.append(1.0 if model_won else 0.0)
    return Verdicts(prefs, unparsed, ledger.totals.cost_usd, ledger.totals.sent)
