"""What a dollar budget buys: `generate.py` against a loopback server priced like gpt-4o (issue 11, finding 4).

Why this exists: the dollar cap reserves each request's worst case (its prompt plus max_tokens=4,096 out)
before sending it. The old policy stopped the whole run at the first reservation that did not fit, although
the 64 reservations in flight (~$0.04 each) were about to be released: `budget=usd budget.usd=2` spent $0.11.
The current policy (`agora.engine.runner._Flow.room`) waits for in-flight requests to settle and stops only
when nothing is in flight and the reservation still does not fit. This script runs the issue's scenarios
through both, in the same run, against `tests/pricedserver.py` started as a separate process (fixed latency,
fixed-length replies that the math domain keeps, `usage` with prompt_tokens = characters // 4):

    python benchmarks/bench_budget.py                     # $2 and $20 (budget=usd), budget.max_usd=1 budget.n=300
    python benchmarks/bench_budget.py --scenarios usd2 cap300 --policies current   # a subset
    python benchmarks/bench_budget.py --json budget.json  # also save every number

Each run is `python generate.py generator=gpt4o generator.base_url=<server> generator.limits.tpm=null
budget.data=embedded tracking=none <scenario>` in a fresh store, exactly as a user types it. The old policy
is not an option of the product: its rows run `benchmarks/old_cap_policy.py`, a wrapper that patches
`_Flow.room` back to stop-at-first-refusal and then runs the same `generate.py` entry point.

Columns: the budget (budget.usd, or budget.max_usd for a budget.n run), spent (the sum of `cost_usd` over the
request cache, which holds every paid request), % of the budget, examples kept in the committed product (or
"none" when nothing was committed), requests answered by the server, wall time of the generate process, its
exit code, and the verdict against the issue's "Must show": budget=usd spends >= 95% and <= 100%; a budget.n
run completes, or stops (exit 2, nothing committed) with spend within one request's worst case of the cap.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _gpt4o():
    """generator=gpt4o as composed (the option over conf/generator/_defaults.yaml)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return compose("generate", ["generator=gpt4o"]).generator


OPTION = _gpt4o()
SCENARIOS = {   # name: (overrides, the budget in dollars)
    "usd2": (["budget=usd", "budget.usd=2"], 2.0),
    "usd20": (["budget=usd", "budget.usd=20"], 20.0),
    "cap300": (["budget.max_usd=1", "budget.n=300"], 1.0),
    "cap800": (["budget.max_usd=1", "budget.n=800"], 1.0),   # tests/test_budget.py's cell: the cap binds
}
POLICIES = {"current": [str(ROOT / "generate.py")],
            "old": [str(HERE / "old_cap_policy.py")]}   # stop at the first refusal (patched in; not an option)


def cost(input_tokens: float, output_tokens: float) -> float:
    p = OPTION.price_usd_per_mtok
    return (input_tokens * p.input + output_tokens * p.output) / 1e6


def served(url: str) -> int:
    with urllib.request.urlopen(url + "/stats", timeout=10) as r:
        return json.loads(r.read())["served"]


def start_server(latency: float, completion_tokens: int) -> tuple[subprocess.Popen, str]:
    p = subprocess.Popen([sys.executable, str(ROOT / "tests" / "pricedserver.py"), "--port", "0", "--latency",
                          str(latency), "--completion-tokens", str(completion_tokens)],
                         stdout=subprocess.PIPE, text=True)
    url = p.stdout.readline().strip()
    if not url.startswith("http://"):
        p.kill()
        raise SystemExit(f"tests/pricedserver.py did not start (printed {url!r})")
    return p, url


