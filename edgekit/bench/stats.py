"""Latency statistics: percentiles, a distribution-free CI for the median, ratio of medians.

The on-device harness (``edgekit/harness.py``) computes its own percentiles and median interval
with the same definitions (it cannot import edgekit); ``tests/test_harness.py`` checks that both
agree. Everything comparing two models, thread counts or hosts lives here.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

DEFAULT_CONFIDENCE = 0.95


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by linear interpolation (numpy's default method)."""
    n = len(sorted_values)
    if n == 0:
        raise ValueError("percentile of no values")
    pos = (n - 1) * q / 100.0
    lo = int(math.floor(pos))
    hi = min(lo + 1, n - 1)
    return float(sorted_values[lo] + (pos - lo) * (sorted_values[hi] - sorted_values[lo]))


def _binom_half_cdf_ranks(n: int, confidence: float) -> int:
    """Largest ``j`` with ``P(Binomial(n, 1/2) <= j) <= (1 - confidence) / 2``, or -1."""
    alpha_half = (1.0 - confidence) / 2.0
    log_norm = math.lgamma(n + 1) + n * math.log(0.5)
    cdf = 0.0
    best = -1
    for k in range(n // 2 + 1):
        cdf += math.exp(log_norm - math.lgamma(k + 1) - math.lgamma(n - k + 1))
        if cdf > alpha_half:
            break
        best = k
    return best


def median_ci(samples: Sequence[float], *, confidence: float = DEFAULT_CONFIDENCE) -> tuple[float, float] | None:
    """Distribution-free confidence interval for the median from order statistics.

    The count of samples below the true median is Binomial(n, 1/2), so the interval
    ``[x_(j+1), x_(n-j)]`` (1-based) covers it with probability ``1 - 2 P(B <= j)``. Needs no
    assumption about the latency distribution (which is skewed and often multi-modal).

    Returns:
        ``(low, high)``, or ``None`` when there are too few samples (n < 6 at 95 %).
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    values = sorted(float(v) for v in samples)
    j = _binom_half_cdf_ranks(len(values), confidence)
    if j < 0:
        return None
    return values[j], values[len(values) - 1 - j]


def summarize(samples: Sequence[float], *, confidence: float = DEFAULT_CONFIDENCE) -> dict[str, Any]:
    """``latency_ms`` (min/p50/p90/p99/mean/std/max) and ``p50_ci_ms`` for a list of latencies."""
    values = sorted(float(v) for v in samples)
    if not values:
        raise ValueError("no samples")
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    ci = median_ci(values, confidence=confidence)
    return {
        "latency_ms": {"min": values[0], "p50": percentile(values, 50), "p90": percentile(values, 90),
                       "p99": percentile(values, 99), "mean": mean, "std": std, "max": values[-1]},
        "p50_ci_ms": list(ci) if ci else None,
        "ci_confidence": confidence,
    }


def _median_rows(np: Any, data: Any, idx: Any) -> Any:
    return np.median(data[idx], axis=1)


def ratio_of_medians(a: Sequence[float], b: Sequence[float], *, confidence: float = DEFAULT_CONFIDENCE,
                     resamples: int | None = None, seed: int = 0, paired: bool | None = None) -> dict[str, Any]:
    """``median(a) / median(b)`` with a percentile-bootstrap confidence interval.

    With interleaved measurements (the harness's ``--compare``: A and B alternate run by run) the
    samples are paired by round; the paired bootstrap resamples rounds, which keeps any slow drift
    common to both (thermal throttling, background load) out of the interval.

    Args:
        a, b: latencies of the two models.
        confidence: coverage of the interval.
        resamples: bootstrap resamples (default 2000, 1000 above 5000 samples).
        seed: RNG seed, so a report is reproducible.
        paired: resample rounds jointly; default when ``len(a) == len(b)``.

    Returns:
        ``{ratio, ci: [low, high], confidence, method, n_a, n_b}``.
    """
    import numpy as np

    xa = np.asarray(a, dtype=np.float64)
    xb = np.asarray(b, dtype=np.float64)
    if xa.size == 0 or xb.size == 0:
        raise ValueError("ratio_of_medians needs samples on both sides")
    med_b = float(np.median(xb))
    if med_b <= 0:
        raise ValueError("median of b is not positive")
    ratio = float(np.median(xa)) / med_b
    if paired is None:
        paired = xa.size == xb.size
    if paired and xa.size != xb.size:
        raise ValueError("paired bootstrap needs the same number of samples")
    n_max = max(xa.size, xb.size)
    reps = resamples or (2000 if n_max <= 5000 else 1000)
    rng = np.random.default_rng(seed)
    chunk = max(1, min(reps, 4_000_000 // n_max))  # bound memory: ~32 MB of indices per chunk
    ratios = []
    done = 0
    while done < reps:
        k = min(chunk, reps - done)
        ia = rng.integers(0, xa.size, size=(k, xa.size))
        ib = ia if paired else rng.integers(0, xb.size, size=(k, xb.size))
        ratios.append(_median_rows(np, xa, ia) / _median_rows(np, xb, ib))
        done += k
    dist = np.concatenate(ratios)
    alpha = (1.0 - confidence) / 2.0
    low, high = (float(v) for v in np.quantile(dist, [alpha, 1.0 - alpha]))
    return {"ratio": ratio, "ci": [low, high], "confidence": confidence,
            "method": f"{'paired ' if paired else ''}percentile bootstrap of the ratio of medians ({reps} resamples)",
            "n_a": int(xa.size), "n_b": int(xb.size)}


def verdict(ratio: float, ci: Sequence[float]) -> tuple[bool, str]:
    """(significant, word) for a ratio A/B: ``slower`` / ``faster`` when the CI excludes 1."""
    low, high = float(ci[0]), float(ci[1])
    if low > 1.0:
        return True, "slower"
    if high < 1.0:
        return True, "faster"
    return False, "no significant difference"


def speedups(p50_by_threads: Sequence[tuple[int, float]]) -> list[dict[str, Any]]:
    """Speed-up of each thread count over the first: ``p50(first) / p50(n)`` and parallel efficiency."""
    if not p50_by_threads:
        return []
    base_threads, base = p50_by_threads[0]
    out = []
    for threads, p50 in p50_by_threads:
        s = base / p50 if p50 > 0 else float("nan")
        out.append({"threads": threads, "speedup": s, "efficiency": s * base_threads / threads})
    return out
