"""Plain-language facts derived from a report document, shared by the HTML and terminal renderers.

Nothing here renders markup: it formats numbers with their units, names where a number came from
(measured on a device, measured on this host, estimated) and explains a failed verdict in words.
Every function accepts partial documents (a run that failed half-way) and never raises on a
missing key.
"""
from __future__ import annotations

import math
from typing import Any

from .markdown import fmt_bytes

SOURCE_LABELS = {
    "measured-device": "measured on device",
    "measured-host": "measured on this host",
    "emulated": "measured under emulation",
    "estimated": "estimated",
    "measured": "measured",
    "planned": "planned (arena planner)",
    "tflite-micro": "measured by TFLite Micro",
    "greedy-estimate": "estimated (greedy planner)",
}

NOT_MEASURED = "not measured"


def obj(doc: Any, key: str) -> dict[str, Any]:
    """``doc[key]`` when both are dicts, else ``{}`` (report documents may be partial or malformed)."""
    value = doc.get(key) if isinstance(doc, dict) else None
    return value if isinstance(value, dict) else {}


def seq(doc: Any, key: str) -> list[Any]:
    """``doc[key]`` when it is a list, else ``[]``."""
    value = doc.get(key) if isinstance(doc, dict) else None
    return list(value) if isinstance(value, (list, tuple)) else []


def source_label(source: str | None) -> str:
    """Human label of a latency/memory source (``measured-host`` → "measured on this host")."""
    if not source:
        return NOT_MEASURED
    return SOURCE_LABELS.get(str(source), str(source))


def is_number(x: Any) -> bool:
    """True for a finite int/float (bools excluded)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(float(x))


def fmt_ms(value: Any) -> str:
    """A latency in the unit that reads best: ``2.12 µs``, ``0.523 ms``, ``12.3 ms``, ``1.25 s``."""
    if not is_number(value):
        return NOT_MEASURED
    v = float(value)
    if v < 0.1:
        return f"{v * 1000:.3g} µs"
    if v < 1000:
        return f"{v:.3g} ms"
    return f"{v / 1000:.3g} s"


RUNTIME_NAMES = {"ai_edge_litert": "LiteRT", "litert": "LiteRT", "tflite_runtime": "tflite-runtime",
                 "tflite-runtime": "tflite-runtime", "tensorflow": "TensorFlow Lite", "tflite-micro": "TFLite Micro"}


def runtime_label(name: Any) -> str:
    """Display name of an interpreter runtime (``ai_edge_litert`` → ``LiteRT``)."""
    return RUNTIME_NAMES.get(str(name), str(name)) if name else "—"


def check_unit(name: str, unit: str | None = None) -> str:
    """The unit of a check's value: its own ``unit`` (``B``, ``ms``, ``x``) or a guess from its name.

    Returns ``bytes``, ``ms``, ``ratio``, ``fraction``, ``mb`` or ``""``.
    """
    explicit = {"B": "bytes", "bytes": "bytes", "ms": "ms", "x": "ratio", "MB": "mb", "%": "fraction"}
    if unit:
        return explicit.get(unit, "")
    n = name.lower()
    if n.endswith("_mb"):
        return "mb"
    if any(k in n for k in ("size", "bytes", "arena", "ram", "flash", "memory")):
        return "bytes"
    if "latency" in n or n.endswith("_ms"):
        return "ms"
    if any(k in n for k in ("accuracy", "drop", "agreement", "sparsity")):
        return "fraction"
    return ""


def fmt_value(value: Any, unit: str = "") -> str:
    """Format a value in ``unit`` (see :func:`check_unit`); ``not measured`` for None."""
    if value is None:
        return NOT_MEASURED
    if isinstance(value, bool):
        return "yes" if value else "no"
    if not is_number(value):
        return str(value)
    v = float(value)
    if unit == "bytes":
        return fmt_bytes(v)
    if unit == "mb":
        return f"{v:.1f} MB"
    if unit == "ms":
        return fmt_ms(v)
    if unit == "ratio":
        return f"{v:.3f}×"
    if unit == "fraction":
        return f"{100 * v:.2f} %"
    if v.is_integer() and abs(v) < 1e15:
        return f"{int(v):,}"
    return f"{v:.4g}"


def fmt_check_value(name: str, value: Any, unit: str | None = None) -> str:
    """Format a check's value or limit according to its unit (or, without one, its name)."""
    kind = check_unit(name, unit)
    if kind == "fraction" and "drop" in name.lower() and is_number(value):
        return f"{100 * float(value):.2f} pp"
    return fmt_value(value, kind)


