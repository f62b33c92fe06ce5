"""Building blocks of the HTML reports: page shell, styles, tiles, tables, figures, notes.

Everything returns HTML text. Cells and captions passed in are HTML already: escape user data
with :func:`esc`. No scripts and no external references: the page must stay self-contained.
"""
from __future__ import annotations

import contextlib
import contextvars
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from html import escape
from typing import Any

from . import facts
from .facts import NOT_MEASURED, source_label

CSS = """
:root{--ink:#1f2937;--muted:#6b7280;--line:#e5e7eb;--bg:#f6f6f3;--card:#fff;--ok:#2f8f83;--ok-bg:#e4f2ef;
--bad:#a8433b;--bad-bg:#f8e7e4;--warn:#a36f12;--warn-bg:#fbf1dc;--blue:#3b6ea5;--chip:#eef2f7}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);
font:15px/1.55 system-ui,-apple-system,"Segoe UI","DejaVu Sans","Liberation Sans",sans-serif}
main{max-width:1080px;margin:0 auto;padding:28px 24px 56px}
header{display:flex;flex-wrap:wrap;align-items:baseline;gap:10px 16px;margin-bottom:6px}
h1{font-size:24px;margin:0;font-weight:650;letter-spacing:-.01em;word-break:break-word}
h2{font-size:17px;margin:0 0 10px;font-weight:650}
h3{font-size:12.5px;margin:16px 0 6px;color:var(--muted);font-weight:600;text-transform:uppercase;letter-spacing:.05em}
.subtitle{color:var(--muted);margin:0 0 18px;word-break:break-all}
.badge{display:inline-block;font-size:13px;font-weight:700;letter-spacing:.06em;padding:3px 10px;border-radius:999px}
.badge.passed{background:var(--ok-bg);color:var(--ok)}
.badge.failed,.badge.error{background:var(--bad-bg);color:var(--bad)}
.badge.done{background:var(--chip);color:var(--blue)}
.why{background:var(--bad-bg);border:1px solid #eccbc6;border-radius:10px;padding:12px 18px;margin:0 0 16px}
.why h2{color:var(--bad);font-size:15px;margin:0 0 4px}.why ul{margin:0;padding-left:20px}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:12px}
.tile{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:12px 16px;min-width:0}
.tile .label{font-size:11.5px;text-transform:uppercase;letter-spacing:.06em;color:var(--muted)}
.tile .value{font-size:21px;font-weight:650;margin:2px 0;font-variant-numeric:tabular-nums;overflow-wrap:anywhere}
.tile .sub{font-size:13px;color:var(--muted)}
.tile .value.na{font-size:16px;color:var(--muted);font-weight:500;padding:4px 0}
.tile.passed{border-left:4px solid var(--ok)}.tile.failed,.tile.error{border-left:4px solid var(--bad)}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:16px 20px;margin-top:16px}
section>p:last-child{margin-bottom:0}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:13.5px;margin:4px 0 8px}
th,td{padding:5px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
td:first-child,td.ok,td.bad,td.na{white-space:nowrap}
th{font-weight:600;color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.ok{color:var(--ok);font-weight:600}td.bad{color:var(--bad);font-weight:600}td.na{color:var(--muted)}
code,.mono{font-family:"DejaVu Sans Mono",ui-monospace,Menlo,Consolas,monospace;font-size:12.5px;word-break:break-all}
figure{margin:8px 0 4px}figcaption{font-size:12.5px;color:var(--muted);margin-top:2px}
svg.chart{width:100%;height:auto;display:block}
.charts2{display:grid;grid-template-columns:repeat(auto-fit,minmax(330px,1fr));gap:8px 18px}
.missing{color:var(--muted);margin:6px 0}.missing strong{color:var(--ink);font-weight:600}
.chip{display:inline-block;font-size:11.5px;padding:1px 7px;border-radius:5px;background:var(--chip);color:var(--blue);
white-space:nowrap}.tile .chip{white-space:normal}.chip.estimated{background:var(--warn-bg);color:var(--warn)}
ul.notes{margin:4px 0;padding-left:20px;color:var(--muted)}
details{margin-top:16px}summary{cursor:pointer;color:var(--muted)}
pre{background:#f3f4f6;border-radius:8px;padding:10px 12px;overflow:auto;font-size:12px;max-height:480px}
footer{color:var(--muted);font-size:12.5px;margin-top:22px;text-align:center}
@media print{body{background:#fff;font-size:12px}main{max-width:none;padding:0}
section,.tile,.why,figure,tr{break-inside:avoid}section{border-color:#bbb}details{display:none}
.charts2{grid-template-columns:1fr 1fr}}
"""

