"""HTML pages of the ``inspect``, ``benchmark``, ``validate`` and ``check`` documents."""
from __future__ import annotations

import os
from typing import Any

from . import facts, sections
from .facts import NOT_MEASURED, is_number, obj, seq, source_label
from .htmlkit import (NO, YES, chip, dig, esc, figure, first, kv_table, missing, model_path, note, page,
                      plot, section, table, tile, tiles, why)
from .markdown import fmt_bytes, fmt_pct


def _name(doc: Any, default: str = "model.tflite") -> str:
    return os.path.basename(model_path(doc) or default)


def _verdict_or_none(doc: dict[str, Any]) -> str | None:
    return facts.verdict(doc) if ("passed" in doc or doc.get("error")) else None


# ------------------------------------------------------------------------------------------------
# inspect
# ------------------------------------------------------------------------------------------------
def _count(n: float) -> str:
    for div, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if n >= div:
            return f"{n / div:.3g}{suffix}"
    return f"{n:.0f}"


def _fits(value: Any) -> str:
    if value is None:
        return "—"
    return YES if value else NO


def _limit(entry: dict[str, Any], *keys: str) -> float | None:
    """The smallest of the named limits that is set (hardware size or budget)."""
    values = [dig(entry, "limits", k) for k in keys] + [entry.get(k) for k in keys if k.startswith("max_")]
    values = [float(v) for v in values if is_number(v) and v]
    return min(values) if values else None


def targets_section(doc: dict[str, Any]) -> str:
    """Per-target fit: compatibility, unsupported ops, latency estimate, flash/RAM against limits."""
    from . import plots

    targets = doc.get("targets") if isinstance(doc.get("targets"), dict) else {}
    if not targets:
        return section("Targets", missing("Per-target fit", "pass --target NAME (repeatable)"), anchor="targets")
    rows, lat_names, lat_vals, bars, issues = [], [], [], [], []
    for name, t in targets.items():
        t = t or {}
        fits = obj(t, "fits")
        problems = list(seq(t, "unsupported_ops"))
        fallback = list(seq(t, "cpu_fallback_ops"))
        rows.append([f"<strong>{esc(name)}</strong>", esc(t.get("runtime") or ""), YES if t.get("compatible") else NO,
                     esc(", ".join(map(str, problems)) or "—") + (
                         f'<br><span class="missing">CPU fallback: {esc(", ".join(map(str, fallback)))}</span>'
                         if fallback else ""),
                     f"{facts.fmt_ms(t['latency_ms'])} {chip(t.get('latency_source'))}"
                     if is_number(t.get("latency_ms")) else NOT_MEASURED,
                     _fits(fits.get("flash")), _fits(fits.get("ram"))])
        issues += [f"{name}: {i}" for i in seq(t, "issues")]
        if is_number(t.get("latency_ms")):
            lat_names.append(name)
            lat_vals.append(float(t["latency_ms"]))
        bars += sections.memory_bars(t, size_bytes=doc.get("size_bytes"), prefix=f"{name}: ")
    parts = [table(["target", "runtime", "compatible", "unsupported ops", "latency", "fits flash", "fits RAM"],
                   rows, num=(4,))]
    if issues:
        parts.append("<h3>Issues</h3><ul class=\"notes\">" + "".join(f"<li>{esc(i)}</li>" for i in issues) + "</ul>")
    charts = []
    if lat_vals:
        sources = sorted({source_label(obj(targets, n).get("latency_source")) for n in lat_names})
        charts.append(figure(plot(plots.layer_bars, lat_names, lat_vals, title="Latency per target", xlabel="ms",
                                  highlight=False),
                             esc("Source: " + ", ".join(sources) + ". An estimate comes from the target's "
                                 "coefficients; measure with edgekit benchmark.")))
    if bars:
        charts.append(figure(plot(plots.budget_bars, bars, title="Memory against each target's limits"),
                             "Flash holds the model file and the runtime's code; RAM holds the tensor arena and "
                             "the runtime's own memory."))
    parts += charts
    return section("Targets", *parts, anchor="targets")


