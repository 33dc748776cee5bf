"""The numbers behind the sweep report: seed intervals, noise flags, the Pareto frontier, PCA, regression, budget advice.

Everything here takes plain lists and numpy arrays and returns plain values, so each figure can be redone
by hand (tests/test_report.py does). `agora/report/` turns the store's rows into these inputs.

- `t_interval`: mean and 95% Student-t interval of a cell's PGR over train seeds (n >= 2).
- `gap_noise`: how large a reference-base gap n problems can show by chance alone (PGR's denominator).
- `welch`: the 95% interval of a difference between two cells (Welch), and whether it lies within the noise.
- `pareto_front`: the cells no other cell beats on both PGR and dollars.
- `pca` / `regress`: PCA of the standardised intrinsic metrics and a least-squares fit of PGR on the components.
  When the components are as many as the dimensions the cells can span (min(features, cells - 1)), they explain
  100% of the variance by construction, and `PCA.note` says so: the paper's 93.4% with 5 components is informative
  only because it had more features than components.
- `recommend`: for a budget in dollars, the generator and volume with the best expected PGR, interpolated in
  log N between measured volumes, and flagged where it extrapolates. The first candidate carries a verdict
  (`judge`) that says whether it is a recommendation at all: not when no candidate recovers any of the gap
  (best expected PGR <= 0), when there is nothing to compare it against, or when its seeds cannot tell it from
  the next (Welch's interval holds 0, or one of the two has a single seed and so no interval).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import fmean, stdev

import numpy as np

# Two-sided 95% Student-t quantiles t(0.975, df), df = 1..30 (scipy.stats.t.ppf; the test checks them).
_T975 = {1: 12.706204736, 2: 4.30265273, 3: 3.182446305, 4: 2.776445105, 5: 2.570581836, 6: 2.446911851,
         7: 2.364624252, 8: 2.306004135, 9: 2.262157163, 10: 2.228138852, 11: 2.20098516, 12: 2.17881283,
         13: 2.160368656, 14: 2.144786688, 15: 2.131449546, 16: 2.119905299, 17: 2.109815578, 18: 2.10092204,
         19: 2.093024054, 20: 2.085963447, 21: 2.079613845, 22: 2.073873068, 23: 2.06865761, 24: 2.063898562,
         25: 2.059538553, 26: 2.055529439, 27: 2.051830516, 28: 2.048407142, 29: 2.045229642, 30: 2.042272456}
_Z975 = 1.959963984540054


def t975(df: float) -> float:
    """The 0.975 quantile of Student's t. A fractional df (Welch) is floored, which widens the interval."""
    if df < 1:
        raise ValueError(f"t975: df={df} must be >= 1 (an interval needs at least 2 seeds)")
    d = int(math.floor(df))
    if d in _T975:
        return _T975[d]
    z = _Z975   # Cornish-Fisher expansion (Abramowitz & Stegun 26.7.5); error < 1e-6 beyond df 30
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / d + g2 / d**2 + g3 / d**3 + g4 / d**4


@dataclass(frozen=True)
class Interval:
    mean: float
    n: int
    sd: float | None = None      # sample standard deviation (ddof=1); None with one seed
    low: float | None = None     # 95% t-interval; None with one seed
    high: float | None = None


def t_interval(values: list[float]) -> Interval:
    """Mean and, with at least 2 values, the 95% t-interval mean ± t(0.975, n-1)·s/√n."""
    if not values:
        raise ValueError("t_interval: no values")
    m = fmean(values)
    if len(values) < 2:
        return Interval(m, 1)
    s = stdev(values)
    h = t975(len(values) - 1) * s / math.sqrt(len(values))
    return Interval(m, len(values), s, m - h, m + h)


def gap_noise(base: float, reference: float, n: int) -> float:
    """Two standard errors of the reference-base gap, in accuracy points: 2 * 100 * sqrt(pb(1-pb)/n + pr(1-pr)/n).

    Each score is a share of n problems (pb = base / 100, pr = reference / 100, clamped to [0, 1]), so the gap
    is a difference of two binomial proportions with this standard error. A gap whose size is at most this much
    (`gap_within_noise`) could come from sampling alone at z = 2 (about 95%): the PGR divided by it is not to be
    trusted. For the judged win rates (AlpacaEval, Arena-Hard) the binomial error is an approximation.
    """
    if n < 1:
        raise ValueError(f"gap_noise: n={n} problems; a score needs at least 1")
    pb, pr = (min(max(v / 100.0, 0.0), 1.0) for v in (base, reference))
    return 2.0 * 100.0 * math.sqrt(pb * (1 - pb) / n + pr * (1 - pr) / n)


