"""The report's figures: PGR against dollars and volume, scores against volume, the PCA of intrinsic metrics.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from agora.metrics import analysis
from agora.report.rows import _show
from agora.report.tables import _mean, _with


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colors(names: list[str]) -> dict[str, Any]:
    plt = _plt()
    cmap = plt.get_cmap("tab10")
    return {n: cmap(i % 10) for i, n in enumerate(sorted(set(names)))}


def _save(fig: Any, path: Path) -> Path:
    """Save with a tight bounding box: legends sit outside the axes and point labels run past them, and both must
    show whole (looked at in a headless browser: with a fixed frame, labels at the right edge were cut off)."""
    fig.savefig(path, dpi=100, bbox_inches="tight", pad_inches=0.1)
    _plt().close(fig)
    return path


def _legend_outside(ax: Any, fontsize: int = 7) -> None:
    """The legend below the axes, not over the data (long line names covered points and reference lines)."""
    ax.legend(fontsize=fontsize, loc="upper left", bbox_to_anchor=(0.0, -0.16), borderaxespad=0.0, frameon=False)


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
        ax.annotate(f"{g['mode'][:4]}/{g['prompt_format'][:4]}/N={g.get('budget_n')}{_with(g)}",
                    (g.get("cost_usd") or 0.0, g["pgr"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    cost = [g.get("cost_usd") or 0.0 for g in gs]
    front = analysis.pareto_front(cost, [g["pgr"] for g in gs])
    fx, fy = [cost[i] for i in front], [gs[i]["pgr"] for i in front]
    ax.step(fx, fy, where="post", color="black", lw=1, ls="--", label="Pareto frontier")
    ax.scatter(fx, fy, s=140, facecolors="none", edgecolors="black")
    if any(c > 0 for c in cost):
        ax.set_xscale("symlog", linthresh=max(min(c for c in cost if c > 0), 1e-6))
        ax.set_xlabel("generation cost (USD)")
    else:   # local generators only: no dollar axis to draw (it showed negative dollars around 0)
        ax.set_xticks([0.0])
        ax.set_xlabel("generation cost (USD): $0 in API fees for every cell (compute is not priced)")
    ax.margins(x=0.12)   # room for the labels of the costliest cells
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_ylabel("PGR (%), mean over train seeds")
    ax.set_title(f"{domain}: PGR against dollars spent")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    return _save(fig, out / f"pgr_vs_usd_{domain}.png")


def _volume_axis(ax: Any, volumes: list) -> None:
    """Log N, ticked at the measured volumes in plain numbers."""
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    ax.set_xscale("log")
    ax.set_xticks(sorted(set(volumes)))
    if len(set(volumes)) == 1:   # one volume: centre it (matplotlib's log limits left it at the left edge)
        ax.set_xlim(volumes[0] / 2, volumes[0] * 2)
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
            lines[_line_name(g)].append(g)
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
        _legend_outside(ax)
    fig.subplots_adjust(wspace=0.3)
    return _save(fig, out / "pgr_vs_n.png")


def _line_name(g: dict) -> str:
    """A line of a plot against N: one generator, mode, format and settings (never merged across settings)."""
    return f"{g['generator']} ({g['mode'][:4]}/{g['prompt_format']})" + _with(g)


def _settings_of(g: dict, who: str) -> str:
    """The group's differing settings that decide the base's or the reference's score.

    The base is the student's model under the evaluation settings; a checkpoint reference is its own model under
    them; a human_sft reference is also trained, so the student and training settings decide it too.
    """
    f = g.get("settings_full")
    if f is None:
        return g["settings"]
    human = f.get("reference.kind", g.get("reference_kind")) == "human_sft"
    prefixes = (("student.", "eval.") if who == "base" else
                ("student.", "eval.", "train.", "reference.") if human else ("eval.", "reference."))
    return " ".join(f"{k}={_show(f[k])}" for k in g["settings_keys"] if k in f and k.startswith(prefixes))


def score_lines(groups: list[dict], domain: str) -> list[dict]:
    """What the "student score against volume" panel of a domain draws.

    A student line per generator, mode, format and settings; a base line per distinct student and evaluation
    settings and a reference line per distinct reference settings (`_settings_of`), each the mean over the groups
    that share them, never a mean across settings.
    """
    mine = [g for g in groups if g["domain"] == domain and g.get("budget_n") and g.get("student_score") is not None]
    students: dict[str, list[dict]] = defaultdict(list)
    for g in mine:
        students[_line_name(g)].append(g)
    out = []
    for name, pts in sorted(students.items()):
        pts = sorted(pts, key=lambda g: g["budget_n"])
        out.append({"kind": "student", "label": name, "settings": pts[0]["settings"],
                    "n": [g["budget_n"] for g in pts], "score": [g["student_score"] for g in pts]})
    for who in ("base", "reference"):
        by: dict[str, list[dict]] = defaultdict(list)
        for g in mine:
            by[_settings_of(g, who)].append(g)
        for settings, gs in sorted(by.items()):
            v = _mean([g[f"{who}_score"] for g in gs])
            if v is not None:
                out.append({"kind": who, "settings": settings, "score": v,
                            "label": who + (f" [{settings}]" if settings else "") + f" (mean {v:.1f})"})
    return out


def plot_scores_vs_n(groups: list[dict], out: Path) -> Path | None:
    """Scores against N (mean over benchmarks and seeds): the student per generator, base and reference as lines.

    Drawn even where PGR is undefined, which is where it is needed: it shows that the reference did not beat the base.
    The lines are `score_lines`: base and reference once per distinct settings.
    """
    gs = [g for g in groups if g.get("budget_n") and g.get("student_score") is not None]
    if not gs:
        return None
    plt = _plt()
    domains = sorted({g["domain"] for g in gs})
    fig, axes = plt.subplots(1, len(domains), figsize=(6 * len(domains), 4.2), squeeze=False)
    for ax, d in zip(axes[0], domains):
        lines = score_lines(groups, d)
        students = [ln for ln in lines if ln["kind"] == "student"]
        color = _colors([ln["label"] for ln in students])
        for ln in students:
            ax.plot(ln["n"], ln["score"], "o-", label=ln["label"], color=color[ln["label"]])
        flat_lines = [ln for ln in lines if ln["kind"] != "student"]
        shade = _colors([ln["settings"] for ln in flat_lines])
        for ln in flat_lines:
            ax.axhline(ln["score"], ls=":" if ln["kind"] == "base" else "--", label=ln["label"],
                       color="grey" if len(shade) == 1 else shade[ln["settings"]])
        _volume_axis(ax, [g["budget_n"] for g in gs if g["domain"] == d])
        ax.set_xlabel("N (examples in the budget)")
        ax.set_ylabel("score (%), mean over benchmarks and seeds")
        ax.set_title(f"{d}: student score against volume")
        _legend_outside(ax)
    fig.subplots_adjust(wspace=0.3)
    return _save(fig, out / "scores_vs_n.png")


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
    fig.subplots_adjust(wspace=0.3)
    return _save(fig, out / "pca.png")
