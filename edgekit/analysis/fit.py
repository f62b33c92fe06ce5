"""Does a model fit a target? Op support, memory, flash and estimated latency in one dict."""
from __future__ import annotations

from typing import Any, Optional

from .arena import SOURCE_GREEDY, SOURCE_TFLM, estimate_persistent, greedy_plan
from .compat import CPU_FALLBACK, UNSUPPORTED, check_ops, model_issues
from .estimator import estimate_latency
from .model import ModelAnalysis


def _plan(analysis: ModelAnalysis) -> dict[str, int]:
    if "plan" not in analysis.cache:
        plan = greedy_plan(analysis)
        plan["persistent_bytes"] = estimate_persistent(analysis)
        analysis.cache["plan"] = plan
    return analysis.cache["plan"]


def memory_needs(analysis: ModelAnalysis, target: Any) -> dict[str, Any]:
    """Flash and RAM the model needs on ``target`` (bytes) and where the arena figure comes from.

    * TFLite Micro: RAM = tensor arena (TFLM's own figure when it loaded the model, else greedy plan +
      estimated persistent allocations) + ``runtime.ram_overhead_bytes``; flash = model + runtime code.
    * LiteRT: peak RAM = model bytes (loaded or mapped) + activation arena (greedy plan) + weights
      repacked by XNNPACK (float16 weights unpack to float32: 2x) + ``runtime.ram_overhead_bytes``.
    """
    rt = target.runtime
    plan = _plan(analysis)
    if rt.name == "tflite-micro":
        if analysis.arena_source == SOURCE_TFLM and analysis.arena_bytes:
            arena, source = int(analysis.arena_bytes), SOURCE_TFLM
        else:
            arena, source = plan["planned_bytes"] + plan["persistent_bytes"], SOURCE_GREEDY
        ram = arena + rt.ram_overhead_bytes
        packed = 0
    else:
        arena, source = plan["planned_bytes"], SOURCE_GREEDY
        packed = 0
        if "xnnpack" in rt.delegates or "gpu" in rt.delegates:
            fp16 = sum(t.nbytes for sg in analysis.subgraphs for t in sg.tensors if t.constant and t.dtype == "float16")
            packed = analysis.weights_bytes + fp16
        ram = analysis.size_bytes + arena + packed + rt.ram_overhead_bytes
    return {"arena_bytes": int(arena), "arena_source": source, "ram_bytes": int(ram),
            "flash_bytes": int(analysis.size_bytes + rt.code_bytes), "packed_weights_bytes": int(packed)}


def fit_target(analysis: ModelAnalysis, target: Any, *, threads: Optional[int] = None) -> dict[str, Any]:
    """Check ``analysis`` against one target profile.

    Args:
        analysis: from :func:`~edgekit.analysis.analyze_tflite` (optionally with a TFLM arena attached).
        target: a :class:`~edgekit.targets.Target`.
        threads: CPU threads for the latency estimate (default: the profile's ``threads``).

    Returns:
        ``{compatible, unsupported_ops, latency_ms, latency_source, fits{flash, ram}, ...}`` (the
        ``targets.NAME`` entry of the inspect JSON).
    """
    rows, verdicts = check_ops(analysis, target)
    issues = model_issues(analysis, target)
    unsupported = sorted({r["name"] for r in rows if r["status"] == UNSUPPORTED})
    fallback = sorted({r["name"] for r in rows if r["status"] == CPU_FALLBACK})
    latency = estimate_latency(analysis, target, threads=threads, placements=[v.placement for v in verdicts])
    mem = memory_needs(analysis, target)
    hw, budgets = target.hardware, target.budgets
    fits_flash = mem["flash_bytes"] <= hw.flash_bytes and (
        budgets.max_model_bytes is None or analysis.size_bytes <= budgets.max_model_bytes)
    fits_ram = mem["ram_bytes"] <= hw.ram_bytes and (
        budgets.max_arena_bytes is None or mem["arena_bytes"] <= budgets.max_arena_bytes)
    within_latency = None if budgets.max_latency_ms is None else latency["latency_ms"] <= budgets.max_latency_ms
    return {
        "compatible": not unsupported and not issues,
        "unsupported_ops": unsupported,
        "cpu_fallback_ops": fallback,
        "latency_ms": latency["latency_ms"],
        "latency_source": latency["source"],
        "threads": latency["threads"],
        "fits": {"flash": bool(fits_flash), "ram": bool(fits_ram)},
        "within_latency_budget": within_latency,
        "flash_bytes": mem["flash_bytes"],
        "ram_bytes": mem["ram_bytes"],
        "arena_bytes": mem["arena_bytes"],
        "arena_source": mem["arena_source"],
        "limits": {"flash_bytes": hw.flash_bytes, "ram_bytes": hw.ram_bytes,
                   "max_model_bytes": budgets.max_model_bytes, "max_arena_bytes": budgets.max_arena_bytes,
                   "max_latency_ms": budgets.max_latency_ms},
        "runtime": f"{target.runtime.name} {target.runtime.version}",
        "delegates": list(target.runtime.delegates),
        "kernels": target.estimator.kernels,
        "issues": issues,
        "ops": rows,
        "top_ops": latency["top_ops"],
    }
