"""The report's page: `index.html` with its tables and figures, and the CSV/JSON files beside it.
"""
from __future__ import annotations

import csv
import html
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from agora.report.rows import COST
from agora.report.tables import (DOMAINS, MODES, Report, TABLE2_ROW, describe, flat, no_advice, overlap_tables,
                                 table2_table)
from agora.report.plots import plot_pca, plot_pgr_vs_n, plot_pgr_vs_usd, plot_scores_vs_n, score_lines


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


def _interval(mean: float, low: float | None, high: float | None) -> str:
    """A mean with its 95% interval over train seeds, or "(1 seed)" when there is none."""
    return f"{mean:.2f} (1 seed)" if low is None else f"{mean:.2f} [{low:.2f}, {high:.2f}]"


def _ci(g: dict) -> str:
    if g["pgr"] is None:
        return "undefined (reference <= base)"
    return _interval(g["pgr"], g["pgr_low"], g["pgr_high"])


def _gap(g: dict) -> str:
    if g.get("gap") is None:
        return ""
    zero = g["gap_low"] is not None and g["gap_low"] <= 0 <= g["gap_high"]
    return _interval(g["gap"], g["gap_low"], g["gap_high"]) + (", holds 0" if zero else "")


def group_table(groups: list[dict]) -> list[dict]:
    return [{"generator": g["generator"], "domain": g["domain"], "mode": g["mode"], "budget": g["budget"],
             "budget_n": g.get("budget_n"), "prompt_format": g["prompt_format"], "reference_kind": g["reference_kind"],
             "settings": g["settings"], "seeds": g["seeds"], "pgr_mean_95ci": _ci(g), "pgr_sd": g["pgr_sd"],
             "n_undefined": g["n_undefined"], "pgr_partial": g["pgr_partial"],
             "pgr_undefined": ", ".join(g["pgr_undefined"]),
             **{f"{w}_score": g[f"{w}_score"] for w in ("base", "reference", "student")},
             "reference_minus_base_95ci": _gap(g),
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
             "benchmark's n problems, so the PGR divides by noise. <code>reference_minus_base_95ci</code>: the "
             "reference's score minus the base's (the domain's mean, in points) over the train seeds, with its 95% "
             "t-interval: the instrument's range, which a PGR divides by (it should exclude 0).</p>"]
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
