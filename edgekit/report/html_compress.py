"""HTML page of a ``compress`` report (``report.html`` next to ``report.json``)."""
from __future__ import annotations

import json
import os
from typing import Any

from . import facts, sections
from .facts import NOT_MEASURED, is_number, obj, seq
from .htmlkit import (chip, dig, esc, figure, first, kv_table, missing, note, page, plot, section, table, tile,
                      tiles, why)
from .markdown import fmt_bytes, fmt_pct

_NOT_WATERFALL = {"load", "baseline", "validate", "benchmark", "inspect", "analysis", "preflight"}


def _stage_accuracy(metrics: dict[str, Any]) -> tuple[float | None, bool]:
    """A training stage's accuracy: on the test split when recorded, else fine-tuning's validation accuracy."""
    for key in ("accuracy", "test_accuracy", "eval_accuracy"):
        if is_number(metrics.get(key)):
            return float(metrics[key]), False
    val = dig(metrics, "fit", "final", "val_accuracy")
    return (float(val), True) if is_number(val) else (None, False)


def waterfall_steps(doc: dict[str, Any]) -> tuple[list[Any], bool]:
    """float32 → each training stage → the converted result, with size and accuracy where known.

    Returns the steps and whether any accuracy is a fine-tuning validation accuracy.
    """
    from . import plots

    base, res = obj(doc, "baseline"), obj(doc, "result")
    steps, used_val = [], False
    if base.get("tflite_float32_bytes") is not None or base.get("accuracy") is not None:
        steps.append(plots.Step("float32", base.get("tflite_float32_bytes"), base.get("tflite_float32_gzip_bytes"),
                                base.get("accuracy")))
    for stage in seq(doc, "stages"):
        if not isinstance(stage, dict):
            continue
        name = str(stage.get("name", ""))
        if name in _NOT_WATERFALL or name.startswith("convert"):
            continue
        m = obj(stage, "metrics")
        acc, is_val = _stage_accuracy(m)
        used_val |= is_val and acc is not None
        steps.append(plots.Step(name, m.get("tflite_bytes"), m.get("tflite_gzip_bytes"), acc, test_split=not is_val))
    if res.get("tflite_bytes") is not None or res.get("accuracy") is not None:
        steps.append(plots.Step(str(res.get("quantization") or "result"), res.get("tflite_bytes"),
                                res.get("tflite_gzip_bytes"), res.get("accuracy")))
    return steps, used_val


def _latency(doc: dict[str, Any]) -> tuple[float | None, str | None]:
    lat = obj(doc, "latency")
    return (float(lat["p50_ms"]) if is_number(lat.get("p50_ms")) else None), lat.get("source")


def _inspect_doc(doc: dict[str, Any]) -> dict[str, Any]:
    insp = first(doc.get("inspect"), doc.get("analysis"))
    return insp if isinstance(insp, dict) else {}


def device_entry(doc: dict[str, Any]) -> dict[str, Any]:
    """What the target makes of the result (``doc["device"]``, or the attached inspect's entry)."""
    dev = obj(doc, "device")
    return dev or obj(obj(_inspect_doc(doc), "targets"), str(doc.get("target")))


def _check_limit(doc: dict[str, Any], word: str) -> float | None:
    for c in seq(doc, "checks"):
        if isinstance(c, dict) and word in str(c.get("name", "")) and is_number(c.get("limit")):
            return float(c["limit"])
    return None


def _arena(doc: dict[str, Any]) -> tuple[float | None, str | None, float | None]:
    """Tensor arena bytes, where the figure comes from, and the profile's arena budget."""
    insp, dev, mem = _inspect_doc(doc), device_entry(doc), obj(doc, "memory")
    checks = [c for c in seq(doc, "checks") if isinstance(c, dict) and is_number(c.get("arena_bytes"))]
    value = first(mem.get("arena_bytes"), dev.get("arena_bytes"), checks[0]["arena_bytes"] if checks else None,
                  insp.get("arena_bytes"), doc.get("arena_bytes"))
    source = first(mem.get("arena_source"), dev.get("arena_source"), checks[0].get("arena_source") if checks else None,
                   insp.get("arena_source"), doc.get("arena_source"))
    budget = first(dig(dev, "limits", "max_arena_bytes"), dig(doc, "budgets", "max_arena_bytes"),
                   _check_limit(doc, "arena"))
    return (float(value) if is_number(value) else None), source, (float(budget) if is_number(budget) else None)