def render_inspect(doc: dict[str, Any]) -> str:
    """``edgekit inspect``: size, MACs, arena, per-target compatibility, latency estimates, op table."""
    targets = doc.get("targets") if isinstance(doc.get("targets"), dict) else {}
    ops = [o for o in seq(doc, "ops") if isinstance(o, dict)]
    size = doc.get("size_bytes")
    items = [
        tile("Size", fmt_bytes(size) if is_number(size) else NOT_MEASURED,
             esc(f"{doc.get('quantization') or ''} · gzipped {fmt_bytes(doc.get('gzip_bytes'))}")
             if is_number(doc.get("gzip_bytes")) else esc(doc.get("quantization") or "")),
        tile("MACs", _count(doc["macs"]) if is_number(doc.get("macs")) else NOT_MEASURED,
             f"{int(doc['macs']):,} multiply-accumulates" if is_number(doc.get("macs")) else ""),
        tile("Tensor arena", fmt_bytes(doc.get("arena_bytes")) if is_number(doc.get("arena_bytes")) else NOT_MEASURED,
             chip(doc.get("arena_source"))),
        tile("Operators", str(sum(int(o.get("count") or 0) for o in ops)) if ops else NOT_MEASURED,
             f"{len(ops)} kinds" if ops else ""),
    ]
    if targets:
        ok = sum(1 for t in targets.values() if isinstance(t, dict) and t.get("compatible"))
        items.append(tile("Targets", f"{ok} of {len(targets)}", "compatible",
                          tone="passed" if ok == len(targets) else "failed"))
    io_rows = []
    for kind in ("inputs", "outputs"):
        for t in doc.get(kind) or []:
            if isinstance(t, dict):
                io_rows.append([kind[:-1], f"<code>{esc(t.get('name'))}</code>", esc(t.get("shape")),
                                esc(t.get("dtype")), esc(t.get("scale")), esc(t.get("zero_point"))])
    layers = sections.collect_layers(doc)
    body = [
        why(doc), tiles(items), targets_section(doc),
        section("Operators", sections.op_table(doc), anchor="ops"),
        section("Inputs and outputs", table(["", "name", "shape", "dtype", "scale", "zero point"], io_rows),
                anchor="io") if io_rows else "",
        sections.checks_section(doc) if doc.get("checks") else "",
        sections.layers_section(layers) if layers else "",
        sections.repro_section(doc, extra=[("arena detail", ", ".join(
            f"{k} {v:,}" for k, v in (obj(doc, "arena_detail")).items() if is_number(v)) or None),
            ("minimum runtime version", doc.get("min_runtime_version"))]),
    ]
    return page(title=f"edgekit inspect: {_name(doc)}", heading=f"Inspect {_name(doc)}",
                subtitle=esc(model_path(doc) or ""), verdict=_verdict_or_none(doc), body=body, doc=doc)


