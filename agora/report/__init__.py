"""The sweep report: every evaluated cell, PGR over train seeds, PGR against dollars and volume, PCA, budget advice.

`evaluate.py` records one row per cell and train seed (`record`: `results/<key>.json` in the store, and
`result.json` in the Hydra run folder). A report is built from those rows:
- over a sweep folder when a multirun ends (agora/callbacks.py), into `<sweep>/report/`, and over the whole
  store into `<store>/report/`;
- over a single cell's store after `python evaluate.py` (not in a multirun);
- by hand: `python -m agora.report --store S` or `--sweep multirun/evaluate/<date>`.

A report folder is self-contained: `index.html`, its PNGs, `cells.csv`, `groups.csv`, `table2.csv` and
`report.json`. The numbers come from agora/metrics/analysis.py; this package gathers rows
(`rows`), computes tables (`tables`), draws (`plots`), writes the page (`html`) and logs it (`tracking`).

It hides nothing it aggregates:
- a run whose domain PGR leaves out a benchmark with an undefined PGR is marked partial, and the benchmark named;
- a benchmark whose reference-base gap is within sampling noise is flagged (`gap_within_noise`);
- runs are merged only when they differ in nothing but the train seed (`group_key`: the cell, the data and every
  recorded setting of the student, training, evaluation and reference), and every table has a `settings` column
  that shows the settings in which its row differs from the others (`differing_settings`); plots draw a line per
  such setting, never a mean across them;
- the paper's Table 2 (`table2`) marks a missing or undefined cell as such, and an average over it as partial;
- the budget advice's first candidate carries a verdict (`analysis.judge`): it is a recommendation only when it beats
  the next beyond the noise of the train seeds, and the page says so first when no candidate recovers any of the gap.
"""
from __future__ import annotations

from agora.metrics import analysis
from dataclasses import asdict
from pathlib import Path
from typing import Any

from agora.report.rows import (DEFAULT_BUDGETS_USD, control_of, differing_settings, flat_settings, group_key,
                               hydra_run_dir, in_multirun, load_store, load_sweep, record)
from agora.report.tables import (Report, analyse, comparisons, describe, group_rows, intrinsic_analysis, label,
                                 no_advice, overlap, pivot, recommend, series_of, table2)
from agora.report.plots import plot_pca, plot_pgr_vs_n, plot_pgr_vs_usd, plot_scores_vs_n
from agora.report.html import write
from agora.report.tracking import start_tracker, to_tracker

__all__ = ["Report", "advice_as_dicts", "analyse", "build", "build_store", "build_sweep", "comparisons", "control_of",
           "describe", "differing_settings", "flat_settings", "group_key", "group_rows", "hydra_run_dir",
           "in_multirun", "intrinsic_analysis", "label", "load_store", "load_sweep", "no_advice", "overlap",
           "pivot", "plot_pca", "plot_pgr_vs_n", "plot_pgr_vs_usd", "plot_scores_vs_n", "recommend",
           "record", "series_of", "start_tracker", "table2", "to_tracker", "write"]


def build(rows: list[dict], out: Path, *, title: str, failed: list[dict] | None = None,
          budgets: tuple[float, ...] = DEFAULT_BUDGETS_USD, tracker: Any = None) -> Path:
    r = analyse(rows, budgets, failed)
    index = write(r, out, title)
    if tracker is not None:
        to_tracker(r, out, tracker)
    return index


def build_store(root: Path, **kw) -> Path:
    """The report over every row in the store, into `<store>/report/`."""
    root = Path(root)
    return build(load_store(root), root / "report", title=f"Agora report: store {root}", **kw)


def build_sweep(sweep: Path, **kw) -> Path | None:
    """The report over one multirun folder's rows, into `<sweep>/report/`; None if no job recorded a row."""
    rows, failed = load_sweep(Path(sweep))
    if not rows and not failed:
        return None
    return build(rows, Path(sweep) / "report", title=f"Agora report: sweep {sweep}", failed=failed, **kw)


def advice_as_dicts(advice: list[analysis.Advice]) -> list[dict]:
    return [asdict(a) for a in advice]
