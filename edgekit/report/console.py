"""Terminal summaries (rich), printed to stderr so stdout stays clean for pipes."""
from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from .markdown import fmt_bytes, fmt_pct


def print_compress_summary(report: dict[str, Any], *, console: Console | None = None) -> None:
    """Print the short end-of-run table for ``edgekit compress``."""
    con = console or Console(stderr=True)
    if report.get("dry_run"):
        con.print_json(data=report)
        return
    res, base = report["result"], report["baseline"]
    table = Table(title=f"edgekit compress → {report['target']}", show_edge=False)
    table.add_column("")
    table.add_column("float32 baseline", justify="right")
    table.add_column("result", justify="right")
    table.add_row("accuracy", fmt_pct(base["accuracy"]), fmt_pct(res["accuracy"]))
    table.add_row(".tflite size", fmt_bytes(base["tflite_float32_bytes"]), fmt_bytes(res["tflite_bytes"]))
    table.add_row("gzipped", "", fmt_bytes(res["tflite_gzip_bytes"]))
    table.add_row("quantization", "float32", f"{res['quantization']} ({res.get('io_dtype')} I/O)")
    con.print(table)
    for c in report.get("checks", []):
        mark = "[green]pass[/]" if c["passed"] else "[red]FAIL[/]"
        con.print(f"  {mark} {c['name']}: {c['value']} (limit {c['limit']})")
    verdict = "[bold green]PASSED[/]" if report["passed"] else "[bold red]FAILED[/]"
    con.print(f"{verdict}  wrote {res['path']} and reports in {report['result']['path'].rsplit('/', 1)[0]}")
