"""How large a pool of earlier generations instance generation draws its demonstration from, round by round.

Issue 23, item 2: until now round 0 asked for a quarter of the target and round 1 for all the rest, so three
quarters of the prompts drew their "earlier generation" from round 0's output only, while the original
(neulab/data-agora, `Agora.run_single`) adds every kept example to its pool at once. This replays the round
schedule as a pure function (`agora.stages.generate.open_round_size`, and the old rule beside it) for a keep rate
and prints, per schedule: the rounds, the share of prompts that show a generation, the mean pool those prompts
draw from, that pool over the original's at the same request (the examples kept before it), and the share of
the generation demonstrations drawn from rounds after round 0.

    python benchmarks/ig_demo_pool.py               # n = 10,000 and the smoke cell's 12, keep rates 1.0 and 0.8
"""
from __future__ import annotations

import argparse
import math

from agora.stages.generate import open_round_size


def old_round_size(target: int, kept: int, sent: int, *, factor: float) -> int:
    """The schedule before issue 23: a quarter of the target, then everything missing at once."""
    if sent == 0:
        return math.ceil(target / 4) if target >= 8 else target
    return math.ceil((target - kept) / max(kept / sent, 1 / factor))


def simulate(next_size, target: int, keep: float, factor: float) -> dict:
    """Rounds until `target` are kept; request j is kept when floor((j + 1) * keep) > floor(j * keep), so any
    prefix keeps the same share. Pools are counted in kept examples."""
    kept, sent, rounds = 0, 0, []
    pools, originals, after_round0 = [], [], []
    kept_round0 = None
    max_requests = math.ceil(target * factor)
    while kept < target and sent < max_requests:
        size = min(next_size(target, kept, sent), max_requests - sent)
        pool = kept
        for j in range(sent, sent + size):
            if pool:
                pools.append(pool)
                originals.append(math.floor(j * keep))   # the original: every example kept before this request
                after_round0.append(1 - kept_round0 / pool)
        kept += math.floor((sent + size) * keep) - math.floor(sent * keep)
        sent += size
        rounds.append(size)
        kept_round0 = kept if kept_round0 is None else kept_round0
    n = sent
    return {"rounds": len(rounds), "sizes": rounds if len(rounds) <= 6 else rounds[:4] + ["..."] + rounds[-2:],
            "with_generation": len(pools) / n, "three_seeds": 1 - len(pools) / n,
            "mean_pool": sum(pools) / max(len(pools), 1),
            "pool_vs_original": sum(p / o for p, o in zip(pools, originals)) / max(len(pools), 1),
            "demo_after_round0": sum(after_round0) / max(len(after_round0), 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--factor", type=float, default=10.0)
    ap.add_argument("--first", type=int, default=2)
    ap.add_argument("--growth", type=float, default=1.0)
    a = ap.parse_args()
    schedules = {
        "old": lambda t, k, s: old_round_size(t, k, s, factor=a.factor),
        "new": lambda t, k, s: open_round_size(t, k, s, factor=a.factor, first=a.first, growth=a.growth),
    }
    print("| n | keep | schedule | rounds | prompts with a generation | 3 seeds | mean pool | pool / original's | "
          "generation demo from rounds > 0 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in (10_000, 12):
        for keep in (1.0, 0.8):
            for name, f in schedules.items():
                r = simulate(f, n, keep, a.factor)
                print(f"| {n:,} | {keep} | {name} | {r['rounds']} | {r['with_generation']:.2%} | {r['three_seeds']:.2%}"
                      f" | {r['mean_pool']:,.0f} | {r['pool_vs_original']:.2f} | {r['demo_after_round0']:.2%} |")


if __name__ == "__main__":
    main()
