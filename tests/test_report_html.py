"""HTML report rendering, charts, terminal summary, progress and log quieting (no TensorFlow here).

The documents below have the shapes the commands write (compress report, inspect, benchmark with
per-run samples and an A/B comparison, validate, check); the real compress report is exercised in
``test_report_cli.py`` and ``test_browser_render.py``.
"""
from __future__ import annotations

import copy
import functools
import io
import json
import os
import subprocess
import sys
import textwrap

import pytest

from _report_helpers import assert_self_contained, parse_html, svg_count
from edgekit.errors import ConfigError
from edgekit.report import facts, plots
from edgekit.report.html import comparison_points, detect_kind, render_comparison_html, render_html, write_html

LAYERS = [{"index": i, "op": op, "name": f"sequential/{n}/out;extra/{n}", "sqnr_db": 40.0 - 5 * i,
           "sqnr_drop_db": d, "rmse": 0.01 * (i + 1)}
          for i, (op, n, d) in enumerate([("CONV_2D", "conv", 10.2), ("RESHAPE", "flatten", 0.0),
                                          ("FULLY_CONNECTED", "hidden", 0.24), ("FULLY_CONNECTED", "probs", 9.8)])]


def compress_doc(**over) -> dict:
    doc = {
        "schema_version": 1, "kind": "compress", "target": "rpi4", "target_family": "raspberry-pi", "passed": True,
        "input": {"path": "models/cnn.keras", "sha256": "a" * 64, "format": "keras-v3-zip"},
        "data": {"spec": "digits.npz", "fingerprint": "b" * 64, "train": 1400, "test": 397},
        "settings": {"quantize": "int8", "io_dtype": "float32", "qat": True, "prune": 0.5,
                     "recipe": {"version": 1, "stages": ["prune", "qat"]}},
        "settings_sources": {"prune": "flags"},
        "baseline": {"accuracy": 0.9496, "tflite_float32_bytes": 44120},
        "result": {"path": "out/model.tflite", "sha256": "c" * 64, "quantization": "int8", "io_dtype": "float32",
                   "accuracy": 0.9421, "tflite_bytes": 14100, "tflite_gzip_bytes": 9050, "sparsity": 0.5},
        "stages": [
            {"name": "load", "seconds": 1.2, "cached": False, "metrics": {"format": "keras-v3-zip"}},
            {"name": "baseline", "seconds": 0.4, "cached": False, "metrics": {"accuracy": 0.9496}},
            {"name": "convert-float32", "seconds": 3.1, "cached": False, "metrics": {"tflite_bytes": 44120}},
            {"name": "prune", "seconds": 12.3, "cached": True, "metrics": {
                "sparsity": 0.5, "fit": {"epochs_run": 2, "final": {"val_accuracy": 0.9446}},
                "per_layer": {"conv": {"zeros": 36, "total": 72, "sparsity": 0.5},
                              "hidden": {"zeros": 4608, "total": 9216, "sparsity": 0.5}}}},
            {"name": "qat", "seconds": 20.1, "cached": False, "metrics": {"accuracy": 0.9421}},
            {"name": "convert-int8", "seconds": 4.4, "cached": False,
             "metrics": {"tflite_bytes": 14100, "tensors": {"int8": 12, "float32": 2}}},
            {"name": "validate", "seconds": 0.5, "cached": False, "metrics": {"accuracy": 0.9421}},
        ],
        "layers": {"layers": LAYERS, "worst": LAYERS[:2]},
        "latency": {"p50_ms": 0.081, "source": "measured-host"},
        "checks": [{"name": "model_size", "value": 14100, "limit": 16384, "passed": True},
                   {"name": "accuracy_drop", "value": 0.0075, "limit": 0.01, "passed": True}],
        "versions": {"edgekit": "0.1.0", "tensorflow": "2.21.0"},
        "command": "edgekit compress models/cnn.keras --target rpi4 --data digits.npz --prune 0.5 --qat",
        "seconds": 45.2,
    }
    doc.update(over)
    return doc


