"""Small matplotlib charts rendered to inline SVG strings for the HTML report.

Every function takes plain numbers (no report dicts) and returns one ``<svg>`` element as text,
ready to be pasted into an HTML page: no XML prolog, no metadata, no namespace URLs, ids made
unique per chart, and a ``viewBox`` instead of a fixed size so the chart scales with the page.

matplotlib is driven through its object API (:class:`matplotlib.figure.Figure`) and never through
``pyplot``, so no GUI backend is selected and no global figure state is touched: rendering works
headless and is safe to call from any thread of the host program.
"""
from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# A calm palette: slate text, one blue for "the thing measured", muted teal / amber / red accents.
INK = "#1f2937"
MUTED = "#6b7280"
GRID = "#e5e7eb"
BLUE = "#3b6ea5"
BLUE_LIGHT = "#a9c1dc"
TEAL = "#2f8f83"
AMBER = "#c98a1b"
RED = "#b9473f"

_RC = {
    "svg.fonttype": "none",  # keep text as <text>: smaller files, crisp, selectable
    "svg.hashsalt": "edgekit",  # deterministic ids (rewritten per chart below anyway)
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Liberation Sans", "Arial", "Helvetica"],
    "font.size": 9,
    "axes.edgecolor": GRID,
    "axes.labelcolor": INK,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.titlecolor": INK,
    "axes.titlelocation": "left",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": GRID,
    "grid.linewidth": 0.8,
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "xtick.labelcolor": INK,
    "ytick.labelcolor": INK,
    "legend.frameon": False,
    "figure.dpi": 100,
}

_LABEL_BOX = {"facecolor": "white", "edgecolor": "none", "pad": 1.0, "alpha": 0.85}


@dataclass(frozen=True)
class Step:
    """One point of the stage waterfall: a model state with its size and accuracy (either may be None)."""

    label: str
    size_bytes: float | None = None
    gzip_bytes: float | None = None
    accuracy: float | None = None
    #: False when ``accuracy`` was measured on another split (a training stage's validation split):
    #: such points are drawn apart, never joined to the test-split line.
    test_split: bool = True


@dataclass(frozen=True)
class Bar:
    """One bar of a budget chart: a measured value against its limit (``limit`` None: no budget)."""

    label: str
    value: float
    limit: float | None
    text: str = ""


