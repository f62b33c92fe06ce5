"""Report sections shared by several report kinds: checks, layers, latency, operators, trade-offs.

Each function takes (part of) a report document and returns HTML; sections whose data is
absent either say "not measured" (where a reader would look for them) or return ``""``.
"""
from __future__ import annotations

import os
from typing import Any

from . import facts
from .facts import NOT_MEASURED, fmt_check_value, is_number, obj, seq, source_label
from .htmlkit import (FAIL, FALLBACK, NO, PASS, YES, charts_grid, chip, dig, esc, figure, first, kv_table,
                      missing, model_path, note, notes_list, plot, section, table)
from .markdown import fmt_bytes, fmt_pct

# ------------------------------------------------------------------------------------------------
# checks and budgets
# ------------------------------------------------------------------------------------------------


def checks_section(doc: dict[str, Any], *, title: str = "Checks and budgets") -> str:
    """Every check (value, limit, result, message) and a chart of each ``<=`` check against its limit."""
    from . import plots

    checks = [c for c in (seq(doc, "checks")) if isinstance(c, dict)]
    if not checks:
        return section(title, note("No budgets were checked: the target sets none, or the run stopped "
                                   "before the checks."), anchor="checks")
    with_messages = any(c.get("message") for c in checks)
    rows = []
    for c in checks:
        name, unit, limit = str(c.get("name", "")), c.get("unit"), c.get("limit")
        op = {"<=": "≤ ", ">=": "≥ ", "<": "< ", ">": "> "}.get(str(c.get("op")), "") if limit is not None else ""
        row = [esc(name), fmt_check_value(name, c.get("value"), unit),
               op + fmt_check_value(name, limit, unit) if limit is not None else "—",
               {"passed": PASS, "failed": FAIL}.get(facts.check_status(c), NOT_MEASURED)]
        if with_messages:
            row.append(esc(c.get("message") or ""))
        rows.append(row)
    headers = ["check", "value", "limit", "result"] + (["details"] if with_messages else [])
    bars = []
    for c in checks:
        name, value, limit, unit = str(c.get("name", "")), c.get("value"), c.get("limit"), c.get("unit")
        if c.get("op") not in (None, "<=") or not (is_number(value) and is_number(limit)):
            continue
        if float(limit) > 0 and float(value) >= 0:
            text = f"{fmt_check_value(name, value, unit)} of {fmt_check_value(name, limit, unit)}"
            bars.append(plots.Bar(name, float(value), float(limit), text))
    chart = figure(plot(plots.budget_bars, bars, title="Measured value against its limit"),
                   "Each bar is the measured value as a share of its limit; "
                   "past the dashed line the limit is exceeded. Checks whose value must stay above a limit "
                   "(accuracy) are in the table only.") if bars else ""
    skipped = sum(1 for c in checks if facts.check_status(c) == "skipped")
    skipped_note = note(f"{skipped} check(s) not measured: a check without a measurement never counts as "
                        "passed.") if skipped else ""
    return section(title, table(headers, rows, num=(1, 2)), skipped_note, chart, anchor="checks")


# ------------------------------------------------------------------------------------------------
# layers
# ------------------------------------------------------------------------------------------------
_ERROR_KEYS = (("sqnr_drop_db", True, "SQNR lost at the layer, dB — higher is worse"),
               ("sqnr_db", False, "SQNR, dB — lower is worse"), ("quant_error", True, "error"),
               ("rmse", True, "RMSE"), ("mse", True, "MSE"), ("mean_abs_diff", True, "mean |diff|"),
               ("max_abs_diff", True, "max |diff|"), ("error", True, "error"))
MAX_LAYER_BARS = 60


def collect_layers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-layer rows from everywhere a report keeps them: stage metrics, ``layers``, validation."""
    merged: dict[str, dict[str, Any]] = {}
    sources: list[Any] = []
    for stage in seq(doc, "stages"):
        metrics = stage.get("metrics") if isinstance(stage, dict) else None
        if not isinstance(metrics, dict):
            continue
        per_layer = metrics.get("per_layer")  # pruning: {layer: {zeros, total, sparsity, shape}}
        if isinstance(per_layer, dict):
            sources.append([{"name": k, **v} for k, v in per_layer.items() if isinstance(v, dict)])
        sources.append(metrics.get("layers"))
    sources += [doc.get("layers"), dig(doc, "validation", "layers"), dig(doc, "parity", "layers"),
                dig(doc, "result", "layers")]
    for rows in sources:
        if isinstance(rows, dict):
            rows = rows.get("layers")
        for row in rows if isinstance(rows, list) else []:
            if isinstance(row, dict) and row.get("name") is not None:
                key = f"{row.get('index', '')}:{row['name']}" if "index" in row else str(row["name"])
                merged.setdefault(key, {}).update(row)
    return list(merged.values())


def worst_layers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The validation's ``layers.worst`` list (layers losing most SQNR), wherever it is."""
    for container in (doc.get("layers"), dig(doc, "validation", "layers")):
        if isinstance(container, dict) and isinstance(container.get("worst"), list):
            return [w for w in container["worst"] if isinstance(w, dict)]
    for stage in seq(doc, "stages"):
        w = dig(stage, "metrics", "worst_layers")
        if isinstance(w, list):
            return [x for x in w if isinstance(x, dict)]
    return []


