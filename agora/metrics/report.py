"""The sweep report: every evaluated cell, PGR over train seeds, PGR against dollars and volume, PCA, budget advice.

`evaluate.py` records one row per cell and train seed (`record`: `results/<key>.json` in the store, and
`result.json` in the Hydra run folder). A report is built from those rows:
- over a sweep folder when a multirun ends (agora/callbacks.py), into `<sweep>/report/`, and over the whole
  store into `<store>/report/`;
- over a single cell's store after `python evaluate.py` (not in a multirun);
- by hand: `python -m agora.report --store S` or `--sweep multirun/evaluate/<date>`.

A report folder is self-contained: `index.html`, its PNGs, `cells.csv`, `groups.csv` and `report.json`.
The numbers come from agora/metrics/analysis.py; this module gathers rows, draws and writes.
"""
from __future__ import annotations

import csv
import html
import json
import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agora.metrics import analysis
from agora.store import digest

CELL = ["generator", "domain", "mode", "budget", "budget_n", "prompt_format", "train_seed", "reference_kind"]
COST = ["cost_usd", "input_tokens", "output_tokens", "kept", "dropped", "surplus", "failed"]
DEFAULT_BUDGETS_USD = (1.0, 10.0, 100.0, 1000.0)
PCA_COMPONENTS = 5   # the paper's choice


# ---------------------------------------------------------------- rows in
def record(store_root: Path, key: str, row: dict, run_dir: Path | None = None) -> Path:
    """Store one evaluated cell's row; a copy in the Hydra run folder lets a sweep find its own rows."""
    path = store_root / "results" / f"{key}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(row, indent=2, sort_keys=True, default=str))
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "result.json").write_text(json.dumps({**row, "store": str(store_root), "result_key": key},
                                                        indent=2, sort_keys=True, default=str))
    return path


def hydra_run_dir() -> Path | None:
    """The current Hydra run folder, or None outside Hydra (a test calling `run(cfg)`)."""
    from hydra.core.hydra_config import HydraConfig

    try:
        return Path(HydraConfig.get().runtime.output_dir)
    except ValueError:
        return None


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:
        return False


def _data_dir(root: Path, row: dict) -> Path | None:
    """The cell's data folder: recorded in the row, or (rows from before it was) through the student's manifest."""
    if row.get("data_dir"):
        p = Path(row["data_dir"])
        return p if p.is_absolute() else root / p
    key, ref = row.get("result_key"), row.get("reference_kind")
    if not key or not ref:
        return None
    student = root / "students" / row["domain"] / row["mode"] / row["generator"] / key.removesuffix("-" + ref)
    try:
        return Path(json.loads((student / "manifest.json").read_text())["data"])
    except (OSError, KeyError, ValueError):
        return None


