"""The report's numbers as tables: groups over train seeds, comparisons along an axis, the paper's Table 2, the
intrinsic-metric analysis, budget advice, and the paired-instruction overlap between generators.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agora.metrics import analysis
from agora.store import digest
from agora.report.rows import (CELL, COST, DEFAULT_BUDGETS_USD, PCA_COMPONENTS, differing_settings, group_key,
                               noise_of, partial_of, seedless_settings, settings_text, undefined_of)


# ---------------------------------------------------------------- tables
BENCH_COLUMNS = ("base", "reference", "student", "pgr", "n", "gap_within_noise")


def benchmarks_of(rows: list[dict]) -> list[str]:
    return sorted({b for r in rows for b in r.get("benchmarks", {})})


def intrinsic_of(rows: list[dict]) -> list[str]:
    return sorted({k for r in rows for k in r.get("intrinsic", {})})


def flat(rows: list[dict]) -> tuple[list[str], list[dict]]:
    """One table row per cell and train seed, every row with the same columns (CSV, HTML, W&B Table)."""
    benches, intr = benchmarks_of(rows), intrinsic_of(rows)
    keys = differing_settings([(r.get("domain"), seedless_settings(r)) for r in rows])
    cols = [*CELL, "settings", "pgr", "pgr_partial", "pgr_undefined", "pgr_of_means",
            *(f"{b}/{w}" for b in benches for w in BENCH_COLUMNS),
            "base", "reference", "student", *COST, *(f"intrinsic/{k}" for k in intr), "data_dir"]
    out = []
    for r in rows:
        f = {c: r.get(c) for c in cols}
        f.update(settings=settings_text(r.get("domain"), seedless_settings(r), keys), pgr_partial=partial_of(r),
                 pgr_undefined=", ".join(undefined_of(r)))   # text: a W&B column holds one type
        for b, s in r.get("benchmarks", {}).items():
            f.update({f"{b}/{w}": s.get(w) for w in BENCH_COLUMNS})
            f[f"{b}/gap_within_noise"] = noise_of(s)
        f.update({f"intrinsic/{k}": v for k, v in r.get("intrinsic", {}).items()})
        out.append(f)
    return cols, out


def group_rows(rows: list[dict]) -> list[dict]:
    """One entry per cell and settings over its train seeds: PGR mean and 95% t-interval (>= 2 seeds that define it).

    Rows are merged only when `group_key` says they differ in nothing but the train seed. `settings` names what
    tells a group apart from the others; `pgr_partial` says its PGR leaves out an undefined benchmark or seed.
    """
    by: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by[group_key(r)].append(r)
    keys = differing_settings([(r.get("domain"), seedless_settings(r)) for r in rows])
    out = []
    for key, rs in by.items():
        r0 = rs[0]
        values = [r["pgr"] for r in rs if r.get("pgr") is not None]
        iv = analysis.t_interval(values) if values else None
        gaps = [r["reference"] - r["base"] for r in rs if r.get("reference") is not None and r.get("base") is not None]
        gap = analysis.t_interval(gaps) if gaps else None   # the instrument's range: does the reference beat the base?
        bench, noisy = {}, {}
        for b in sorted({b for r in rs for b in r.get("benchmarks", {})}):
            v = [r["benchmarks"][b]["pgr"] for r in rs if r.get("benchmarks", {}).get(b, {}).get("pgr") is not None]
            bench[b] = analysis.t_interval(v).mean if v else None
            flags = [noise_of(r["benchmarks"][b]) for r in rs if b in r.get("benchmarks", {})]
            noisy[b] = None if all(x is None for x in flags) else any(bool(x) for x in flags)   # in any seed
        undefined = sorted({b for r in rs for b in undefined_of(r)})
        out.append({**{k: r0.get(k) for k in CELL if k != "train_seed"}, "budget_usd": r0.get("budget_usd"),
                    "settings": settings_text(r0.get("domain"), seedless_settings(r0), keys),
                    "settings_shared": settings_text(r0.get("domain"), seedless_settings(r0), keys, shared_only=True),
                    "settings_full": seedless_settings(r0),
                    "settings_keys": keys[0] + keys[1].get(r0.get("domain"), []), "group": key,
                    "seeds": sorted((r.get("train_seed") for r in rs), key=str), "n_seeds": len(rs),
                    "pgr_values": values, "n_undefined": len(rs) - len(values),
                    "pgr": iv.mean if iv else None, "pgr_sd": iv.sd if iv else None,
                    "pgr_low": iv.low if iv else None, "pgr_high": iv.high if iv else None,
                    "gap_values": gaps, "gap": gap.mean if gap else None,
                    "gap_low": gap.low if gap else None, "gap_high": gap.high if gap else None,
                    "pgr_partial": iv is not None and (len(values) < len(rs) or any(partial_of(r) for r in rs)),
                    "pgr_undefined": undefined, "pgr_by_benchmark": bench, "gap_within_noise": noisy,
                    **{k: r0.get(k) for k in COST},
                    **{f"{who}_score": _mean([r.get(who) for r in rs]) for who in ("base", "reference", "student")},
                    "intrinsic": r0.get("intrinsic", {}), "data_dir": r0.get("data_dir"),
                    "control": r0.get("control")})
    return sorted(out, key=lambda g: tuple(str(g.get(k)) for k in ("domain", "mode", "generator", "prompt_format"))
                  + (g.get("budget_n") or 0, g["settings"]))


def _mean(values: list) -> float | None:
    v = [x for x in values if x is not None]
    return float(np.mean(v)) if v else None


def label(g: dict) -> str:
    return f"{g.get('control') or g['generator']} {g['mode']} {g['prompt_format']} N={g.get('budget_n')}" + _with(g)


def _with(g: dict) -> str:
    """The group's differing settings, to append to a label (nothing when every group agrees)."""
    return f" [{g['settings']}]" if g.get("settings") else ""