def summary_tiles(doc: dict[str, Any]) -> str:
    """Target, verdict, accuracy, size, latency (with source), tensor arena vs budget."""
    base, res = obj(doc, "baseline"), obj(doc, "result")
    v = facts.verdict(doc)
    checks = [c for c in seq(doc, "checks") if isinstance(c, dict)]
    n_ok = sum(1 for c in checks if facts.check_status(c) == "passed")
    items = [
        tile("Target", esc(doc.get("target") or "—"), esc(doc.get("target_family") or "")),
        tile("Verdict", esc(v.upper()), f"{n_ok} of {len(checks)} checks passed" if checks else
             ("the run stopped early" if v == "error" else "no budgets checked"), tone=v),
    ]
    b_acc, r_acc = base.get("accuracy"), res.get("accuracy")
    if is_number(r_acc):
        if is_number(b_acc):
            delta = 100 * (r_acc - b_acc)
            sub = f"float32 {fmt_pct(b_acc)} · {'−' if delta < 0 else '+'}{abs(delta):.2f} pp"
        else:
            sub = "float32 baseline not measured"
        items.append(tile("Accuracy", fmt_pct(r_acc), esc(sub)))
    else:
        items.append(tile("Accuracy", NOT_MEASURED, "pass --data to measure it" if not doc.get("data") else ""))
    if is_number(res.get("tflite_bytes")):
        sub = [f"{esc(res.get('quantization') or '')} · gzipped {fmt_bytes(res.get('tflite_gzip_bytes'))}"]
        fb = base.get("tflite_float32_bytes")
        if is_number(fb) and res["tflite_bytes"] and fb != res["tflite_bytes"]:
            sub.append(f"float32 {fmt_bytes(fb)} ({fb / res['tflite_bytes']:.1f}× smaller)")
        items.append(tile("Size", fmt_bytes(res["tflite_bytes"]), "<br>".join(sub)))
    else:
        items.append(tile("Size", NOT_MEASURED, "no model was written"))
    p50, src = _latency(doc)
    host = obj(obj(doc, "latency"), "host")
    if p50 is not None:
        sub = chip(src)
        if is_number(host.get("p50_ms")) and src != host.get("source"):
            sub += f"<br>this host: {facts.fmt_ms(host['p50_ms'])}"
        items.append(tile("Latency p50", facts.fmt_ms(p50), sub))
    elif is_number(host.get("p50_ms")):
        items.append(tile("Latency p50", facts.fmt_ms(host["p50_ms"]), chip(host.get("source"))))
    else:
        items.append(tile("Latency", NOT_MEASURED, "run edgekit benchmark on the result"))
    arena, arena_src, budget = _arena(doc)
    if arena is not None:
        sub = f"of {fmt_bytes(budget)} budget" if budget else "no arena budget"
        items.append(tile("Tensor arena", fmt_bytes(arena), f"{sub} {chip(arena_src)}"))
    else:
        items.append(tile("Tensor arena", NOT_MEASURED, "run edgekit inspect on the result"))
    return tiles(items)


def _metric_summary(metrics: dict[str, Any]) -> str:
    """A one-line digest of a stage's metrics (scalars, and the size of nested records)."""
    parts = []
    for k, v in metrics.items():
        if k == "tensors" and isinstance(v, dict):
            parts.append("tensors " + ", ".join(f"{n}×{d}" for d, n in v.items()))
        elif k == "fit" and isinstance(v, dict):
            final = obj(v, "final")
            parts.append(f"{v.get('epochs_run', '?')} epoch(s)" + "".join(
                f", {kk} {facts.fmt_value(vv, facts.check_unit(kk))}" for kk, vv in final.items()
                if kk in ("loss", "val_accuracy", "accuracy")))
        elif isinstance(v, dict):
            parts.extend(f"{k}.{kk} {facts.fmt_value(vv, facts.check_unit(kk))}" for kk, vv in v.items()
                         if vv is not None and not isinstance(vv, (dict, list)))
        elif isinstance(v, list):
            if v:
                parts.append(f"{k}: {len(v)}")
        elif v is not None:
            parts.append(f"{k} {facts.fmt_value(v, facts.check_unit(k))}")
    text = " · ".join(parts)
    return esc(text if len(text) <= 220 else text[:219] + "…")