def enrich(row: dict, root: Path) -> dict:
    """Add the data cell's intrinsic metrics (if measured yet) and fill counts that older rows lack."""
    r = dict(row)
    data = _data_dir(root, r)
    r["intrinsic"] = {}
    if data is None:
        return r
    if any(k not in r for k in COST):
        try:
            s = json.loads((data / "manifest.json").read_text())["summary"]
            for k in COST:
                r.setdefault(k, s.get(k))
            r.setdefault("budget_n", s.get("target"))
        except (OSError, KeyError, ValueError):
            pass
    intrinsic = data / "intrinsic.json"
    if intrinsic.is_file():
        metrics = json.loads(intrinsic.read_text()).get("metrics", {})
        r["intrinsic"] = {k: float(v) for k, v in metrics.items()
                          if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
    return r


def load_store(root: Path) -> list[dict]:
    root = Path(root)
    rows = [{**json.loads(p.read_text()), "result_key": p.stem} for p in sorted((root / "results").glob("*.json"))]
    return [enrich(r, root) for r in rows]


def _job_order(p: Path) -> tuple:
    head = p.name.split("_", 1)[0]
    return (0, int(head), p.name) if head.isdigit() else (1, 0, p.name)


def load_sweep(sweep: Path) -> tuple[list[dict], list[dict]]:
    """The rows a multirun folder's jobs recorded, and the jobs that failed (their error.txt)."""
    rows, failed = [], []
    for job in sorted((p for p in Path(sweep).iterdir() if p.is_dir()), key=_job_order):
        if (job / "result.json").is_file():
            r = json.loads((job / "result.json").read_text())
            rows.append(enrich({**r, "job": job.name}, Path(r["store"])))
        elif (job / "error.txt").is_file():
            failed.append({"job": job.name, "error": (job / "error.txt").read_text().strip()})
    return rows, failed


# ---------------------------------------------------------------- tables
def _group_key(r: dict) -> str:
    """Rows that differ only by train seed share this key (evaluate records it; older rows get one here)."""
    return r.get("group") or digest({k: r.get(k) for k in (*CELL, "data_dir") if k != "train_seed"})


def benchmarks_of(rows: list[dict]) -> list[str]:
    return sorted({b for r in rows for b in r.get("benchmarks", {})})


def intrinsic_of(rows: list[dict]) -> list[str]:
    return sorted({k for r in rows for k in r.get("intrinsic", {})})


def flat(rows: list[dict]) -> tuple[list[str], list[dict]]:
    """One table row per cell and train seed, every row with the same columns (CSV, HTML, W&B Table)."""
    benches, intr = benchmarks_of(rows), intrinsic_of(rows)
    cols = [*CELL, "pgr", "pgr_of_means", *(f"{b}/{w}" for b in benches for w in ("base", "reference", "student", "pgr")),
            "base", "reference", "student", *COST, *(f"intrinsic/{k}" for k in intr), "data_dir"]
    out = []
    for r in rows:
        f = {c: r.get(c) for c in cols}
        for b, s in r.get("benchmarks", {}).items():
            f.update({f"{b}/{w}": s.get(w) for w in ("base", "reference", "student", "pgr")})
        f.update({f"intrinsic/{k}": v for k, v in r.get("intrinsic", {}).items()})
        out.append(f)
    return cols, out


def group_rows(rows: list[dict]) -> list[dict]:
    """One entry per cell over its train seeds: PGR mean and 95% t-interval (with >= 2 seeds that define it)."""
    by: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by[_group_key(r)].append(r)
    out = []
    for key, rs in by.items():
        r0 = rs[0]
        values = [r["pgr"] for r in rs if r.get("pgr") is not None]
        iv = analysis.t_interval(values) if values else None
        bench = {}
        for b in sorted({b for r in rs for b in r.get("benchmarks", {})}):
            v = [r["benchmarks"][b]["pgr"] for r in rs if r.get("benchmarks", {}).get(b, {}).get("pgr") is not None]
            bench[b] = analysis.t_interval(v).mean if v else None
        out.append({**{k: r0.get(k) for k in CELL if k != "train_seed"}, "group": key,
                    "seeds": sorted((r.get("train_seed") for r in rs), key=str), "n_seeds": len(rs),
                    "pgr_values": values, "n_undefined": len(rs) - len(values),
                    "pgr": iv.mean if iv else None, "pgr_sd": iv.sd if iv else None,
                    "pgr_low": iv.low if iv else None, "pgr_high": iv.high if iv else None,
                    "pgr_by_benchmark": bench, **{k: r0.get(k) for k in COST},
                    **{f"{who}_score": _mean([r.get(who) for r in rs]) for who in ("base", "reference", "student")},
                    "intrinsic": r0.get("intrinsic", {}), "data_dir": r0.get("data_dir")})
    return sorted(out, key=lambda g: tuple(str(g.get(k)) for k in ("domain", "mode", "generator", "prompt_format"))
                  + (g.get("budget_n") or 0,))


def _mean(values: list) -> float | None:
    v = [x for x in values if x is not None]
    return float(np.mean(v)) if v else None


def label(g: dict) -> str:
    return f"{g['generator']} {g['mode']} {g['prompt_format']} N={g.get('budget_n')}"


def comparisons(groups: list[dict], axis: str) -> list[dict]:
    """Pairs of cells that differ only along `axis` (generator or prompt_format): difference and noise verdict."""
    context = [k for k in ("domain", "mode", "budget_n", "prompt_format", "generator", "reference_kind") if k != axis]
    by: dict[tuple, list[dict]] = defaultdict(list)
    for g in groups:
        if g["pgr_values"]:
            by[tuple(g.get(k) for k in context)].append(g)
    out = []
    for ctx, gs in sorted(by.items(), key=lambda kv: tuple(map(str, kv[0]))):
        gs = sorted(gs, key=lambda g: str(g[axis]))
        for i in range(len(gs)):
            for j in range(i + 1, len(gs)):
                a, b = gs[i], gs[j]
                d = analysis.welch(a["pgr_values"], b["pgr_values"])
                out.append({"axis": axis, "context": " ".join(f"{k}={v}" for k, v in zip(context, ctx)),
                            "a": a[axis], "b": b[axis], "pgr_a": a["pgr"], "pgr_b": b["pgr"], "n_a": len(a["pgr_values"]),
                            "n_b": len(b["pgr_values"]), "diff": d.diff, "diff_low": d.low, "diff_high": d.high,
                            "verdict": d.verdict})
    return out


def pivot(groups: list[dict]) -> list[dict]:
    """Mean PGR over a generator's cells in each domain (the paper's per-domain columns), cells counted."""
    by: dict[tuple, list[float]] = defaultdict(list)
    for g in groups:
        if g["pgr"] is not None:
            by[(g["generator"], g["domain"])].append(g["pgr"])
    return [{"generator": gen, "domain": d, "cells": len(v), "mean_pgr": float(np.mean(v))}
            for (gen, d), v in sorted(by.items())]


def intrinsic_analysis(groups: list[dict]) -> tuple[dict | None, str | None]:
    """PCA of the standardised intrinsic metrics over cells that have them, and PGR regressed on the components."""
    cand = [g for g in groups if g["intrinsic"]]
    if len(cand) < 3:
        return None, (f"PCA skipped: {len(cand)} cell(s) have intrinsic metrics (<data cell>/intrinsic.json); "
                      "it needs at least 3")
    features = sorted(set.intersection(*(set(g["intrinsic"]) for g in cand)))
    x = np.array([[g["intrinsic"][f] for f in features] for g in cand]) if features else np.zeros((len(cand), 0))
    constant = [f for j, f in enumerate(features) if x[:, j].std() == 0]
    keep = [j for j, f in enumerate(features) if f not in constant]
    features, x = [features[j] for j in keep], x[:, keep]
    if len(features) < 2:
        return None, (f"PCA skipped: {len(features)} intrinsic metric(s) vary over the {len(cand)} cells "
                      f"(constant: {constant}); it needs at least 2")
    p = analysis.pca(x, features, k=min(PCA_COMPONENTS, len(features), len(cand) - 1))
    names = [f"PC{i + 1}" for i in range(len(p.components))]
    out: dict[str, Any] = {
        "cells": [label(g) for g in cand], "features": features, "dropped_constant": constant,
        "explained_variance_ratio": dict(zip(names, p.explained_variance_ratio.tolist())),
        "explained_variance": dict(zip(names, p.explained_variance.tolist())),
        "cumulative": float(p.explained_variance_ratio.sum()),
        "loadings": {n: dict(zip(features, c.tolist())) for n, c in zip(names, p.components)},
        "scores": p.scores.tolist(), "pgr": [g["pgr"] for g in cand], "regression": None, "regression_skipped": None}
    has = [i for i, g in enumerate(cand) if g["pgr"] is not None]
    k = min(len(names), len(has) - 2)
    if k < 1:
        out["regression_skipped"] = f"regression skipped: {len(has)} cell(s) with intrinsic metrics and a PGR; needs 3"
        return out, None
    y = np.array([cand[i]["pgr"] for i in has])
    try:
        fit = analysis.regress(p.scores[has][:, :k], y)
    except ValueError as e:
        out["regression_skipped"] = f"regression skipped: {e}"
        return out, None
    out["regression"] = {"n": fit.n, "k": fit.k, "r2": fit.r2, "adj_r2": fit.adj_r2,
                         "coef": dict(zip(["intercept", *names[:k]], fit.coef.tolist()))}
    return out, None


def series_of(groups: list[dict], domain: str) -> list[analysis.Series]:
    """Per generator (with its mode, format and reference): mean PGR at each measured N, and $ per kept example."""
    by: dict[tuple, list[dict]] = defaultdict(list)
    for g in groups:
        if g["domain"] == domain and g["pgr"] is not None and (g.get("budget_n") or g.get("kept")):
            by[(g["generator"], g["mode"], g["prompt_format"], g.get("reference_kind"))].append(g)
    out = []
    for (gen, mode, fmt, ref), gs in sorted(by.items(), key=lambda kv: tuple(map(str, kv[0]))):
        at: dict[float, list[float]] = defaultdict(list)
        for g in gs:
            at[float(g.get("budget_n") or g["kept"])].append(g["pgr"])
        data = {g["data_dir"] or g["group"]: g for g in gs}.values()   # seeds share data: count its cost once
        kept = sum(g.get("kept") or 0 for g in data)
        cost = sum(g.get("cost_usd") or 0.0 for g in data)
        vols = sorted(at)
        out.append(analysis.Series(f"generator={gen} mode={mode} prompt_format={fmt} reference={ref}", vols,
                                   [float(np.mean(at[v])) for v in vols], cost / kept if kept else 0.0,
                                   [g.get("cost_usd") or 0.0 for g in data]))
    return out


def recommend(groups: list[dict], domain: str, budget_usd: float) -> list[analysis.Advice]:
    known = sorted({g["domain"] for g in groups})
    if domain not in known:
        raise ValueError(f"no evaluated cell in domain {domain!r}; domains with cells: {known}")
    return analysis.recommend(series_of(groups, domain), budget_usd)


def no_advice(groups: list[dict], domain: str, budget_usd: float) -> str:
    """Why there is no candidate to recommend."""
    mine = [g for g in groups if g["domain"] == domain]
    if not any(g["pgr"] is not None for g in mine):
        return (f"nothing to rank: none of the {len(mine)} {domain} cell(s) has a defined PGR "
                "(the reference did not beat the base)")
    return f"no measured generator affords one example for ${budget_usd:g}"


def describe(advice: list[analysis.Advice], domain: str, budget_usd: float, groups: list[dict]) -> str:
    if not advice:
        return f"budget ${budget_usd:g}, {domain}: {no_advice(groups, domain, budget_usd)}"
    a = advice[0]
    return (f"budget ${budget_usd:g}, {domain}: {a.label}, N={a.volume} -> expected PGR {a.expected_pgr:.1f}% "
            f"for ${a.cost_usd:.4g} ({a.note})")


# ---------------------------------------------------------------- the report
@dataclass
class Report:
    rows: list[dict]
    groups: list[dict]
    comparisons: list[dict]
    pivot: list[dict]
    pca: dict | None
    pca_skipped: str | None
    advice: dict[str, dict[float, list[analysis.Advice]]]
    failed: list[dict] = field(default_factory=list)


def analyse(rows: list[dict], budgets: tuple[float, ...] = DEFAULT_BUDGETS_USD,
            failed: list[dict] | None = None) -> Report:
    groups = group_rows(rows)
    comps = comparisons(groups, "generator") + comparisons(groups, "prompt_format")
    pca, skipped = intrinsic_analysis(groups)
    domains = sorted({g["domain"] for g in groups})
    advice = {d: {b: recommend(groups, d, b) for b in budgets} for d in domains}
    return Report(rows, groups, comps, pivot(groups), pca, skipped, advice, list(failed or []))


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colors(names: list[str]) -> dict[str, Any]:
    plt = _plt()
    cmap = plt.get_cmap("tab10")
    return {n: cmap(i % 10) for i, n in enumerate(sorted(set(names)))}


def _yerr(gs: list[dict]) -> np.ndarray:
    """Asymmetric error bars from the 95% intervals (zero where a cell has one seed)."""
    return np.array([[0.0 if g["pgr_low"] is None else g["pgr"] - g["pgr_low"] for g in gs],
                     [0.0 if g["pgr_high"] is None else g["pgr_high"] - g["pgr"] for g in gs]])


def plot_pgr_vs_usd(groups: list[dict], domain: str, out: Path) -> Path | None:
    """PGR (mean, 95% bar where seeds allow) against dollars, per generator; the Pareto frontier as a step line."""
    gs = [g for g in groups if g["domain"] == domain and g["pgr"] is not None]
    if not gs:
        return None
    plt = _plt()
    color = _colors([g["generator"] for g in gs])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for gen in sorted(color):
        mine = [g for g in gs if g["generator"] == gen]
        ax.errorbar([g.get("cost_usd") or 0.0 for g in mine], [g["pgr"] for g in mine], yerr=_yerr(mine), fmt="o",
                    color=color[gen], capsize=3, label=gen)
    for g in gs:
        ax.annotate(f"{g['mode'][:4]}/{g['prompt_format'][:4]}/N={g.get('budget_n')}", (g.get("cost_usd") or 0.0,
                    g["pgr"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    cost = [g.get("cost_usd") or 0.0 for g in gs]
    front = analysis.pareto_front(cost, [g["pgr"] for g in gs])
    fx, fy = [cost[i] for i in front], [gs[i]["pgr"] for i in front]
    ax.step(fx, fy, where="post", color="black", lw=1, ls="--", label="Pareto frontier")
    ax.scatter(fx, fy, s=140, facecolors="none", edgecolors="black")
    if any(c > 0 for c in cost):
        ax.set_xscale("symlog", linthresh=max(min(c for c in cost if c > 0), 1e-6))
    ax.margins(x=0.12)   # room for the labels of the costliest cells
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("generation cost (USD)")
    ax.set_ylabel("PGR (%), mean over train seeds")
    ax.set_title(f"{domain}: PGR against dollars spent")
    ax.legend(fontsize=8, loc="upper left")
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.12, top=0.9, wspace=0.3)   # not tight_layout: it drew every figure twice
    path = out / f"pgr_vs_usd_{domain}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _volume_axis(ax: Any, volumes: list) -> None:
    """Log N, ticked at the measured volumes in plain numbers."""
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    ax.set_xscale("log")
    ax.set_xticks(sorted(set(volumes)))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())


def plot_pgr_vs_n(groups: list[dict], out: Path) -> Path | None:
    """The cost-versus-volume ablation: PGR against N, a line per generator (and mode/format), a panel per domain."""
    gs = [g for g in groups if g["pgr"] is not None and g.get("budget_n")]
    if not gs:
        return None
    plt = _plt()
    domains = sorted({g["domain"] for g in gs})
    fig, axes = plt.subplots(1, len(domains), figsize=(6 * len(domains), 4.2), squeeze=False)
    for ax, d in zip(axes[0], domains):
        lines: dict[str, list[dict]] = defaultdict(list)
        for g in (g for g in gs if g["domain"] == d):
            lines[f"{g['generator']} ({g['mode'][:4]}/{g['prompt_format']})"].append(g)
        color = _colors(list(lines))
        for name, pts in sorted(lines.items()):
            pts = sorted(pts, key=lambda g: g["budget_n"])
            n = [g["budget_n"] for g in pts]
            ax.errorbar(n, [g["pgr"] for g in pts], yerr=_yerr(pts), marker="o", capsize=3, label=name,
                        color=color[name])
        _volume_axis(ax, [g["budget_n"] for g in gs if g["domain"] == d])
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_xlabel("N (examples in the budget)")
        ax.set_ylabel("PGR (%)")
        ax.set_title(f"{d}: PGR against volume")
        ax.legend(fontsize=7, loc="upper left")
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.12, top=0.9, wspace=0.3)
    path = out / "pgr_vs_n.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_scores_vs_n(groups: list[dict], out: Path) -> Path | None:
    """Scores against N (mean over benchmarks and seeds): the student per generator, base and reference as lines.

    Drawn even where PGR is undefined, which is where it is needed: it shows that the reference did not beat the base.
    """
    gs = [g for g in groups if g.get("budget_n") and g.get("student_score") is not None]
    if not gs:
        return None
    plt = _plt()
    domains = sorted({g["domain"] for g in gs})
    fig, axes = plt.subplots(1, len(domains), figsize=(6 * len(domains), 4.2), squeeze=False)
    for ax, d in zip(axes[0], domains):
        mine = [g for g in gs if g["domain"] == d]
        lines: dict[str, list[dict]] = defaultdict(list)
        for g in mine:
            lines[f"{g['generator']} ({g['mode'][:4]}/{g['prompt_format']})"].append(g)
        color = _colors(list(lines))
        for name, pts in sorted(lines.items()):
            pts = sorted(pts, key=lambda g: g["budget_n"])
            ax.plot([g["budget_n"] for g in pts], [g["student_score"] for g in pts], "o-", label=name,
                    color=color[name])
        for who, style in (("base", ":"), ("reference", "--")):
            v = _mean([g[f"{who}_score"] for g in mine])
            if v is not None:
                ax.axhline(v, color="grey", ls=style, label=f"{who} (mean {v:.1f})")
        _volume_axis(ax, [g["budget_n"] for g in mine])
        ax.set_xlabel("N (examples in the budget)")
        ax.set_ylabel("score (%), mean over benchmarks and seeds")
        ax.set_title(f"{d}: student score against volume")
        ax.legend(fontsize=7, loc="upper left")
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.12, top=0.9, wspace=0.3)
    path = out / "scores_vs_n.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_pca(p: dict, out: Path) -> Path:
    plt = _plt()
    names = list(p["explained_variance_ratio"])
    ratio = np.array(list(p["explained_variance_ratio"].values()))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    a1.bar(names, ratio * 100)
    a1.plot(names, np.cumsum(ratio) * 100, "k.-", label="cumulative")
    a1.set_ylabel("explained variance (%)")
    a1.set_title("PCA of the standardised intrinsic metrics")
    a1.legend(fontsize=8, loc="center right")
    s = np.array(p["scores"])
    y = s[:, 1] if s.shape[1] > 1 else np.zeros(len(s))
    has = np.array([v is not None for v in p["pgr"]])
    if (~has).any():   # cells whose PGR is undefined still have a place on the components
        a2.scatter(s[~has, 0], y[~has], facecolors="none", edgecolors="grey", label="PGR undefined")
        a2.legend(fontsize=8, loc="best")   # few artists here, so "best" is cheap
    if has.any():
        sc = a2.scatter(s[has, 0], y[has], c=[v for v in p["pgr"] if v is not None], cmap="viridis")
        fig.colorbar(sc, ax=a2, label="PGR (%)")
    a2.set_xlabel("PC1")
    a2.set_ylabel("PC2" if s.shape[1] > 1 else "")
    a2.set_title("cells on the first two components")
    fig.subplots_adjust(left=0.12, right=0.93, bottom=0.12, top=0.9, wspace=0.3)
    path = out / "pca.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e-2 and v != 0 else f"{v:.2f}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt(x) for x in v)
    return str(v)