def gap_within_noise(base: float, reference: float, n: int) -> bool:
    """|reference - base| <= `gap_noise`: n problems cannot tell the reference from the base.

    `<=` rather than `<`, so that a zero gap counts as within noise even where both scores are 0% or 100%
    (where the binomial error is 0).
    """
    return abs(reference - base) <= gap_noise(base, reference, n)


@dataclass(frozen=True)
class Difference:
    diff: float                  # mean(a) - mean(b)
    low: float | None
    high: float | None
    verdict: str                 # "within noise" | "beyond noise" | "no noise estimate (...)"


def welch(a: list[float], b: list[float]) -> Difference:
    """Difference of means with Welch's 95% interval; "within noise" when the interval holds 0."""
    d = fmean(a) - fmean(b)
    if len(a) < 2 or len(b) < 2:
        return Difference(d, None, None, f"no noise estimate ({len(a)} and {len(b)} seeds; needs 2 each)")
    va, vb = stdev(a) ** 2 / len(a), stdev(b) ** 2 / len(b)
    se = math.sqrt(va + vb)
    if se == 0:   # every seed gave the same PGR on both sides: no spread to hide a difference in
        return Difference(d, d, d, "within noise" if d == 0 else "beyond noise")
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    h = t975(df) * se
    return Difference(d, d - h, d + h, "within noise" if d - h <= 0 <= d + h else "beyond noise")


def pareto_front(cost: list[float], pgr: list[float]) -> list[int]:
    """Indices of the points that no other point beats: none costs as little or less with a PGR as high or higher."""
    order = sorted(range(len(cost)), key=lambda i: (cost[i], -pgr[i]))
    front, best = [], -math.inf
    for i in order:
        if pgr[i] > best:
            front.append(i)
            best = pgr[i]
    return front


@dataclass
class PCA:
    features: list[str]
    mean: np.ndarray                      # per feature, over the cells
    scale: np.ndarray                     # population std (ddof=0), as sklearn's StandardScaler
    components: np.ndarray                # k x features: unit-norm loadings, largest |entry| positive
    explained_variance: np.ndarray        # k eigenvalues of the standardised covariance (ddof=1)
    explained_variance_ratio: np.ndarray  # k shares of the total variance
    scores: np.ndarray                    # cells x k
    note: str | None = None               # set when the explained share is 100% by construction (`by_construction`)


def by_construction(n_cells: int, n_features: int, k: int) -> str | None:
    """A sentence saying why k components explain all the variance, or None when that is an empirical finding.

    n z-scored rows of f features span at most min(f, n - 1) dimensions (centring removes one), so k components
    at or above that capture every dimension there is, whatever the data.
    """
    dims = min(n_features, n_cells - 1)
    if k < dims:
        return None
    return (f"{k} component(s) explain 100% of the variance by construction, not as a finding: {n_features} "
            f"standardised feature(s) over {n_cells} cells span at most {dims} dimension(s), and {k} component(s) "
            "cover them all. The paper's 93.4% with 5 components is informative because it had more features than "
            "components; compare it only with a run that has more than 5 varying features and more than 6 cells.")


def pca(x: np.ndarray, features: list[str], k: int | None = None) -> PCA:
    """PCA by SVD of the z-scored matrix. Constant features cannot be standardised: drop them first."""
    x = np.asarray(x, dtype=float)
    n, f = x.shape
    if n < 2:
        raise ValueError(f"pca: {n} cell(s); needs at least 2")
    mean, scale = x.mean(axis=0), x.std(axis=0)
    constant = [features[j] for j in range(f) if scale[j] == 0]
    if constant:
        raise ValueError(f"pca: features {constant} are constant over the cells; drop them before the PCA")
    z = (x - mean) / scale
    _, s, vt = np.linalg.svd(z, full_matrices=False)
    signs = np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)])
    vt = vt * signs[:, None]
    k = min(k or len(s), len(s))
    var = s**2 / (n - 1)
    return PCA(list(features), mean, scale, vt[:k], var[:k], (s**2 / (s**2).sum())[:k], z @ vt[:k].T,
               by_construction(n, f, k))


@dataclass
class Fit:
    coef: np.ndarray          # intercept first, then one slope per column of x
    r2: float
    adj_r2: float | None      # None when n <= k + 1
    n: int
    k: int