PASS, FAIL = "pass", "fail"
YES, NO, FALLBACK = "yes ✓", "no ✗", "CPU fallback"
_CELL_CLASS = {PASS: "ok", YES: "ok", FAIL: "bad", NO: "bad", NOT_MEASURED: "na", FALLBACK: "na"}


def esc(x: Any) -> str:
    """HTML-escape ``x`` (None → empty)."""
    return escape("" if x is None else str(x))


def abbreviate(doc: Any, *, max_items: int = 60) -> Any:
    """``doc`` with long lists of numbers (per-run samples) shortened, for the raw-JSON view."""
    if isinstance(doc, dict):
        return {k: abbreviate(v, max_items=max_items) for k, v in doc.items()}
    if isinstance(doc, list):
        if len(doc) > max_items and all(isinstance(v, (int, float)) for v in doc):
            return [*doc[:8], f"… {len(doc) - 8} more values"]
        return [abbreviate(v, max_items=max_items) for v in doc]
    return doc


def page(*, title: str, heading: str, subtitle: str, verdict: str | None, body: Iterable[str], doc: Any) -> str:
    """The whole HTML document: head with inline styles, heading + verdict badge, body, raw JSON."""
    badge = f'<span class="badge {esc(verdict)}">{esc(verdict.upper())}</span>' if verdict else ""
    raw = json.dumps(abbreviate(doc), indent=2, default=str, allow_nan=True)
    return "".join([
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
        '<meta name="generator" content="edgekit">\n',
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n",
        f"<header><h1>{esc(heading)}</h1>{badge}</header>\n",
        f'<p class="subtitle">{subtitle}</p>\n',
        "\n".join(part for part in body if part),
        '\n<details><summary>Raw report (JSON)</summary>\n<pre>', esc(raw), "</pre></details>\n",
        "<footer>Made by edgekit. Self-contained: no scripts, no network access.</footer>\n",
        "</main>\n</body>\n</html>\n",
    ])


def section(title: str, *parts: str, anchor: str | None = None) -> str:
    """A card with a heading; empty parts are dropped."""
    ident = f' id="{esc(anchor)}"' if anchor else ""
    return f"<section{ident}>\n<h2>{esc(title)}</h2>\n" + "\n".join(p for p in parts if p) + "\n</section>"


def tile(label: str, value: str, sub: str = "", tone: str = "") -> str:
    """One summary tile: small label, big value (HTML), optional sub-line (HTML) and tone class."""
    cls = f"tile {tone}".strip()
    sub_html = f'<div class="sub">{sub}</div>' if sub else ""
    value_cls = "value na" if value == NOT_MEASURED else "value"
    return (f'<div class="{cls}"><div class="label">{esc(label)}</div><div class="{value_cls}">{value}</div>'
            f"{sub_html}</div>")


