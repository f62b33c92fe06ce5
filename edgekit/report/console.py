"""Terminal summaries (rich), printed to stderr so stdout stays clean for pipes and ``--json``.

A calm end-of-run summary: one small table of what changed, one line per check, the reasons for a
failed verdict in words, and where the files are. Colours only on a terminal (rich drops them in
CI logs and pipes).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import facts
from .markdown import fmt_bytes, fmt_pct

_VERDICT_STYLE = {"passed": "bold green", "failed": "bold red", "error": "bold red", "done": "bold"}


def _console(console: Console | None) -> Console:
    return console or Console(stderr=True, highlight=False)


def verdict_text(doc: dict[str, Any]) -> str:
    """``PASSED`` / ``FAILED`` / ``ERROR`` with rich markup."""
    v = facts.verdict(doc)
    return f"[{_VERDICT_STYLE[v]}]{v.upper()}[/]"


def print_checks(doc: dict[str, Any], *, console: Console | None = None) -> None:
    """One line per check: ✓ / ✗ / – (not measured), value against limit, the check's message."""
    con = _console(console)
    for c in facts.seq(doc, "checks"):
        if not isinstance(c, dict):
            continue
        name, unit = str(c.get("name", "check")), c.get("unit")
        status = facts.check_status(c)
        mark = {"passed": "[green]✓[/]", "failed": "[red]✗[/]"}.get(status, "[dim]–[/]")
        op = {"<=": "≤", ">=": "≥"}.get(str(c.get("op")), "≤")
        if status == "skipped":
            text = f"[dim]{escape(name)}: not measured[/]"
        else:
            text = f"{escape(name)} {escape(facts.fmt_check_value(name, c.get('value'), unit))}"
            if c.get("limit") is not None:
                relation = f"limit {op} " if facts.is_number(c.get("limit")) else ""
                text += f"  [dim]{relation}{escape(facts.fmt_check_value(name, c.get('limit'), unit))}[/]"
        con.print(f"  {mark} {text}", soft_wrap=True)


def print_failure(doc: dict[str, Any], *, console: Console | None = None) -> None:
    """The reasons a run failed, one per line (nothing when it passed)."""
    con = _console(console)
    for reason in facts.failure_reasons(doc):
        con.print(f"  [red]•[/] {escape(reason)}", highlight=False, soft_wrap=True)


def print_written(paths: Mapping[str, Any], *, console: Console | None = None) -> None:
    """Where the outputs are, one per line (``model``, ``report`` ...)."""
    con = _console(console)
    width = max((len(k) for k in paths), default=0)
    for label, path in paths.items():
        if path:
            con.print(f"  [dim]{escape(label):<{width}}[/]  {escape(str(path))}", soft_wrap=True)


def print_compress_summary(report: dict[str, Any], *, console: Console | None = None) -> None:
    """Print the short end-of-run summary of ``edgekit compress``."""
    con = _console(console)
    if report.get("dry_run"):
        if report.get("preflight") is not None:  # the resolved plan + pre-flight check, readable
            from ..preflight import format_dry_run

            con.print(format_dry_run(report), markup=False, highlight=False, soft_wrap=True)
            return
        con.print_json(data=report)
        return
    res, base = facts.obj(report, "result"), facts.obj(report, "baseline")
    family = f" [dim]({report['target_family']})[/]" if report.get("target_family") else ""
    con.print()
    con.print(f"[bold]edgekit compress[/] → {escape(str(report.get('target', '?')))}{family}   "
              f"{verdict_text(report)}")
    table = Table(box=None, show_edge=False, pad_edge=False, padding=(0, 2), header_style="dim")
    table.add_column("")
    table.add_column("float32", justify="right")
    table.add_column(str(res.get("quantization") or "result"), justify="right")
    table.add_column("", justify="left", style="dim")
    b_acc, r_acc = base.get("accuracy"), res.get("accuracy")
    delta = ""
    if facts.is_number(b_acc) and facts.is_number(r_acc):
        delta = f"{100 * (r_acc - b_acc):+.2f} pp".replace("-", "−")
    table.add_row("accuracy", fmt_pct(b_acc) if b_acc is not None else "not measured",
                  fmt_pct(r_acc) if r_acc is not None else "not measured", delta)
    fb, rb = base.get("tflite_float32_bytes"), res.get("tflite_bytes")
    ratio = f"{fb / rb:.1f}× smaller" if facts.is_number(fb) and facts.is_number(rb) and rb else ""
    table.add_row(".tflite size", fmt_bytes(fb), fmt_bytes(rb), ratio)
    table.add_row("gzipped", "", fmt_bytes(res.get("tflite_gzip_bytes")),
                  f"sparsity {fmt_pct(res['sparsity'])}" if facts.is_number(res.get("sparsity")) and res["sparsity"]
                  else "")
    lat = facts.obj(report, "latency")
    if facts.is_number(lat.get("p50_ms")):
        where = f" on {report['target']}" if report.get("target") else ""
        table.add_row("latency p50", "", facts.fmt_ms(lat["p50_ms"]), facts.source_label(lat.get("source")) + where)
    host = facts.obj(lat, "host")
    if facts.is_number(host.get("p50_ms")):
        table.add_row("" if facts.is_number(lat.get("p50_ms")) else "latency p50", "", facts.fmt_ms(host["p50_ms"]),
                      facts.source_label(host.get("source") or "measured-host"))
    if res.get("io_dtype") and res["io_dtype"] != "float32":
        table.add_row("I/O", "float32", str(res["io_dtype"]), "")
    con.print(table)
    if report.get("checks"):
        con.print()
        print_checks(report, console=con)
    if facts.verdict(report) != "passed":
        con.print()
        print_failure(report, console=con)
    out_dir = os.path.dirname(str(res.get("path") or "")) or None
    con.print()
    paths = {"model": res.get("path")}
    if out_dir:
        paths["report"] = os.path.join(out_dir, "report.html")
    print_written(paths, console=con)


def print_summary(doc: Any, *, console: Console | None = None) -> None:
    """A short summary of any report document: the compress table, or verdict + checks + reasons."""
    con = _console(console)
    if isinstance(doc, dict) and (doc.get("kind") == "compress" or "result" in doc):
        print_compress_summary(doc, console=con)
        return
    if not isinstance(doc, dict):
        return
    what = doc.get("kind") or doc.get("command") or "edgekit"
    con.print(f"[bold]edgekit {escape(str(what))}[/]   {verdict_text(doc)}")
    print_checks(doc, console=con)
    print_failure(doc, console=con)