def regress(x: np.ndarray, y: np.ndarray) -> Fit:
    """Ordinary least squares of y on x with an intercept; R² = 1 - SS_res / SS_tot."""
    x, y = np.atleast_2d(np.asarray(x, dtype=float)), np.asarray(y, dtype=float)
    if x.shape[0] != len(y):
        x = x.T
    n, k = x.shape
    a = np.column_stack([np.ones(n), x])
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    if ss_tot == 0:
        raise ValueError("regress: PGR is the same in every cell; R² is undefined")
    r2 = 1 - float(((y - a @ coef) ** 2).sum()) / ss_tot
    adj = 1 - (1 - r2) * (n - 1) / (n - k - 1) if n > k + 1 else None
    return Fit(coef, r2, adj, n, k)


@dataclass
class Series:
    """What was measured for one candidate (a generator, with its mode and format) in one domain."""

    label: str
    volumes: list[float]            # distinct N, ascending
    pgr: list[float]                # mean PGR at each N (over seeds and repeats)
    cost_per_example: float         # measured: dollars over kept examples of the series' data cells
    measured_usd: list[float] = field(default_factory=list)
    samples: dict[float, list[float]] = field(default_factory=dict)   # PGR per train seed at each measured N


def seeds_at(s: Series, n: float) -> tuple[float, list[float]]:
    """The measured volume nearest n in log N (the smaller on a tie), and the per-seed PGRs measured there."""
    v = min(s.volumes, key=lambda x: (abs(math.log(x) - math.log(n)), x))
    return v, list(s.samples.get(v, []))


def expected_pgr(s: Series, n: float) -> tuple[float, bool]:
    """PGR at volume n, piecewise-linear in log N between measured volumes; True when n lies outside them.

    Outside, the nearest segment's log-linear trend continues (a scaling-law guess); one measured volume
    gives a flat line.
    """
    xs = np.log(np.asarray(s.volumes, dtype=float))
    ys = np.asarray(s.pgr, dtype=float)
    x = math.log(n)
    inside = s.volumes[0] <= n <= s.volumes[-1]
    if len(xs) == 1:
        return float(ys[0]), not inside
    if inside:
        return float(np.interp(x, xs, ys)), False
    i, j = (0, 1) if x < xs[0] else (-2, -1)
    return float(ys[j] + (ys[j] - ys[i]) / (xs[j] - xs[i]) * (x - xs[j])), True


@dataclass
class Advice:
    label: str
    volume: int
    expected_pgr: float
    cost_usd: float
    extrapolated: bool
    note: str
    verdict: str = ""               # rank 1: whether it is a recommendation at all, and why (`judge`)
    verdict_kind: str = ""          # rank 1: one of VERDICTS; later ranks: "no_gain" or ""


# What the first candidate's verdict can be. Only "recommended" is a plain recommendation.
VERDICTS = {
    "recommended": "beats the next candidate beyond the noise of its train seeds",
    "no_gain": "no candidate recovers any of the reference-base gap (the best expected PGR is <= 0)",
    "alone": "the only affordable candidate: nothing to compare it against",
    "no_interval": "it or the next candidate has one seed at the compared volume, so no interval",
    "within_noise": "Welch's 95% interval of its difference from the next candidate holds 0",
    "contradicted": "its seeds at the measured volume score below the next's: the ranking rests on extrapolation",
}


def advise(s: Series, budget_usd: float) -> Advice | None:
    """The best volume for one series within the budget; None when not one example is affordable."""
    lo, hi = s.volumes[0], s.volumes[-1]
    span = f"measured N {lo:g}..{hi:g}"
    if s.cost_per_example <= 0:   # local models: API dollars are 0, so the budget does not bound volume
        pgrs = [expected_pgr(s, v)[0] for v in s.volumes]
        j = int(np.argmax(pgrs))
        return Advice(s.label, int(s.volumes[j]), pgrs[j], 0.0, False,
                      f"$0 per example (API fees; compute is not priced), so the budget does not bind; best of "
                      f"the {span}; more volume is unmeasured")
    affordable = int(math.floor(budget_usd / s.cost_per_example * (1 + 1e-12)))   # $50 / $0.004 is 12,500, not 12,499
    if affordable < 1:
        return None
    candidates = sorted({*[v for v in s.volumes if v <= affordable], affordable})
    scored = [(v, *expected_pgr(s, v)) for v in candidates]
    v, p, extra = max(scored, key=lambda t: (t[1], -t[0]))   # the best PGR; on a tie the smaller volume
    if not extra:
        note = f"interpolated within the {span}"
    elif v > hi:
        note = (f"EXTRAPOLATED beyond the largest measured volume ({hi:g}; the most spent on one cell was "
                f"${max(s.measured_usd, default=0):.4g}): log-linear trend of the last two volumes")
    else:
        note = f"EXTRAPOLATED below the smallest measured volume ({lo:g})"
    if len(s.volumes) == 1 and extra:
        note += "; one measured volume, so PGR is held flat"
    return Advice(s.label, int(v), p, v * s.cost_per_example, extra, note)