def comparisons(groups: list[dict], axis: str) -> list[dict]:
    """Pairs of cells that differ only along `axis` (generator or prompt_format): difference and noise verdict."""
    context = [k for k in ("domain", "mode", "budget_n", "prompt_format", "generator", "reference_kind", "settings")
               if k != axis]
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
                out.append({"axis": axis, "context": " ".join(f"{k}={v}" for k, v in zip(context, ctx)
                                                              if k != "settings") + _with(a),
                            "a": a[axis], "b": b[axis], "pgr_a": a["pgr"], "pgr_b": b["pgr"], "n_a": len(a["pgr_values"]),
                            "n_b": len(b["pgr_values"]), "diff": d.diff, "diff_low": d.low, "diff_high": d.high,
                            "verdict": d.verdict})
    return out


def pivot(groups: list[dict]) -> list[dict]:
    """Mean PGR over a generator's cells in each domain (per settings: never across them), cells counted."""
    by: dict[tuple, list[float]] = defaultdict(list)
    for g in groups:
        if g["pgr"] is not None:
            by[(g["generator"], g["domain"], g["settings"])].append(g["pgr"])
    return [{"generator": gen, "domain": d, "settings": s, "cells": len(v), "mean_pgr": float(np.mean(v))}
            for (gen, d, s), v in sorted(by.items())]


MODES = {"instance_generation": "IG", "response_generation": "RG", "quality_enhancement": "QE"}
DOMAINS = {"math": "math", "code": "code", "instruction_following": "inst"}
TABLE2_ROW = ("generator", "budget", "volume", "prompt_format", "reference_kind", "settings")


