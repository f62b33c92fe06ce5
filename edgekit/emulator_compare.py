"""Compare a model's outputs from the host run with those from the emulated device run.

Verdicts, from best to worst: ``identical`` (bit for bit), ``within_1_lsb`` (no element differs by
more than one least significant bit), ``different``. What one LSB is depends on the output:

* integer (quantized) outputs: one integer step (``unit: "lsb"``);
* float outputs of a quantized tensor (``scale > 0``): ``scale`` (``unit: "lsb"``);
* plain float outputs: float kernels legitimately round differently on Arm and x86 (a few ULP), so
  one "LSB" is ``FLOAT_RTOL`` times the largest host magnitude of that output
  (``unit: "float_tol"``); the raw ULP distance is reported as ``max_ulp_diff``.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np

VERDICTS = ("identical", "within_1_lsb", "different")
#: One "LSB" of a plain float output, relative to the output's largest host magnitude.
FLOAT_RTOL = 1e-4


def worst_verdict(verdicts: Iterable[str]) -> str:
    """The worst of several verdicts (``identical`` when there are none)."""
    ranks = [VERDICTS.index(v) for v in verdicts]
    return VERDICTS[max(ranks)] if ranks else VERDICTS[0]


def _quantization(details: Mapping[str, Any]) -> tuple[float, int]:
    if "scale" in details:
        return float(details.get("scale") or 0.0), int(details.get("zero_point") or 0)
    q = details.get("quantization")
    if isinstance(q, (list, tuple)) and len(q) == 2:
        return float(q[0] or 0.0), int(q[1] or 0)
    params = details.get("quantization_parameters") or {}
    scales = np.asarray(params.get("scales", []), dtype=np.float64).ravel()
    zps = np.asarray(params.get("zero_points", []), dtype=np.int64).ravel()
    if scales.size == 1:
        return float(scales[0]), int(zps[0]) if zps.size else 0
    return 0.0, 0


def _per_sample_max(values: np.ndarray) -> np.ndarray:
    if values.ndim == 0:
        return values.reshape(1)
    return values.reshape(values.shape[0], -1).max(axis=1) if values.shape[0] else np.zeros(0)


def compare_outputs(host: np.ndarray, emulated: np.ndarray, *, output_details: Mapping[str, Any],
                    worst: int = 5) -> dict[str, Any]:
    """Compare one output tensor over a batch of inputs (axis 0 = input sample).

    Args:
        host: outputs of the host run, shape ``(N, ...)``.
        emulated: outputs of the emulated run, same shape.
        output_details: the output's ``name``, ``dtype`` and quantization, either as ``scale`` and
            ``zero_point`` keys (harness / :func:`edgekit.interp.io_details`) or as the interpreter's
            ``quantization`` tuple.
        worst: how many of the worst inputs to list.

    Returns:
        ``{name, dtype, scale, zero_point, unit, verdict, max_diff, max_abs_diff, max_ulp_diff,
        mismatched_elements, total_elements, samples, mismatched_samples, argmax_agreement,
        worst_inputs[{index, max_diff, max_abs_diff}]}``; ``max_diff`` is in ``unit`` (``lsb`` or
        ``float_tol``, see the module docstring; float outputs also carry ``tolerance``).
    """
    h = np.asarray(host)
    e = np.asarray(emulated)
    name = str(output_details.get("name", "output"))
    dtype = np.dtype(output_details.get("dtype") or h.dtype)
    scale, zero_point = _quantization(output_details)
    base: dict[str, Any] = {"name": name, "dtype": dtype.name, "scale": scale, "zero_point": zero_point}
    if h.shape != e.shape:
        return {**base, "unit": None, "verdict": "different", "reason": f"shape {list(h.shape)} on the host vs "
                f"{list(e.shape)} emulated", "max_diff": None, "max_abs_diff": None, "mismatched_elements": None,
                "total_elements": int(h.size), "samples": int(h.shape[0]) if h.ndim else 1,
                "mismatched_samples": None, "argmax_agreement": None, "max_ulp_diff": None, "worst_inputs": []}
    max_ulp = None
    if np.issubdtype(h.dtype, np.integer) or np.issubdtype(e.dtype, np.integer):
        unit = "lsb"
        steps = np.abs(h.astype(np.int64) - e.astype(np.int64)).astype(np.float64)
        abs_diff = steps * scale if scale else steps
    else:
        hf = h.astype(np.float64)
        ef = e.astype(np.float64)
        abs_diff = np.abs(hf - ef)
        abs_diff = np.where(np.isnan(hf) & np.isnan(ef), 0.0, abs_diff)
        abs_diff = np.where(np.isnan(abs_diff), np.inf, abs_diff)
        if scale:
            unit = "lsb"
            steps = abs_diff / scale
        else:
            unit = "float_tol"
            finite = np.abs(hf[np.isfinite(hf)])
            tolerance = FLOAT_RTOL * max(float(finite.max()) if finite.size else 0.0, 1e-30)
            steps = abs_diff / tolerance
            base["tolerance"] = tolerance
            ftype = h.dtype if np.issubdtype(h.dtype, np.floating) else np.float32
            ulp = np.spacing(np.maximum(np.abs(hf), np.abs(ef)).astype(ftype)).astype(np.float64)
            ulps = np.where(abs_diff == 0, 0.0, abs_diff / np.maximum(ulp, np.finfo(np.float64).tiny))
            max_ulp = float(ulps.max()) if ulps.size else 0.0
    identical = bool(np.array_equal(h, e, equal_nan=bool(np.issubdtype(h.dtype, np.floating))))
    max_steps = float(steps.max()) if steps.size else 0.0
    # A step count such as 1.0000001 is one step: round away float noise from the scaling.
    verdict = "identical" if identical else ("within_1_lsb" if round(max_steps, 6) <= 1.0 else "different")
    per_sample = _per_sample_max(steps)
    per_sample_abs = _per_sample_max(abs_diff)
    order = np.argsort(-per_sample, kind="stable")[:worst]
    worst_inputs = [{"index": int(i), "max_diff": float(per_sample[i]), "max_abs_diff": float(per_sample_abs[i])}
                    for i in order if per_sample_abs[i] > 0]
    argmax = None
    if h.ndim >= 2 and h.shape[-1] > 1 and h.shape[0]:
        argmax = float(np.mean(h.reshape(h.shape[0], -1).argmax(axis=1) == e.reshape(e.shape[0], -1).argmax(axis=1)))
    max_abs = float(abs_diff.max()) if abs_diff.size else 0.0
    return {
        **base,
        "unit": unit,
        "verdict": verdict,
        "max_diff": max_steps,
        "max_abs_diff": max_abs,
        "mismatched_elements": int(np.count_nonzero(abs_diff)),
        "total_elements": int(steps.size),
        "samples": int(per_sample.shape[0]),
        "mismatched_samples": int(np.count_nonzero(per_sample_abs)),
        "argmax_agreement": argmax,
        "max_ulp_diff": max_ulp,
        "worst_inputs": worst_inputs,
    }
