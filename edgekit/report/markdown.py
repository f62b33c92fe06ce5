"""Markdown rendering of a compress report (``report.md``)."""
from __future__ import annotations

from typing import Any


def fmt_bytes(n: int | float | None) -> str:
    """Human-readable byte count (KiB/MiB), ``n/a`` for None."""
    if n is None:
        return "n/a"
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def fmt_pct(x: float | None) -> str:
    """A fraction as a percentage with two decimals, ``n/a`` for None."""
    return "n/a" if x is None else f"{100 * x:.2f} %"


def render_markdown(report: dict[str, Any]) -> str:
    """Render the compress report as GitHub-flavoured Markdown."""
    res, base = report["result"], report["baseline"]
    verdict = "PASSED" if report["passed"] else "FAILED"
    lines = [
        f"# edgekit compress: {verdict}",
        "",
        f"- **Target:** `{report['target']}`",
        f"- **Input:** `{report['input']['path']}` ({report['input'].get('format')}, sha256 `{report['input']['sha256'][:16]}…`)",
        f"- **Result:** `{res['path']}` ({res['quantization']}, {res.get('io_dtype', 'float32')} I/O, sha256 `{res['sha256'][:16]}…`)",
    ]
    if report["input"].get("ported_to_tf_keras"):
        lines.append(f"- Keras 3 model moved onto tf_keras; max abs output difference "
                     f"{report['input'].get('port_max_abs_diff'):.2e}")
    ratio = base["tflite_float32_bytes"] / res["tflite_bytes"] if res["tflite_bytes"] else None
    lines += [
        "",
        "| | float32 baseline | result |",
        "|---|---|---|",
        f"| accuracy | {fmt_pct(base['accuracy'])} | {fmt_pct(res['accuracy'])} |",
        f"| .tflite size | {fmt_bytes(base['tflite_float32_bytes'])} | {fmt_bytes(res['tflite_bytes'])}"
        + (f" ({ratio:.2f}× smaller) |" if ratio else " |"),
        f"| gzipped | | {fmt_bytes(res['tflite_gzip_bytes'])} |",
        f"| sparsity | | {fmt_pct(res.get('sparsity'))} |",
    ]
    lat = report.get("latency") or {}
    if lat.get("p50_ms") is not None:
        lines.append(f"| latency p50 | | {lat['p50_ms']:.3f} ms ({lat.get('source')}) |")
    if report.get("checks"):
        lines += ["", "## Checks", "", "| check | value | limit | result |", "|---|---|---|---|"]
        for c in report["checks"]:
            lines.append(f"| {c['name']} | {c['value']} | {c['limit']} | {'pass' if c['passed'] else '**FAIL**'} |")
    if report.get("stages"):
        lines += ["", "## Stages", "", "| stage | seconds | cached |", "|---|---|---|"]
        for s in report["stages"]:
            lines.append(f"| {s['name']} | {s['seconds']} | {'yes' if s.get('cached') else 'no'} |")
        from ..stages.train import compression_markdown  # per-layer sparsity, payoff, QAT scheme

        lines += compression_markdown(report["stages"])
    lines += ["", "## Versions", ""]
    lines += [f"- {k}: {v}" for k, v in report.get("versions", {}).items()]
    if report.get("command"):
        lines += ["", "## Command", "", f"```\n{report['command']}\n```"]
    return "\n".join(lines) + "\n"