def bench_entry(threads: int, *, samples: bool = False, compare: bool = False) -> dict:
    base = 0.08 / threads ** 0.5
    entry = {"schema_version": 1, "source": "measured-host", "runtime": "ai_edge_litert", "runtime_version": "2.3.0",
             "machine": "x86_64", "device": {"hostname": "vm", "cpu_model": "AMD EPYC", "cores": 2},
             "model": {"path": "/m/model.tflite", "sha256": "d" * 64, "size_bytes": 13896}, "threads": threads,
             "runs": 200, "latency_ms": {"min": base * 0.9, "p50": base, "p90": base * 1.1, "p99": base * 1.3,
                                         "mean": base * 1.05, "std": 0.01, "max": 8.0},
             "init_ms": 3.2, "peak_rss_mb": 51.2, "xnnpack": True}
    if samples:  # a tight bulk plus a few OS hiccups a thousand times slower
        entry["samples_ms"] = [base * (1 + 0.05 * ((i * 7919) % 13) / 13) for i in range(197)] + [8.0, 6.0, 7.5]
    if compare:
        entry["compare"] = {"model": {"path": "/m/float.tflite"}, "latency_ms": {"p50": base * 0.9},
                            "samples_ms": [base * 0.9] * 200, "ratio_of_medians": 1.11, "ratio_ci": [1.05, 1.16],
                            "verdict": "slower", "summary": "model.tflite is 1.11x slower than float.tflite"}
    return entry


INSPECT = {
    "schema_version": 1, "path": "/m/model.tflite", "sha256": "d" * 64, "size_bytes": 13896, "gzip_bytes": 11000,
    "quantization": "int8", "ops": [{"name": "FULLY_CONNECTED", "version": 4, "count": 2},
                                    {"name": "CONV_2D", "version": 3, "count": 1}],
    "macs": 12128, "macs_by_op": [{"name": "FULLY_CONNECTED", "macs": 9536, "count": 2}],
    "arena_bytes": 2800, "arena_source": "tflite-micro",
    "inputs": [{"name": "input", "shape": [-1, 8, 8, 1], "dtype": "int8", "scale": 0.0039, "zero_point": -128}],
    "outputs": [{"name": "probs", "shape": [-1, 10], "dtype": "int8", "scale": 0.0039, "zero_point": -128}],
    "targets": {
        "rpi4": {"compatible": True, "unsupported_ops": [], "latency_ms": 0.05, "latency_source": "estimated",
                 "fits": {"flash": True, "ram": True}, "flash_bytes": 12600000, "ram_bytes": 50300000,
                 "arena_bytes": 2800, "limits": {"flash_bytes": 16e9, "ram_bytes": 4 * 2 ** 30},
                 "ops": [{"name": "FULLY_CONNECTED", "version": 4, "status": "supported"},
                         {"name": "CONV_2D", "version": 3, "status": "supported"}]},
        "cortex-m4": {"compatible": False, "unsupported_ops": ["CONV_2D"], "latency_ms": 0.52,
                      "latency_source": "estimated", "fits": {"flash": True, "ram": False}, "flash_bytes": 177736,
                      "ram_bytes": 700000, "arena_bytes": 2800,
                      "limits": {"flash_bytes": 2097152, "ram_bytes": 655360, "max_arena_bytes": 524288},
                      "issues": ["needs static shapes"],
                      "ops": [{"name": "FULLY_CONNECTED", "version": 4, "status": "supported"},
                              {"name": "CONV_2D", "version": 3, "status": "unsupported",
                               "reason": "version 3 > 2"}]}},
}