def short_layer(row: dict[str, Any], limit: int = 34) -> str:
    """A readable layer label: the first of TFLite's fused tensor names, shortened, with its op."""
    name = str(row.get("name", "?")).split(";")[0]
    if len(name) > limit:
        name = "…" + name[-(limit - 1):]
    return f"{name} ({row['op']})" if row.get("op") else name


def _error_key(layers: list[dict[str, Any]]) -> tuple[str | None, bool, str]:
    for key, worse_high, label in _ERROR_KEYS:
        if any(is_number(r.get(key)) for r in layers):
            return key, worse_high, label
    return None, True, ""


def layers_section(layers: list[dict[str, Any]], *, requested_sparsity: float | None = None,
                   sparsity_hint: str = "", error_hint: str = "", worst: list[dict[str, Any]] | None = None) -> str:
    """Per-layer sparsity bars and per-layer quantization error bars (+ the worst layers)."""
    from . import plots

    parts = []
    sparse = [(short_layer(r), float(r["sparsity"])) for r in layers if is_number(r.get("sparsity"))]
    if sparse:
        mean = sum(v for _, v in sparse) / len(sparse)
        parts.append(figure(plot(plots.layer_bars, [n for n, _ in sparse], [v for _, v in sparse],
                                 title="Per-layer sparsity (share of zero weights)", xlabel="% zeros",
                                 percent=True, reference=requested_sparsity or None,
                                 reference_label="requested" if requested_sparsity else ""),
                            f"Mean over {len(sparse)} layer{'s' if len(sparse) != 1 else ''}: {100 * mean:.1f} %. "
                            "Zeros only shrink the gzipped "
                            "file; LiteRT runs dense kernels unless XNNPACK's sparse conditions hold."))
    elif sparsity_hint:
        parts.append(missing("Per-layer sparsity", sparsity_hint))
    decisions = [r for r in layers if isinstance(r.get("prune"), str) or isinstance(r.get("qat"), str)]
    if decisions:  # the pre-flight plan: what each layer got and why
        parts.append("<h3>What each layer got</h3>" + table(
            ["layer", "class", "params", "pruning", "clustering", "quantization"],
            [[esc(r.get("name")), esc(r.get("class") or ""), f"{r['params']:,}" if is_number(r.get("params")) else "",
              esc(r.get("prune") or ""), esc(r.get("cluster") or ""), esc(r.get("qat") or "")] for r in decisions],
            num=(2,)))
    key, worse_high, label = _error_key(layers)
    if key:
        rows = [(short_layer(r), float(r[key]) if is_number(r.get(key)) else 0.0) for r in layers
                if "sparsity" not in r or key in r]
        shown = rows[:MAX_LAYER_BARS]
        more = f" Showing the first {len(shown)} of {len(rows)} layers." if len(rows) > len(shown) else ""
        parts.append(figure(plot(plots.layer_bars, [n for n, _ in shown], [v for _, v in shown],
                                 title="Per-layer quantization error", xlabel=label,
                                 worse_when_high=worse_high),
                            "Layers in execution order; highlighted bars lose most to quantization and are the "
                            "first candidates to keep in higher precision." + more))
        if worst:
            rows_w = [[esc(short_layer(w, 60)), f"{w['sqnr_db']:.1f}" if is_number(w.get("sqnr_db")) else "exact",
                       f"{w['sqnr_drop_db']:.2f}" if is_number(w.get("sqnr_drop_db")) else "—"] for w in worst]
            parts.append("<h3>Worst layers</h3>" + table(["layer", "SQNR dB", "SQNR lost here (dB)"], rows_w,
                                                        num=(1, 2)))
    elif error_hint:
        parts.append(missing("Per-layer quantization error", error_hint))
    return section("Layers", *parts, anchor="layers") if parts else ""