def pipeline_section(doc: dict[str, Any]) -> str:
    """The size/accuracy waterfall and the table of stages (time, cache hit, what each measured)."""
    from . import plots

    steps, used_val = waterfall_steps(doc)
    parts = []
    if steps:
        caption = ("Size of the converted model and accuracy on the test split after each step; the gzipped bar "
                   "shows what pruning saves in a download.")
        if used_val:
            caption += (" Hollow points: accuracy on the fine-tuning validation split (a different, smaller split), "
                        "not comparable with the test-split line.")
        parts.append(figure(plot(plots.stage_waterfall, steps), caption))
    else:
        parts.append(missing("Size and accuracy per stage", "the run stopped before the first conversion"))
    stages = [s for s in seq(doc, "stages") if isinstance(s, dict)]
    if stages:
        rows = [[esc(s.get("name")), f"{s['seconds']:.2f}" if is_number(s.get("seconds")) else "—",
                 "yes" if s.get("cached") else "no", _metric_summary(obj(s, "metrics"))] for s in stages]
        total = sum(float(s["seconds"]) for s in stages if is_number(s.get("seconds")))
        parts.append(table(["stage", "seconds", "cached", "what it measured"], rows, num=(1,)))
        wall = f", {doc['seconds']:.1f} s wall time" if is_number(doc.get("seconds")) else ""
        parts.append(note(f"{len(stages)} stages, {total:.1f} s of stage time{wall}."))
    return section("Pipeline", *parts, anchor="pipeline")


def latency_section(doc: dict[str, Any]) -> str:
    """Latency on the target (estimate or measurement) beside the host run; distribution when recorded."""
    entries = sections.benchmark_entries(doc.get("benchmark"))
    lat = obj(doc, "latency")
    if not entries and (sections.samples(lat) or isinstance(lat.get("latency_ms"), dict)):
        entries = [lat]
    p50, src = _latency(doc)
    host = obj(lat, "host")
    rows = []
    if p50 is not None:
        rows.append([esc(doc.get("target") or "target"), facts.fmt_ms(p50), "—", esc(lat.get("threads") or "—"),
                     chip(src)])
    if is_number(host.get("p50_ms")):
        where = " · ".join(str(x) for x in ("this host", host.get("machine"), facts.runtime_label(host.get("runtime"))
                                            if host.get("runtime") else None) if x)
        rows.append([esc(where), facts.fmt_ms(host["p50_ms"]), facts.fmt_ms(host.get("p90_ms")),
                     esc(host.get("threads") or "—"), chip(host.get("source"))])
    parts = []
    if rows:
        parts.append(table(["where", "p50", "p90", "threads", "source"], rows, num=(1, 2, 3)))
        if src == "estimated":
            parts.append(note("The target figure is an estimate from the profile's coefficients, not a measurement; "
                              "the host figure is measured but says little about the device. Measure on the device "
                              f"with <code>edgekit benchmark {esc(dig(doc, 'result', 'path') or 'model.tflite')} "
                              f"--target {esc(doc.get('target') or 'NAME')} --host USER@DEVICE</code>."))
    charts = sections.latency_charts(entries)
    if charts:
        parts += [charts, sections.benchmark_table(entries), sections.compare_table(entries)]
    elif rows:
        parts.append(missing("Latency distribution and thread scaling", "run <code>edgekit benchmark</code> "
                                                                       "with several --threads"))
    else:
        model = esc(dig(doc, "result", "path") or "model.tflite")
        parts.append(missing("Latency", f"run <code>edgekit benchmark {model} --target "
                                        f"{esc(doc.get('target') or 'NAME')}</code> to measure it"))
    return section("Latency", *parts, anchor="latency")


