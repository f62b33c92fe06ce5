"""Op support of one model on one target: supported / falls back to CPU / unsupported, with the reason."""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Optional

from . import gpu_rules
from .model import ModelAnalysis, OpInfo, TensorInfo
from .optables import load_table

SUPPORTED = "supported"
CPU_FALLBACK = "cpu-fallback"
UNSUPPORTED = "unsupported"

_CONVERSION_OPS = {"QUANTIZE", "DEQUANTIZE"}
_RESOURCE_OPS = {"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE"}


@dataclass
class Verdict:
    status: str
    placement: Optional[str]  # "cpu" | "gpu" | "mcu" | None
    reason: Optional[str] = None


def _cpu_verdict(op: OpInfo, tensors: list[TensorInfo], target: Any) -> Verdict:
    """LiteRT on the CPU (the litert op table, with the profile's overrides)."""
    rt = target.runtime
    runtime_label = f"LiteRT {rt.version}"
    table = load_table("litert")
    if op.custom:
        if op.flex:
            if rt.flex:
                return Verdict(SUPPORTED, "cpu", "Select-TF op, run by the Flex delegate")
            return Verdict(UNSUPPORTED, None, f"Select-TF op {op.name} needs the Flex delegate, which "
                                              f"{runtime_label} on {target.name} does not include")
        if op.name in table["custom"]:
            return Verdict(SUPPORTED, "cpu", "custom op registered by LiteRT's built-in resolver")
        return Verdict(UNSUPPORTED, None, f"custom op {op.name} has no kernel in {runtime_label}; the app must "
                                          "register one")
    if op.name in rt.unsupported_ops:
        return Verdict(UNSUPPORTED, None, f"{op.name} is listed in runtime.unsupported_ops of the {target.name} profile")
    versions = table["builtin"].get(op.name)
    if versions is None:
        return Verdict(UNSUPPORTED, None, f"{runtime_label} has no kernel for builtin {op.name}")
    low, high = versions
    high = rt.op_max_versions.get(op.name, high)
    if not low <= op.version <= high:
        return Verdict(UNSUPPORTED, None, f"{op.name} version {op.version} is outside what {runtime_label} runs "
                                          f"(versions {low}-{high}); convert with a matching TensorFlow or "
                                          "upgrade the runtime")
    reason = "resource variable (stateful model)" if op.name in _RESOURCE_OPS else None
    return Verdict(SUPPORTED, "cpu", reason)


def _mcu_verdict(op: OpInfo, tensors: list[TensorInfo], target: Any) -> Verdict:
    """TFLite Micro (kernel table + dtype limits + the profile's int8 requirement)."""
    rt = target.runtime
    table = load_table("tflite-micro")
    if op.custom:
        if op.name in table["custom"]:
            return Verdict(SUPPORTED, "mcu", "custom op with a TFLite Micro kernel")
        return Verdict(UNSUPPORTED, None, f"TFLite Micro has no kernel for custom op {op.name}")
    if op.name in rt.unsupported_ops:
        return Verdict(UNSUPPORTED, None, f"{op.name} is listed in runtime.unsupported_ops of the {target.name} profile")
    if op.name not in table["builtin"]:
        return Verdict(UNSUPPORTED, None, f"TFLite Micro has no kernel for {op.name}")
    if op.name in rt.op_max_versions and op.version > rt.op_max_versions[op.name]:
        return Verdict(UNSUPPORTED, None, f"{op.name} version {op.version} > {rt.op_max_versions[op.name]} "
                                          f"(runtime.op_max_versions of {target.name})")
    ins = [tensors[i] for i in op.inputs if 0 <= i < len(tensors)]
    if op.compute_dtype == "hybrid":
        return Verdict(UNSUPPORTED, None, f"{op.name} is a hybrid (dynamic-range) op; TFLite Micro does not run "
                                          "them: quantize to full int8")
    if op.name == "DEQUANTIZE" and ins and ins[0].dtype == "float16":
        return Verdict(UNSUPPORTED, None, "float16 weights (DEQUANTIZE from float16) do not load in TFLite Micro: "
                                          "quantize to int8")
    if rt.required_quantization == "int8" and op.name not in _CONVERSION_OPS and \
            op.compute_dtype not in ("int8", "other"):
        return Verdict(UNSUPPORTED, None, f"{target.name} requires int8 ops (runtime.required_quantization) but "
                                          f"{op.name} computes in {op.compute_dtype}: use --quantize int8")
    return Verdict(SUPPORTED, "mcu", None)


def op_verdict(op: OpInfo, tensors: list[TensorInfo], target: Any, folded: frozenset[int] = frozenset()) -> Verdict:
    """Support verdict of one operator on ``target`` (``folded``: tensors computed from constants at init)."""
    if target.runtime.name == "tflite-micro":
        return _mcu_verdict(op, tensors, target)
    cpu = _cpu_verdict(op, tensors, target)
    if "gpu" not in target.runtime.delegates or cpu.status == UNSUPPORTED:
        return cpu
    if op.free:
        return Verdict(SUPPORTED, "gpu", "constant folded into the weights")
    why = gpu_rules.check(op, tensors, folded)
    if why is None:
        return Verdict(SUPPORTED, "gpu", None)
    return Verdict(CPU_FALLBACK, "cpu", f"GPU delegate: {why}; runs on the CPU")


def model_issues(analysis: ModelAnalysis, target: Any) -> list[str]:
    """Problems of the whole model on this target (not tied to one op)."""
    issues = []
    if target.runtime.name == "tflite-micro" and analysis.has_dynamic_shapes:
        issues.append("TFLite Micro needs static tensor shapes; this model has dynamic dimensions")
    return issues


def check_ops(analysis: ModelAnalysis, target: Any) -> tuple[list[dict[str, Any]], list[Verdict]]:
    """Per-op verdicts, grouped by (op, version, status, reason) with counts, plus the raw list.

    Returns:
        (grouped rows ``{name, version, count, status, placement, reason}``, one Verdict per op in
        ``analysis.ops`` order).
    """
    verdicts: list[Verdict] = []
    groups: "OrderedDict[tuple, dict[str, Any]]" = OrderedDict()
    for sg in analysis.subgraphs:
        folded = frozenset(t for op in sg.ops if op.free for t in op.outputs)
        for op in sg.ops:
            v = op_verdict(op, sg.tensors, target, folded)
            verdicts.append(v)
            key = (op.name, op.version, v.status, v.reason)
            row = groups.setdefault(key, {"name": op.name, "version": op.version, "count": 0, "status": v.status,
                                          "placement": v.placement, "reason": v.reason})
            row["count"] += 1
    order = {UNSUPPORTED: 0, CPU_FALLBACK: 1, SUPPORTED: 2}
    rows = sorted(groups.values(), key=lambda r: (order[r["status"]], -r["count"], r["name"]))
    return rows, verdicts