CHECK = {
    "schema_version": 1, "command": "check", "passed": False,
    "model": {"path": "/m/model.tflite", "sha256": "d" * 64, "size_bytes": 13896, "quantization": "int8"},
    "baseline": {"path": "edgekit-baseline.json", "created": "2026-01-01T00:00:00Z"},
    "data": {"spec": "digits.npz", "split": "test", "samples": 397, "fingerprint": "e" * 64},
    "metrics": {"accuracy": 0.85, "macro_f1": 0.84}, "baseline_metrics": {"accuracy": 0.90, "macro_f1": 0.89},
    "checks": [{"name": "accuracy", "status": "failed", "value": 0.85, "limit": 0.89, "op": ">=", "unit": "",
                "message": "accuracy 0.8500 < minimum 0.8900: baseline 0.9000", "passed": False},
               {"name": "model_size", "status": "passed", "value": 13896, "limit": 14590, "op": "<=", "unit": "B",
                "message": "model size 13,896 B <= limit 14,590 B", "passed": True},
               {"name": "latency", "status": "skipped", "value": None, "limit": 1.1, "op": "<=", "unit": "x",
                "message": "not measured: pass --reference-model", "passed": None}],
    "notes": ["the data changed since the baseline"], "versions": {"edgekit": "0.1.0"},
}

VALIDATE = {
    "schema_version": 1, "model": {"path": "/m/model.tflite", "size_bytes": 13896, "quantization": "int8"},
    "data": {"spec": "digits.npz", "samples": 397}, "target": "rpi4", "threads": 4,
    "metrics": {"samples": 397, "accuracy": 0.8967, "per_class": [
        {"class": 0, "name": "0", "precision": 1.0, "recall": 0.95, "f1": 0.97, "support": 39}]},
    "reference_metrics": {"accuracy": 0.8992},
    "parity": {"samples": 397, "top1_agreement": 0.9975, "sqnr_db": 39.6, "max_abs_diff": 0.044,
               "worst_inputs": [{"index": 57, "max_abs_diff": 0.044, "label": 1}],
               "reference": {"path": "/m/model.keras", "kind": "keras"}},
    "layers": {"layers": LAYERS, "worst": LAYERS[:2]}, "checks": [], "passed": True, "notes": [],
}


def render(doc, **kw) -> tuple[str, object]:
    html = render_html(doc, **kw)
    root = assert_self_contained(html)
    assert root.find(".//section[@id='render-error']") is None, "the renderer fell back to the minimal page"
    return html, root


@functools.lru_cache(maxsize=1)
def default_page() -> str:
    """The full compress page, rendered once for the tests that only read it (charts take a second)."""
    return render(compress_doc())[0]


def text_of(root) -> str:
    """The page's visible text with whitespace collapsed (as a reader sees it)."""
    body = next(el for el in root.iter() if el.tag == "body")
    return " ".join("".join(body.itertext()).split())


# ---------------------------------------------------------------------------------------------------------------
# compress pages
# ---------------------------------------------------------------------------------------------------------------
def test_render_html_compress_has_every_section_and_chart():
    root = parse_html(default_page())
    ids = {el.get("id") for el in root.iter() if el.tag == "section"}
    assert {"checks", "pipeline", "layers", "latency", "memory", "ops", "repro"} <= ids
    # waterfall, budget bars (checks + memory), per-layer sparsity, per-layer error
    assert svg_count(root) >= 5
    body = text_of(root)
    for fact in ("94.21 %", "13.8 KiB", "gzipped 8.8 KiB", "3.1× smaller", "81 µs", "measured on this host",
                 "Per-layer sparsity", "Per-layer quantization error", "Worst layers", "a" * 64, "c" * 64,
                 "edgekit compress models/cnn.keras"):
        assert fact in body, fact
    assert root.find(".//title").text == "edgekit compress: cnn.keras → rpi4"


def test_render_html_svg_ids_are_unique_across_charts():
    root = parse_html(default_page())
    ids = [el.get("id") for el in root.iter() if el.get("id")]
    assert len(ids) == len(set(ids))
    refs = {v[1:] for el in root.iter() for k, v in el.attrib.items() if k.endswith("href")}
    assert refs and refs <= set(ids)  # every <use href="#..."> points at a definition in the page


