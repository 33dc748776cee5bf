"""The sweep report: every evaluated cell in one table, and PGR plotted against the dollars its data cost.

`evaluate.py` records each cell's result in the store (`results/*.json`) and rebuilds the report
(`report/cells.csv`, `report/pgr_vs_usd.png`), so after a sweep one look answers "what did each
generator buy me per dollar". Run it alone with `python -m agora.metrics.report [STORE]`.
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

COLUMNS = ["generator", "domain", "mode", "prompt_format", "budget", "pgr", "cost_usd", "kept", "base", "reference",
           "student"]


def record(store_root: Path, key: str, row: dict) -> Path:
    path = store_root / "results" / f"{key}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(row, indent=2, sort_keys=True))
    return path


def collect(store_root: Path) -> list[dict]:
    return sorted((json.loads(p.read_text()) for p in (store_root / "results").glob("*.json")),
                  key=lambda r: (r["domain"], r["mode"], r["generator"], r["prompt_format"], r["budget"]))


def build(store_root: Path) -> tuple[Path, Path | None]:
    """Write the table and the plot; the plot only shows cells whose PGR is defined."""
    rows = collect(store_root)
    out = store_root / "report"
    out.mkdir(parents=True, exist_ok=True)
    table = out / "cells.csv"
    with open(table, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    points = [r for r in rows if r.get("pgr") is not None]
    if not points:
        return table, None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for gen in sorted({r["generator"] for r in points}):
        mine = [r for r in points if r["generator"] == gen]
        ax.scatter([r["cost_usd"] for r in mine], [r["pgr"] for r in mine], label=gen)
        for r in mine:
            ax.annotate(f"{r['domain']}/{r['mode'][:4]}/{r['prompt_format'][:4]}", (r["cost_usd"], r["pgr"]),
                        fontsize=7, xytext=(3, 3), textcoords="offset points")
    if any(r["cost_usd"] > 0 for r in points):
        ax.set_xscale("symlog", linthresh=0.01)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("generation cost (USD)")
    ax.set_ylabel("PGR (%)")
    ax.set_title("Performance gap recovered against dollars spent")
    ax.legend(fontsize=8)
    fig.tight_layout()
    plot = out / "pgr_vs_usd.png"
    fig.savefig(plot, dpi=120)
    plt.close(fig)
    return table, plot


if __name__ == "__main__":
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".agora")
    print(*build(root.resolve()), sep="\n")
