"""`python -m agora.report`: the sweep report over a store or a multirun folder, and budget advice, from the shell.

    python -m agora.report --store .agora                              # -> .agora/report/index.html
    python -m agora.report --sweep multirun/evaluate/2026-11-25_10-00-00  # -> <sweep>/report/index.html
    python -m agora.report --store .agora --budget 50 --domain math     # which generator and volume for $50?

The work is in the rest of this package (rows, tables, plots, HTML, tracking) and agora/metrics/analysis.py (the
numbers).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from agora import report


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m agora.report", description=__doc__.split("\n")[0])
    p.add_argument("--store", type=Path, default=Path(os.environ.get("AGORA_STORE", ".agora")),
                   help="artifact store (default: $AGORA_STORE or .agora)")
    p.add_argument("--sweep", type=Path, help="a multirun folder (multirun/evaluate/<date>): report its cells only")
    p.add_argument("--budget", type=float, nargs="+", help="USD: print the best generator and volume, build nothing")
    p.add_argument("--domain", help="domain for --budget (default: every domain with cells)")
    p.add_argument("--wandb", choices=["off", "offline", "online"], default="off",
                   help="also log the report to a W&B run (project agora, job_type report)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    if a.sweep:
        rows, failed = report.load_sweep(a.sweep)
        where, out = f"sweep {a.sweep}", a.sweep / "report"
    else:
        rows, failed = report.load_store(a.store.resolve()), []
        where, out = f"store {a.store.resolve()}", a.store.resolve() / "report"
    if not rows:
        print(f"agora report: no evaluated cell in {where} (evaluate.py records one per cell)", file=sys.stderr)
        return 2
    if a.budget:
        groups = report.group_rows(rows)
        for d in [a.domain] if a.domain else sorted({g["domain"] for g in groups}):
            for b in a.budget:
                try:
                    advice = report.recommend(groups, d, b)
                except ValueError as e:
                    print(f"agora report: {e}", file=sys.stderr)
                    return 2
                print(report.describe(advice, d, b, groups))
                for i, x in enumerate(advice[1:], 2):
                    print(f"  {i}. {x.label}, N={x.volume}: {x.expected_pgr:.1f}% for ${x.cost_usd:.4g} ({x.note})")
        return 0
    tracker = None
    if a.wandb != "off":
        tracker = report.start_tracker({"name": "wandb", "project": "agora", "entity": None, "mode": a.wandb,
                                        "group": None}, name=f"report/{out.parent.name}", group=out.parent.name,
                                       out_dir=out.parent)
    try:
        index = report.build(rows, out, title=f"Agora report: {where}", failed=failed, tracker=tracker)
    finally:
        if tracker is not None:
            tracker.finish()
    print(f"agora report: {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
