"""Tensor-arena size: TFLite Micro's own allocator where it can load the model, a greedy planner otherwise.

* :func:`measure_tflm_arena` loads the model in the real TFLite Micro interpreter (``tflite-micro``
  package) in a child process (TFLM segfaults/aborts on some inputs) and reads the
  ``RecordingMicroAllocator`` report that ``print_allocations()`` writes to file descriptor 2:
  ``total`` = ``head`` (non-persistent tensors, planned by TFLM's GreedyMemoryPlanner) + ``tail``
  (persistent: TfLiteEvalTensor structs, node/registration structs, kernel op data).
* :func:`greedy_plan` is edgekit's own planner over tensor lifetimes with the same strategy as TFLM's
  GreedyMemoryPlanner (largest buffer first, lowest offset that does not overlap any live buffer,
  16-byte alignment). It gives the activation memory of any model, including ones TFLM cannot load.
  :func:`estimate_persistent` adds an estimate of TFLM's persistent ("tail") allocations.
"""
from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from typing import Any, Optional

from ..errors import ChildCrash, EdgekitError
from .model import ModelAnalysis, SubgraphInfo

ALIGNMENT = 16
SOURCE_TFLM = "tflite-micro"
SOURCE_GREEDY = "greedy-estimate"


def _align(n: int) -> int:
    return (int(n) + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


@dataclass(frozen=True)
class Buffer:
    tensor: int
    size: int
    first: int
    last: int


def lifetimes(sg: SubgraphInfo) -> list[Buffer]:
    """Non-constant, non-variable tensors of a subgraph with their [first, last] op indices."""
    n_ops = len(sg.ops)
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for t in sg.inputs:
        first[t] = 0
        last[t] = 0
    for i, op in enumerate(sg.ops):
        for t in op.inputs:
            if t >= 0:
                first.setdefault(t, i)
                last[t] = max(last.get(t, i), i)
        for t in op.outputs:
            if t >= 0:
                first.setdefault(t, i)
                last[t] = max(last.get(t, i), i)
    for t in sg.outputs:
        first.setdefault(t, 0)
        last[t] = max(n_ops - 1, 0)
    out = []
    for t, f in first.items():
        info = sg.tensors[t]
        if info.constant or info.variable or info.nbytes <= 0:
            continue
        out.append(Buffer(tensor=t, size=_align(info.nbytes), first=f, last=last[t]))
    return out


def greedy_offsets(buffers: list[Buffer]) -> dict[int, int]:
    """Place buffers largest first at the lowest offset free for their whole lifetime."""
    placed: list[tuple[int, Buffer]] = []  # (offset, buffer)
    offsets: dict[int, int] = {}
    for buf in sorted(buffers, key=lambda b: (-b.size, b.first, b.tensor)):
        live = sorted(((off, other) for off, other in placed if not (other.last < buf.first or other.first > buf.last)),
                      key=lambda item: (item[0], item[1].tensor))
        candidate = 0
        for off, other in live:
            if candidate + buf.size <= off:
                break
            candidate = max(candidate, off + other.size)
        placed.append((candidate, buf))
        offsets[buf.tensor] = candidate
    return offsets


def greedy_plan(analysis: ModelAnalysis) -> dict[str, int]:
    """Activation memory of every subgraph with the greedy planner; ``planned_bytes`` is their sum."""
    total = 0
    per_subgraph = {}
    for sg in analysis.subgraphs:
        buffers = lifetimes(sg)
        offsets = greedy_offsets(buffers)
        size = max((offsets[b.tensor] + b.size for b in buffers), default=0)
        per_subgraph[sg.index] = size
        total += size
    naive = sum(_align(t.nbytes) for sg in analysis.subgraphs for t in sg.tensors
                if not t.constant and not t.variable)
    return {"planned_bytes": total, "unplanned_bytes": naive, "main_bytes": per_subgraph.get(0, 0)}


# Persistent-allocation model, fitted on TFLM's RecordingMicroAllocator reports for small CNNs/MLPs:
# TfLiteEvalTensor 24 B per tensor, NodeAndRegistration 64 B per op, 64 B TfLiteTensor (+32 B
# quantization) per model input/output, kernel op data (per-output-channel multipliers and shifts,
# 8 B per channel, for conv/depthwise/FC of any dtype), ~640 B of fixed interpreter/allocator structures.
def estimate_persistent(analysis: ModelAnalysis) -> int:
    """Estimate TFLM's persistent ("tail") arena allocations for this model."""
    total = 640
    for sg in analysis.subgraphs:
        total += 24 * len(sg.tensors) + 64 * len(sg.ops)
        for op in sg.ops:
            out = sg.tensors[op.outputs[0]] if op.outputs and op.outputs[0] >= 0 else None
            channels = int(out.shape[-1]) if out is not None and out.shape else 1
            if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED"):
                total += _align(8 * channels) + 64  # TFLM allocates these for float kernels too
            elif op.name == "SOFTMAX":
                total += 80
            else:
                total += 32
    for t in (*analysis.inputs, *analysis.outputs):
        total += 64 + (32 if t.scale else 0)
    for sg in analysis.subgraphs:
        total += sum(_align(t.nbytes) for t in sg.tensors if t.variable)
    return _align(total)


# ------------------------------------------------------------------------------------------------
# TFLite Micro, in a child process
# ------------------------------------------------------------------------------------------------
_TOTAL_RE = re.compile(r"Arena allocation total (\d+) bytes")
_HEAD_RE = re.compile(r"Arena allocation head (\d+) bytes")
_TAIL_RE = re.compile(r"Arena allocation tail (\d+) bytes")
_REASON_PATTERNS = ("Didn't find op", "Failed to get registration", "Hybrid models are not supported",
                    "was not true", "not supported", "Unsupported", "failed to prepare", "Failed to",
                    "too small", "Only", "Type ")


def _reason(log: str) -> str:
    lines = [ln.strip() for ln in log.splitlines() if ln.strip() and "RecordingMicroAllocator" not in ln]
    for pattern in _REASON_PATTERNS:
        for ln in lines:
            if pattern in ln:
                return ln[:300]
    return lines[0][:300] if lines else "no reason printed"


def tflm_allocations(model_bytes: bytes, arena_size: int) -> dict[str, Any]:  # pragma: no cover - child only
    """Child-process body: load in TFLM, call ``print_allocations()`` and parse fd 2."""
    from tflite_micro.python.tflite_micro import runtime  # type: ignore[import-not-found]

    fd, path = tempfile.mkstemp(prefix="edgekit-tflm-", suffix=".log")
    saved = os.dup(2)
    os.dup2(fd, 2)
    ok, error = True, ""
    try:
        try:
            interp = runtime.Interpreter.from_bytes(bytes(model_bytes), arena_size=arena_size)
            interp.print_allocations()
        except Exception as exc:  # noqa: BLE001 - TFLM's reason is on fd 2, the exception is generic
            ok, error = False, f"{type(exc).__name__}: {exc}"
    finally:
        try:
            os.fsync(2)
        except OSError:
            pass
        os.dup2(saved, 2)
        os.close(saved)
    os.lseek(fd, 0, 0)
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    os.unlink(path)
    log = b"".join(chunks).decode("utf-8", "replace")
    result: dict[str, Any] = {"ok": ok, "arena_size": arena_size}
    if ok:
        for key, rx in (("total", _TOTAL_RE), ("head", _HEAD_RE), ("tail", _TAIL_RE)):
            m = rx.search(log)
            result[key] = int(m.group(1)) if m else None
        if result["total"] is None:
            result.update(ok=False, reason="TFLM printed no allocation report")
    else:
        result["reason"] = _reason(log) if log.strip() else error
    return result


def measure_tflm_arena(model_bytes: bytes, *, timeout: float = 120.0) -> dict[str, Any]:
    """Arena bytes TFLite Micro really allocates for this model, or why it could not load it.

    Returns ``{"ok": True, "total", "head", "tail"}`` or ``{"ok": False, "reason"}``. Never raises
    for a model TFLM rejects or crashes on: that is reported in ``reason``.
    """
    from ..child import run_in_child

    arena = max(1 << 20, 4 * len(model_bytes))
    last: dict[str, Any] = {"ok": False, "reason": "not run"}
    for _ in range(4):
        try:
            last = run_in_child(tflm_allocations, bytes(model_bytes), arena, what="measuring the arena in TFLite Micro",
                                timeout=timeout)
        except ChildCrash as exc:
            return {"ok": False, "reason": f"TFLite Micro crashed on this model ({exc.message.split(': ', 1)[-1]})"}
        except EdgekitError as exc:
            return {"ok": False, "reason": str(exc)}
        reason = str(last.get("reason", "")).lower()
        if last.get("ok") or not any(k in reason for k in ("too small", "failed to allocate memory", "failed to resize")):
            return last
        arena *= 8
        if arena > 1 << 30:
            break
    return last


def attach_arena(analysis: ModelAnalysis, model_bytes: Optional[bytes] = None, *, use_tflm: bool = True) -> None:
    """Set ``analysis.arena_bytes/arena_source/arena_detail`` (TFLM when it loads, else greedy estimate)."""
    plan = greedy_plan(analysis)
    persistent = estimate_persistent(analysis)
    detail: dict[str, Any] = {"greedy_planned_bytes": plan["planned_bytes"],
                              "unplanned_bytes": plan["unplanned_bytes"],
                              "estimated_persistent_bytes": persistent}
    tflm: dict[str, Any] = {"ok": False, "reason": "not attempted"}
    if use_tflm and model_bytes is not None:
        tflm = measure_tflm_arena(model_bytes)
    if tflm.get("ok"):
        analysis.arena_bytes = int(tflm["total"])
        analysis.arena_source = SOURCE_TFLM
        detail.update(tflm_total_bytes=tflm["total"], tflm_planned_bytes=tflm.get("head"),
                      tflm_persistent_bytes=tflm.get("tail"))
    else:
        analysis.arena_bytes = plan["planned_bytes"] + persistent
        analysis.arena_source = SOURCE_GREEDY
        detail["tflm_error"] = tflm.get("reason")
    analysis.arena_detail = detail