# ------------------------------------------------------------------------------------------------
# latency (benchmark documents)
# ------------------------------------------------------------------------------------------------
def benchmark_entries(doc: Any) -> list[dict[str, Any]]:
    """A benchmark document as a list of per-(host, threads) results."""
    if isinstance(doc, list):
        return [d for d in doc if isinstance(d, dict)]
    if isinstance(doc, dict):
        for key in ("results", "entries"):
            if isinstance(doc.get(key), list):
                return [d for d in doc[key] if isinstance(d, dict)]
        return [doc]
    return []


def samples(entry: dict[str, Any]) -> list[float] | None:
    """Per-run latencies (ms) of one result, when recorded."""
    for key in ("samples_ms", "latencies_ms", "times_ms"):
        values = entry.get(key)
        if isinstance(values, list) and values and all(is_number(v) for v in values):
            return [float(v) for v in values]
    return None


def percentiles(entry: dict[str, Any]) -> dict[str, float]:
    """``{min, p50, p90, p99, mean, ...}`` of one result (``latency_ms`` dict or ``p50_ms`` keys)."""
    lat = entry.get("latency_ms")
    if isinstance(lat, dict):
        return {k: float(v) for k, v in lat.items() if is_number(v)}
    out = {}
    for key in ("min", "p50", "p90", "p99", "mean", "max"):
        v = first(entry.get(f"{key}_ms"), entry.get(key))
        if is_number(v):
            out[key] = float(v)
    return out


def _where(entry: dict[str, Any]) -> str:
    return str(first(entry.get("host"), dig(entry, "device", "hostname"), entry.get("machine"), "host"))


def latency_charts(entries: list[dict[str, Any]]) -> str:
    """Latency histograms (per-run samples) or a percentile strip, thread scaling, A/B overlays."""
    from . import plots

    specs: list[tuple[Any, dict[str, Any], str]] = []  # (chart function, arguments, caption)
    with_samples = [e for e in entries if samples(e)]
    shown = with_samples[:4] or [e for e in entries if percentiles(e)][:1]
    for entry in shown:
        runs, pct = samples(entry), percentiles(entry)
        other = entry.get("compare") if isinstance(entry.get("compare"), dict) else None
        who = ", ".join(x for x in (_where(entry), f"{entry['threads']} thread(s)"
                                    if entry.get("threads") is not None else "") if x)
        labels = (os.path.basename(model_path(entry) or "this model"),
                  os.path.basename(model_path(other) or "other model") if other else "")
        caption = (f"{len(runs):,} runs, {source_label(entry.get('source'))}." if runs else
                   "Percentiles only (per-run times were not kept; benchmark with --samples to see the "
                   f"distribution), {source_label(entry.get('source'))}.")
        specs.append((plots.latency_distribution,
                      {"samples_ms": runs, "percentiles": None if runs else pct,
                       "title": f"Latency per run — {who}" if who else "Latency per run",
                       "compare_samples_ms": samples(other) if other else None, "labels": labels}, caption))
    groups: dict[str, list[tuple[int, float, float | None]]] = {}
    for entry in entries:
        pct = percentiles(entry)
        if is_number(entry.get("threads")) and "p50" in pct:
            key = f"{_where(entry)} · {os.path.basename(model_path(entry) or '')}".rstrip(" ·")
            groups.setdefault(key, []).append((int(entry["threads"]), pct["p50"], pct.get("p90")))
    for key, rows in groups.items():
        rows = sorted(set(rows))
        if len({t for t, _, _ in rows}) < 2:
            continue
        p90 = [r[2] for r in rows]
        best = min(rows, key=lambda r: r[1])
        specs.append((plots.thread_scaling,
                      {"threads": [r[0] for r in rows], "p50_ms": [r[1] for r in rows],
                       "p90_ms": p90 if all(v is not None for v in p90) else None,
                       "title": f"Thread scaling — {key}"},
                      f"Fastest at {best[0]} thread(s): {facts.fmt_ms(best[1])} median."))
    width = 8.6 if len(specs) == 1 else 4.3
    return charts_grid([figure(plot(fn, width=width, **kwargs), esc(caption)) for fn, kwargs, caption in specs])


def benchmark_table(entries: list[dict[str, Any]]) -> str:
    """One row per result: where, runtime, threads, runs, percentiles, init, memory, source."""
    rows = []
    for b in entries:
        p = percentiles(b)
        rows.append([esc(_where(b)), esc(" ".join(str(x) for x in (facts.runtime_label(b.get("runtime")),
                                                                  b.get("runtime_version")) if x)),
                     esc(b.get("threads")), f"{b['runs']:,}" if is_number(b.get("runs")) else "—",
                     *(facts.fmt_ms(p[k]) if k in p else "—" for k in ("p50", "p90", "p99")),
                     facts.fmt_ms(b["init_ms"]) if is_number(b.get("init_ms")) else "—",
                     f"{b['peak_rss_mb']:.1f}" if is_number(b.get("peak_rss_mb")) else "—",
                     chip(b.get("source"))])
    return table(["where", "runtime", "threads", "runs", "p50", "p90", "p99", "init", "peak RSS MB", "source"],
                 rows, num=range(2, 9))