def memory_section(doc: dict[str, Any]) -> str:
    """Flash and RAM the target needs against its limits; the model file and arena against budgets."""
    from . import plots

    res, dev = obj(doc, "result"), device_entry(doc)
    bars = sections.memory_bars(dev, size_bytes=res.get("tflite_bytes")) if dev else []
    arena, arena_src, arena_budget = _arena(doc)
    size_budget = first(dig(dev, "limits", "max_model_bytes"), dig(doc, "budgets", "max_model_bytes"),
                        _check_limit(doc, "model_size"))
    if not dev:  # no target analysis: budgets from the checks only
        if is_number(res.get("tflite_bytes")) and is_number(size_budget):
            bars.append(plots.Bar("model size budget", float(res["tflite_bytes"]), float(size_budget),
                                  f"{fmt_bytes(res['tflite_bytes'])} of {fmt_bytes(size_budget)}"))
        if arena is not None and arena_budget:
            bars.append(plots.Bar("tensor arena budget", arena, arena_budget,
                                  f"{fmt_bytes(arena)} of {fmt_bytes(arena_budget)}"))
    parts = []
    if bars:
        parts.append(figure(plot(plots.budget_bars, bars, title="Memory against the target's limits"),
                            "Flash holds the model file and the runtime's code; RAM holds the tensor arena and the "
                            "runtime's own memory."))
    facts_list = []
    if is_number(res.get("tflite_bytes")):
        facts_list.append(("model file", f"{fmt_bytes(res['tflite_bytes'])}"
                           + (f" (budget {fmt_bytes(size_budget)})" if is_number(size_budget)
                              else " (no size budget)")))
    if arena is not None:
        facts_list.append(("tensor arena", f"{fmt_bytes(arena)} ({facts.source_label(arena_src)})"
                           + (f", budget {fmt_bytes(arena_budget)}" if arena_budget else ", no arena budget")))
    for key, label in (("flash_bytes", "flash needed"), ("ram_bytes", "RAM needed")):
        if is_number(dev.get(key)):
            facts_list.append((label, fmt_bytes(dev[key])))
    if facts_list:
        parts.append(kv_table(facts_list))
    if arena is None:
        parts.append(missing("Tensor arena (RAM)", f"run <code>edgekit inspect {esc(res.get('path') or 'model.tflite')}"
                                                   "</code>"))
    return section("Memory", *parts, anchor="memory")


def ops_section(doc: dict[str, Any]) -> str:
    """Operator table with per-target support (from an attached inspect document) and tensor dtypes."""
    insp, dev = _inspect_doc(doc), device_entry(doc)
    parts = []
    if insp.get("ops"):
        parts.append(sections.op_table(insp))
    elif seq(dev, "ops"):  # the target's per-op verdicts: one support column for this target
        ops = [{k: r.get(k) for k in ("name", "version", "count")} for r in seq(dev, "ops") if isinstance(r, dict)]
        parts.append(sections.op_table({"ops": ops, "targets": {str(doc.get("target") or "target"): dev}}))
    else:
        model = esc(dig(doc, "result", "path") or "model.tflite")
        parts.append(missing("Operator support per target", f"run <code>edgekit inspect {model} --target NAME</code>"))
    for stage in seq(doc, "stages"):
        m = obj(stage, "metrics")
        if isinstance(m.get("tensors"), dict):
            counts = ", ".join(f"{n} {esc(d)}" for d, n in m["tensors"].items())
            io = obj(m, "io")
            io_text = (f" Inputs {esc(', '.join(map(str, io.get('inputs', []))))}, outputs "
                       f"{esc(', '.join(map(str, io.get('outputs', []))))}." if io else "")
            parts.append(f"<p>Tensors after <code>{esc(stage.get('name'))}</code>: {counts}.{io_text}</p>")
    return section("Operators", *parts, anchor="ops")