def check_status(check: dict[str, Any]) -> str:
    """``passed``, ``failed`` or ``skipped`` (not measured; never counted as a pass)."""
    status = check.get("status")
    if status in ("passed", "failed", "skipped"):
        return str(status)
    if check.get("passed") is True:
        return "passed"
    if check.get("passed") is False:
        return "failed"
    return "skipped"


def failed_checks(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The checks of ``doc`` that failed (skipped ones are listed as "not measured" elsewhere)."""
    return [c for c in seq(doc, "checks") if isinstance(c, dict) and check_status(c) == "failed"]


def explain_check(check: dict[str, Any]) -> str:
    """One sentence on a check's outcome, e.g. "model_size: 1.2 MiB is over the limit of 1.0 MiB"."""
    name = str(check.get("name", "check"))
    value, limit, unit = check.get("value"), check.get("limit"), check.get("unit")
    for key in ("message", "reason"):
        if check.get(key):
            return f"{name}: {check[key]}"
    if value is None:
        return f"{name}: no value was measured"
    if is_number(value) and is_number(limit):
        op = check.get("op")
        if op in ("<=", ">="):
            upper = op == "<="
        else:
            lowered = name.lower()
            upper = "drop" in lowered or not any(k in lowered for k in ("min_", "agreement", "sqnr", "accuracy"))
        v, lim = float(value), float(limit)
        if (upper and v > lim) or (not upper and v < lim):
            return (f"{name}: {fmt_check_value(name, value, unit)} is {'over' if upper else 'under'} the limit of "
                    f"{fmt_check_value(name, limit, unit)}")
        # the check failed on something its value/limit pair does not show: say so, never invent a reason
        return (f"{name}: failed (value {fmt_check_value(name, value, unit)}, limit "
                f"{fmt_check_value(name, limit, unit)})")
    return f"{name}: {fmt_check_value(name, value, unit)} does not meet {fmt_check_value(name, limit, unit)}"


def verdict(doc: dict[str, Any]) -> str:
    """``"passed"``, ``"failed"`` (a check or budget failed) or ``"error"`` (the run itself failed)."""
    if doc.get("error"):
        return "error"
    if doc.get("passed") is True:
        return "passed"
    if doc.get("passed") is False:
        return "failed"
    return "done"


def failure_reasons(doc: dict[str, Any]) -> list[str]:
    """Why ``doc`` did not pass, one sentence each; empty when it passed."""
    reasons: list[str] = []
    err = doc.get("error")
    if isinstance(err, dict):
        text = str(err.get("message") or err.get("type") or "the run failed")
        if err.get("hint"):
            text += f" ({err['hint']})"
        if err.get("stage"):
            text = f"stage {err['stage']}: {text}"
        reasons.append(text)
    elif err:
        reasons.append(str(err))
    reasons += [explain_check(c) for c in failed_checks(doc)]
    if not reasons and doc.get("passed") is False:
        reasons.append("the run was marked as failed but recorded no reason; run with --debug")
    return reasons


def error_document(exc: BaseException, *, kind: str, stage: str | None = None,
                   partial: dict[str, Any] | None = None) -> dict[str, Any]:
    """A report document for a run that stopped with ``exc``, keeping whatever was measured before.

    Write it with :func:`edgekit.report.writer.write_reports` so ``report.html`` says why the run
    failed. The exit code is the error's own (see :mod:`edgekit.errors`), 3 for anything else.
    """
    doc: dict[str, Any] = {"schema_version": 1, "kind": kind, **(partial or {})}
    doc["passed"] = False
    doc["error"] = {
        "type": type(exc).__name__,
        "message": getattr(exc, "message", None) or str(exc) or type(exc).__name__,
        "hint": getattr(exc, "hint", None),
        "exit_code": int(getattr(exc, "exit_code", 3)),
        "stage": stage,
    }
    return doc