def _table(cols: list[str], rows: list[dict], table_id: str) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "\n".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in cols) + "</tr>" for r in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>'


def _ci(g: dict) -> str:
    if g["pgr"] is None:
        return "undefined (reference <= base)"
    if g["pgr_low"] is None:
        return f"{g['pgr']:.2f} (1 seed)"
    return f"{g['pgr']:.2f} [{g['pgr_low']:.2f}, {g['pgr_high']:.2f}]"


def group_table(groups: list[dict]) -> list[dict]:
    return [{"generator": g["generator"], "domain": g["domain"], "mode": g["mode"], "budget": g["budget"],
             "budget_n": g.get("budget_n"), "prompt_format": g["prompt_format"], "reference_kind": g["reference_kind"],
             "seeds": g["seeds"], "pgr_mean_95ci": _ci(g), "pgr_sd": g["pgr_sd"], "n_undefined": g["n_undefined"],
             **{f"{w}_score": g[f"{w}_score"] for w in ("base", "reference", "student")},
             **{f"{b}/pgr": v for b, v in g["pgr_by_benchmark"].items()}, **{k: g.get(k) for k in COST}}
            for g in groups]


def advice_table(r: Report) -> list[dict]:
    out = []
    for d, by in r.advice.items():
        for b, advs in by.items():
            out += [{"domain": d, "budget_usd": b, "rank": i + 1, "candidate": a.label, "N": a.volume,
                     "expected_pgr": a.expected_pgr, "cost_usd": a.cost_usd, "extrapolated": a.extrapolated,
                     "note": a.note} for i, a in enumerate(advs)]
            if not advs:
                out.append({"domain": d, "budget_usd": b, "rank": None, "candidate": None, "N": None,
                            "expected_pgr": None, "cost_usd": None, "extrapolated": None,
                            "note": no_advice(r.groups, d, b)})
    return out


