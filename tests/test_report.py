"""The sweep report: a row per evaluated cell, and a PGR-against-dollars plot of the cells with a defined PGR."""
from __future__ import annotations

import csv

from agora.metrics import report


def cell(gen: str, mode: str, pgr, cost: float) -> dict:
    return {"generator": gen, "domain": "math", "mode": mode, "prompt_format": "free_form", "budget": "n10k",
            "pgr": pgr, "cost_usd": cost, "kept": 10000, "base": 19.8, "reference": 34.6, "student": 28.1}


def test_report_table_and_plot(tmp_path):
    report.record(tmp_path, "a", cell("gpt4o", "instance_generation", 55.8, 41.2))
    report.record(tmp_path, "b", cell("gpt4o_mini", "instance_generation", 16.1, 2.5))
    report.record(tmp_path, "c", cell("llama31_8b", "response_generation", None, 0.9))  # undefined PGR
    table, plot = report.build(tmp_path)
    rows = list(csv.DictReader(open(table)))
    assert [r["generator"] for r in rows] == ["gpt4o", "gpt4o_mini", "llama31_8b"]
    assert rows[2]["pgr"] == ""
    assert plot is not None and plot.stat().st_size > 5000 and plot.read_bytes()[:4] == b"\x89PNG"


def test_no_plot_without_a_defined_pgr(tmp_path):
    report.record(tmp_path, "c", cell("local", "instance_generation", None, 0.0))
    table, plot = report.build(tmp_path)
    assert table.exists() and plot is None
