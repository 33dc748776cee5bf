"""Wall time of the sweep report over 100 stored cells, against the old report and a pandas groupby + to_html baseline.

The 100 cells are copies of real smoke cells (a store that evaluate.py filled, e.g. the one tests/test_report.py's
sweep leaves under /tmp/pytest-of-$USER/) under varied labels: 5 generators x 5 volumes x 2 prompt formats x
2 train seeds. Each copy keeps its source's scores, PGR and data folder; its dollars are the source's measured
tokens per example priced at the labelled generator's dated rates (conf/generator/*.yaml) times N. Where the source
has no intrinsic.json or an undefined PGR, a seeded synthetic value stands in, so that every plot and the PCA are
drawn (the run says how many). All three contenders run in this process, on the same rows, after one warm-up.

    python benchmarks/bench_report.py --source /tmp/pytest-of-root/pytest-N/agora_store0 [--cells 100] [--repeat 3]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from agora import report  # noqa: E402

GENERATORS = ["gpt4o", "gpt4o_mini", "claude35_sonnet", "llama31_70b", "llama31_8b"]
VOLUMES = [1000, 2000, 5000, 10000, 50000]
FORMATS = ["free_form", "json"]
SEEDS = [1, 2]
OLD_REPORT_COMMIT = "f8e7521"   # the report before the sweep report: a CSV and one PGR-vs-$ plot


def price(gen: str) -> tuple[float, float]:
    p = OmegaConf.load(ROOT / "conf" / "generator" / f"{gen}.yaml").price_usd_per_mtok
    return float(p.input), float(p.output)


def make_store(source: Path, dest: Path, cells: int) -> dict:
    """Copies of the source's evaluated cells under varied labels; returns counts of what was synthesised."""
    rows = report.load_store(source)
    if not rows:
        raise SystemExit(f"no results/*.json in {source}; run tests/test_report.py (or an evaluate sweep) first")
    rng = np.random.default_rng(0)
    labels = [(g, n, f, s) for g in GENERATORS for n in VOLUMES for f in FORMATS for s in SEEDS][:cells]
    synth = {"pgr": 0, "intrinsic": 0}
    for i, (gen, n, fmt, seed) in enumerate(labels):
        src = rows[(i // len(SEEDS)) % len(rows)]   # a label's seeds copy the same source cell
        data = f"data/{src['domain']}/{src['mode']}/{gen}/{fmt}-n{n}"
        if not (dest / data).exists():   # one data folder per label, shared by its two seeds
            shutil.copytree(report.rows._data_dir(source, src), dest / data)
            if not (dest / data / "intrinsic.json").is_file():
                synth["intrinsic"] += 1
                m = dict(zip(["difficulty", "quality", "perplexity", "diversity_instruction", "diversity_response"],
                             (rng.normal(size=5) * [0.5, 0.5, 2, 0.05, 0.05] + [3, 3.5, 6, 0.3, 0.4]).tolist()))
                (dest / data / "intrinsic.json").write_text(json.dumps({"metrics": m, "synthetic": True}))
        kept = max(src.get("kept") or 1, 1)
        pin, pout = price(gen)
        usd = n * ((src.get("input_tokens") or 0) * pin + (src.get("output_tokens") or 0) * pout) / kept / 1e6
        row = {k: v for k, v in src.items() if k not in ("intrinsic", "result_key", "job", "store")}
        if row.get("pgr") is None:
            synth["pgr"] += 1
            row["pgr"] = float(rng.normal(20, 10))
        row.update(generator=gen, budget=f"n{n}", budget_n=n, prompt_format=fmt, train_seed=seed, cost_usd=usd,
                   kept=n, data_dir=data, group=f"{gen}-{fmt}-{n}-{src['domain']}-{src['mode']}")
        report.record(dest, f"cell{i:03d}", row)
    return synth


def load_old():
    text = subprocess.run(["git", "show", f"{OLD_REPORT_COMMIT}:agora/report/"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout
    spec = importlib.util.spec_from_loader("old_report", loader=None)
    mod = importlib.util.module_from_spec(spec)
    exec(compile(text, "old_report.py", "exec"), mod.__dict__)
    return mod


def pandas_baseline(root: Path, out: Path) -> None:
    """What one would write by hand: rows into a frame, mean/std/count per cell, to_html, a scatter per domain."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    df = pd.DataFrame([json.loads(p.read_text()) for p in sorted((root / "results").glob("*.json"))])
    keys = ["generator", "domain", "mode", "budget_n", "prompt_format"]
    g = df.groupby(keys).agg(pgr=("pgr", "mean"), sd=("pgr", "std"), seeds=("pgr", "count"),
                             cost_usd=("cost_usd", "first")).reset_index()
    out.mkdir(parents=True, exist_ok=True)
    imgs = []
    for d, part in g.groupby("domain"):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for gen, p in part.groupby("generator"):
            ax.scatter(p["cost_usd"], p["pgr"], label=gen)
        ax.legend(fontsize=8)
        fig.savefig(out / f"{d}.png", dpi=100)
        plt.close(fig)
        imgs.append(f"<img src='{d}.png'>")
    (out / "index.html").write_text("<html><body>" + g.to_html() + df.to_html() + "".join(imgs) + "</body></html>")


def timed(fn, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", type=Path, required=True, help="a store with real evaluated smoke cells")
    ap.add_argument("--cells", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "store"
        synth = make_store(a.source.resolve(), root, a.cells)
        n_src = len(list((a.source / "results").glob("*.json")))
        print(f"{a.cells} cells from {n_src} real smoke cell(s) in {a.source}; synthetic PGR for {synth['pgr']} "
              f"row(s) whose source PGR is undefined, synthetic intrinsic.json for {synth['intrinsic']} data folder(s)")
        old = load_old()
        old_root = Path(tmp) / "old"
        old_root.mkdir()
        (old_root / "results").symlink_to(root / "results")
        # warm-up: imports (matplotlib, pandas) and the file cache, so the three compare work, not imports
        report.build_store(root)
        old.build(old_root)
        pandas_baseline(root, Path(tmp) / "pandas")
        t_new = timed(lambda: report.build_store(root), a.repeat)
        t_old = timed(lambda: old.build(old_root), a.repeat)
        t_pd = timed(lambda: pandas_baseline(root, Path(tmp) / "pandas"), a.repeat)
        t_load = timed(lambda: report.load_store(root), a.repeat)
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "agora.report", "--store", str(root)], cwd=ROOT,
                           capture_output=True, text=True)
        t_cli = time.perf_counter() - t0
        assert p.returncode == 0, p.stderr
        r = json.loads((root / "report" / "report.json").read_text())
        print(f"report: {len(r['cells'])} runs, {len(r['groups'])} cells, {len(r['plots'])} plots, "
              f"{len(r['comparisons'])} comparisons, PCA {'yes' if r['pca'] else 'no'}")
        med = statistics.median
        print(f"{'contender':<44} {'median s':>9}  runs")
        for name, t in [("agora report (build_store, warm)", t_new), ("  of which load_store (rows + manifests)", t_load),
                        (f"old report ({OLD_REPORT_COMMIT}: CSV + 1 plot)", t_old),
                        ("pandas groupby + to_html + 1 plot/domain", t_pd)]:
            print(f"{name:<44} {med(t):9.3f}  {', '.join(f'{x:.3f}' for x in t)}")
        print(f"{'python -m agora.report (cold, imports incl.)':<44} {t_cli:9.3f}")
        print(f"ratio agora / old report: {med(t_new) / med(t_old):.2f}x; agora / pandas baseline: "
              f"{med(t_new) / med(t_pd):.2f}x; per cell: {1000 * med(t_new) / a.cells:.1f} ms")


if __name__ == "__main__":
    main()
