"""`generate.py` with the dollar cap's old policy, for benchmarks/bench_budget.py to measure against the current one.

The old policy stopped the whole run at the first reservation that did not fit under the cap, although the
reservations in flight (each a request's worst case: its prompt plus max_tokens out) were about to be
released. It is not an option of the product; this wrapper patches `_Flow.room` back to it in this process
and then runs the real Hydra entry point with the same command line:

    python benchmarks/old_cap_policy.py generator=gpt4o budget=usd budget.usd=2 ...
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agora.engine import runner  # noqa: E402


async def stop_at_first_refusal(self, ledger, usd: float) -> bool:
    if not ledger.reserve(usd):
        self.stop.set()
        return False
    self.in_flight += 1
    return True


runner._Flow.room = stop_at_first_refusal

if __name__ == "__main__":
    import runpy

    # The product's entry point run as a script, as `python generate.py` does: Hydra finds conf/ next to it.
    sys.argv[0] = str(ROOT / "generate.py")
    runpy.run_path(sys.argv[0], run_name="__main__")