def test_render_html_absent_data_says_not_measured():
    doc = compress_doc(layers=None, latency={"p50_ms": None, "source": None}, checks=[])
    doc["settings"]["prune"] = 0.0
    doc["stages"] = [s for s in doc["stages"] if s["name"] not in ("prune", "qat")]
    html, root = render(doc)
    body = text_of(root)
    assert "Per-layer sparsity: not measured — no pruning stage ran" in body
    assert "Per-layer quantization error: not measured" in body
    assert "Latency: not measured — run edgekit benchmark out/model.tflite --target rpi4" in body
    assert "Tensor arena (RAM): not measured" in body
    assert "Operator support per target: not measured" in body
    assert "No budgets were checked" in body


def test_render_html_failed_checks_say_why():
    doc = compress_doc(passed=False)
    doc["checks"][0] = {"name": "model_size", "value": 14100, "limit": 4096, "passed": False}
    html, root = render(doc)
    why = next(el for el in root.iter() if el.get("class") == "why")
    assert "Why the verdict is FAILED" in "".join(why.itertext())
    assert "model_size: 13.8 KiB is over the limit of 4.0 KiB" in "".join(why.itertext())
    assert 'class="badge failed"' in html


def test_render_html_error_document_of_a_crashed_run_says_why():
    exc = ConfigError("--quantize int8 needs calibration data", hint="pass --data")
    doc = facts.error_document(exc, kind="compress", stage="convert", partial={"target": "rpi4"})
    assert doc["passed"] is False and doc["error"]["exit_code"] == 2
    html, root = render(doc)
    body = text_of(root)
    assert "Why this run failed" in body
    assert "stage convert: --quantize int8 needs calibration data (pass --data)" in body
    assert "exit code 2" in body and "ERROR" in body


def test_render_html_escapes_hostile_strings():
    evil = '<script>alert(1)</script><img src=x onerror=alert(2)>'
    doc = compress_doc(target=evil, command=evil, layers=None)
    doc["input"]["path"] = evil
    doc["stages"][0]["name"] = evil
    doc["checks"][0]["name"] = evil
    html, root = render(doc)  # assert_self_contained rejects any <script>/<img>/on* attribute
    assert "&lt;script&gt;" in html


def test_render_html_survives_garbage_values():
    doc = compress_doc()
    doc["result"]["accuracy"] = "n/a"
    doc["baseline"] = None
    doc["stages"] = [None, {"name": "prune", "metrics": {"per_layer": {"x": "?"}}}, {"seconds": float("nan")}]
    doc["checks"] = [{"name": "model_size", "value": float("inf"), "limit": None}]
    doc["latency"] = "fast"
    html, _ = render(doc)
    assert "<!DOCTYPE html>" in html


def test_render_html_compress_tradeoffs_mark_the_pareto_front():
    cands = [{"label": "int8", "accuracy": 0.94, "tflite_bytes": 14000, "latency_ms": 0.08},
             {"label": "int8 pruned", "accuracy": 0.93, "tflite_bytes": 14500, "latency_ms": 0.09},
             {"label": "float32", "accuracy": 0.95, "tflite_bytes": 44000, "latency_ms": 0.07}]
    html, root = render(compress_doc(candidates=cands))
    section = next(el for el in root.iter() if el.get("id") == "tradeoffs")
    assert svg_count(section) == 2
    rows = {r[0]: r for r in (["".join(td.itertext()) for td in tr.findall("td")] for tr in section.iter("tr")) if r}
    assert rows["int8"][4] == "size" and rows["float32"][4] == "size, latency"  # float32 is faster here
    assert rows["int8 pruned"][4] == ""


