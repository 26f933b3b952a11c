import math

import pytest

from backend.evaluate.stats import summarize_latencies, wilson_interval


@pytest.mark.parametrize(
    ("correct", "n", "expected"),
    [
        (81, 100, (0.7222, 0.8749)),
        (0, 10, (0.0, 0.2775)),
        (10, 10, (0.7225, 1.0)),
        (1, 2, (0.0945, 0.9055)),
        (250, 500, (0.4563, 0.5437)),
    ],
)
def test_wilson_interval_matches_published_values(correct, n, expected):
    low, high = wilson_interval(correct, n)
    assert low == pytest.approx(expected[0], abs=1e-4)
    assert high == pytest.approx(expected[1], abs=1e-4)


def test_wilson_interval_contains_the_observed_rate_and_narrows_with_more_items():
    small = wilson_interval(8, 10)
    large = wilson_interval(800, 1000)
    assert small[0] < 0.8 < small[1]
    assert large[0] < 0.8 < large[1]
    assert large[1] - large[0] < small[1] - small[0]


def test_wilson_interval_wider_z_gives_wider_interval():
    low95, high95 = wilson_interval(50, 100)
    low99, high99 = wilson_interval(50, 100, z=2.5758293035489004)
    assert low99 < low95 and high99 > high95


def test_wilson_interval_with_no_items_is_the_whole_range():
    assert wilson_interval(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize(("correct", "n"), [(-1, 10), (11, 10), (0, -1)])
def test_wilson_interval_rejects_impossible_counts(correct, n):
    with pytest.raises(ValueError, match="correct"):
        wilson_interval(correct, n)


def test_summarize_latencies_known_values():
    summary = summarize_latencies([1.0, 2.0, 3.0, 4.0, 10.0])
    assert summary["count"] == 5
    assert summary["mean"] == pytest.approx(4.0)
    assert summary["p50"] == pytest.approx(3.0)
    # linear interpolation: position 0.95 * 4 = 3.8 between 4.0 and 10.0
    assert summary["p95"] == pytest.approx(4.0 + 0.8 * 6.0)
    assert summary["max"] == 10.0


def test_summarize_latencies_single_value_and_plain_floats():
    summary = summarize_latencies([0.25])
    assert summary == {"count": 1, "mean": 0.25, "p50": 0.25, "p95": 0.25, "max": 0.25}
    assert all(type(value) in (int, float) for value in summary.values())


def test_summarize_latencies_percentiles_on_a_hundred_values():
    summary = summarize_latencies([float(v) for v in range(1, 101)])
    assert summary["p50"] == pytest.approx(50.5)
    assert summary["p95"] == pytest.approx(95.05)
    assert summary["mean"] == pytest.approx(50.5)


def test_summarize_latencies_empty_reports_no_data():
    assert summarize_latencies([]) == {"count": 0, "mean": None, "p50": None, "p95": None, "max": None}


@pytest.mark.parametrize("bad", [[1.0, math.nan], [1.0, math.inf], [-0.5]])
def test_summarize_latencies_rejects_impossible_values(bad):
    with pytest.raises(ValueError, match="finite"):
        summarize_latencies(bad)