def _table2_cell(gs: list[dict]) -> dict:
    """One of the 9 cells: its PGR (mean over train seeds) and status ok | partial | undefined | missing | conflict."""
    if not gs:
        return {"pgr": None, "status": "missing", "note": None}
    if len(gs) > 1:   # same generator and settings, different data: two cells, not one to average
        return {"pgr": None, "status": "conflict",
                "note": f"{len(gs)} cells: " + "; ".join(f"{g['data_dir']} [{g['settings']}]" for g in gs)}
    g = gs[0]
    if g["pgr"] is None:
        return {"pgr": None, "status": "undefined",
                "note": f"reference <= base on {', '.join(g['pgr_undefined']) or 'every benchmark'}"}
    why = ([f"undefined: {', '.join(g['pgr_undefined'])}"] if g["pgr_undefined"] else []) + (
        [f"{g['n_undefined']} of {g['n_seeds']} seeds undefined"] if g["n_undefined"] else [])
    return {"pgr": g["pgr"], "status": "partial" if g["pgr_partial"] else "ok", "note": "; ".join(why) or None}


def _table2_mean(cells: list[dict]) -> dict:
    """The mean over cells that have a PGR; partial when any cell lacks one or is itself partial."""
    v = [c["pgr"] for c in cells if c["pgr"] is not None]
    return {"pgr": float(np.mean(v)) if v else None, "cells": len(v), "of": len(cells),
            "partial": len(v) < len(cells) or any(c["status"] == "partial" for c in cells)}


def table2(groups: list[dict]) -> list[dict]:
    """The paper's Table 2: per generator, the PGR of the 9 cells (mode x domain) and their averages.

    A row is a generator with everything else that tells its runs apart (budget, volume, prompt format,
    reference and the settings that differ beyond the domain's own). A mode's average is the mean over its 3
    domains; the AgoraBench score is the mean over the 9 cells. A cell with no run is "missing", one whose PGR is
    undefined "undefined", and an average over either (or over a partial cell) is marked partial, with how many
    cells it holds: never silently a mean over fewer cells. Cells outside the paper's 3 modes x 3 domains (a
    plug-in domain or mode) are in the other tables, not here.
    """
    rows: dict[tuple, dict[tuple[str, str], list[dict]]] = defaultdict(lambda: defaultdict(list))
    for g in groups:
        if g["mode"] in MODES and g["domain"] in DOMAINS:
            volume = f"${g['budget_usd']:g}" if g.get("budget_usd") is not None else f"N={g.get('budget_n')}"
            key = (g["generator"], g["budget"], volume, g["prompt_format"], g["reference_kind"], g["settings_shared"])
            rows[key][(g["mode"], g["domain"])].append(g)
    out = []
    for key, by in sorted(rows.items(), key=lambda kv: tuple(map(str, kv[0]))):
        cells = {f"{MODES[m]}/{DOMAINS[d]}": _table2_cell(by.get((m, d), [])) for m in MODES for d in DOMAINS}
        out.append({**dict(zip(TABLE2_ROW, key)), "cells": cells,
                    "averages": {MODES[m]: _table2_mean([cells[f"{MODES[m]}/{DOMAINS[d]}"] for d in DOMAINS])
                                 for m in MODES},
                    "agorabench": _table2_mean(list(cells.values()))})
    return out


def _table2_text(c: dict, average: bool) -> str:
    if average:
        if c["pgr"] is None:
            return f"— (0 of {c['of']} cells)"
        if not c["partial"]:
            return f"{c['pgr']:.1f}"
        return f"{c['pgr']:.1f} (partial" + (f": {c['cells']} of {c['of']} cells)" if c["cells"] < c["of"] else ")")
    if c["status"] == "ok":
        return f"{c['pgr']:.1f}"
    return f"{c['pgr']:.1f} (partial)" if c["status"] == "partial" else c["status"]