def compare_table(entries: list[dict[str, Any]]) -> str:
    """A/B comparison (``--compare``): both models' medians, the ratio, its interval and verdict."""
    rows, summaries = [], []
    for b in entries:
        other = b.get("compare")
        if not isinstance(other, dict):
            continue
        pa, pb = percentiles(b), percentiles(other)
        ci = other.get("ratio_ci")
        rows.append([esc(_where(b)), esc(b.get("threads")),
                     esc(os.path.basename(model_path(b) or "A")), facts.fmt_ms(pa.get("p50")),
                     esc(os.path.basename(model_path(other) or "B")), facts.fmt_ms(pb.get("p50")),
                     f"{other['ratio_of_medians']:.3f}" if is_number(other.get("ratio_of_medians")) else "—",
                     esc(f"{ci[0]:.3f} – {ci[1]:.3f}") if isinstance(ci, list) and len(ci) == 2 else "—",
                     esc(other.get("verdict") or "")])
        if other.get("summary"):
            summaries.append(other["summary"])
    if not rows:
        return ""
    return ("<h3>A/B comparison</h3>" + table(["where", "threads", "model A", "A p50", "model B", "B p50",
                                               "A / B", "interval", "verdict"], rows, num=(1, 3, 5, 6))
            + "".join(note(esc(s)) for s in summaries))


# ------------------------------------------------------------------------------------------------
# memory against a target's limits
# ------------------------------------------------------------------------------------------------
def _positive(x: Any) -> float | None:
    return float(x) if is_number(x) and float(x) > 0 else None


def memory_bars(entry: dict[str, Any], *, size_bytes: Any = None, prefix: str = "") -> list[Any]:
    """Bars for one target-fit entry (``inspect``'s ``targets.NAME`` / compress's ``device``).

    Flash (model + runtime code) and RAM (arena + runtime overhead) against the hardware, and the
    model file and tensor arena against the profile's budgets when it sets them.
    """
    from . import plots

    limits = obj(entry, "limits")
    bars = []

    def add(label: str, need: Any, limit: Any) -> None:
        need_v, limit_v = _positive(need), _positive(limit)
        if need_v is not None and limit_v is not None:
            bars.append(plots.Bar(f"{prefix}{label}", need_v, limit_v, f"{fmt_bytes(need_v)} of {fmt_bytes(limit_v)}"))

    add("flash (model + runtime)", first(entry.get("flash_bytes"), size_bytes), limits.get("flash_bytes"))
    add("RAM (arena + runtime)", first(entry.get("ram_bytes"), entry.get("arena_bytes")), limits.get("ram_bytes"))
    add("model size budget", size_bytes, limits.get("max_model_bytes"))
    add("tensor arena budget", entry.get("arena_bytes"), limits.get("max_arena_bytes"))
    return bars


# ------------------------------------------------------------------------------------------------
# operators
# ------------------------------------------------------------------------------------------------
def _op_status(target_entry: dict[str, Any], name: str, version: Any) -> str:
    rows = [r for r in seq(target_entry, "ops") if isinstance(r, dict) and r.get("name") == name]
    exact = [r for r in rows if r.get("version") == version] or rows
    if exact:
        statuses = {r.get("status") for r in exact}
        if "unsupported" in statuses:
            reason = next((r.get("reason") for r in exact if r.get("status") == "unsupported" and r.get("reason")), "")
            return NO + (f'<br><span class="missing">{esc(reason)}</span>' if reason else "")
        if "cpu-fallback" in statuses:
            return FALLBACK
        return YES
    unsupported = {str(u).split(" ")[0].upper() for u in seq(target_entry, "unsupported_ops")}
    return NO if name.upper() in unsupported else YES