# ---------------------------------------------------------------------------------------------------------------
# other commands' documents
# ---------------------------------------------------------------------------------------------------------------
def test_render_html_inspect_shows_support_per_target_and_limits():
    html, root = render(INSPECT)
    assert detect_kind(INSPECT) == "inspect"
    body = text_of(root)
    assert "Inspect model.tflite" in body and "12.1 k" in body and "2.7 KiB" in body
    assert "version 3 > 2" in body and "needs static shapes" in body and "1 of 2" in body
    assert svg_count(root) == 2  # latency per target + memory against limits


def test_render_html_benchmark_list_with_samples_compare_and_threads():
    doc = [bench_entry(1, samples=True, compare=True), bench_entry(2)]
    html, root = render(doc)
    body = text_of(root)
    assert "Benchmark model.tflite" in body and "LiteRT" in body and "80 µs" in body
    assert "A/B comparison" in body and "model.tflite is 1.11x slower than float.tflite" in body
    assert svg_count(root) == 2  # histogram (with the A/B overlay) + thread scaling
    assert "3 slower runs (up to 8 ms) not shown" in html


def test_render_html_benchmark_without_samples_draws_percentiles():
    html, root = render(bench_entry(4))
    assert svg_count(root) == 1 and "Percentiles only" in text_of(root)


def test_render_html_validate_shows_parity_and_layer_error():
    html, root = render(VALIDATE)
    body = text_of(root)
    assert detect_kind(VALIDATE) == "validate"
    assert "99.75 %" in body and "39.6 dB" in body and "Worst layers" in body and "reference" in body
    assert "sequential/conv/out (CONV_2D)" in html  # TFLite's fused tensor names shortened, op shown
    assert svg_count(root) == 1


def test_render_html_check_failed_and_skipped_checks():
    html, root = render(CHECK)
    assert detect_kind(CHECK) == "check"
    body = text_of(root)
    assert "Why the verdict is FAILED" in body
    assert "accuracy: accuracy 0.8500 < minimum 0.8900: baseline 0.9000" in body
    assert "latency" not in "".join(next(el for el in root.iter() if el.get("class") == "why").itertext())
    assert "1 check(s) not measured" in body and "≥ 89.00 %" in body
    assert "the data changed since the baseline" in body


def test_render_comparison_html_marks_pareto_front():
    a = compress_doc()
    b = copy.deepcopy(a)
    b["result"].update(accuracy=0.95, tflite_bytes=40000)
    c = copy.deepcopy(a)
    c["result"].update(accuracy=0.90, tflite_bytes=20000)
    points = comparison_points([a, b, c])
    assert len({p["label"] for p in points}) == 3  # duplicate labels are numbered
    html = render_comparison_html([a, b, c])
    root = assert_self_contained(html)
    assert svg_count(root) == 2 and "Pareto front" in html


def test_write_html_is_atomic_and_complete(tmp_path):
    path = write_html(INSPECT, tmp_path / "r.html")
    assert path.read_text(encoding="utf-8").rstrip().endswith("</html>")
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]


def test_render_html_falls_back_to_a_minimal_page_on_a_renderer_bug(monkeypatch):
    from edgekit.report import html as html_module

    def broken(doc):
        raise ZeroDivisionError("drawing bug")

    monkeypatch.setitem(html_module._RENDERERS, "compress", broken)
    out = render_html(compress_doc(passed=False, checks=[{"name": "model_size", "value": 9, "limit": 1,
                                                          "passed": False}]))
    root = assert_self_contained(out)
    assert root.find(".//section[@id='render-error']") is not None
    assert "ZeroDivisionError: drawing bug" in out and "model_size: 9 B is over the limit of 1 B" in out


def test_render_html_rejects_unknown_kind():
    with pytest.raises(ValueError, match="unknown report kind"):
        render_html({}, kind="tune")


# ---------------------------------------------------------------------------------------------------------------
# charts and facts
# ---------------------------------------------------------------------------------------------------------------
def test_plots_clean_svg_has_no_namespace_urls_or_metadata():
    svg = plots.budget_bars([plots.Bar("flash", 5, 10, "5 of 10")])
    assert svg.startswith("<svg ") and "viewBox" in svg and "<title>" in svg
    assert "http" not in svg and "<metadata" not in svg and "xlink:" not in svg and 'width="' not in svg[:200]


