"""`edgekit benchmark` on this machine: API, CLI, statistics, comparison, crashes and bad input."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.bench import result as bench_result
from edgekit.bench import stats
from edgekit.bench.local import run_local
from edgekit.bench.options import HarnessOptions
from edgekit.cli import main
from edgekit.errors import ChildCrash, ConfigError, DataError, DeviceError, ModelError
from sshd import children_of, cmdline, device_venv, wait_for

EDGEKIT = str(Path(sys.executable).with_name("edgekit"))
FAST = dict(runs=20, warmup=2, min_time=0.0)
FAST_CLI = ["--runs", "20", "--warmup", "2", "--min-time", "0"]
KEYS_7 = ("schema_version", "runtime", "runtime_version", "machine", "threads", "runs", "latency_ms", "init_ms",
          "peak_rss_mb", "source")


def _benchmark(**kw):
    from edgekit.api import benchmark

    return benchmark(**kw)


# --------------------------------------------------------------------------------------------- API
def test_benchmark_local_returns_measured_host_document(tiny_tflite_int8):
    doc = _benchmark(model=tiny_tflite_int8, **FAST)
    assert isinstance(doc, dict)
    for key in KEYS_7:
        assert key in doc
    assert doc["source"] == "measured-host" and doc["threads"] == 1 and doc["runs"] == 20
    assert doc["model"]["path"] == str(tiny_tflite_int8) and doc["target"] is None
    assert "samples_ms" not in doc  # per-run samples only on request
    kept = _benchmark(model=tiny_tflite_int8, keep_samples=True, **FAST)
    assert len(kept["samples_ms"]) == kept["runs"]


def test_benchmark_target_profile_sets_threads_and_affinity(tmp_path, tiny_tflite_float32):
    import yaml

    from edgekit.targets import load_target

    base = Path(load_target("rpi4").source).read_text()
    profile = yaml.safe_load(base)
    profile.update(name="bench-board", threads=2)
    profile["hardware"]["cores"] = 2
    path = tmp_path / "bench-board.yaml"
    path.write_text(yaml.safe_dump(profile))
    doc = _benchmark(model=tiny_tflite_float32, target=str(path), **FAST)
    avail = sorted(os.sched_getaffinity(0))
    assert doc["target"] == "bench-board" and doc["threads"] == 2
    assert doc["cpus"] == avail[:2]
    explicit = _benchmark(model=tiny_tflite_float32, target=str(path), threads=1, cpus="0", **FAST)
    assert explicit["threads"] == 1 and explicit["cpus"] == [0]  # flags beat the target's defaults


def test_benchmark_dump_outputs_writes_the_file(tmp_path, tiny_tflite_int8, digits_npz):
    x = np.load(digits_npz)["x_test"][:4]
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "sub" / "outputs.npz"
    out.parent.mkdir()
    doc = _benchmark(model=tiny_tflite_int8, inputs=tmp_path / "x.npy", dump_outputs=out, **FAST)
    assert doc["dump"]["file"] == str(out)
    with np.load(out) as z:
        assert z["output_0"].shape == (4, 10)
    assert [p.name for p in out.parent.iterdir()] == ["outputs.npz"]  # atomic: no temp file left


def test_benchmark_compare_finds_the_faster_model(tiny_tflite_float32, bench_models):
    doc = _benchmark(model=tiny_tflite_float32, compare=bench_models["big_f32"], **FAST)
    cmp = doc["compare"]
    assert cmp["significant"] is True and cmp["verdict"] == "faster"
    lo, hi = cmp["ratio_ci"]
    assert lo <= cmp["ratio_of_medians"] <= hi < 1.0
    assert "faster than big_f32.tflite" in cmp["summary"] and cmp["model"]["path"] == str(bench_models["big_f32"])
    assert "samples_ms" not in cmp


def test_benchmark_compare_same_model_ratio_near_one(tiny_tflite_float32):
    doc = _benchmark(model=tiny_tflite_float32, compare=tiny_tflite_float32, runs=60, warmup=2, min_time=0.0)
    cmp = doc["compare"]
    assert 0.8 < cmp["ratio_of_medians"] < 1.25
    lo, hi = cmp["ratio_ci"]
    assert lo < hi and cmp["verdict"] in ("faster", "slower", "no significant difference")


# --------------------------------------------------------------------------------------------- CLI
def test_cli_benchmark_json_has_contract_keys(tiny_tflite_int8):
    res = CliRunner().invoke(main, ["benchmark", str(tiny_tflite_int8), "--threads", "1", *FAST_CLI, "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    for key in KEYS_7:
        assert key in doc
    for key in ("min", "p50", "p90", "p99", "mean", "std"):
        assert doc["latency_ms"][key] >= 0
    assert doc["source"] == "measured-host"


def test_cli_benchmark_thread_sweep_lists_speedups(tiny_tflite_float32):
    res = CliRunner().invoke(main, ["benchmark", str(tiny_tflite_float32), "--threads", "1,2", *FAST_CLI, "--json"])
    assert res.exit_code == 0, res.output
    docs = json.loads(res.stdout)
    assert [d["threads"] for d in docs] == [1, 2] and all("speedup" in d for d in docs)


def test_cli_benchmark_prints_a_table(tiny_tflite_float32):
    res = CliRunner().invoke(main, ["benchmark", str(tiny_tflite_float32), *FAST_CLI])
    assert res.exit_code == 0, res.output
    assert "p50" in res.output and "measured-host" in res.output and "95% CI" in res.output


@pytest.mark.parametrize("case,flags,code,words", [
    ("missing", [], 2, "no such file"),
    ("keras", [], 2, "Keras model"),
    ("ok", ["--cpus", "3-1"], 2, "runs backwards"),
    ("ok", ["--threads", "0"], 2, "positive integers"),
    ("ok", ["--runs", "0"], 2, "at least 1"),
    ("ok", ["--host", "-oProxyCommand=touch /tmp/x"], 2, "[USER@]HOST[:PORT]"),
    ("ok", ["--inputs", "nope.npz"], 2, "no such file"),
    ("ok", ["--target", "no-such-target"], 2, "unknown target"),
])
def test_cli_benchmark_bad_input_exits_2(tmp_path, tiny_tflite_float32, case, flags, code, words):
    model = {"missing": tmp_path / "missing.tflite", "keras": tmp_path / "m.keras",
             "ok": Path(tiny_tflite_float32)}[case]
    if case == "keras":
        model.write_bytes(b"PK\x03\x04" + b"\0" * 64)
    res = CliRunner().invoke(main, ["benchmark", str(model), *FAST_CLI, *flags])
    assert res.exit_code == code, res.output
    assert words in res.output and "Traceback" not in res.output


def test_cli_emulate_without_emulator_is_a_config_error(monkeypatch, tiny_tflite_float32):
    monkeypatch.setitem(sys.modules, "edgekit.emulator", None)  # as if the emulator were not installed
    res = CliRunner().invoke(main, ["benchmark", str(tiny_tflite_float32), "--emulate", "--target", "rpi4"])
    assert res.exit_code == 2
    assert "--emulate needs the emulator; run `edgekit emulator setup`" in res.output


# ------------------------------------------------------------------------------------ crashes
def test_benchmark_interpreter_segfault_is_exit_3_naming_the_signal(tmp_path, bench_models):
    """Kill the real harness child with SIGSEGV mid-run: the CLI survives and exits 3."""
    proc = subprocess.Popen([EDGEKIT, "benchmark", str(bench_models["big_f32"]), "--runs", "20000", "--min-time", "60",
                             "--max-time", "60", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        child = wait_for(lambda: [p for p in children_of(proc.pid) if any("harness.py" in a for a in cmdline(p))],
                         timeout=60)
        assert child, "the harness child never started"
        wait_for(lambda: False, timeout=0.5)
        os.kill(child[0], signal.SIGSEGV)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3, err
    assert "SIGSEGV" in err and "no result was recorded" in err
    assert out.strip() == ""  # nothing half-written on stdout


def test_run_local_real_runtime_crash_becomes_childcrash(tmp_path, tiny_tflite_float32):
    """tflite-runtime 2.14 does not verify flatbuffers: a truncated model really segfaults it."""
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(Path(tiny_tflite_float32).read_bytes()[:200])
    with pytest.raises(ChildCrash) as info:
        run_local(truncated, HarnessOptions(runs=5, warmup=0, min_time=0.0), python=str(device_venv()))
    assert "SIGSEGV" in str(info.value) and info.value.exit_code == 3


def test_benchmark_corrupt_model_is_rejected_before_an_unverifying_runtime(tmp_path, tiny_tflite_float32):
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(Path(tiny_tflite_float32).read_bytes()[:200])
    with pytest.raises(ModelError, match="corrupt TFLite file"):
        _benchmark(model=truncated, python=str(device_venv()), **FAST)


def test_run_local_timeout_kills_the_child(bench_models):
    options = HarnessOptions(runs=100, min_time=30.0, max_time=30.0, max_runs=10**7)
    with pytest.raises(ChildCrash, match="timed out"):
        run_local(bench_models["big_f32"], options, timeout=2.0)


def test_benchmark_op_missing_on_runtime_is_model_error(bench_models):
    with pytest.raises(ModelError, match="FULLY_CONNECTED version 12") as info:
        _benchmark(model=bench_models["small_dynamic"], python=str(device_venv()), **FAST)
    assert info.value.exit_code == 2 and "small_dynamic.tflite" in str(info.value)


# --------------------------------------------------------------------------------- statistics
def test_stats_percentiles_match_numpy():
    rng = np.random.default_rng(0)
    for n in (1, 2, 5, 101, 1000):
        x = rng.gamma(2.0, 1.0, size=n)
        s = sorted(x)
        for q in (0, 50, 90, 99, 100):
            assert stats.percentile(s, q) == pytest.approx(float(np.percentile(x, q)))


def test_stats_median_ci_covers_the_true_median():
    rng = np.random.default_rng(7)
    true_median = np.log(2.0)  # exponential(1)
    trials, hits = 400, 0
    for _ in range(trials):
        lo, hi = stats.median_ci(rng.exponential(1.0, size=40))
        hits += lo <= true_median <= hi
    assert hits / trials >= 0.93  # distribution-free: >= 95 % by construction, minus sampling noise
    assert stats.median_ci([1.0, 2.0, 3.0, 4.0, 5.0]) is None
    assert stats.median_ci(range(6)) == (0.0, 5.0)


def test_stats_ratio_of_medians_and_verdict():
    rng = np.random.default_rng(3)
    a = rng.normal(10.0, 0.5, size=300)
    b = 2.0 * a + rng.normal(0.0, 0.2, size=300)
    r = stats.ratio_of_medians(a, b, resamples=500)
    assert r["ratio"] == pytest.approx(0.5, rel=0.02) and r["ci"][0] <= 0.5 <= r["ci"][1] + 0.01
    assert stats.verdict(r["ratio"], r["ci"]) == (True, "faster")
    same = stats.ratio_of_medians(a, a[::-1], resamples=300, paired=False)
    assert same["ci"][0] < 1.0 < same["ci"][1]
    assert stats.verdict(same["ratio"], same["ci"]) == (False, "no significant difference")
    assert stats.verdict(1.3, [1.1, 1.5]) == (True, "slower")
    sp = stats.speedups([(1, 10.0), (2, 6.0), (4, 4.0)])
    assert [round(s["speedup"], 2) for s in sp] == [1.0, 1.67, 2.5] and sp[2]["efficiency"] == pytest.approx(0.625)


# ------------------------------------------------------------------------- result validation
def _good_doc() -> dict:
    return {"schema_version": 1, "runtime": "tflite_runtime", "runtime_version": "2.14.0", "machine": "aarch64",
            "source": "measured-device", "threads": 1, "runs": 3, "init_ms": 1.0, "peak_rss_mb": 40.0,
            "latency_ms": {"min": 1.0, "p50": 2.0, "p90": 3.0, "p99": 3.0, "mean": 2.0, "std": 1.0},
            "samples_ms": [1.0, 2.0, 3.0]}


@pytest.mark.parametrize("mutate,words", [
    (lambda d: d.update(schema_version=2), "schema_version"),
    (lambda d: d["latency_ms"].update(p50="fast"), "latency_ms.p50"),
    (lambda d: d["latency_ms"].update(p90=float("nan")), "latency_ms.p90"),
    (lambda d: d["latency_ms"].update(p90=0.5), "not ordered"),
    (lambda d: d.update(threads=0), "threads"),
    (lambda d: d.update(runtime="x" * 500), "runtime"),
    (lambda d: d.update(samples_ms=[1.0]), "samples_ms"),
    (lambda d: d.pop("latency_ms"), "latency_ms"),
])
def test_result_rejects_malformed_documents(mutate, words):
    doc = _good_doc()
    bench_result.validate_doc(doc, where="test", with_samples=True)  # the good one passes
    mutate(doc)
    with pytest.raises(DeviceError, match="invalid result|schema_version") as info:
        bench_result.validate_doc(doc, where="test", with_samples=True)
    assert words in str(info.value) and info.value.exit_code == 3


def test_result_decodes_json_after_shell_noise_and_rejects_garbage():
    doc = _good_doc()
    assert bench_result.parse_docs("Welcome!\n" + json.dumps(doc, indent=2), where="t")[0]["runtime"] == "tflite_runtime"
    with pytest.raises(DeviceError, match="not valid JSON"):
        bench_result.parse_docs("<html>error</html>", where="t")
    with pytest.raises(DeviceError, match="printed no result"):
        bench_result.parse_docs("", where="t")


def test_result_maps_harness_errors_and_signals():
    err = bench_result.failure(2, json.dumps({"schema_version": 1, "error": {"kind": "data", "message": "x bad"}}),
                               "", where="h", model="m")
    assert isinstance(err, DataError) and "x bad" in str(err)
    crash = bench_result.failure(128 + 11, "", "Segmentation fault", where="h", model="m.tflite")
    assert isinstance(crash, ChildCrash) and "SIGSEGV" in str(crash)
    killed = bench_result.failure(-9, "", "", where="h", model="m.tflite")
    assert "SIGKILL" in str(killed) and "out of memory" in str(killed)


def test_options_round_trip_through_the_harness_parser():
    import edgekit.harness as h

    opts = HarnessOptions(threads=(1, 2, 4), runs=7, warmup=0, min_time=0.5, max_time=9.0, cpus=(0, 1, 3),
                          xnnpack=False, runtime="tflite_runtime", seed=5)
    ns = h.build_parser().parse_args(opts.args(model="m.tflite", source="measured-device", compare="o.tflite",
                                               inputs="i.npz", dump_outputs="d.npz"))
    assert (ns.model, ns.threads, ns.runs, ns.warmup, ns.min_time, ns.max_time) == ("m.tflite", "1,2,4", 7, 0, 0.5, 9.0)
    assert (ns.cpus, ns.no_xnnpack, ns.runtime, ns.seed, ns.compare, ns.inputs, ns.dump_outputs, ns.samples) == \
        ("0-1,3", True, "tflite_runtime", 5, "o.tflite", "i.npz", "d.npz", True)
    with pytest.raises(ConfigError):
        HarnessOptions(runs=0)
    with pytest.raises(ConfigError):
        HarnessOptions(min_time=5.0, max_time=1.0)


def test_cli_benchmark_emulate_runs_the_harness_in_the_emulated_pi(emu_env, tiny_tflite_int8):
    res = CliRunner().invoke(main, ["benchmark", str(tiny_tflite_int8), "--emulate", "--target", "rpi4", "--runs",
                                    "10", "--warmup", "1", "--min-time", "0", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["source"] == "emulated" and doc["machine"] == "aarch64" and doc["target"] == "rpi4"
    assert doc["runs"] == 10 and any("NOT device timings" in n for n in doc["notes"])
