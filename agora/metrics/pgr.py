"""Performance Gap Recovered (PGR): AgoraBench's headline number for a generator's data.

PGR says how much of the gap between the base model and the reference (instruct) model a
student closes when trained on a generator's data:

    PGR = (score(student) - score(base)) / (score(reference) - score(base)) * 100

It is undefined when the reference does not beat the base on a benchmark; that case is
reported as ``None`` and listed, never divided through.

The paper averages per-benchmark results within a domain but does not say whether it
averages the PGRs or takes the PGR of the mean scores, so ``aggregate`` returns both under
explicit names: ``mean_of_pgrs`` and ``pgr_of_means``.

Nothing is dropped silently. When some of a domain's benchmarks have an undefined PGR, ``mean_of_pgrs`` is the
mean over the others and the aggregate says so: ``partial`` is true and ``undefined`` names them (the stage
prints "partial (undefined: ...)"). Given the number of problems per benchmark, each benchmark's reference-base
gap is also checked against sampling noise (``gap_within_noise``: |gap| <= 2 binomial standard errors,
agora/metrics/analysis.py `gap_noise`), because a PGR divided by a gap that chance alone could produce is noise.
"""

from __future__ import annotations

import math
from statistics import fmean

from agora.metrics.analysis import gap_noise

SCORE_KEYS = ("base", "reference", "student")


def pgr(student: float, base: float, reference: float) -> float | None:
    """PGR in percent, or None when undefined (``reference <= base``)."""
    for name, value in (("student", student), ("base", base), ("reference", reference)):
        if not math.isfinite(value):
            raise ValueError(f"pgr: {name} score is {value!r}; scores must be finite numbers")
    if reference <= base:
        return None
    return (student - base) / (reference - base) * 100.0


def aggregate(scores: dict[str, dict[str, float]], n: dict[str, int] | None = None) -> dict:
    """PGR per benchmark and the two possible aggregations over benchmarks.

    ``scores`` maps benchmark name -> {"base": ..., "reference": ..., "student": ...}; ``n``, if given, maps a
    benchmark to the number of problems its scores are shares of (for the noise flag).

    Returns a dict with:
      - ``per_benchmark``: benchmark -> PGR (None where undefined);
      - ``mean_of_pgrs``: the mean of the defined per-benchmark PGRs (None if none is defined);
      - ``pgr_of_means``: the PGR of the mean base/reference/student scores over all
        benchmarks (None if the mean reference does not beat the mean base);
      - ``undefined``: the benchmarks whose PGR is undefined, in input order;
      - ``defined``: the benchmarks that ``mean_of_pgrs`` averages, in input order;
      - ``partial``: True when ``mean_of_pgrs`` is a number over fewer benchmarks than the domain has (some,
        not all, are undefined); when all are undefined, ``mean_of_pgrs`` is None (undefined) and this is False;
      - ``gap``: benchmark -> reference - base, in points;
      - ``gap_noise``: benchmark -> 2 standard errors of that gap (None without ``n`` for it);
      - ``gap_within_noise``: benchmark -> |gap| <= gap_noise (None without ``n`` for it).
    """
    if not scores:
        raise ValueError("aggregate: `scores` is empty; pass at least one benchmark")
    for bench, row in scores.items():
        missing = [k for k in SCORE_KEYS if k not in row]
        if missing:
            raise KeyError(f"aggregate: benchmark {bench!r} lacks {missing}; each needs {list(SCORE_KEYS)}")

    per_benchmark = {b: pgr(r["student"], r["base"], r["reference"]) for b, r in scores.items()}
    defined = [v for v in per_benchmark.values() if v is not None]
    means = {k: fmean(r[k] for r in scores.values()) for k in SCORE_KEYS}
    n = n or {}
    noise = {b: gap_noise(r["base"], r["reference"], n[b]) if b in n else None for b, r in scores.items()}
    gap = {b: r["reference"] - r["base"] for b, r in scores.items()}
    undefined = [b for b, v in per_benchmark.items() if v is None]
    return {
        "per_benchmark": per_benchmark,
        "mean_of_pgrs": fmean(defined) if defined else None,
        "pgr_of_means": pgr(means["student"], means["base"], means["reference"]),
        "undefined": undefined,
        "defined": [b for b, v in per_benchmark.items() if v is not None],
        "partial": bool(defined) and bool(undefined),
        "gap": gap,
        "gap_noise": noise,
        "gap_within_noise": {b: None if noise[b] is None else abs(gap[b]) <= noise[b] for b in scores},
    }


def summary_line(domain: str, agg: dict) -> str:
    """The stage's closing line: the domain's PGR, whether it is partial and why, and gaps within noise."""
    m = agg["mean_of_pgrs"]
    line = f"PGR {domain} (mean over benchmarks): " + (f"{m:.1f}%" if m is not None else "undefined")
    if agg.get("partial"):
        line += f" partial (undefined: {', '.join(agg['undefined'])})"
    noisy = [b for b, v in agg.get("gap_within_noise", {}).items() if v]
    if noisy:
        line += f"; reference-base gap within noise on: {', '.join(noisy)}"
    return line