# ------------------------------------------------------------------------------------------------
# benchmark
# ------------------------------------------------------------------------------------------------
def render_benchmark(doc: Any) -> str:
    """``edgekit benchmark``: one result or a list (several hosts / thread counts), A/B comparisons."""
    entries = sections.benchmark_entries(doc)
    meta = doc if isinstance(doc, dict) else {}
    measured = [e for e in entries if "p50" in sections.percentiles(e)]
    best = min(measured, key=lambda e: sections.percentiles(e)["p50"], default=None)
    items = []
    if best:
        p = sections.percentiles(best)
        items.append(tile("Latency p50", facts.fmt_ms(p["p50"]), f"{chip(best.get('source'))} "
                          f"{esc(best.get('threads'))} thread(s)" + (" · fastest" if len(measured) > 1 else "")))
        if "p99" in p:
            items.append(tile("Latency p99", facts.fmt_ms(p["p99"]),
                              f"p90 {facts.fmt_ms(p['p90'])}" if "p90" in p else ""))
        if is_number(best.get("init_ms")):
            items.append(tile("Init", f"{best['init_ms']:.1f} ms", "load + allocate"))
        if is_number(best.get("peak_rss_mb")):
            items.append(tile("Peak RSS", f"{best['peak_rss_mb']:.1f} MB", "whole process"))
        items.append(tile("Runtime", esc(facts.runtime_label(best.get("runtime"))),
                          esc(" · ".join(x for x in (str(best.get("runtime_version") or ""),
                                                     "XNNPACK" if best.get("xnnpack") else "") if x))))
        device = best.get("device") if isinstance(best.get("device"), dict) else {}
        items.append(tile("Machine", esc(first(best.get("host"), device.get("hostname"), best.get("machine"), "—")),
                          esc(" · ".join(str(x) for x in (device.get("cpu_model"), device.get("cores") and
                                                          f"{device['cores']} cores") if x))))
    else:
        items.append(tile("Latency", NOT_MEASURED, "no run finished"))
    parts = [sections.latency_charts(entries)]
    if entries:
        parts += [sections.benchmark_table(entries), sections.compare_table(entries)]
    parts = [p for p in parts if p]
    first_entry = entries[0] if entries else {}
    body = [why(meta), tiles(items),
            section("Latency", *parts, anchor="latency") if parts else
            section("Latency", missing("Latency", "no benchmark run finished")),
            sections.checks_section(meta) if meta.get("checks") else "",
            sections.repro_section(first_entry, extra=[
                ("stopped by", first_entry.get("stopped_by")), ("XNNPACK", first_entry.get("xnnpack")),
                ("timer overhead µs", first_entry.get("timer_overhead_us"))])]
    return page(title=f"edgekit benchmark: {_name(first_entry or meta)}",
                heading=f"Benchmark {_name(first_entry or meta)}", subtitle=esc(model_path(first_entry or meta) or ""),
                verdict=_verdict_or_none(meta), body=body, doc=doc)


# ------------------------------------------------------------------------------------------------
# validate / check
# ------------------------------------------------------------------------------------------------
def _baseline_metrics(doc: dict[str, Any]) -> tuple[dict[str, Any], str]:
    for key, label in (("baseline_metrics", "baseline"), ("reference_metrics", "reference")):
        if isinstance(doc.get(key), dict):
            return doc[key], label
    base = doc.get("baseline")
    if isinstance(base, dict) and isinstance(base.get("metrics"), dict):
        return base["metrics"], "baseline"
    return {}, "baseline"


def metrics_section(doc: dict[str, Any]) -> str:
    """Metrics of this model next to the baseline / reference, with the change; per-class table."""
    metrics = doc.get("metrics") if isinstance(doc.get("metrics"), dict) else {}
    if not metrics:
        return section("Metrics", missing("Metrics", "pass --data to measure them"), anchor="metrics")
    base, label = _baseline_metrics(doc)
    rows = []
    for k, v in metrics.items():
        if isinstance(v, (dict, list)) or k == "samples":
            continue
        unit = facts.check_unit(k)
        b = base.get(k)
        if unit == "fraction" and is_number(v) and is_number(b):
            change = f"{100 * (v - b):+.2f} pp"
        else:
            change = f"{v - b:+.3g}" if is_number(v) and is_number(b) else ""
        rows.append([esc(k), facts.fmt_value(v, unit), facts.fmt_value(b, unit) if b is not None else "—",
                     esc(change)])
    parts = [table(["metric", "this model", label, "change"], rows, num=(1, 2, 3))]
    per_class = [c for c in seq(metrics, "per_class") if isinstance(c, dict)]
    if per_class and len(per_class) <= 50:
        parts.append("<h3>Per class</h3>" + table(
            ["class", "precision", "recall", "F1", "support"],
            [[esc(c.get("name", c.get("class"))), fmt_pct(c.get("precision")), fmt_pct(c.get("recall")),
              fmt_pct(c.get("f1")), esc(c.get("support"))] for c in per_class], num=(1, 2, 3, 4)))
    samples = first(metrics.get("samples"), dig(doc, "data", "samples"))
    if samples is not None:
        parts.append(note(f"{esc(samples)} samples of {esc(dig(doc, 'data', 'spec') or 'the data')}"
                          f" ({esc(dig(doc, 'data', 'split') or 'test')} split)."))
    return section("Metrics", *parts, anchor="metrics")


