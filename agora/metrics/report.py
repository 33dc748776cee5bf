"""The sweep report: every evaluated cell, PGR over train seeds, PGR against dollars and volume, PCA, budget advice.

`evaluate.py` records one row per cell and train seed (`record`: `results/<key>.json` in the store, and
`result.json` in the Hydra run folder). A report is built from those rows:
- over a sweep folder when a multirun ends (agora/callbacks.py), into `<sweep>/report/`, and over the whole
  store into `<store>/report/`;
- over a single cell's store after `python evaluate.py` (not in a multirun);
- by hand: `python -m agora.report --store S` or `--sweep multirun/evaluate/<date>`.

A report folder is self-contained: `index.html`, its PNGs, `cells.csv`, `groups.csv`, `table2.csv` and
`report.json`. The numbers come from agora/metrics/analysis.py; this module gathers rows, draws and writes.

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
# Settings that change with the train seed and nothing else: a cell's seeds differ here, and only here.
SEEDED = ("train.seed", "reference.key")
# Settings that follow from the domain (its benchmarks, data sources, judge, version and system prompt). They differ
# between domains by design, so they are compared within a domain only.
DOMAIN_SETTINGS = ("eval.benchmarks", "eval.sources", "eval.domain_version", "eval.judge", "train.system_prompt",
                   "reference.human")
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
    r["data_path"] = str(data)   # where `overlap` reads the data set's instructions
    if any(k not in r for k in COST):
        try:
            s = json.loads((data / "manifest.json").read_text())["summary"]
            for k in COST:
                r.setdefault(k, s.get(k))
            r.setdefault("budget_n", s.get("target"))
        except (OSError, KeyError, ValueError):
            pass
    r.setdefault("control", control_of(data))
    intrinsic = data / "intrinsic.json"
    if intrinsic.is_file():
        metrics = json.loads(intrinsic.read_text()).get("metrics", {})
        r["intrinsic"] = {k: float(v) for k, v in metrics.items()
                          if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
    return r


def control_of(data: Path) -> str | None:
    """A control data set (generator=human, human_corrupted) as a label with its corruption, e.g.
    `human_corrupted (shuffle 0.5)`; None for a generator's data. Controls are measured, never bought."""
    try:
        manifest = json.loads((data / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    control = manifest.get("spec", {}).get("control")
    if not control:
        return None
    name = manifest.get("summary", {}).get("control") or manifest.get("cell", {}).get("generator") or "control"
    c = control.get("corrupt")
    return f"{name} ({c['how']} {c['rate']:g})" if c else name


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


# ---------------------------------------------------------------- settings
def flat_settings(settings: dict, prefix: str = "") -> dict[str, Any]:
    """A row's nested `settings` as dotted keys (`train.max_steps`); lists and scalars are the leaves."""
    out: dict[str, Any] = {}
    for k, v in settings.items():
        if isinstance(v, dict) and v:
            out.update(flat_settings(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _canon(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=str)


def _show(v: Any) -> str:
    return v if isinstance(v, str) else _canon(v)


def _domain_setting(key: str) -> bool:
    return any(key == d or key.startswith(d + ".") for d in DOMAIN_SETTINGS)


def seedless_settings(r: dict) -> dict[str, Any] | None:
    """The row's settings as dotted keys, less those that change with the train seed; None if it recorded none."""
    if r.get("settings") is None:
        return None
    return {k: v for k, v in flat_settings(r["settings"]).items() if k not in SEEDED}


def group_key(r: dict) -> str:
    """Rows with the same key differ in nothing but the train seed: the same cell, data and settings.

    Rows recorded before `settings` existed keep the `group` they recorded (or, older still, their cell and data).
    """
    s = seedless_settings(r)
    if s is None:
        return r.get("group") or digest({k: r.get(k) for k in (*CELL, "data_dir") if k != "train_seed"})
    return digest({"cell": {k: r.get(k) for k in CELL if k != "train_seed"},
                   "data": r.get("data_key") or r.get("data_dir"), "settings": s})


def differing_settings(items: list[tuple[str, dict[str, Any] | None]]) -> tuple[list[str], dict[str, list[str]]]:
    """The settings in which rows differ, from (domain, seedless settings) pairs.

    Returns the keys whose value is not the same in every row that has it, and, per domain, the domain's own
    settings (DOMAIN_SETTINGS) that differ among that domain's rows. Rows without settings take no part.
    """
    values: dict[tuple[str | None, str], set[str]] = defaultdict(set)
    for domain, f in items:
        for k, v in (f or {}).items():
            values[(domain if _domain_setting(k) else None, k)].add(_canon(v))
    shared = sorted({k for (d, k), vs in values.items() if d is None and len(vs) > 1})
    own: dict[str, list[str]] = defaultdict(list)
    for (d, k), vs in sorted(values.items(), key=lambda kv: str(kv[0])):
        if d is not None and len(vs) > 1:
            own[d].append(k)
    return shared, dict(own)


def settings_text(domain: str, f: dict[str, Any] | None, keys: tuple[list[str], dict[str, list[str]]],
                  shared_only: bool = False) -> str:
    """`k=v ...` for the differing settings this row has: empty when every row agrees."""
    shared, own = keys
    wanted = shared if shared_only else shared + own.get(domain, [])
    if not wanted:
        return ""
    if f is None:
        return "not recorded"
    return " ".join(f"{k}={_show(f[k])}" for k in wanted if k in f)


def undefined_of(r: dict) -> list[str]:
    """The run's benchmarks whose PGR is undefined (recorded, or read off its benchmarks)."""
    if r.get("pgr_undefined") is not None:
        return list(r["pgr_undefined"])
    return [b for b, s in r.get("benchmarks", {}).items() if s.get("pgr") is None]


def partial_of(r: dict) -> bool:
    """The run's domain PGR is a number that leaves out an undefined benchmark."""
    return r.get("pgr") is not None and bool(undefined_of(r))


def noise_of(s: dict) -> bool | None:
    """A benchmark's `gap_within_noise`: recorded, else from its problem count; None when neither is known."""
    if s.get("gap_within_noise") is not None:
        return bool(s["gap_within_noise"])
    if s.get("n") and s.get("base") is not None and s.get("reference") is not None:
        return analysis.gap_within_noise(s["base"], s["reference"], int(s["n"]))
    return None


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


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e-2 and v != 0 else f"{v:.2f}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt(x) for x in v)
    return str(v)


def _scroll(table: str) -> str:
    """A table in a box that scrolls sideways on purpose: the wide ones (cells, groups) do not fit a page."""
    return f"<div class='scroll'>{table}</div>"


def _td(v: Any) -> str:
    """A cell: numbers right-aligned, text (labels, verdicts, notes) left-aligned so that it reads as prose."""
    text = html.escape(_fmt(v))
    return f"<td class='t'>{text}</td>" if isinstance(v, str) and len(v) > 12 else f"<td>{text}</td>"


def _table(cols: list[str], rows: list[dict], table_id: str) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "\n".join("<tr>" + "".join(_td(r.get(c)) for c in cols) + "</tr>" for r in rows)
    return _scroll(f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>')


def _ci(g: dict) -> str:
    if g["pgr"] is None:
        return "undefined (reference <= base)"
    if g["pgr_low"] is None:
        return f"{g['pgr']:.2f} (1 seed)"
    return f"{g['pgr']:.2f} [{g['pgr_low']:.2f}, {g['pgr_high']:.2f}]"


def group_table(groups: list[dict]) -> list[dict]:
    return [{"generator": g["generator"], "domain": g["domain"], "mode": g["mode"], "budget": g["budget"],
             "budget_n": g.get("budget_n"), "prompt_format": g["prompt_format"], "reference_kind": g["reference_kind"],
             "settings": g["settings"], "seeds": g["seeds"], "pgr_mean_95ci": _ci(g), "pgr_sd": g["pgr_sd"],
             "n_undefined": g["n_undefined"], "pgr_partial": g["pgr_partial"],
             "pgr_undefined": ", ".join(g["pgr_undefined"]),
             **{f"{w}_score": g[f"{w}_score"] for w in ("base", "reference", "student")},
             **{f"{b}/pgr": v for b, v in g["pgr_by_benchmark"].items()},
             **{f"{b}/gap_within_noise": v for b, v in g["gap_within_noise"].items()},
             **{k: g.get(k) for k in COST}, "data_dir": g.get("data_dir")}
            for g in groups]


def _table2_html(rows: list[dict]) -> str:
    """Table 2 laid out as the paper's: a column group per mode, each with math / code / inst / avg."""
    e = html.escape
    label = [c for c in TABLE2_ROW] + ["notes"]
    head1 = "".join(f"<th rowspan='2'>{e(c)}</th>" for c in label[:-1])
    head1 += "".join(f"<th colspan='4'>{m}</th>" for m in MODES.values())
    head1 += "<th rowspan='2'>AgoraBench</th><th rowspan='2'>notes</th>"
    head2 = "".join(f"<th>{d}</th>" for _ in MODES.values() for d in (*DOMAINS.values(), "avg"))
    cols = [*label[:-1], *(f"{m}/{d}" for m in MODES.values() for d in (*DOMAINS.values(), "avg")), "AgoraBench",
            "notes"]
    body = "\n".join("<tr>" + "".join(f"<td>{e(r[c])}</td>" for c in cols) + "</tr>" for r in rows)
    return _scroll(f'<table id="table2"><thead><tr>{head1}</tr><tr>{head2}</tr></thead><tbody>\n{body}\n</tbody>'
                   '</table>')


def advice_table(r: Report) -> list[dict]:
    out = []
    for d, by in r.advice.items():
        for b, advs in by.items():
            out += [{"domain": d, "budget_usd": b, "rank": i + 1, "candidate": a.label, "N": a.volume,
                     "expected_pgr": a.expected_pgr, "cost_usd": a.cost_usd, "extrapolated": a.extrapolated,
                     "verdict_kind": a.verdict_kind, "verdict": a.verdict, "note": a.note}
                    for i, a in enumerate(advs)]
            if not advs:
                out.append({"domain": d, "budget_usd": b, "rank": None, "candidate": None, "N": None,
                            "expected_pgr": None, "cost_usd": None, "extrapolated": None,
                            "verdict_kind": "none", "verdict": no_advice(r.groups, d, b),
                            "note": no_advice(r.groups, d, b)})
    return out


def verdicts(r: Report) -> list[dict]:
    """Per domain and budget: the first candidate's verdict kind and `describe`'s line (what the page says first)."""
    return [{"domain": d, "budget_usd": b, "verdict_kind": advs[0].verdict_kind if advs else "none",
             "text": describe(advs, d, b, r.groups)} for d, by in r.advice.items() for b, advs in by.items()]


def verdict_lines(vs: list[dict]) -> list[tuple[str, str]]:
    """`verdicts` with the budgets that say the same thing in a domain on one line: (kind, text), in order.

    With a $0 generator (API fees only), every budget gives the same advice; four copies of it hide the rest.
    """
    by: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for v in vs:
        rest = v["text"].removeprefix(f"budget ${v['budget_usd']:g}, {v['domain']}: ")
        by[(v["domain"], v["verdict_kind"], rest)].append(v["budget_usd"])
    return [(kind, f"{'budgets' if len(bs) > 1 else 'budget'} {', '.join(f'${b:g}' for b in bs)}, {d}: {rest}")
            for (d, kind, rest), bs in by.items()]


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
    t2 = table2_table(r.table2)
    with open(out / "table2.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(t2[0]) if t2 else [*TABLE2_ROW, "AgoraBench"])
        w.writeheader()
        w.writerows(t2)
    domains = sorted({g["domain"] for g in r.groups})
    plots = [p for p in (*(plot_pgr_vs_usd(r.groups, d, out) for d in domains), plot_pgr_vs_n(r.groups, out),
                         plot_scores_vs_n(r.groups, out), plot_pca(r.pca, out) if r.pca else None) if p is not None]
    at = advice_table(r)
    ov_pools, ov_sets = overlap_tables(r.overlap)
    (out / "report.json").write_text(json.dumps(
        {"title": title, "cells": rows, "groups": r.groups, "comparisons": r.comparisons, "pivot": r.pivot,
         "table2": r.table2, "overlap": r.overlap, "pca": r.pca, "pca_skipped": r.pca_skipped, "advice": at,
         "verdicts": verdicts(r),
         "failed": r.failed,
         "scores_vs_n": {d: score_lines(r.groups, d) for d in domains},
         "plots": [p.name for p in plots]}, indent=1, default=str))
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>"
             "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;font-size:12px;margin:.5em 0}"
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right;vertical-align:top}th{background:#eee}"
             "td:first-child,td.t{text-align:left}.note{color:#555}img{max-width:100%;margin:.5em 0}"
             # wide tables scroll sideways in their own box, not the page; text wraps at spaces, never inside a word
             ".scroll{overflow-x:auto;max-width:100%}"
             "ul.verdicts li{margin:.2em 0}.kind{font-weight:bold}.kind-recommended{color:#060}"
             ".kind-no_gain,.kind-contradicted{color:#a00}.kind-within_noise,.kind-no_interval,.kind-alone,"
             ".kind-none{color:#a60}</style></head><body>",
             f"<h1>{e(title)}</h1>",
             f"<p>{len(r.rows)} evaluated run(s) in {len(r.groups)} cell(s) over {len(domains)} domain(s); "
             f"generators: {e(', '.join(sorted({g['generator'] for g in r.groups})))}. PGR is the mean of the "
             "per-benchmark PGRs of a domain (<b>partial</b> when it leaves out a benchmark whose PGR is undefined, "
             "named in <code>pgr_undefined</code>); a cell's PGR is the mean over its train seeds with a 95% "
             "t-interval where it has at least 2 seeds. Runs are merged only when they differ in the train seed "
             "alone; <code>settings</code> shows what else tells a row apart (empty when every row agrees). "
             "<code>gap_within_noise</code>: the reference-base gap is at most 2 binomial standard errors over the "
             "benchmark's n problems, so the PGR divides by noise.</p>"]
    if r.failed:
        parts += ["<h2>Failed jobs</h2>", _table(["job", "error"], r.failed, "failed")]
    parts += ["<h2>Budget advice</h2><ul class='verdicts'>"
              + "".join(f"<li><span class='kind kind-{e(k)}'>{e(k)}</span> {e(text)}</li>"
                        for k, text in verdict_lines(verdicts(r))) + "</ul>"
              "<p class='note'>For a budget and a domain: each candidate's best volume "
              "within the budget, the expected PGR interpolated in log N between measured volumes (at $ per kept "
              "example measured), flagged where it extrapolates. Rank 1 is a recommendation only when its verdict is "
              "<b>recommended</b>: it beats rank 2 beyond the noise of the train seeds (Welch's 95% interval of the "
              "difference, at the measured volumes nearest the advised ones, excludes 0). Otherwise the verdict says "
              "why not: <b>no_gain</b> (no candidate recovers any of the reference-base gap: the best expected PGR is "
              "&lt;= 0), <b>alone</b> (nothing to compare it against), <b>no_interval</b> (one seed), "
              "<b>within_noise</b>, or <b>contradicted</b> (the seeds favour rank 2; the ranking rests on "
              "extrapolation). Wide tables scroll sideways. Ask for any budget with "
              "<code>python -m agora.report --store STORE --budget USD --domain DOMAIN</code>.</p>",
              _table(["domain", "budget_usd", "rank", "candidate", "N", "expected_pgr", "cost_usd", "extrapolated",
                      "verdict_kind", "verdict", "note"], at, "advice"),
              "<h2>Table 2: PGR per generator, mode and domain</h2><p class='note'>As the paper's Table 2: a mode's "
              "avg is the mean over its 3 domains, AgoraBench the mean over the 9 cells. A cell is <i>missing</i> "
              "(no run), <i>undefined</i> (reference &lt;= base) or <i>partial</i> (its PGR leaves out an undefined "
              "benchmark or seed); an average over any of them is marked partial, with the cells it holds.</p>",
              _table2_html(t2),
              "<h2>Paired instructions (response generation, quality enhancement)</h2><p class='note'>Every "
              "generator must answer the same instructions: the first n of the seed pool, a dropped reply retried on "
              "its own instruction, never replaced. Per pool (data sets that differ in the generator alone): the "
              "instructions, by seed_id, held by all of them (<code>shared</code>) against those held by any "
              "(<code>union</code>); <code>overlap_pct</code> = shared / union. Per data set: its rows, its "
              "instructions, those missing from another set (<code>not_shared</code>) and those it gave up after "
              "every attempt (<code>given_up</code>).</p>",
              "" if ov_pools else "<p class='note'><b>Nothing to pair yet:</b> no response-generation or "
              "quality-enhancement pool holds data sets from two or more generators.</p>",
              _table(["domain", "mode", "budget", "prompt_format", "pool", "generators", "data_sets", "shared",
                      "union", "overlap_pct"], ov_pools, "overlap"),
              _table(["domain", "mode", "pool", "generator", "data_dir", "rows", "instructions", "not_shared",
                      "given_up"], ov_sets, "overlap_sets"),
              "<h2>PGR over train seeds (one row per cell)</h2>", _table(gcols, gt, "groups"),
              "<h2>Mean PGR per generator and domain</h2>",
              _table(["generator", "domain", "settings", "cells", "mean_pgr"], r.pivot, "pivot"),
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
                  f" {len(ev)} components explain {100 * p['cumulative']:.1f}% of the variance"
                  + (f" <strong>by construction</strong>: {e(p['note'])}" if p.get("note") else ".") + "</p>",
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
              "<a href='table2.csv'>table2.csv</a>, "
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
