"""PGR arithmetic, the undefined case, both aggregations over benchmarks, partial domains and the noise flag."""

import math

import pytest

from agora.metrics.pgr import aggregate, pgr, summary_line
from agora.metrics.analysis import gap_noise, gap_within_noise


def test_paper_worked_example():
    # REFERENCE.md: (28.08 - 19.84) / (34.60 - 19.84) = 55.8%
    assert pgr(student=28.08, base=19.84, reference=34.60) == pytest.approx(55.8, abs=0.1)


@pytest.mark.parametrize("base,reference", [(30.0, 30.0), (30.0, 25.0)])
def test_undefined_when_reference_does_not_beat_base(base, reference):
    assert pgr(student=40.0, base=base, reference=reference) is None


def test_negative_when_student_is_worse_than_base():
    assert pgr(student=10.0, base=20.0, reference=40.0) == pytest.approx(-50.0)


def test_above_100_when_student_beats_reference():
    assert pgr(student=50.0, base=20.0, reference=40.0) == pytest.approx(150.0)


def test_non_finite_score_is_rejected():
    with pytest.raises(ValueError, match="student"):
        pgr(student=math.nan, base=1.0, reference=2.0)


def test_aggregate_with_one_undefined_benchmark():
    scores = {
        "gsm8k": {"base": 20.0, "reference": 40.0, "student": 30.0},  # 50
        "math": {"base": 10.0, "reference": 20.0, "student": 19.0},  # 90
        "broken": {"base": 30.0, "reference": 30.0, "student": 35.0},  # undefined
    }
    out = aggregate(scores)
    assert out["per_benchmark"]["gsm8k"] == pytest.approx(50.0)
    assert out["per_benchmark"]["math"] == pytest.approx(90.0)
    assert out["per_benchmark"]["broken"] is None
    assert out["undefined"] == ["broken"]
    # mean over the defined PGRs only
    assert out["mean_of_pgrs"] == pytest.approx(70.0)
    # PGR of the means over all benchmarks: base 20, reference 30, student 28
    assert out["pgr_of_means"] == pytest.approx(80.0)


def test_aggregate_all_undefined():
    out = aggregate({"a": {"base": 5.0, "reference": 4.0, "student": 6.0}})
    assert out["mean_of_pgrs"] is None
    assert out["pgr_of_means"] is None
    assert out["undefined"] == ["a"]


def test_aggregate_rejects_missing_key_and_empty():
    with pytest.raises(KeyError, match="student"):
        aggregate({"a": {"base": 1.0, "reference": 2.0}})
    with pytest.raises(ValueError, match="empty"):
        aggregate({})


def test_partial_domain_names_the_undefined_benchmark():
    scores = {
        "gsm8k": {"base": 20.0, "reference": 40.0, "student": 30.0},  # 50
        "math500": {"base": 30.0, "reference": 30.0, "student": 35.0},  # undefined
    }
    out = aggregate(scores)
    assert out["mean_of_pgrs"] == pytest.approx(50.0)          # over gsm8k alone...
    assert out["partial"] is True                               # ...and said to be
    assert (out["defined"], out["undefined"]) == (["gsm8k"], ["math500"])
    assert summary_line("math", out) == "PGR math (mean over benchmarks): 50.0% partial (undefined: math500)"
    whole = aggregate({"gsm8k": scores["gsm8k"]})
    assert whole["partial"] is False and summary_line("math", whole) == "PGR math (mean over benchmarks): 50.0%"
    none = aggregate({"math500": scores["math500"]})            # nothing defined: undefined, not partial
    assert none["partial"] is False and summary_line("math", none) == "PGR math (mean over benchmarks): undefined"


def test_gap_within_noise_by_hand():
    # base 60%, reference 70% on n = 100: se = sqrt(0.6*0.4/100 + 0.7*0.3/100) = sqrt(0.0045) = 0.0670820,
    # 2 se = 13.416 points > the 10-point gap: within noise. On n = 400 the error halves: 6.708 < 10: beyond.
    assert gap_noise(60.0, 70.0, 100) == pytest.approx(13.41641, abs=1e-5)
    assert gap_noise(60.0, 70.0, 400) == pytest.approx(6.70820, abs=1e-5)
    assert gap_within_noise(60.0, 70.0, 100) and not gap_within_noise(60.0, 70.0, 400)
    assert gap_within_noise(70.0, 60.0, 100)                     # the size of the gap counts, either way
    assert gap_noise(0.0, 0.0, 10) == 0.0 and gap_within_noise(0.0, 0.0, 10)   # 0% vs 0%: no gap to trust
    out = aggregate({"gsm8k": {"base": 60.0, "reference": 70.0, "student": 65.0},
                     "math500": {"base": 60.0, "reference": 70.0, "student": 65.0},
                     "other": {"base": 10.0, "reference": 50.0, "student": 20.0}},
                    n={"gsm8k": 100, "math500": 400})
    assert out["gap"] == {"gsm8k": 10.0, "math500": 10.0, "other": 40.0}
    assert out["gap_noise"]["gsm8k"] == pytest.approx(13.41641, abs=1e-5) and out["gap_noise"]["other"] is None
    assert out["gap_within_noise"] == {"gsm8k": True, "math500": False, "other": None}   # no n: not known
    assert summary_line("math", out).endswith("; reference-base gap within noise on: gsm8k")
    with pytest.raises(ValueError, match="n=0"):
        gap_noise(60.0, 70.0, 0)