@dataclass(frozen=True)
class Point:
    """One candidate in a trade-off scatter plot."""

    label: str
    x: float
    y: float


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _to_svg(fig: Any, *, title: str) -> str:
    """Serialize ``fig`` to a clean, self-contained inline ``<svg>`` element."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    raw = buf.getvalue()
    # ids are prefixed per chart so several charts can share a page; a digest of the chart keeps
    # the page byte-identical when it is rendered again from the same report
    return clean_svg(raw, prefix=f"c{hashlib.sha1(raw.encode()).hexdigest()[:8]}-", title=title)


def clean_svg(svg: str, *, prefix: str, title: str) -> str:
    """Make a matplotlib SVG document safe to inline in HTML.

    Removes the XML prolog, DOCTYPE, RDF metadata and namespace declarations (HTML parsers know
    SVG without them, and none of them may leave a URL in the page), turns ``xlink:href`` into
    SVG 2 ``href``, prefixes every id so several charts can share a page, replaces the fixed
    width/height by a responsive style and adds an accessible title.
    """
    svg = re.sub(r"<\?xml[^>]*\?>", "", svg)
    svg = re.sub(r"<!DOCTYPE[^>]*>", "", svg, flags=re.S)
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
    svg = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", svg)
    svg = svg.replace("xlink:href=", "href=")
    svg = svg.replace("*{stroke-linejoin", "svg.chart *{stroke-linejoin")  # keep matplotlib's rule inside the chart
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}{m.group(1)}"', svg)
    svg = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{prefix}{m.group(1)}"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}{m.group(1)})", svg)
    svg = re.sub(r"<svg\b[^>]*?\swidth=\"[^\"]*\"\s+height=\"[^\"]*\"",
                 lambda m: re.sub(r'\s(width|height)="[^"]*"', "", m.group(0)), svg, count=1)
    from html import escape

    svg = svg.replace("<svg ", f'<svg role="img" aria-label="{escape(title)}" class="chart" ', 1)
    svg = re.sub(r"(<svg\b[^>]*>)", lambda m: f"{m.group(1)}<title>{escape(title)}</title>", svg, count=1)
    return svg.strip()


def warm_up() -> None:
    """Import matplotlib and draw one throw-away chart (fonts, SVG backend), so that the first real
    chart costs only its own drawing. ``compress`` calls this in a background thread while its
    training child runs and this process has nothing else to do."""
    from matplotlib.backends import backend_svg  # noqa: F401 - the import is the point

    fig = _figure(1.0, 1.0)
    ax = fig.add_subplot()
    ax.bar([0], [1.0])
    ax.set_title("warm-up")
    fig.savefig(io.StringIO(), format="svg")


def _kib(n: float) -> float:
    return n / 1024.0


def _fmt_size(n: float) -> str:
    if n >= 1024 * 1024:
        return f"{n / 1048576:.2f} MiB"
    if n >= 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n:.0f} B"


def stage_waterfall(steps: Sequence[Step], *, title: str = "Size and accuracy through the pipeline") -> str:
    """Two panels: ``.tflite`` size per step (raw bars, gzipped overlay) and accuracy per step."""
    import matplotlib

    with matplotlib.rc_context(_RC):
        fig = _figure(8.6, 2.9)
        ax_size, ax_acc = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.15, 1]})
        labels = [s.label for s in steps]
        xs = list(range(len(steps)))
        raw = [_kib(s.size_bytes) if s.size_bytes is not None else 0.0 for s in steps]
        ax_size.bar(xs, raw, color=BLUE, width=0.6, label="raw", zorder=2)
        gz = [(x, _kib(s.gzip_bytes)) for x, s in zip(xs, steps) if s.gzip_bytes is not None]
        if gz:
            ax_size.bar([x for x, _ in gz], [v for _, v in gz], color=BLUE_LIGHT, width=0.36, label="gzipped", zorder=3)
            ax_size.legend(loc="upper right", fontsize=8)
        top = max(raw) if any(raw) else 1.0
        for x, s in zip(xs, steps):
            text = _fmt_size(s.size_bytes) if s.size_bytes is not None else "no .tflite"
            if s.gzip_bytes is not None:
                text += f"\ngz {_fmt_size(s.gzip_bytes)}"
            y = _kib(s.size_bytes) if s.size_bytes is not None else 0.0
            ax_size.text(x, y + top * 0.03, text, ha="center", va="bottom", fontsize=8, linespacing=1.3,
                         color=INK if s.size_bytes is not None else MUTED)
        ax_size.set_ylim(0, top * 1.32)
        ax_size.set_ylabel("KiB")
        ax_size.set_title(".tflite size")
        ax_size.set_xticks(xs, labels)
        ax_size.grid(axis="x", visible=False)

        acc = [(x, 100.0 * s.accuracy) for x, s in zip(xs, steps) if s.accuracy is not None and s.test_split]
        val = [(x, 100.0 * s.accuracy) for x, s in zip(xs, steps) if s.accuracy is not None and not s.test_split]
        ax_acc.set_title("accuracy")
        ax_acc.set_xticks(xs, labels)
        ax_acc.set_xlim(-0.5, len(steps) - 0.5)
        ax_acc.grid(axis="x", visible=False)
        if acc or val:
            if acc:
                ax_acc.plot([x for x, _ in acc], [v for _, v in acc], color=TEAL, marker="o", linewidth=1.8,
                            zorder=3, label="test split")
            if val:
                ax_acc.plot([x for x, _ in val], [v for _, v in val], linestyle="none", marker="o", markersize=6,
                            markerfacecolor="white", markeredgecolor=MUTED, zorder=3, label="fine-tuning validation")
                ax_acc.legend(loc="lower left", fontsize=7.5)
            for x, v in acc + val:
                ax_acc.annotate(f"{v:.2f} %", (x, v), textcoords="offset points", xytext=(0, 7), ha="center",
                                fontsize=8, color=INK)
            values = [v for _, v in acc + val]
            lo, hi = min(values), max(values)
            pad = max(1.0, (hi - lo) * 0.6)
            ax_acc.set_ylim(max(0.0, lo - pad), min(100.0, hi + pad) + 0.5)
            ax_acc.set_ylabel("%")
        else:
            ax_acc.text(0.5, 0.5, "accuracy not measured (no --data)", transform=ax_acc.transAxes, ha="center",
                        color=MUTED)
            ax_acc.set_yticks([])
        for ax in (ax_size, ax_acc):
            for tick in ax.get_xticklabels():
                tick.set_fontsize(8)
        return _to_svg(fig, title=title)


def layer_bars(names: Sequence[str], values: Sequence[float], *, title: str, xlabel: str,
               percent: bool = False, reference: float | None = None, reference_label: str = "",
               worse_when_high: bool = True, highlight: bool = True) -> str:
    """Horizontal bars, one per layer (sparsity, quantization error, ...), in model order.

    Args:
        names: layer names, top to bottom.
        values: one value per layer (fractions when ``percent``).
        title: chart title.
        xlabel: axis label.
        percent: show values as percentages.
        reference: optional vertical line (e.g. the requested sparsity).
        reference_label: legend text of the reference line.
        worse_when_high: which end is bad: the largest values (True) or, for metrics such as SQNR,
            the smallest.
        highlight: colour the worst quarter of the bars (at least four bars, not for percentages).
    """
    import matplotlib

    scale = 100.0 if percent else 1.0
    vals = [scale * float(v) for v in values]
    n = len(vals)
    with matplotlib.rc_context(_RC):
        fig = _figure(8.6, max(1.4, 0.3 * n + 0.9))
        ax = fig.subplots()
        ys = list(range(n))[::-1]
        colors = [BLUE] * n
        if highlight and n >= 4 and not percent:
            ranked = sorted(range(n), key=lambda i: vals[i], reverse=worse_when_high)
            for i in ranked[: max(1, n // 4)]:
                colors[i] = AMBER
        ax.barh(ys, vals, color=colors, height=0.62, zorder=2)
        ax.set_yticks(ys, [str(x) for x in names])
        span = max((abs(v) for v in vals), default=1.0) or 1.0
        for y, v in zip(ys, vals):
            ax.text(v + span * 0.01 if v >= 0 else v - span * 0.01, y,
                    f"{v:.1f} %" if percent else f"{v:.3g}", va="center", ha="left" if v >= 0 else "right",
                    fontsize=8, color=INK, bbox=_LABEL_BOX, zorder=4)
        if reference is not None:
            ax.axvline(scale * reference, color=RED, linewidth=1.2, linestyle="--", zorder=3,
                       label=reference_label or None)
            if reference_label:
                ax.legend(loc="lower right", fontsize=8)
        if percent:
            ax.set_xlim(0, 108)
        else:
            lo = min(0.0, min(vals, default=0.0))
            ax.set_xlim(lo * 1.15, max(vals, default=1.0) * 1.15 if max(vals, default=0.0) > 0 else 1.0)
        ax.set_xlabel(xlabel)
        ax.set_title(title)
        ax.grid(axis="y", visible=False)
        return _to_svg(fig, title=title)


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def _time_unit(max_ms: float) -> tuple[float, str]:
    """Scale and label for a time axis: microseconds below 0.1 ms, else milliseconds."""
    return (1000.0, "µs") if max_ms < 0.1 else (1.0, "ms")


def latency_distribution(*, samples_ms: Sequence[float] | None = None,
                         percentiles: dict[str, float] | None = None, title: str = "Latency per run",
                         compare_samples_ms: Sequence[float] | None = None,
                         labels: tuple[str, str] = ("this model", "other model"), width: float = 4.3) -> str:
    """Histogram of per-run latencies, or (without raw samples) the percentiles as bars.

    The histogram spans the bulk of the runs (up to the 99th percentile plus some margin): a few
    runs interrupted by the OS can be a thousand times slower than the median and would squash
    everything else into one bar; how many runs are left out is written on the chart.
    ``compare_samples_ms`` overlays a second model's runs (an A/B ``--compare`` benchmark).
    """
    import matplotlib

    with matplotlib.rc_context(_RC):
        fig = _figure(width, 2.7)
        ax = fig.subplots()
        if samples_ms:
            raw_all = [float(v) for v in samples_ms] + [float(v) for v in compare_samples_ms or []]
            k, unit = _time_unit(_quantile(sorted(raw_all), 0.99))
            data = sorted(float(v) * k for v in samples_ms)
            other = sorted(float(v) * k for v in compare_samples_ms) if compare_samples_ms else []
            both = sorted(data + other)
            lo = both[0]
            p50_all, p99_all = _quantile(both, 0.5), _quantile(both, 0.99)
            hi = max(p99_all + (p99_all - p50_all) * 0.5, lo * 1.001 + 1e-9)
            bins = [lo + (hi - lo) * i / 40 for i in range(41)]
            hidden = sum(1 for v in both if v > hi)
            ax.hist([v for v in data if v <= hi], bins=bins, color=BLUE, alpha=0.85 if other else 0.95, zorder=2,
                    label=labels[0] if other else None)
            if other:
                ax.hist([v for v in other if v <= hi], bins=bins, color=AMBER, alpha=0.55, zorder=2, label=labels[1])
            ax.set_ylabel("runs")
            p50, p90 = _quantile(data, 0.5), _quantile(data, 0.9)
            ax.axvline(p50, color=TEAL, linewidth=1.5, label=f"p50 {p50:.3g} {unit}", zorder=3)
            if not other:
                ax.axvline(p90, color=AMBER, linewidth=1.5, linestyle="--", label=f"p90 {p90:.3g} {unit}", zorder=3)
            else:
                ax.axvline(_quantile(other, 0.5), color=RED, linewidth=1.5, linestyle="--",
                           label=f"p50 {_quantile(other, 0.5):.3g} {unit}", zorder=3)
            ax.legend(loc="upper right", fontsize=7.5)
            if hidden:
                slowest = max(raw_all)
                slowest_text = f"{slowest * 1000:.3g} µs" if slowest < 0.1 else (
                    f"{slowest:.3g} ms" if slowest < 1000 else f"{slowest / 1000:.3g} s")
                ax.text(0.99, 0.02, f"{hidden} slower run{'s' if hidden != 1 else ''} (up to "
                        f"{slowest_text}) not shown", transform=ax.transAxes, ha="right", va="bottom",
                        fontsize=7.5, color=MUTED, bbox=_LABEL_BOX)
            ax.set_xlim(lo - (hi - lo) * 0.02, hi)
            ax.set_xlabel("µs per run" if unit == "µs" else "ms per run")
        else:
            raw = {k: float(percentiles[k]) for k in ("min", "p50", "p90", "p99")
                   if (percentiles or {}).get(k) is not None}
            scale, unit = _time_unit(max(raw.values(), default=1.0))
            names = list(raw)
            values = [raw[k] * scale for k in names]
            colors = [TEAL if k == "p50" else BLUE for k in names]
            ax.bar(names, values, color=colors, width=0.55, zorder=2)
            for x, v in enumerate(values):
                ax.text(x, v, f"{v:.3g}", ha="center", va="bottom", fontsize=8, color=INK)
            ax.set_ylim(0, max(values, default=1.0) * 1.2)
            ax.set_ylabel(unit)
            ax.grid(axis="x", visible=False)
        ax.set_title(title)
        return _to_svg(fig, title=title)


def thread_scaling(threads: Sequence[int], p50_ms: Sequence[float], *, p90_ms: Sequence[float] | None = None,
                   title: str = "Latency by thread count", width: float = 4.3) -> str:
    """Median (and p90) latency against the interpreter's thread count."""
    import matplotlib

    with matplotlib.rc_context(_RC):
        fig = _figure(width, 2.7)
        ax = fig.subplots()
        scale, unit = _time_unit(max(list(p50_ms) + list(p90_ms or [])))
        p50_ms = [v * scale for v in p50_ms]
        p90_ms = [v * scale for v in p90_ms] if p90_ms else None
        ax.plot(threads, p50_ms, marker="o", color=BLUE, linewidth=1.8, label="p50", zorder=3)
        if p90_ms:
            ax.plot(threads, p90_ms, marker="o", color=AMBER, linewidth=1.2, linestyle="--", label="p90", zorder=3)
        for t, v in zip(threads, p50_ms):
            ax.annotate(f"{v:.4g}", (t, v), textcoords="offset points", xytext=(0, -13), ha="center", fontsize=8,
                        color=INK)
        ax.set_xticks(list(threads))
        ax.margins(x=0.12)
        ax.set_xlabel("threads")
        ax.set_ylabel(unit)
        ax.set_ylim(0, max(list(p50_ms) + list(p90_ms or [])) * 1.3)
        ax.legend(loc="upper right", fontsize=8)
        ax.set_title(title)
        return _to_svg(fig, title=title)