def parity_section(doc: dict[str, Any]) -> str:
    """Agreement with the reference model: top-1 agreement, SQNR, output differences, worst inputs."""
    parity = doc.get("parity") if isinstance(doc.get("parity"), dict) else None
    if not parity:
        return ""
    ref = parity.get("reference") if isinstance(parity.get("reference"), dict) else {}
    items = [(k, v) for k, v in parity.items() if not isinstance(v, (dict, list))]
    if ref:
        items.insert(0, ("reference", ref.get("path")))
    parts = [kv_table(items)]
    worst = [w for w in seq(parity, "worst_inputs") if isinstance(w, dict)]
    if worst:
        keys = [k for k in worst[0] if not isinstance(worst[0][k], (dict, list))]
        parts.append("<h3>Inputs that disagree most</h3>" + table(
            keys, [[esc(facts.fmt_value(w.get(k))) for k in keys] for w in worst], num=range(len(keys))))
    return section("Parity with the reference", *parts, anchor="parity")


def latency_gate_section(doc: dict[str, Any]) -> str:
    """``check``'s latency comparison against the reference model, or its emulation result."""
    parts = []
    lat = doc.get("latency")
    if isinstance(lat, dict) and lat:
        parts.append("<h3>Latency</h3>" + kv_table((k, v) for k, v in lat.items() if not isinstance(v, (dict, list))))
    emu = doc.get("emulation")
    if isinstance(emu, dict) and emu:
        parts.append("<h3>Emulation</h3>" + kv_table((k, v) for k, v in emu.items() if not isinstance(v, (dict, list))))
    return section("Latency and emulation", *parts, anchor="latency") if parts else ""


def render_validate(doc: dict[str, Any], *, kind: str = "validate") -> str:
    """``edgekit validate`` / ``edgekit check``: metrics vs baseline, parity, per-layer error, checks."""
    metrics = doc.get("metrics") if isinstance(doc.get("metrics"), dict) else {}
    parity = doc.get("parity") if isinstance(doc.get("parity"), dict) else {}
    model = doc.get("model") if isinstance(doc.get("model"), dict) else {}
    v = facts.verdict(doc)
    items = []
    if kind == "check" or "passed" in doc or doc.get("error"):
        checks = [c for c in seq(doc, "checks") if isinstance(c, dict)]
        counts = {s: sum(1 for c in checks if facts.check_status(c) == s) for s in ("passed", "failed", "skipped")}
        sub = f"{counts['passed']} passed · {counts['failed']} failed" + (
            f" · {counts['skipped']} not measured" if counts["skipped"] else "")
        items.append(tile("Verdict", esc(v.upper()), sub if checks else "no checks", tone=v))
    base, label = _baseline_metrics(doc)
    if is_number(metrics.get("accuracy")):
        sub = f"{label} {fmt_pct(base['accuracy'])}" if is_number(base.get("accuracy")) else ""
        items.append(tile("Accuracy", fmt_pct(metrics["accuracy"]), esc(sub)))
    for key, title, fmt in (("top1_agreement", "Top-1 agreement", fmt_pct),
                            ("sqnr_db", "Output SQNR", lambda x: f"{x:.1f} dB")):
        if is_number(parity.get(key)):
            items.append(tile(title, fmt(parity[key]), "vs the reference model"))
    if is_number(model.get("size_bytes")):
        items.append(tile("Model", fmt_bytes(model["size_bytes"]), esc(model.get("quantization") or "")))
    layers = sections.collect_layers(doc)
    body = [
        why(doc), tiles(items) if items else "",
        sections.checks_section(doc, title="Checks") if doc.get("checks") or kind == "check" else "",
        metrics_section(doc),
        parity_section(doc),
        sections.layers_section(layers, error_hint="", worst=sections.worst_layers(doc)) if layers else (
            section("Layers", missing("Per-layer quantization error", "pass --reference (the float model)"))
            if kind == "validate" and model.get("quantization") not in (None, "float32") else ""),
        latency_gate_section(doc),
        sections.repro_section(doc, extra=[("baseline", dig(doc, "baseline", "path")),
                                           ("baseline created", dig(doc, "baseline", "created"))]),
    ]
    heading = ("Check " if kind == "check" else "Validate ") + _name(doc)
    return page(title=f"edgekit {kind}: {_name(doc)}", heading=heading, subtitle=esc(model_path(doc) or ""),
                verdict=v if v != "done" else None, body=body, doc=doc)