def op_table(inspect_doc: dict[str, Any]) -> str:
    """Operators (version, count, MACs) with one support column per target."""
    ops = [o for o in (seq(inspect_doc, "ops")) if isinstance(o, dict)]
    targets = inspect_doc.get("targets") if isinstance(inspect_doc.get("targets"), dict) else {}
    if not ops:
        return missing("Operators", "the analysis found no operator list")
    macs = {m.get("name"): m.get("macs") for m in seq(inspect_doc, "macs_by_op") if isinstance(m, dict)}
    names = list(targets)
    rows = []
    for op in ops:
        name = str(op.get("name", ""))
        cells = [f"<code>{esc(name)}</code>", esc(op.get("version")), esc(op.get("count")),
                 f"{macs[name]:,}" if is_number(macs.get(name)) else "—"]
        cells += [_op_status(targets[t] or {}, name, op.get("version")) for t in names]
        rows.append(cells)
    return table(["operator", "version", "count", "MACs", *names], rows, num=(1, 2, 3))


# ------------------------------------------------------------------------------------------------
# trade-offs (several candidates or targets)
# ------------------------------------------------------------------------------------------------
def tradeoff_section(points: list[dict[str, Any]], *, title: str = "Trade-offs") -> str:
    """Accuracy vs size / latency scatter with the Pareto front, for ≥ 2 candidates with accuracy."""
    from . import plots

    def pts(xkey: str, scale: float = 1.0) -> list[Any]:
        return [plots.Point(str(p["label"]), float(p[xkey]) * scale, float(p["accuracy"])) for p in points
                if is_number(p.get(xkey)) and is_number(p.get("accuracy"))]

    size, lat = pts("size_bytes", 1 / 1024), pts("latency_ms")
    width = 4.3 if len(size) >= 2 and len(lat) >= 2 else 8.6
    charts = []
    if len(size) >= 2:
        charts.append(figure(plot(plots.pareto_scatter, size, xlabel=".tflite size (KiB)", title="Accuracy vs size",
                                  width=width)))
    if len(lat) >= 2:
        charts.append(figure(plot(plots.pareto_scatter, lat, xlabel="latency p50 (ms)",
                                  title="Accuracy vs latency", width=width)))
    if not charts:
        return ""
    size_front = {p.label for p in plots.pareto_front(size)}
    lat_front = {p.label for p in plots.pareto_front(lat)}
    with_detail = any(p.get("detail") and p["detail"] != p["label"] for p in points)
    rows = []
    for p in points:
        latency = (f"{facts.fmt_ms(p['latency_ms'])} {chip(p.get('latency_source'))}"
                   if is_number(p.get("latency_ms")) else NOT_MEASURED)
        fronts = ", ".join(name for name, members in (("size", size_front), ("latency", lat_front))
                           if p["label"] in members)
        rows.append([esc(p["label"]), *([esc(p.get("detail") or "")] if with_detail else []),
                     fmt_pct(p.get("accuracy")), fmt_bytes(p.get("size_bytes")), latency, esc(fronts),
                     esc(p.get("verdict", ""))])
    headers = ["candidate", *(["settings"] if with_detail else []), "accuracy", "size", "latency",
               "best trade-off for", "verdict"]
    first_num = 2 if with_detail else 1
    return section(title, charts_grid(charts),
                   note("The Pareto front joins the candidates that no other candidate beats on both axes "
                        "(higher accuracy and smaller size, or higher accuracy and lower latency)."),
                   table(headers, rows, num=range(first_num, first_num + 3)), anchor="tradeoffs")


# ------------------------------------------------------------------------------------------------
# reproducibility
# ------------------------------------------------------------------------------------------------
def repro_section(doc: dict[str, Any], *, extra: list[tuple[str, Any]] | None = None) -> str:
    """Command, model and data hashes, versions and notes of any report document."""
    model = doc.get("model") if isinstance(doc.get("model"), dict) else {}
    data = doc.get("data") if isinstance(doc.get("data"), dict) else {}
    items: list[tuple[str, Any]] = []
    if isinstance(doc.get("command"), str) and " " in doc["command"]:
        items.append(("command", doc["command"]))
    items += [("model", model_path(doc)), ("model sha256", first(model.get("sha256"), doc.get("sha256"))),
              ("data", data.get("spec") if data else doc.get("data") if isinstance(doc.get("data"), str) else None),
              ("data fingerprint", data.get("fingerprint")), ("target", doc.get("target")),
              ("threads", doc.get("threads") if not isinstance(doc.get("threads"), list) else None)]
    items += extra or []
    rows = [(k, v) for k, v in items if v is not None and not isinstance(v, (dict, list))]
    parts = [kv_table(rows)] if rows else []
    if isinstance(doc.get("versions"), dict) and doc["versions"]:
        parts.append("<h3>Versions</h3>" + table(["tool", "version"],
                                                 [[esc(k), esc(v)] for k, v in doc["versions"].items()]))
    parts.append(notes_list(doc.get("notes")))
    parts = [p for p in parts if p]
    return section("Reproducibility", *parts, anchor="repro") if parts else ""