def test_plots_pareto_front_keeps_only_non_dominated():
    pts = [plots.Point("a", 10, 0.9), plots.Point("b", 20, 0.95), plots.Point("c", 15, 0.85),
           plots.Point("d", 10, 0.9)]
    assert [p.label for p in plots.pareto_front(pts)] == ["a", "d", "b"]


def test_facts_formatting_and_reasons():
    assert facts.fmt_ms(0.00214) == "2.14 µs" and facts.fmt_ms(12.34) == "12.3 ms"
    assert facts.fmt_ms(None) == "not measured"
    assert facts.fmt_check_value("accuracy_drop", 0.0125) == "1.25 pp"
    assert facts.fmt_check_value("x", 1.05, "x") == "1.050×"
    assert facts.verdict({"passed": True}) == "passed" and facts.verdict({"error": "boom"}) == "error"
    assert facts.failure_reasons({"passed": False}) == [
        "the run was marked as failed but recorded no reason; run with --debug"]
    # a failed check whose own numbers do not show why is reported as failed, never with an invented reason
    assert facts.explain_check({"name": "fits_flash", "value": 1, "limit": 2, "passed": False}) == \
        "fits_flash: failed (value 1 B, limit 2 B)"
    skipped = {"name": "arena", "status": "skipped", "passed": None}
    assert facts.failed_checks({"checks": [skipped]}) == []


# ---------------------------------------------------------------------------------------------------------------
# terminal: summary, progress, TensorFlow log noise
# ---------------------------------------------------------------------------------------------------------------
def test_console_summary_lists_checks_and_reasons():
    from rich.console import Console

    from edgekit.report.console import print_compress_summary, print_summary

    doc = compress_doc(passed=False)
    doc["checks"][0] = {"name": "model_size", "value": 14100, "limit": 4096, "passed": False}
    con = Console(record=True, width=100, color_system=None)
    print_compress_summary(doc, console=con)
    out = con.export_text()
    assert "edgekit compress → rpi4 (raspberry-pi)   FAILED" in out
    assert "✗ model_size 13.8 KiB  limit ≤ 4.0 KiB" in out
    assert "• model_size: 13.8 KiB is over the limit of 4.0 KiB" in out
    assert "report  out/report.html" in out and "81 µs" in out
    con = Console(record=True, width=100, color_system=None)
    print_summary(CHECK, console=con)
    assert "– latency: not measured" in con.export_text()


def test_progress_is_silent_without_a_terminal(capsys, monkeypatch):
    from edgekit.report.progress import progress_bar, progress_enabled, step

    monkeypatch.delenv("EDGEKIT_PROGRESS", raising=False)
    assert progress_enabled() is False  # pytest's stderr is not a TTY
    assert progress_enabled(quiet=True) is False and progress_enabled(as_json=True) is False
    with progress_bar(3, "fine-tuning", enabled=True) as advance:
        for _ in range(3):
            advance(info="loss 0.1")
    with step("converting", enabled=True):
        pass
    assert capsys.readouterr() == ("", "")


def test_progress_forced_shows_a_done_line(monkeypatch):
    from edgekit.report import progress

    buf = io.StringIO()
    monkeypatch.setenv("EDGEKIT_PROGRESS", "1")
    monkeypatch.setattr(sys, "stderr", buf)
    with progress.progress_bar(2, "fine-tuning (pruning)", unit="epoch") as advance:
        advance(info="loss 0.5")
        advance(info="loss 0.25")
    with progress.step("converting to int8"):
        pass
    out = buf.getvalue()
    assert "✓" in out and "fine-tuning (pruning)" in out and "2/2 epochs" in out and "loss 0.25" in out
    assert "converting to int8" in out
    assert progress.progress_enabled(quiet=True) is False  # --quiet wins over the override


