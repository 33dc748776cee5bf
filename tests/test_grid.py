"""Instruction following run generate -> train -> evaluate on the embedded default.

`test_end_to_end.py` generates every cell of the grid and runs the default math cell through all three stages;
`test_report.py`'s real sweep runs code x response generation, free-form and JSON (code inside a JSON string, the
cell the embedded generator found hardest), through all three stages. Here the third domain does the same, with
evaluation cut to a few problems and short answers so the module stays within minutes.
"""
from __future__ import annotations

import json

import pytest

from test_end_to_end import agora

SMALL = ["budget.n=3", "budget.max_attempts_factor=3", "budget.eval_limit=6", "eval.max_new_tokens=96",
         "train.max_steps=2", "tracking=none"]


@pytest.mark.parametrize("domain,fmt,benchmarks", [("instruction_following", "free_form", ["ifbench", "synthetic_if"])])
def test_cell_runs_end_to_end_and_reports_pgr(domain, fmt, benchmarks, tmp_path, store_dir):
    cell = [f"domain={domain}", "mode=response_generation", f"prompt_format={fmt}", *SMALL]
    for stage in ("generate", "train"):
        agora(stage, *cell, cwd=tmp_path, store=store_dir)
    out = agora("evaluate", *cell, cwd=tmp_path, store=store_dir).stdout
    assert f"PGR {domain} (mean over benchmarks):" in out
    (result,) = tmp_path.glob("outputs/evaluate/*/result.json")     # the row this evaluation recorded
    row = json.loads(result.read_text())
    assert (row["domain"], row["prompt_format"], row["kept"] >= 1) == (domain, fmt, True)
    assert sorted(row["benchmarks"]) == sorted(benchmarks)
    # Each recorded score is the one its own evaluation product holds, for base, reference and student alike.
    evals = [json.loads(m.read_text()) for m in store_dir.glob("evals/*/*/manifest.json")]
    for b, s in row["benchmarks"].items():
        for who in ("base", "reference", "student"):
            own = {e["accuracy"][b] for e in evals if e["label"] == who and b in e["accuracy"]
                   and e["spec"]["limit"] == 6}
            assert 0.0 <= s[who] <= 100.0 and s[who] in own, (b, who, s[who], own)
        gap = s["reference"] - s["base"]
        assert s["pgr"] == (None if gap <= 0 else pytest.approx(100 * (s["student"] - s["base"]) / gap))
    # The tracker gets every benchmark's scores and PGR (two benchmarks: a PGR logged for the last one only fails)
    (metrics,) = tmp_path.glob("outputs/evaluate/*/metrics.json")
    logged = json.loads(metrics.read_text())
    for b, s in row["benchmarks"].items():
        assert logged[f"pgr/{b}"] == s["pgr"] and logged[f"eval/{b}/student_accuracy"] == s["student"], b