def write(r: Report, out: Path, title: str) -> Path:
    """The self-contained report folder; returns index.html."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):
        old.unlink()
    cols, rows = flat(r.rows)
    with open(out / "cells.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    gt = group_table(r.groups)
    gcols = list(dict.fromkeys(c for g in gt for c in g))
    with open(out / "groups.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=gcols)
        w.writeheader()
        w.writerows(gt)
    domains = sorted({g["domain"] for g in r.groups})
    plots = [p for p in (*(plot_pgr_vs_usd(r.groups, d, out) for d in domains), plot_pgr_vs_n(r.groups, out),
                         plot_scores_vs_n(r.groups, out), plot_pca(r.pca, out) if r.pca else None) if p is not None]
    at = advice_table(r)
    (out / "report.json").write_text(json.dumps(
        {"title": title, "cells": rows, "groups": r.groups, "comparisons": r.comparisons, "pivot": r.pivot,
         "pca": r.pca, "pca_skipped": r.pca_skipped, "advice": at, "failed": r.failed,
         "plots": [p.name for p in plots]}, indent=1, default=str))
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>"
             "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;font-size:12px;margin:.5em 0}"
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#eee}"
             "td:first-child{text-align:left}.note{color:#555}img{max-width:100%;margin:.5em 0}</style></head><body>",
             f"<h1>{e(title)}</h1>",
             f"<p>{len(r.rows)} evaluated run(s) in {len(r.groups)} cell(s) over {len(domains)} domain(s); "
             f"generators: {e(', '.join(sorted({g['generator'] for g in r.groups})))}. PGR is the mean of the "
             "per-benchmark PGRs of a domain; a cell's PGR is the mean over its train seeds with a 95% t-interval "
             "where it has at least 2 seeds.</p>"]
    if r.failed:
        parts += ["<h2>Failed jobs</h2>", _table(["job", "error"], r.failed, "failed")]
    parts += ["<h2>Budget advice</h2><p class='note'>For a budget and a domain: each candidate's best volume "
              "within the budget, the expected PGR interpolated in log N between measured volumes (at $ per kept "
              "example measured), flagged where it extrapolates. Rank 1 is the recommendation. Ask for any budget "
              "with <code>python -m agora.report --store STORE --budget USD --domain DOMAIN</code>.</p>",
              _table(["domain", "budget_usd", "rank", "candidate", "N", "expected_pgr", "cost_usd", "extrapolated",
                      "note"], at, "advice"),
              "<h2>PGR over train seeds (one row per cell)</h2>", _table(gcols, gt, "groups"),
              "<h2>Mean PGR per generator and domain</h2>",
              _table(["generator", "domain", "cells", "mean_pgr"], r.pivot, "pivot"),
              "<h2>Differences and noise</h2><p class='note'>Cells that differ in one axis only; the 95% interval "
              "of the difference is Welch's (df floored). <b>within noise</b>: the interval holds 0, so the seeds "
              "cannot tell the two apart.</p>",
              _table(["axis", "context", "a", "b", "pgr_a", "pgr_b", "n_a", "n_b", "diff", "diff_low", "diff_high",
                      "verdict"], r.comparisons, "comparisons"),
              "<h2>Plots</h2>"]
    parts += [f"<figure><img src='{e(p.name)}' alt='{e(p.stem)}'><figcaption>{e(p.stem)}</figcaption></figure>"
              for p in plots]
    parts.append("<h2>Intrinsic metrics: PCA and regression</h2>")
    if r.pca:
        p = r.pca
        ev = [{"component": k, "explained_variance": p["explained_variance"][k], "ratio": v}
              for k, v in p["explained_variance_ratio"].items()]
        load = [{"component": k, **v} for k, v in p["loadings"].items()]
        parts += [f"<p>{len(p['cells'])} cells, features standardised (z-score, population sd): "
                  f"{e(', '.join(p['features']))}; constant and dropped: {e(', '.join(p['dropped_constant']) or 'none')}."
                  f" {len(ev)} components explain {100 * p['cumulative']:.1f}% of the variance.</p>",
                  _table(["component", "explained_variance", "ratio"], ev, "pca_variance"),
                  _table(["component", *p["features"]], load, "pca_loadings")]
        if p["regression"]:
            g = p["regression"]
            parts += [f"<p>PGR regressed on the first {g['k']} component(s) over {g['n']} cells: "
                      f"R² = {g['r2']:.3f}" + (f", adjusted R² = {g['adj_r2']:.3f}" if g["adj_r2"] is not None else "")
                      + "</p>", _table(list(g["coef"]), [g["coef"]], "pca_regression")]
        else:
            parts.append(f"<p class='note'>{e(p['regression_skipped'])}</p>")
    else:
        parts.append(f"<p class='note'>{e(r.pca_skipped or '')}</p>")
    parts += ["<h2>Every run (cell × train seed)</h2>", _table(cols, rows, "cells"),
              "<p class='note'>Files: <a href='cells.csv'>cells.csv</a>, <a href='groups.csv'>groups.csv</a>, "
              "<a href='report.json'>report.json</a>.</p></body></html>"]
    index = out / "index.html"
    index.write_text("\n".join(parts))
    return index


def to_tracker(r: Report, out: Path, tracker: Any) -> None:
    """Tables, plots and a summary on the sweep's report run (a `agora.tracking.Tracker`)."""
    from agora import tracking

    _, rows = flat(r.rows)
    tracker.table("report/cells", rows)
    tracker.table("report/groups", group_table(r.groups))
    tracker.table("report/comparisons", r.comparisons)
    tracker.table("report/advice", advice_table(r))
    summary: dict[str, Any] = {"report/runs": len(r.rows), "report/cells": len(r.groups),
                               "report/failed": len(r.failed)}
    for p in r.pivot:
        summary[f"report/pgr/{p['domain']}/{p['generator']}"] = p["mean_pgr"]
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


if __name__ == "__main__":   # the older spelling, `python -m agora.metrics.report STORE`
    import sys

    from agora.report import main

    sys.exit(main(["--store", *sys.argv[1:2]] if len(sys.argv) > 1 and not sys.argv[1].startswith("-")
                  else sys.argv[1:]))