def run_one(url: str, policy: str, scenario: str, mode: str) -> dict:
    overrides, budget = SCENARIOS[scenario]
    with tempfile.TemporaryDirectory(prefix="agora-bench-budget-") as tmp:
        store = Path(tmp) / "store"
        env = {**os.environ, "AGORA_STORE": str(store), "OPENAI_API_KEY": "sk-test-bench-budget-NOT-A-KEY",
               "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline"}
        args = ["generator=gpt4o", f"generator.base_url={url}", "generator.limits.tpm=null", "budget.data=embedded",
                f"mode={mode}", "tracking=none", *overrides]
        before = served(url)
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, *POLICIES[policy], *args], cwd=tmp, env=env, capture_output=True,
                           text=True, timeout=3600)
        seconds = time.perf_counter() - t0
        requests = served(url) - before
        lines = [json.loads(x) for f in (store / "requests").glob("*.jsonl") if not f.name.endswith(".batches.jsonl")
                 for x in f.read_text().splitlines() if x.strip()] if (store / "requests").exists() else []
        manifests = list(store.glob("data/**/manifest.json"))
        summary = json.loads(manifests[0].read_text())["summary"] if manifests else None
    spent = sum(r["cost_usd"] for r in lines)
    # One request's worst case as the ledger reserves it: every prompt character a token (the server counted
    # chars // 4), plus max_tokens out; the refused request's prompt is taken as the largest one sent.
    worst = cost(4 * max((r["input_tokens"] for r in lines), default=0) + 3, OPTION.sampling.max_tokens)
    row = {"policy": policy, "scenario": scenario, "overrides": " ".join(overrides), "budget_usd": budget,
           "spent_usd": round(spent, 4), "pct": round(100 * spent / budget, 1),
           "kept": summary["kept"] if summary else None, "requests": requests, "seconds": round(seconds, 1),
           "rc": p.returncode, "worst_case_usd": round(worst, 4),
           "cap_stop": "dollar cap" in p.stderr, "stderr_tail": p.stderr.strip().splitlines()[-1:] if p.returncode
           else []}
    if "budget=usd" in overrides:
        ok = p.returncode == 0 and 0.95 * budget <= spent <= budget
    else:
        ok = (p.returncode == 0 and summary is not None and spent <= budget) or \
             (p.returncode == 2 and row["cap_stop"] and summary is None and budget - worst <= spent <= budget)
    row["meets_issue"] = ok
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", nargs="+", default=["usd2", "usd20", "cap300", "cap800"], choices=list(SCENARIOS))
    ap.add_argument("--policies", nargs="+", default=["current", "old"], choices=list(POLICIES))
    ap.add_argument("--mode", default="instance_generation")
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--completion-tokens", type=int, default=64)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}; generator=gpt4o at ${OPTION.price_usd_per_mtok.input}/"
          f"${OPTION.price_usd_per_mtok.output} per 1M tokens in/out, max_tokens={OPTION.sampling.max_tokens}, "
          f"concurrency {OPTION.limits.concurrency}, tpm=null; server latency {a.latency} s, "
          f"{a.completion_tokens}-token replies; mode={a.mode}")
    print("policy 'old' = benchmarks/old_cap_policy.py: generate.py with _Flow.room patched back to stop at the "
          "first refusal (not a product option)")
    server, url = start_server(a.latency, a.completion_tokens)
    rows = []
    try:
        for policy in a.policies:
            for scenario in a.scenarios:
                rows.append(r := run_one(url, policy, scenario, a.mode))
                print(f"  {policy:7s} {r['overrides']:32s} spent ${r['spent_usd']:.4f} ({r['pct']}%) in "
                      f"{r['seconds']} s, rc {r['rc']}", flush=True)
    finally:
        server.terminate()
        server.wait(10)
    print()
    print("| policy | scenario | budget | spent | % of budget | kept | requests | wall s | exit | meets issue 11 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        kept = "none (not committed)" if r["kept"] is None else f"{r['kept']:,}"
        print(f"| {r['policy']} | `{r['overrides']}` | ${r['budget_usd']:g} | ${r['spent_usd']:.4f} | {r['pct']}% | "
              f"{kept} | {r['requests']:,} | {r['seconds']} | {r['rc']} | {'yes' if r['meets_issue'] else 'NO'} |")
    worst = max(r["worst_case_usd"] for r in rows)
    print(f"\none request's worst case (largest prompt sent + {OPTION.sampling.max_tokens} tokens out): "
          f"${worst:.4f}")
    if a.json:
        a.json.write_text(json.dumps({"latency_s": a.latency, "completion_tokens": a.completion_tokens,
                                      "mode": a.mode, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
