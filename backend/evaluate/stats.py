"""Statistics for evaluation reports: a confidence interval for accuracy and latency summaries."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Z_95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson_interval(correct: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for `correct` successes out of `n`; stays inside [0, 1] even at 0 or n.

    n == 0 gives (0.0, 1.0): with no items nothing is known about the accuracy.
    Written out here because the formula is three lines and statsmodels would be a heavy
    dependency for it.
    """
    if n < 0 or not 0 <= correct <= n:
        raise ValueError(f"need 0 <= correct <= n, got correct={correct}, n={n}")
    if n == 0:
        return (0.0, 1.0)
    p = correct / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half_width = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return (max(0.0, centre - half_width), min(1.0, centre + half_width))


def summarize_latencies(values: Sequence[float]) -> dict[str, float | int | None]:
    """count, mean, p50, p95 and max of `values` (percentiles linearly interpolated, as numpy does).

    An empty sequence gives count 0 and None for every statistic, so a run where every request
    failed reports "no data" rather than a misleading zero.
    """
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return {"count": 0, "mean": None, "p50": None, "p95": None, "max": None}
    if not np.all(np.isfinite(data)) or np.any(data < 0):
        raise ValueError("latencies must be finite and not negative")
    p50, p95 = np.percentile(data, [50, 95])
    return {
        "count": int(data.size),
        "mean": float(data.mean()),
        "p50": float(p50),
        "p95": float(p95),
        "max": float(data.max()),
    }
