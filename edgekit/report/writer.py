"""Write a report in all its forms (JSON, Markdown, HTML) into a directory, atomically."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..fsutil import atomic_write_text
from .markdown import render_markdown


def _markdown(report: dict[str, Any]) -> str:
    try:
        return render_markdown(report)
    except (KeyError, TypeError):  # a partial or error report: say what is known, never crash
        from .rerender import fallback_markdown

        return fallback_markdown(report)


def write_reports(report: dict[str, Any], out_dir: str | Path, *, chart_cache: Any = None) -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` and ``report.html`` into ``out_dir``; return their paths.

    ``chart_cache``: an :class:`edgekit.cache.StageCache` whose stored charts the HTML page may reuse
    (a fully cached ``compress`` re-run then draws nothing); None draws every chart.
    """
    out = Path(out_dir)
    paths = {
        "json": atomic_write_text(out / "report.json", json.dumps(report, indent=2, default=str) + "\n"),
        "md": atomic_write_text(out / "report.md", _markdown(report)),
    }
    try:
        from .html import render_html
        from .htmlkit import chart_cache as use_chart_cache
    except ImportError:
        return paths
    with use_chart_cache(chart_cache):
        paths["html"] = atomic_write_text(out / "report.html", render_html(report))
    return paths
