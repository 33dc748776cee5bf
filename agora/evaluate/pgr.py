"""Performance Gap Recovered (PGR): AgoraBench's headline number for a generator's data.

PGR says how much of the gap between the base model and the reference (instruct) model a
student closes when trained on a generator's data:

    PGR = (score(student) - score(base)) / (score(reference) - score(base)) * 100

It is undefined when the reference does not beat the base on a benchmark; that case is
reported as ``None`` and listed, never divided through.

The paper averages per-benchmark results within a domain but does not say whether it
averages the PGRs or takes the PGR of the mean scores, so ``aggregate`` returns both under
explicit names: ``mean_of_pgrs`` and ``pgr_of_means``.
"""

from __future__ import annotations

import math
from statistics import fmean

SCORE_KEYS = ("base", "reference", "student")


def pgr(student: float, base: float, reference: float) -> float | None:
    """PGR in percent, or None when undefined (``reference <= base``)."""
    for name, value in (("student", student), ("base", base), ("reference", reference)):
        if not math.isfinite(value):
            raise ValueError(f"pgr: {name} score is {value!r}; scores must be finite numbers")
    if reference <= base:
        return None
    return (student - base) / (reference - base) * 100.0


def aggregate(scores: dict[str, dict[str, float]]) -> dict:
    """PGR per benchmark and the two possible aggregations over benchmarks.

    ``scores`` maps benchmark name -> {"base": ..., "reference": ..., "student": ...}.

    Returns a dict with:
      - ``per_benchmark``: benchmark -> PGR (None where undefined);
      - ``mean_of_pgrs``: the mean of the defined per-benchmark PGRs (None if none is defined);
      - ``pgr_of_means``: the PGR of the mean base/reference/student scores over all
        benchmarks (None if the mean reference does not beat the mean base);
      - ``undefined``: the benchmarks whose PGR is undefined, in input order.
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
    return {
        "per_benchmark": per_benchmark,
        "mean_of_pgrs": fmean(defined) if defined else None,
        "pgr_of_means": pgr(means["student"], means["base"], means["reference"]),
        "undefined": [b for b, v in per_benchmark.items() if v is None],
    }