def repro_section(doc: dict[str, Any]) -> str:
    """Command, input/output hashes, data fingerprint, resolved settings (with their source), versions."""
    inp, res, data = obj(doc, "input"), obj(doc, "result"), obj(doc, "data")
    items: list[tuple[str, Any]] = []
    if doc.get("command"):
        items.append(("command", doc["command"]))
    items += [("input", inp.get("path")), ("input sha256", inp.get("sha256")), ("input format", inp.get("format"))]
    if inp.get("ported_to_tf_keras"):
        items.append(("moved Keras 3 → tf_keras", f"max abs output difference {inp.get('port_max_abs_diff')}"))
    items += [("result", res.get("path")), ("result sha256", res.get("sha256"))]
    if data:
        items += [("data", data.get("spec")), ("data fingerprint", data.get("fingerprint")),
                  ("samples (train / test)", f"{data.get('train')} / {data.get('test')}")]
    parts = [kv_table([(k, v) for k, v in items if v is not None])]
    settings = obj(doc, "settings")
    if settings:
        srcs = obj(doc, "settings_sources")
        scalars = {k: v for k, v in settings.items() if not isinstance(v, (dict, list))}
        nested = {k: v for k, v in settings.items() if isinstance(v, (dict, list)) and v}
        parts.append("<h3>Settings</h3>" + table(
            ["setting", "value", "from"],
            [[esc(k), f"<code>{esc(json.dumps(v))}</code>" if v is not None else "—", esc(srcs.get(k, "default"))]
             for k, v in scalars.items()]))
        parts += [f"<details><summary>{esc(k)}</summary><pre>{esc(json.dumps(v, indent=2, default=str))}</pre>"
                  "</details>" for k, v in nested.items()]
    versions = obj(doc, "versions")
    if versions:
        parts.append("<h3>Versions</h3>" + table(["tool", "version"], [[esc(k), esc(v)] for k, v in versions.items()]))
    parts.append(note("Re-render this page from <code>report.json</code> with <code>edgekit report DIR</code>."))
    return section("Reproducibility", *parts, anchor="repro")


def candidates(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Trade-off points from ``doc["candidates"]`` (e.g. a search over settings), if any."""
    out = []
    for i, c in enumerate(seq(doc, "candidates")):
        if not isinstance(c, dict):
            continue
        out.append({"label": c.get("label") or c.get("name") or f"#{i + 1}",
                    "accuracy": first(c.get("accuracy"), dig(c, "result", "accuracy")),
                    "size_bytes": first(c.get("size_bytes"), c.get("tflite_bytes"), dig(c, "result", "tflite_bytes")),
                    "latency_ms": first(c.get("latency_ms"), c.get("p50_ms"), dig(c, "latency", "p50_ms")),
                    "latency_source": first(c.get("latency_source"), dig(c, "latency", "source")),
                    "verdict": c.get("verdict") or ("passed" if c.get("passed") else
                                                    "failed" if c.get("passed") is False else "")})
    return out


def render_compress(doc: dict[str, Any]) -> str:
    """The compress report: why it failed, summary, checks, pipeline, layers, latency, memory, ops, repro."""
    inp, res = obj(doc, "input"), obj(doc, "result")
    model = os.path.basename(str(inp.get("path") or "model"))
    subtitle = " · ".join(esc(x) for x in (
        f"{inp.get('path') or 'model'} → {res.get('path') or 'no output'}",
        f"{res.get('quantization')} ({res.get('io_dtype') or 'float32'} I/O)" if res.get("quantization") else None,
        f"data {dig(doc, 'data', 'spec')}" if dig(doc, "data", "spec") else None) if x)
    settings = obj(doc, "settings")
    prune = float(settings["prune"]) if is_number(settings.get("prune")) else None
    layers = sections.collect_layers(doc)
    body = [
        why(doc),
        summary_tiles(doc),
        sections.checks_section(doc),
        pipeline_section(doc),
        sections.layers_section(
            layers, requested_sparsity=prune,
            sparsity_hint="no pruning stage ran (try --prune 0.5)" if not prune else
            "the pruning stage did not record per-layer sparsity",
            error_hint=("run <code>edgekit validate " + esc(res.get("path") or "model.tflite")
                        + " --data SPEC --reference " + esc(inp.get("path") or "MODEL") + "</code>")
            if res.get("path") else "the run stopped before validation",
            worst=sections.worst_layers(doc)),
        latency_section(doc),
        memory_section(doc),
        sections.tradeoff_section(candidates(doc)),
        ops_section(doc),
        repro_section(doc),
    ]
    return page(title=f"edgekit compress: {model} → {doc.get('target')}",
                heading=f"Compress {model} for {doc.get('target') or '?'}", subtitle=subtitle,
                verdict=facts.verdict(doc), body=body, doc=doc)