def budget_bars(bars: Sequence[Bar], *, title: str = "Use of the target's budgets") -> str:
    """One horizontal bar per budget: value as a share of its limit, a line at 100 %."""
    import matplotlib

    with matplotlib.rc_context(_RC):
        fig = _figure(8.6, max(1.3, 0.42 * len(bars) + 0.9))
        ax = fig.subplots()
        ys = list(range(len(bars)))[::-1]
        shares = [100.0 * b.value / b.limit if b.limit else 0.0 for b in bars]
        colors = [RED if s > 100 else (AMBER if s > 85 else TEAL) for s in shares]
        ax.barh(ys, [min(s, 150.0) for s in shares], color=colors, height=0.55, zorder=2)
        ax.axvline(100, color=INK, linewidth=1.0, linestyle="--", zorder=3)
        for y, b, s in zip(ys, bars, shares):
            if b.limit:
                label = f"{b.text} ({s:.0f} %)" if b.text else f"{s:.0f} % of budget"
            else:
                label = b.text or "no budget"
            ax.text(min(s, 150.0) + 2, y, label, va="center", fontsize=8, color=INK, bbox=_LABEL_BOX, zorder=4)
        ax.set_yticks(ys, [b.label for b in bars])
        ax.set_xlim(0, max(160.0, min(max(shares, default=0.0), 150.0) + 60))
        ax.set_xlabel("% of budget (dashed line = limit)")
        ax.grid(axis="y", visible=False)
        ax.set_title(title)
        return _to_svg(fig, title=title)