def table2_table(t2: list[dict]) -> list[dict]:
    """Table 2 as text, one column per cell and average (IG/math ... QE/avg, AgoraBench): CSV, HTML, W&B."""
    out = []
    for r in t2:
        row = {k: str(r[k]) for k in TABLE2_ROW}
        for m in MODES.values():
            row.update({f"{m}/{d}": _table2_text(r["cells"][f"{m}/{d}"], False) for d in DOMAINS.values()})
            row[f"{m}/avg"] = _table2_text(r["averages"][m], True)
        row["AgoraBench"] = _table2_text(r["agorabench"], True)
        row["notes"] = "; ".join(f"{k}: {c['note']}" for k, c in r["cells"].items()
                                 if c["status"] != "ok" and c["note"])
        out.append(row)
    return out


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
        "cumulative": float(p.explained_variance_ratio.sum()), "note": p.note,
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
    """Per generator (with its mode, format, reference, settings): mean PGR at each measured N, $ per kept example."""
    by: dict[tuple, list[dict]] = defaultdict(list)
    for g in groups:
        if g.get("control"):   # human data is the yardstick, not something to buy
            continue
        if g["domain"] == domain and g["pgr"] is not None and (g.get("budget_n") or g.get("kept")):
            by[(g["generator"], g["mode"], g["prompt_format"], g.get("reference_kind"), g["settings"])].append(g)
    out = []
    for (gen, mode, fmt, ref, settings), gs in sorted(by.items(), key=lambda kv: tuple(map(str, kv[0]))):
        at: dict[float, list[float]] = defaultdict(list)
        seeds: dict[float, list[float]] = defaultdict(list)   # every train seed's PGR, for the advice's noise verdict
        for g in gs:
            at[float(g.get("budget_n") or g["kept"])].append(g["pgr"])
            seeds[float(g.get("budget_n") or g["kept"])].extend(g["pgr_values"])
        data = {g["data_dir"] or g["group"]: g for g in gs}.values()   # seeds share data: count its cost once
        kept = sum(g.get("kept") or 0 for g in data)
        cost = sum(g.get("cost_usd") or 0.0 for g in data)
        vols = sorted(at)
        out.append(analysis.Series(f"generator={gen} mode={mode} prompt_format={fmt} reference={ref}"
                                   + (f" [{settings}]" if settings else ""), vols,
                                   [float(np.mean(at[v])) for v in vols], cost / kept if kept else 0.0,
                                   [g.get("cost_usd") or 0.0 for g in data], {v: seeds[v] for v in vols}))
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
    if not any(g["pgr"] is not None for g in mine if not g.get("control")):
        controls = sorted({g["control"] for g in mine if g.get("control") and g["pgr"] is not None})
        return (f"nothing to buy: only controls have a defined PGR ({', '.join(controls)}); they are yardsticks, "
                "not generators (add a generator's cells to rank it against them)")
    return f"no measured generator affords one example for ${budget_usd:g}"


def describe(advice: list[analysis.Advice], domain: str, budget_usd: float, groups: list[dict]) -> str:
    """One line: the first candidate and its verdict; when no candidate recovers any of the gap, that, first."""
    if not advice:
        return f"budget ${budget_usd:g}, {domain}: {no_advice(groups, domain, budget_usd)}"
    a = advice[0]
    if a.verdict_kind == "no_gain":
        return f"budget ${budget_usd:g}, {domain}: {a.verdict} (N={a.volume} for ${a.cost_usd:.4g}; {a.note})"
    return (f"budget ${budget_usd:g}, {domain}: {a.label}, N={a.volume} -> expected PGR {a.expected_pgr:.1f}% "
            f"for ${a.cost_usd:.4g} ({a.note}); {a.verdict_kind}: {a.verdict}")


# ---------------------------------------------------------------- paired instructions
PAIRED_MODES = ("response_generation", "quality_enhancement")   # agora/stages/generate.py's: a given instruction per example


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.is_file() else []


def _data_set(path: Path) -> dict | None:
    """A data set's pool (its data spec less the generator), its instructions by seed_id, and those given up."""
    try:
        spec = json.loads((path / "manifest.json").read_text())["spec"]
        ids = [r.get("seed_id") for r in _jsonl(path / "data.jsonl")]
        given_up = sorted({str(d.get("seed_id")) for d in _jsonl(path / "dropped.jsonl") if d.get("given_up")})
    except (OSError, KeyError, ValueError):
        return None
    return {"pool": digest({k: v for k, v in spec.items() if k != "generator"}, n=8),
            "ids": [str(i) for i in ids if i is not None], "given_up": given_up}