def test_progress_keras_epoch_callback_advances_per_epoch():
    from edgekit.report.progress import keras_epoch_callback

    class Base:  # stands in for keras.callbacks.Callback: only the subclassing is under test here
        pass

    calls = []
    cb = keras_epoch_callback(lambda steps=1, *, info=None, description=None: calls.append((steps, info)), base=Base)
    cb.on_epoch_end(0, {"loss": 0.5, "accuracy": 0.9, "val_accuracy": 0.85})
    assert calls == [(1, "loss 0.5000 · accuracy 90.0 % · val_accuracy 85.0 %")]


QUIET_CHILD = textwrap.dedent("""
    import os, sys
    from edgekit.report.quiet_tf import quiet_child, silenced
    with quiet_child(debug=sys.argv[1] == "1", log_path=sys.argv[2]):
        os.write(2, b"I0000 native noise from a C++ library\\n")
        print("python-level progress line", file=sys.stderr)
        assert silenced() is (sys.argv[1] != "1")
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == ("0" if sys.argv[1] == "1" else "3")
    os.write(2, b"after the block\\n")
""")


@pytest.mark.parametrize("debug", ["0", "1"])
def test_quiet_tf_child_hides_native_stderr_unless_debug(tmp_path, debug):
    log = tmp_path / "native.log"
    proc = subprocess.run([sys.executable, "-c", QUIET_CHILD, debug, str(log)], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.returncode == 0, proc.stderr
    assert "python-level progress line" in proc.stderr and "after the block" in proc.stderr
    if debug == "1":
        assert "native noise" in proc.stderr
    else:
        assert "native noise" not in proc.stderr
        assert "native noise" in log.read_text()


def test_report_json_roundtrip_renders_identically():
    doc = json.loads(json.dumps(compress_doc()))
    assert render_html(doc) == default_page()  # byte-identical: `edgekit report` reproduces the page


# ---------------------------------------------------------------------------------------------------------------
# chart cache (a fully cached compress re-run draws no chart)
# ---------------------------------------------------------------------------------------------------------------
def test_chart_cache_reuses_identical_charts_and_redraws_changed_ones(tmp_path, monkeypatch):
    from edgekit.cache import StageCache
    from edgekit.report import htmlkit
    from edgekit.report.writer import write_reports

    cache = StageCache(tmp_path / "cache")
    doc = compress_doc()
    first = write_reports(doc, tmp_path / "a", chart_cache=cache)["html"].read_text(encoding="utf-8")
    stored = len(list((tmp_path / "cache" / "stages").iterdir()))
    assert stored >= 5  # one entry per chart of the page

    def no_drawing(*args, **kwargs):
        raise AssertionError("a chart was drawn although it is in the cache")

    monkeypatch.setattr(plots, "_to_svg", no_drawing)
    again = write_reports(doc, tmp_path / "b", chart_cache=cache)["html"].read_text(encoding="utf-8")
    assert again == first  # byte-identical page, nothing drawn
    assert len(list((tmp_path / "cache" / "stages").iterdir())) == stored

    changed = copy.deepcopy(doc)
    changed["result"]["tflite_bytes"] += 4096  # moves the size bar: that chart must be redrawn
    page = write_reports(changed, tmp_path / "c", chart_cache=cache)["html"].read_text(encoding="utf-8")
    assert "chart unavailable" in page and "a chart was drawn" in page  # the redraw hit the patched drawer
    # without a cache (or with a disabled one, as --no-cache makes) every chart is drawn again
    disabled = StageCache(tmp_path / "cache", enabled=False)
    page = write_reports(doc, tmp_path / "d", chart_cache=disabled)["html"].read_text(encoding="utf-8")
    assert page.count("a chart was drawn") >= 5
    with htmlkit.chart_cache(None):
        assert "a chart was drawn" in htmlkit.plot(plots.budget_bars, [])
