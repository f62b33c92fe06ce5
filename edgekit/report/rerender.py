"""``edgekit report``: re-render ``report.md`` / ``report.html`` from a saved ``report.json``.

Works for every kind of report document (compress, inspect, benchmark, validate, check), for a
run directory (``DIR/report.json``) or a JSON file saved from ``--json``. Several compress runs
can be compared on one page (accuracy against size and latency, with the Pareto front).
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..fsutil import atomic_write_text
from . import facts

SCHEMA_VERSION = 1


def report_json_path(path: str | os.PathLike[str]) -> Path:
    """``DIR/report.json`` for a directory, the file itself for a ``.json`` file; ConfigError otherwise."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{p} does not exist", hint="pass the -o directory of an edgekit run or a saved JSON report")
    if p.is_dir():
        candidate = p / "report.json"
        if not candidate.is_file():
            raise ConfigError(f"{p} has no report.json", hint="pass the -o directory of an edgekit run")
        return candidate
    return p


def load_report(path: str | os.PathLike[str]) -> Any:
    """Read and sanity-check a report document (a JSON object, or a list for benchmarks)."""
    p = report_json_path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {p}: {getattr(exc, 'strerror', None) or exc}",
                          hint="check the file's permissions and that it is UTF-8 JSON") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{p} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
                          hint="re-run the command that wrote it") from exc
    if isinstance(doc, list):
        if not doc or not all(isinstance(d, dict) for d in doc):
            raise ConfigError(f"{p}: expected a report object or a list of benchmark results",
                              hint="pass a report.json written by edgekit")
        versions = {d.get("schema_version") for d in doc}
    elif isinstance(doc, dict):
        versions = {doc.get("schema_version")}
    else:
        raise ConfigError(f"{p}: expected a JSON object, got {type(doc).__name__}",
                          hint="pass a report.json written by edgekit")
    for v in versions:
        if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
            raise ConfigError(f"{p}: schema_version {v!r} is not an integer",
                              hint="pass a report.json written by edgekit")
        if isinstance(v, int) and v > SCHEMA_VERSION:
            raise ConfigError(f"{p}: schema_version {v} was written by a newer edgekit "
                              f"(this one reads {SCHEMA_VERSION})",
                              hint="upgrade edgekit")
    return doc


def fallback_markdown(doc: dict[str, Any]) -> str:
    """A short Markdown page for documents the full Markdown renderer does not cover (failed runs)."""
    kind = doc.get("kind") or "edgekit"
    lines = [f"# edgekit {kind}: {facts.verdict(doc).upper()}", ""]
    if doc.get("target"):
        lines.append(f"- **Target:** `{doc['target']}`")
    reasons = facts.failure_reasons(doc)
    if reasons:
        lines += ["", "## Why it failed", ""] + [f"- {r}" for r in reasons]
    checks = [c for c in facts.seq(doc, "checks") if isinstance(c, dict)]
    if checks:
        lines += ["", "| check | value | limit | result |", "|---|---|---|---|"]
        lines += [f"| {c.get('name')} | {facts.fmt_check_value(str(c.get('name', '')), c.get('value'))} | "
                  f"{facts.fmt_check_value(str(c.get('name', '')), c.get('limit'))} | "
                  f"{'pass' if c.get('passed') is True else '**FAIL**'} |" for c in checks]
    return "\n".join(lines) + "\n"


def _markdown(doc: Any) -> str | None:
    if not isinstance(doc, dict) or (doc.get("kind") not in (None, "compress") or "result" not in doc):
        return fallback_markdown(doc) if isinstance(doc, dict) and doc.get("error") else None
    from .markdown import render_markdown

    try:
        return render_markdown(doc)
    except (KeyError, TypeError, AttributeError, ValueError):
        return fallback_markdown(doc)


def rerender(path: str | os.PathLike[str]) -> dict[str, Path]:
    """Re-render the HTML (and, for compress reports, Markdown) next to a saved report.

    ``DIR`` or ``DIR/report.json`` → ``DIR/report.html`` (+ ``report.md``); ``other.json`` →
    ``other.html``. ``report.json`` itself is never rewritten. Returns the written paths.
    """
    from .html import render_html

    src = report_json_path(path)
    doc = load_report(src)
    stem = src.with_suffix("") if src.suffix == ".json" else src
    written = {"html": atomic_write_text(stem.with_name(stem.name + ".html"), render_html(doc))}
    md = _markdown(doc)
    if md is not None and src.name == "report.json":
        written["md"] = atomic_write_text(src.with_name("report.md"), md)
    return written


def is_compress_report(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` (a run directory or JSON file) holds a compress report."""
    doc = load_report(path)
    return isinstance(doc, dict) and doc.get("kind") in (None, "compress") and "result" in doc


def compare(paths: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str]) -> Path:
    """Write one page comparing several compress reports (accuracy vs size / latency, Pareto front)."""
    from .html import render_comparison_html

    docs, labels = [], []
    for p in paths:
        doc = load_report(p)
        if not isinstance(doc, dict) or (doc.get("kind") not in (None, "compress")):
            kind = doc.get("kind") if isinstance(doc, dict) else "benchmark"
            raise ConfigError(f"{p}: only compress reports can be compared (this one is {kind})",
                              hint="pass the -o directories of edgekit compress runs")
        docs.append(doc)
        src = report_json_path(p)
        labels.append(src.parent.name if src.name == "report.json" else src.stem)
    if len(set(labels)) != len(labels):
        labels = None
    return atomic_write_text(output, render_comparison_html(docs, labels=labels))