def tiles(items: Sequence[str]) -> str:
    """A responsive grid of tiles."""
    return '<div class="tiles">' + "".join(items) + "</div>"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, num: Iterable[int] = ()) -> str:
    """A table (horizontally scrollable when wide); cells are HTML. ``num``: right-aligned columns.

    Cells equal to :data:`PASS`, :data:`FAIL`, :data:`YES`, :data:`NO`, :data:`FALLBACK` or
    ``not measured`` are coloured.
    """
    num = set(num)
    head = "".join(f'<th{" class=num" if i in num else ""}>{esc(h)}</th>' for i, h in enumerate(headers))
    thead = f"<thead><tr>{head}</tr></thead>" if any(headers) else ""
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cls = " ".join(c for c in ("num" if i in num else "", _CELL_CLASS.get(cell, "")) if c)
            cells.append(f'<td class="{cls}">{cell}</td>' if cls else f"<td>{cell}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table>{thead}<tbody>{"".join(body)}</tbody></table></div>'


def kv_table(items: Iterable[tuple[str, Any]]) -> str:
    """Two columns, no header: label and value (long strings such as hashes in monospace)."""
    def code(k: str, v: Any) -> bool:  # hashes, paths and commands read best in monospace
        return isinstance(v, str) and (k == "command" or (" " not in v and (len(v) >= 32 or "/" in v)))

    rows = [[esc(k), f"<code>{esc(v)}</code>" if code(k, v) else esc(facts.fmt_value(v))] for k, v in items]
    return table(["", ""], rows) if rows else ""


def figure(svg: str, caption: str = "") -> str:
    """A chart with an optional caption (HTML)."""
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return f"<figure>{svg}{cap}</figure>"


def charts_grid(figures: Sequence[str]) -> str:
    """Charts side by side (two per row on a wide page)."""
    figures = [f for f in figures if f]
    return f'<div class="charts2">{"".join(figures)}</div>' if figures else ""


def missing(what: str, how: str = "") -> str:
    """The "not measured" note where a reader would look for ``what``; ``how`` (HTML) says how to get it."""
    tail = f" — {how}" if how else ""
    return f'<p class="missing"><strong>{esc(what)}:</strong> {NOT_MEASURED}{tail}</p>'


def note(text_html: str) -> str:
    """A muted paragraph."""
    return f'<p class="missing">{text_html}</p>'


def notes_list(notes: Any) -> str:
    """A document's ``notes`` (list of strings) as a muted list."""
    items = [n for n in notes or [] if n]
    if not items:
        return ""
    return "<h3>Notes</h3><ul class=\"notes\">" + "".join(f"<li>{esc(n)}</li>" for n in items) + "</ul>"


def chip(source: str | None) -> str:
    """A small label saying where a number came from (estimates are coloured differently)."""
    if not source:
        return ""
    cls = "chip estimated" if "estimate" in str(source) else "chip"
    return f'<span class="{cls}">{esc(source_label(source))}</span>'


def why(doc: dict[str, Any]) -> str:
    """The red box at the top of a failed run: every reason in a sentence, and the exit code."""
    reasons = facts.failure_reasons(doc)
    if not reasons:
        return ""
    title = "Why this run failed" if doc.get("error") else "Why the verdict is FAILED"
    items = "".join(f"<li>{esc(r)}</li>" for r in reasons)
    err = doc.get("error") if isinstance(doc.get("error"), dict) else {}
    code = note(f"exit code {esc(err['exit_code'])}") if err.get("exit_code") is not None else ""
    return f'<div class="why"><h2>{esc(title)}</h2><ul>{items}</ul>{code}</div>'


_CHART_CACHE: contextvars.ContextVar[Any] = contextvars.ContextVar("edgekit_chart_cache", default=None)


@contextlib.contextmanager
def chart_cache(cache: Any) -> Iterator[None]:
    """Within this block, :func:`plot` reuses charts stored in ``cache`` (an enabled
    :class:`edgekit.cache.StageCache`) and stores the ones it draws. A chart's key is its drawing
    function, that function's source file, its arguments and the tool versions, so a cached chart is
    the same SVG the function would draw again. ``None`` or a disabled cache: draw every chart."""
    token = _CHART_CACHE.set(cache if cache is not None and getattr(cache, "enabled", False) else None)
    try:
        yield
    finally:
        _CHART_CACHE.reset(token)


def plot(fn: Callable[..., str], *args: Any, **kwargs: Any) -> str:
    """Render one chart; a chart that cannot be drawn becomes a note instead of breaking the report."""
    cache = _CHART_CACHE.get()
    key = None
    if cache is not None:
        from .. import cache as cachelib

        key = cachelib.chart_key(fn, args, kwargs)
        svg = cachelib.load_text_entry(cache, key, "chart.svg") if key else None
        if svg is not None:
            return svg
    try:
        svg = fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - a report must render even if one chart cannot
        return note(f"<strong>chart unavailable:</strong> {esc(type(exc).__name__)}: {esc(exc)}")
    if key:
        with contextlib.suppress(OSError):  # a full or read-only cache costs the next run a redraw, nothing more
            cachelib.store_text_entry(cache, key, svg, stage=cachelib.CHART_STAGE, name="chart.svg")
    return svg


def dig(doc: Any, *path: str) -> Any:
    """``doc[path[0]][path[1]]...`` or None where any level is missing or not a dict."""
    for key in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def first(*values: Any) -> Any:
    """The first value that is not None."""
    for v in values:
        if v is not None:
            return v
    return None


def model_path(doc: Any) -> str | None:
    """The model a document is about: ``model`` (a path or ``{path}``) or ``path``."""
    if not isinstance(doc, dict):
        return None
    m = doc.get("model")
    if isinstance(m, dict):
        m = m.get("path")
    return str(first(m, doc.get("path"))) if first(m, doc.get("path")) is not None else None
