"""Per-op latency estimate from MACs, bytes moved and per-target coefficients (always ``estimated``).

For every operator::

    t_op = op_overhead + max(compute, memory)
    compute = MACs / (macs_per_cycle[dtype] × op_efficiency[class] × lane_use × clock × speedup(threads))
              (ops without MACs: output elements / (elements_per_cycle × clock × speedup))
    memory  = (bytes of inputs + weights + outputs) / mem_bandwidth
    t_model = invoke_overhead + Σ t_op

* ``macs_per_cycle`` is the sustained rate of ONE core on a dense convolution for the kernel library
  the profile assumes (``estimator.kernels``: XNNPACK, CMSIS-NN, ESP-NN, the GPU delegate, ...).
* ``op_efficiency`` scales it for depthwise convolutions, fully connected layers, etc.
* ``lane_use`` models SIMD waste when the vectorised channel count is not a multiple of
  ``vector_lanes`` (e.g. a 3-channel first conv on ESP32-S3's 16-lane int8 SIMD).
* ``speedup(n) = 1 + (Σ core weights − 1) × parallel_efficiency``, big cores weigh 1, little cores
  ``little_core_factor``; one thread on MCUs.
* DEQUANTIZE of constant weights is folded at init (free); RESHAPE-like ops cost only the overhead.
* GPU targets use the GPU coefficients for ops the delegate takes and ``cpu_fallback`` for the rest.

The coefficients and how they were calibrated are in each profile (``estimator.method`` and
``estimator.calibration``); ``benchmarks/estimator_calibration.py`` prints the error on every
published point.
"""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence

from .model import ModelAnalysis, OpInfo, TensorInfo

SOURCE = "estimated"
_SHAPE_ONLY = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "SHAPE", "RANK"}
_CLASS = {"CONV_2D": "conv", "CONV_3D": "conv", "DEPTHWISE_CONV_2D": "depthwise", "FULLY_CONNECTED": "fully_connected",
          "TRANSPOSE_CONV": "transpose_conv", "CONV_3D_TRANSPOSE": "transpose_conv", "BATCH_MATMUL": "batch_matmul"}


def speedup(threads: int, hardware: Any, coeffs: Any) -> float:
    """Throughput multiple of ``threads`` threads over one big core."""
    n = max(1, min(int(threads), int(hardware.cores)))
    big = int(hardware.big_cores or hardware.cores)
    weights = min(n, big) + max(0, n - big) * coeffs.little_core_factor
    return 1.0 + (weights - 1.0) * coeffs.parallel_efficiency


def _rate(coeffs: Any, dtype: str) -> float:
    mpc = coeffs.macs_per_cycle
    if coeffs.device == "gpu":  # the GPU delegate computes float (and dequantized int8) models in fp16
        return mpc.float16 or mpc.float32
    if dtype == "int8":
        return mpc.int8
    if dtype == "int16x8":
        return mpc.int16x8 or mpc.int8 / 2
    if dtype == "float16":
        return mpc.float16 or mpc.float32
    if dtype == "hybrid":
        return mpc.hybrid or mpc.float32
    return mpc.float32


def _lane_use(op: OpInfo, tensors: Sequence[TensorInfo], coeffs: Any) -> float:
    lanes = int(coeffs.vector_lanes)
    if lanes <= 1 or not op.macs:
        return 1.0
    if coeffs.vector_axis == "input_channels" and op.name != "DEPTHWISE_CONV_2D":
        idx = op.inputs[0] if op.inputs else -1
    else:
        idx = op.outputs[0] if op.outputs else -1
    if not 0 <= idx < len(tensors) or not tensors[idx].shape:
        return 1.0
    c = max(int(tensors[idx].shape[-1]), 1)
    return c / (math.ceil(c / lanes) * lanes)


def op_seconds(op: OpInfo, tensors: Sequence[TensorInfo], coeffs: Any, hardware: Any, threads: int) -> float:
    """Estimated seconds of one operator."""
    if op.free:
        return 0.0
    overhead = coeffs.op_overhead_us * 1e-6
    if op.name in _SHAPE_ONLY:
        return overhead
    clock = (coeffs.clock_mhz or hardware.clock_mhz) * 1e6
    par = 1.0 if coeffs.device == "gpu" else speedup(threads, hardware, coeffs)
    if op.macs:
        eff = getattr(coeffs.op_efficiency, _CLASS.get(op.name, "conv"), 1.0)
        compute = op.macs / (_rate(coeffs, op.compute_dtype) * eff * _lane_use(op, tensors, coeffs) * clock * par)
    else:
        compute = op.elements / (coeffs.elements_per_cycle * clock * par)
    memory = op.bytes_moved / (coeffs.mem_bandwidth_gbps * 1e9)
    return overhead + max(compute, memory)


def estimate_latency(analysis: ModelAnalysis, target: Any, *, threads: Optional[int] = None,
                     placements: Optional[Sequence[Optional[str]]] = None) -> dict[str, Any]:
    """Estimated latency of one inference on ``target``.

    Args:
        analysis: the model.
        target: a :class:`~edgekit.targets.Target`.
        threads: CPU threads (default: the profile's ``threads``; always 1 on TFLite Micro).
        placements: per-op ``"gpu"``/``"cpu"`` (from the compatibility check) for GPU targets.

    Returns:
        ``{"latency_ms", "threads", "source": "estimated", "top_ops": [...]}``.
    """
    est = target.estimator
    n = 1 if target.runtime.name == "tflite-micro" else int(threads or target.threads)
    n = max(1, min(n, target.hardware.cores))
    per_op = []
    total = est.invoke_overhead_us * 1e-6
    i = 0
    for sg in analysis.subgraphs:
        for op in sg.ops:
            place = placements[i] if placements is not None and i < len(placements) else None
            i += 1
            coeffs = est
            if est.device == "gpu" and place == "cpu":
                coeffs = est.cpu_fallback or est
            seconds = op_seconds(op, sg.tensors, coeffs, target.hardware, n)
            total += seconds
            per_op.append((seconds, op))
    top = sorted(per_op, key=lambda item: -item[0])[:5]
    return {
        "latency_ms": round(total * 1000.0, 4),
        "threads": n,
        "source": SOURCE,
        "top_ops": [{"op": op.name, "index": op.index, "subgraph": op.subgraph, "ms": round(s * 1000.0, 4),
                     "macs": op.macs} for s, op in top],
    }