def overlap(rows: list[dict]) -> list[dict]:
    """RG and QE answer given instructions, and every generator must answer the same ones (a paired design): per set
    of data sets that differ in the generator alone (the same data spec less `generator`: domain, mode, budget,
    prompt format, seed pool and seed), the instructions (by seed_id) that all of them hold, against those that any
    of them holds (`overlap` = shared / union, 1.0 when they hold the same ones), and each data set's counts. A data
    set is counted once however many runs were trained on it; sets of one data set are left out."""
    by: dict[str, list[dict]] = defaultdict(list)
    seen: set[str] = set()
    for r in rows:
        path = r.get("data_path")
        if r.get("mode") not in PAIRED_MODES or not path or path in seen:
            continue
        seen.add(path)
        d = _data_set(Path(path))
        if d is not None:
            by[d["pool"]].append({**d, "generator": r.get("generator"), "data_dir": r.get("data_dir"),
                                  **{k: r.get(k) for k in ("domain", "mode", "budget", "budget_n", "prompt_format")}})
    out = []
    for pool, ds in by.items():
        if len(ds) < 2:
            continue
        sets = [set(d["ids"]) for d in ds]
        shared, union = set.intersection(*sets), set.union(*sets)
        d0 = ds[0]
        out.append({**{k: d0[k] for k in ("domain", "mode", "budget", "budget_n", "prompt_format")}, "pool": pool,
                    "generators": sorted(str(d["generator"]) for d in ds), "data_sets": len(ds),
                    "shared": len(shared), "union": len(union),
                    "overlap": len(shared) / len(union) if union else None,
                    "per_generator": [{"generator": d["generator"], "data_dir": d["data_dir"], "rows": len(d["ids"]),
                                       "instructions": len(s), "not_shared": len(s - shared),
                                       "given_up": len(d["given_up"])}
                                      for d, s in sorted(zip(ds, sets), key=lambda x: (str(x[0]["generator"]),
                                                                                       str(x[0]["data_dir"])))]})
    return sorted(out, key=lambda o: tuple(str(o[k]) for k in ("domain", "mode", "budget", "prompt_format", "pool")))


def overlap_tables(ov: list[dict]) -> tuple[list[dict], list[dict]]:
    """The overlap as two flat tables: one row per pool, and one per data set in it."""
    pools = [{**{k: o[k] for k in ("domain", "mode", "budget", "budget_n", "prompt_format", "pool", "data_sets",
                                   "shared", "union")},
              "generators": ", ".join(o["generators"]),
              "overlap_pct": None if o["overlap"] is None else round(100 * o["overlap"], 2)} for o in ov]
    sets = [{**{k: o[k] for k in ("domain", "mode", "pool")}, **g} for o in ov for g in o["per_generator"]]
    return pools, sets


# ---------------------------------------------------------------- the report
@dataclass
class Report:
    rows: list[dict]
    groups: list[dict]
    comparisons: list[dict]
    pivot: list[dict]
    table2: list[dict]
    pca: dict | None
    pca_skipped: str | None
    advice: dict[str, dict[float, list[analysis.Advice]]]
    failed: list[dict] = field(default_factory=list)
    overlap: list[dict] = field(default_factory=list)


def analyse(rows: list[dict], budgets: tuple[float, ...] = DEFAULT_BUDGETS_USD,
            failed: list[dict] | None = None) -> Report:
    groups = group_rows(rows)
    comps = comparisons(groups, "generator") + comparisons(groups, "prompt_format")
    pca, skipped = intrinsic_analysis(groups)
    domains = sorted({g["domain"] for g in groups})
    advice = {d: {b: recommend(groups, d, b) for b in budgets} for d in domains}
    return Report(rows, groups, comps, pivot(groups), table2(groups), pca, skipped, advice, list(failed or []),
                  overlap(rows))