def pareto_front(points: Sequence[Point], *, lower_x_better: bool = True) -> list[Point]:
    """The points not dominated by any other (higher y is better; lower x is better by default)."""
    def better_or_equal(a: Point, b: Point) -> bool:
        x_ok = a.x <= b.x if lower_x_better else a.x >= b.x
        return x_ok and a.y >= b.y

    front = [p for p in points
             if not any(better_or_equal(q, p) and (q.x != p.x or q.y != p.y) for q in points)]
    return sorted(front, key=lambda p: p.x)


def pareto_scatter(points: Sequence[Point], *, xlabel: str, ylabel: str = "accuracy (%)", title: str,
                   y_percent: bool = True, width: float = 4.3) -> str:
    """Scatter of candidates with the Pareto front (best trade-offs) joined and highlighted."""
    import matplotlib

    front = pareto_front(points)
    on_front = {(p.label, p.x, p.y) for p in front}
    scale = 100.0 if y_percent else 1.0
    with matplotlib.rc_context(_RC):
        fig = _figure(width, 3.1)
        ax = fig.subplots()
        others = [p for p in points if (p.label, p.x, p.y) not in on_front]
        if others:
            ax.scatter([p.x for p in others], [scale * p.y for p in others], color=BLUE_LIGHT, s=28, zorder=2,
                       label="dominated")
        ax.plot([p.x for p in front], [scale * p.y for p in front], color=TEAL, marker="o", linewidth=1.5,
                markersize=6, zorder=3, label="Pareto front")
        for p in points:
            ax.annotate(p.label, (p.x, scale * p.y), textcoords="offset points", xytext=(5, 4), fontsize=7.5,
                        color=INK)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.margins(x=0.18, y=0.15)
        ax.legend(loc="lower right", fontsize=7.5)
        ax.set_title(title)
        return _to_svg(fig, title=title)
