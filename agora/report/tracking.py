"""The report logged to a tracker (W&B): its tables, figures and numbers in one run.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from agora.report.tables import Report, flat, overlap_tables, table2_table
from agora.report.html import advice_table, group_table, verdicts


def to_tracker(r: Report, out: Path, tracker: Any) -> None:
    """Tables, plots and a summary on the sweep's report run (a `agora.tracking.Tracker`)."""
    from agora import tracking

    _, rows = flat(r.rows)
    tracker.table("report/cells", rows)
    tracker.table("report/groups", group_table(r.groups))
    tracker.table("report/comparisons", r.comparisons)
    tracker.table("report/table2", table2_table(r.table2))
    tracker.table("report/advice", advice_table(r))
    if r.overlap:
        tracker.table("report/overlap", overlap_tables(r.overlap)[0])
    summary: dict[str, Any] = {"report/runs": len(r.rows), "report/cells": len(r.groups),
                               "report/failed": len(r.failed)}
    for p in r.pivot:
        summary[f"report/pgr/{p['domain']}/{p['generator']}"] = p["mean_pgr"]
    for v in verdicts(r):   # a kind per domain and budget, to filter runs by in W&B; the sentences are in the table
        summary[f"report/verdict/{v['domain']}/usd_{v['budget_usd']:g}"] = v["verdict_kind"]
    if r.pca:
        tracker.table("report/pca_loadings", [{"component": k, **v} for k, v in r.pca["loadings"].items()])
        summary["report/pca_cumulative_variance"] = r.pca["cumulative"]
        summary.update({f"report/pca_variance_ratio/{k}": v for k, v in r.pca["explained_variance_ratio"].items()})
        if r.pca["regression"]:
            summary["report/pca_regression_r2"] = r.pca["regression"]["r2"]
    tracker.summary(summary)
    if isinstance(tracker, tracking.WandbTracker):
        import wandb

        tracker.log({f"report/{p.stem}": wandb.Image(str(p)) for p in sorted(out.glob("*.png"))})


def start_tracker(tracking_cfg: dict, *, name: str, group: str, out_dir: Path) -> Any:
    """A tracker for the report run, from a `tracking` option alone (the report belongs to no single cell)."""
    from omegaconf import OmegaConf

    from agora import tracking

    cfg = OmegaConf.create({"tracking": tracking_cfg, "generator": {"api_key_env": None}})
    return tracking.start(cfg, stage="report", name=name, group=group, out_dir=out_dir)
