"""Human-readable benchmark results for the terminal (``edgekit benchmark`` without ``--json``)."""
from __future__ import annotations

from typing import Any, Sequence


def print_benchmark(result: dict[str, Any] | Sequence[dict[str, Any]], *, file: Any = None) -> None:
    """One table row per document (host × threads), then the comparison verdicts and notes."""
    from rich.console import Console
    from rich.table import Table

    docs = [result] if isinstance(result, dict) else list(result)
    console = Console(file=file, highlight=False, soft_wrap=True)
    first = docs[0]
    sources = sorted({str(d.get("source")) for d in docs})
    title = (f"{first.get('model', {}).get('path', 'model')} · {first.get('runtime')} {first.get('runtime_version')}"
             f" · {', '.join(sources)}")
    table = Table(title=title, title_justify="left")
    with_speedup = any("speedup" in d for d in docs)
    with_host = any(d.get("host") for d in docs)
    scale, unit = (1000.0, "µs") if max(float(d["latency_ms"]["p50"]) for d in docs) < 1.0 else (1.0, "ms")

    def num(value: Any) -> str:
        if value is None:
            return "-"
        v = float(value) * scale
        return f"{v:.3g}" if v < 100 else f"{v:.0f}"

    columns = (["device"] if with_host else []) + [
        "thr", f"p50 {unit}", "95% CI", "p90", "p99", "init ms", "RSS MB", "runs"]
    for col in columns + (["speedup"] if with_speedup else []):
        table.add_column(col, justify="left" if col == "device" else "right", no_wrap=col == "95% CI")
    for d in docs:
        lat = d["latency_ms"]
        ci = d.get("p50_ci_ms")
        row = ([str(d.get("host") or "-")] if with_host else []) + [
            str(d["threads"]), num(lat["p50"]), f"{num(ci[0])}–{num(ci[1])}" if ci else "-", num(lat["p90"]),
            num(lat["p99"]), f"{float(d['init_ms']):.3g}" if d.get("init_ms") is not None else "-",
            f"{d['peak_rss_mb']:.0f}" if d.get("peak_rss_mb") is not None else "-", str(d["runs"])]
        if with_speedup:
            row.append(f"{d['speedup']:.2f}×" if d.get("speedup") else "-")
        table.add_row(*row)
    console.print(table)
    for d in docs:
        cmp = d.get("compare")
        if isinstance(cmp, dict) and cmp.get("summary"):
            prefix = f"{d.get('host') or 'here'}, {d['threads']} thread(s): " if len(docs) > 1 else ""
            console.print(f"{prefix}{cmp['summary']}", markup=False)
    seen: set[str] = set()
    for d in docs:
        dev = d.get("device") or {}
        facts = [str(x) for x in (dev.get("cpu_model"), dev.get("board")) if x]
        if dev.get("governor"):
            facts.append(f"governor {dev['governor']}")
        if dev.get("temperature_c") is not None:
            facts.append(f"{dev['temperature_c']:.0f} °C")
        where = d.get("host") or (f"emulated {d.get('target') or ''}".strip() if d.get("source") == "emulated"
                                  else "this machine")
        line = f"{where}: {', '.join(facts)}" if facts else ""
        if line and line not in seen:
            seen.add(line)
            console.print(line, style="dim", markup=False)
        for note in d.get("notes") or []:
            if note not in seen:
                seen.add(note)
                console.print(f"note: {note}", style="yellow", markup=False)
