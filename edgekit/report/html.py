"""Self-contained HTML reports (``report.html``) for compress, inspect, benchmark, validate and check.

One file, no network: styles are inline, charts are inline SVG made by :mod:`edgekit.report.plots`,
there is no script and no external URL. Every renderer accepts partial documents (a run that
failed half-way): a section whose data is absent says "not measured" and how to measure it, and a
failed run says why it failed at the top of the page.

Entry points (what other commands call):

- :func:`render_html` — a report document (the command's ``--json`` output) → HTML text; the kind
  is ``doc["kind"]`` / ``doc["command"]`` or guessed from the keys,
- :func:`write_html` — render and write atomically,
- :func:`render_comparison_html` — several compress reports → one trade-off page (Pareto fronts).

Layout: :mod:`.htmlkit` (page shell, tiles, tables), :mod:`.sections` (blocks shared by several
kinds), :mod:`.html_compress` and :mod:`.html_tools` (one page per kind), :mod:`.plots` (charts).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..fsutil import atomic_write_text
from . import facts
from .html_compress import render_compress
from .html_tools import render_benchmark, render_inspect, render_validate
from .htmlkit import dig, esc, note, page, section, table, tile, tiles, why
from .markdown import fmt_bytes, fmt_pct
from .sections import tradeoff_section

KINDS = ("compress", "inspect", "benchmark", "validate", "check", "comparison")

__all__ = ["KINDS", "detect_kind", "render_html", "write_html", "render_comparison_html", "comparison_points",
           "render_compress", "render_inspect", "render_benchmark", "render_validate"]


def comparison_points(docs: Sequence[dict[str, Any]], labels: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """One trade-off point per compress report: label, accuracy, size, latency (+ source), verdict."""
    points = []
    for i, d in enumerate(docs):
        res = facts.obj(d, "result")
        settings = facts.obj(d, "settings")
        default = " ".join(str(x) for x in (d.get("target"), res.get("quantization"),
                                           f"prune {settings.get('prune')}" if settings.get("prune") else None) if x)
        points.append({"label": labels[i] if labels else (default or f"#{i + 1}"), "detail": default,
                       "accuracy": res.get("accuracy"), "size_bytes": res.get("tflite_bytes"),
                       "latency_ms": dig(d, "latency", "p50_ms"), "latency_source": dig(d, "latency", "source"),
                       "verdict": facts.verdict(d)})
    seen: dict[str, int] = {}
    for p in points:  # labels must be unique: the Pareto bookkeeping goes by label
        n = seen.get(p["label"], 0)
        seen[p["label"]] = n + 1
        if n:
            p["label"] = f"{p['label']} ({n + 1})"
    return points


def render_comparison_html(docs: Sequence[dict[str, Any]], *, labels: Sequence[str] | None = None) -> str:
    """A page comparing several compress reports: accuracy vs size / latency with Pareto fronts."""
    points = comparison_points(docs, labels)
    body_section = tradeoff_section(points, title="Accuracy against size and latency")
    if not body_section:
        rows = [[esc(p["label"]), fmt_pct(p.get("accuracy")), fmt_bytes(p.get("size_bytes")), esc(p["verdict"])]
                for p in points]
        body_section = section("Candidates", '<p class="missing">A trade-off plot needs at least two runs with '
                                             "accuracy measured (pass --data).</p>",
                               table(["candidate", "accuracy", "size", "verdict"], rows, num=(1, 2)))
    body = [tiles([tile("Runs", str(len(docs))),
                   tile("Passed", str(sum(1 for p in points if p["verdict"] == "passed")), f"of {len(docs)}")]),
            body_section]
    return page(title="edgekit: comparison", heading="Compare compress runs",
                subtitle=esc(", ".join(p["label"] for p in points)), verdict=None, body=body,
                doc={"kind": "comparison", "points": points})


def detect_kind(doc: Any) -> str:
    """The report kind: ``doc["kind"]`` or ``doc["command"]`` when set, else guessed from its keys."""
    if isinstance(doc, list):
        return "benchmark"
    if not isinstance(doc, dict):
        raise TypeError(f"a report must be a JSON object or list, got {type(doc).__name__}")
    for key in ("kind", "command"):
        if doc.get(key) in KINDS:
            return str(doc[key])
    if "stages" in doc or "result" in doc:
        return "compress"
    if "ops" in doc or "macs" in doc or ("arena_bytes" in doc and "targets" in doc):
        return "inspect"
    if "latency_ms" in doc and "runtime" in doc or isinstance(doc.get("results"), list):
        return "benchmark"
    if "baseline_metrics" in doc or ("checks" in doc and "baseline" in doc and "metrics" in doc):
        return "check"
    return "validate"


def render_html(doc: Any, *, kind: str | None = None) -> str:
    """Render a report document as one self-contained HTML page.

    Args:
        doc: the JSON document of ``compress``, ``inspect``, ``benchmark`` (a dict or a list),
            ``validate`` or ``check`` (DESIGN.md §7), as the command prints it with ``--json``.
            Partial documents are fine; a run that failed carries ``passed: False`` and
            ``error{type,message,hint,exit_code,stage}`` (see :func:`edgekit.report.facts.error_document`).
        kind: one of :data:`KINDS`; default: ``doc["kind"]`` / ``doc["command"]`` or a guess.

    Returns:
        The HTML text (UTF-8; no scripts, no external references).
    """
    kind = kind or detect_kind(doc)
    if kind not in KINDS:
        raise ValueError(f"unknown report kind {kind!r}; expected one of {', '.join(KINDS)}")
    try:
        return _RENDERERS[kind](doc)
    except Exception as exc:  # noqa: BLE001 - the outcome of a long run must never be lost to a drawing bug
        return fallback_page(doc, kind=kind, error=exc)


_RENDERERS = {
    "compress": render_compress,
    "inspect": render_inspect,
    "benchmark": render_benchmark,
    "validate": lambda doc: render_validate(doc, kind="validate"),
    "check": lambda doc: render_validate(doc, kind="check"),
    "comparison": lambda doc: render_comparison_html(doc.get("reports") or [], labels=doc.get("labels")),
}


def fallback_page(doc: Any, *, kind: str, error: BaseException) -> str:
    """A minimal page (verdict, reasons, raw JSON) for a document the full renderer choked on."""
    verdict = facts.verdict(doc) if isinstance(doc, dict) else None
    body = [why(doc) if isinstance(doc, dict) else "",
            section("Report", note(f"This report could not be fully rendered ({esc(type(error).__name__)}: "
                                   f"{esc(error)}). The raw report is below; please report this as an edgekit bug."),
                    anchor="render-error")]
    return page(title=f"edgekit {kind} report", heading=f"edgekit {kind} report", subtitle="", verdict=verdict,
                body=body, doc=doc)


def write_html(doc: Any, path: str | os.PathLike[str], *, kind: str | None = None) -> Path:
    """Render ``doc`` (see :func:`render_html`) and write it atomically to ``path``; returns the path."""
    return atomic_write_text(path, render_html(doc, kind=kind))
