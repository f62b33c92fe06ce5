"""Turn an interleaved A/B harness run into a verdict: ratio of medians, its CI, significance.

The harness's ``--compare`` alternates the two models run by run (A B, B A, ...), so slow drift
(thermal throttling, a background job) hits both equally. This module adds, per document, the
ratio ``median(A) / median(B)`` with a paired bootstrap interval and says whether A is
significantly slower or faster than B: the building block of a CI latency gate.
"""
from __future__ import annotations

from typing import Any

from .stats import DEFAULT_CONFIDENCE, ratio_of_medians, verdict


def add_comparison(doc: dict[str, Any], *, model_name: str, other_name: str,
                   confidence: float = DEFAULT_CONFIDENCE, seed: int = 0) -> dict[str, Any]:
    """Fill ``doc["compare"]`` with ``ratio_of_medians``, ``ratio_ci``, ``significant``, ``verdict``.

    ``doc`` is a harness document of a ``--compare`` run with ``samples_ms`` on both sides.
    """
    sub = doc["compare"]
    stats = ratio_of_medians(doc["samples_ms"], sub["samples_ms"], confidence=confidence, seed=seed)
    significant, word = verdict(stats["ratio"], stats["ci"])
    ratio, (low, high) = stats["ratio"], stats["ci"]
    pct = f"{confidence:.0%}"
    if significant:
        factor = ratio if word == "slower" else 1.0 / ratio
        summary = (f"{model_name} is {factor:.3f}x {word} than {other_name} "
                   f"(median ratio {ratio:.3f}, {pct} CI {low:.3f}-{high:.3f})")
    else:
        summary = (f"no significant difference between {model_name} and {other_name} "
                   f"(median ratio {ratio:.3f}, {pct} CI {low:.3f}-{high:.3f} includes 1)")
    sub.update({
        "ratio_of_medians": round(ratio, 6),
        "ratio_ci": [round(low, 6), round(high, 6)],
        "ci_confidence": confidence,
        "ci_method": stats["method"],
        "significant": significant,
        "verdict": word,
        "summary": summary,
    })
    return doc