def _own(s: Series | None, a: Advice) -> str:
    """The candidate's own seed interval at the measured volume nearest its advised one, as text."""
    if s is None:
        return ""
    v, xs = seeds_at(s, a.volume)
    if len(xs) < 2:
        return f"; {len(xs)} seed(s) at measured N={v:g}, no interval"
    iv = t_interval(xs)
    zero = ", which holds 0" if iv.low <= 0 <= iv.high else ""
    return f"; PGR {iv.mean:.1f} [{iv.low:.1f}, {iv.high:.1f}] over {iv.n} seeds at measured N={v:g}{zero}"


def versus(label: str, other: str) -> str:
    """`label` cut to the words in which it differs from `other` (the whole label when they share none)."""
    mine, theirs = label.split(" "), set(other.split(" "))
    diff = [w for w in mine if w not in theirs]
    return " ".join(diff) if diff and len(diff) < len(mine) else label


def judge(ranked: list[Advice], series: dict[str, Series]) -> tuple[str, str]:
    """The verdict on the first of `ranked` (best first): (kind, sentence); kind is one of VERDICTS.

    In this order: no candidate recovers any of the gap (best expected PGR <= 0); only one candidate; one of the
    first two has fewer than 2 seeds at the measured volume nearest its advised one (no interval); Welch's 95%
    interval of their difference there holds 0 (within noise), or lies below 0 (contradicted); else recommended.
    The seeds are compared at measured volumes, so an advised volume that is interpolated or extrapolated is judged
    by the nearest volume that was measured, and the sentence names it.
    """
    a = ranked[0]
    own = _own(series.get(a.label), a)
    if a.expected_pgr <= 0:
        return "no_gain", (f"no candidate recovers any of the gap: the best of {len(ranked)}, {a.label}, expects "
                           f"PGR {a.expected_pgr:.1f}% (<= 0){own}. Not a recommendation")
    if len(ranked) == 1:
        return "alone", f"the only candidate: nothing to compare it against{own}"
    b = ranked[1]
    sa, sb = series.get(a.label), series.get(b.label)
    nb = versus(b.label, a.label)   # the next candidate, named by what sets it apart from the first
    (va, xa), (vb, xb) = (seeds_at(sa, a.volume) if sa else (a.volume, [])), (
        seeds_at(sb, b.volume) if sb else (b.volume, []))
    where = f"{len(xa)} and {len(xb)} seed(s) at measured N={va:g} and N={vb:g}"
    if len(xa) < 2 or len(xb) < 2:
        return "no_interval", (f"no interval: one seed ({where}), so nothing says whether it beats {nb} "
                               f"(expected PGR {b.expected_pgr:.1f}%) beyond noise")
    d = welch(xa, xb)
    diff = f"difference {d.diff:.1f} [{d.low:.1f}, {d.high:.1f}] over {where}"
    if d.low is not None and d.low <= 0 <= d.high:
        return "within_noise", f"within noise of {nb}: Welch's 95% interval of the {diff} holds 0"
    if d.high is not None and d.high < 0:
        return "contradicted", (f"the seeds favour {nb}: {diff}; the ranking rests on the "
                                "interpolation or extrapolation to the advised volume")
    return "recommended", f"beats {nb} beyond noise: {diff}{own}"


def recommend(series: list[Series], budget_usd: float) -> list[Advice]:
    """Every affordable candidate's best volume, best expected PGR first, the first with its verdict (`judge`).

    The first is a recommendation only when its verdict_kind is "recommended"; a later candidate whose expected PGR
    is <= 0 is marked "no_gain" too.
    """
    if budget_usd < 0:
        raise ValueError(f"recommend: budget_usd={budget_usd} must be >= 0")
    out = sorted((a for a in (advise(s, budget_usd) for s in series) if a is not None),
                 key=lambda a: (-a.expected_pgr, a.cost_usd, a.label))
    if not out:
        return out
    kind, text = judge(out, {s.label: s for s in series})
    out[0].verdict, out[0].verdict_kind = text, kind
    for a in out[1:]:
        if a.expected_pgr <= 0:
            a.verdict = f"recovers none of the gap: expected PGR {a.expected_pgr:.1f}% (<= 0)"
            a.verdict_kind = "no_gain"
    return out
