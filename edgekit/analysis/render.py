"""Readable terminal output (rich) for ``edgekit inspect`` and ``edgekit targets``."""
from __future__ import annotations

from typing import Any, Iterable, Optional

from rich import box
from rich.console import Console
from rich.table import Table


def human_bytes(n: Optional[float]) -> str:
    """``1536`` -> ``1.5 KiB``."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def human_count(n: Optional[float]) -> str:
    """``569_000_000`` -> ``569.0 M``."""
    if n is None:
        return "-"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f}"


def _console(console: Optional[Console]) -> Console:
    return console or Console(highlight=False, soft_wrap=False)


def _yes(flag: Optional[bool]) -> str:
    return "-" if flag is None else ("[green]yes[/]" if flag else "[red]no[/]")


def print_inspect(doc: dict[str, Any], *, console: Optional[Console] = None) -> None:
    """Render the inspect document as a summary, ops, I/O and per-target tables."""
    con = _console(console)
    con.print(f"[bold]{doc.get('path') or 'model'}[/]  sha256 {doc['sha256'][:16]}…")
    con.print(f"size {human_bytes(doc['size_bytes'])} (gzip {human_bytes(doc['gzip_bytes'])}), weights "
              f"{human_bytes(doc['weights_bytes'])}, quantization [bold]{doc['quantization']}[/], "
              f"{human_count(doc['macs'])} MACs, tensor arena {human_bytes(doc['arena_bytes'])} "
              f"({doc['arena_source']})")
    detail = doc.get("arena_detail") or {}
    if detail.get("tflm_error"):
        con.print(f"[dim]TFLite Micro could not load the model: {detail['tflm_error']}[/]")
    if doc.get("custom_ops"):
        con.print(f"custom ops: [yellow]{', '.join(doc['custom_ops'])}[/]")

    ops = Table(title="Operators", title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("op", "version", "count", "MACs"):
        ops.add_column(col, justify="right" if col != "op" else "left", no_wrap=True)
    macs = {r["name"]: r["macs"] for r in doc.get("macs_by_op", [])}
    seen = set()
    for row in doc["ops"]:
        shown = macs.get(row["name"]) if row["name"] not in seen else None
        seen.add(row["name"])
        ops.add_row(row["name"], str(row["version"]), str(row["count"]), human_count(shown) if shown else "")
    con.print(ops)

    io = Table(title="Inputs / outputs", title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("", "name", "shape", "dtype", "scale", "zero point"):
        io.add_column(col)
    for kind in ("inputs", "outputs"):
        for t in doc[kind]:
            io.add_row(kind[:-1], t["name"], str(t["shape"]), t["dtype"],
                       "" if t["scale"] is None else f"{t['scale']:.6g}" if isinstance(t["scale"], float) else "per-channel",
                       "" if t["zero_point"] is None else str(t["zero_point"]))
    con.print(io)

    tt = Table(title="Targets (latency is an estimate)", title_justify="left", box=box.SIMPLE_HEAD)
    tt.add_column("target", no_wrap=True)
    tt.add_column("ops", no_wrap=True)
    tt.add_column("latency", justify="right", no_wrap=True)
    tt.add_column("flash", justify="right", no_wrap=True)
    tt.add_column("RAM", justify="right", no_wrap=True)
    notes: list[str] = []
    for name, t in doc["targets"].items():
        fits = t["fits"]
        tt.add_row(name, "[green]supported[/]" if t["compatible"] else "[red]unsupported[/]",
                   f"~{t['latency_ms']:.3g} ms x{t['threads']}",
                   f"{human_bytes(t['flash_bytes'])} {'[green]ok[/]' if fits['flash'] else '[red]NO[/]'}",
                   f"{human_bytes(t['ram_bytes'])} {'[green]ok[/]' if fits['ram'] else '[red]NO[/]'}")
        for r in [r for r in t["ops"] if r["status"] != "supported"][:8]:
            notes.append(f"{name}: {r['name']} v{r['version']} x{r['count']} [yellow]{r['status']}[/]: {r['reason']}")
        notes.extend(f"{name}: {issue}" for issue in t.get("issues", []))
        if t.get("within_latency_budget") is False:
            notes.append(f"{name}: estimated latency over the budget of {t['limits']['max_latency_ms']} ms")
    con.print(tt)
    con.print("[dim]latency: estimated from MACs/bytes with the profile's coefficients (x threads); "
              "flash/RAM: model + runtime, arena + weights; ok/NO against the profile[/]")
    for line in notes:
        con.print("  " + line)


def print_targets(targets: Iterable[Any], *, console: Optional[Console] = None) -> None:
    """Render ``targets list``."""
    con = _console(console)
    targets = list(targets)
    table = Table(title="Target profiles", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("name", no_wrap=True)
    table.add_column("family", no_wrap=True)
    table.add_column("runtime", no_wrap=True)
    table.add_column("threads", no_wrap=True, justify="right")
    table.add_column("description", overflow="fold")
    for t in targets:
        table.add_row(t.name, t.family, t.runtime.name, str(t.threads), t.description)
    con.print(table)


def print_target(target: Any, *, console: Optional[Console] = None) -> None:
    """Render ``targets show NAME`` as the profile's YAML."""
    import yaml

    con = _console(console)
    con.print(f"[dim]# {target.source}[/]")
    con.print(yaml.safe_dump(target.model_dump(mode="json"), sort_keys=False, width=10_000), markup=False,
              soft_wrap=True)
