"""PGR arithmetic, the undefined case, and both aggregations over benchmarks."""

import math

import pytest

from agora.evaluate.pgr import aggregate, pgr


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
