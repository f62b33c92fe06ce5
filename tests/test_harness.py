"""The on-device harness (edgekit/harness.py) run as a program, as it is on a device.

Runs it with this project's Python (ai_edge_litert) and inside a device-like venv that has only
numpy<2 + tflite-runtime 2.14 and no edgekit, to prove it is self-contained.
"""
from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


ROOT = Path(__file__).resolve().parents[1]
HARNESS = ROOT / "edgekit" / "harness.py"
FAST = ["--runs", "20", "--warmup", "2", "--warmup-time", "0.5", "--min-time", "0"]
KEYS_7 = ("schema_version", "runtime", "runtime_version", "machine", "threads", "runs", "init_ms", "peak_rss_mb",
          "source")


@pytest.fixture()
def harness_dir(tmp_path) -> Path:
    """A folder holding only a copy of harness.py, as on a device."""
    shutil.copyfile(HARNESS, tmp_path / "harness.py")
    return tmp_path


def run_harness(python: Path | str, harness_dir: Path, *args: str, isolated: bool = False,
                timeout: float = 120) -> tuple[int, object, str]:
    argv = [str(python)] + (["-I"] if isolated else []) + [str(harness_dir / "harness.py"), *map(str, args)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=harness_dir, env=env)
    try:
        doc = json.loads(proc.stdout)
    except ValueError:
        doc = None
    return proc.returncode, doc, proc.stderr


def test_harness_prints_design_keys_with_ai_edge_litert(harness_dir, tiny_tflite_float32):
    rc, doc, err = run_harness(sys.executable, harness_dir, tiny_tflite_float32, *FAST)
    assert rc == 0, err
    for key in KEYS_7:
        assert key in doc, key
    lat = doc["latency_ms"]
    assert set(lat) >= {"min", "p50", "p90", "p99", "mean", "std"}
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert doc["schema_version"] == 1 and doc["runtime"] == "ai_edge_litert"
    assert doc["source"] == "measured-device" and doc["threads"] == 1 and doc["runs"] == 20
    lo, hi = doc["p50_ci_ms"]
    assert lo <= lat["p50"] <= hi
    assert doc["model"]["sha256"] and doc["model"]["size_bytes"] == Path(tiny_tflite_float32).stat().st_size
    assert doc["warmup"]["runs"] >= 2 and doc["init_ms"] > 0 and doc["peak_rss_mb"] > 10
    dev = doc["device"]
    assert dev["cores"] >= 1 and dev["cpus_available"] and dev["machine"] == doc["machine"]
    assert "governor" in dev and "temperature_c" in dev  # null where not readable (VMs)
    assert doc["inputs"][0]["dtype"] == "float32" and doc["inputs"][0]["source"] == "random"


def test_harness_runs_as_module(tiny_tflite_int8):
    proc = subprocess.run([sys.executable, "-m", "edgekit.harness", str(tiny_tflite_int8), *FAST],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # stdout holds the JSON only; runtime chatter goes to stderr
    assert doc["runtime"] == "ai_edge_litert" and doc["inputs"][0]["dtype"] == "int8"


def test_harness_runs_in_device_venv_without_edgekit(harness_dir, device_python, tiny_tflite_int8):
    probe = subprocess.run([str(device_python), "-I", "-c", "import edgekit"], capture_output=True, cwd=harness_dir)
    assert probe.returncode != 0  # the device venv cannot import edgekit
    rc, doc, err = run_harness(device_python, harness_dir, tiny_tflite_int8, *FAST, isolated=True)
    assert rc == 0, err
    assert doc["runtime"] == "tflite_runtime" and doc["runtime_version"] == "2.14.0"
    assert doc["numpy_version"].startswith("1.")
    assert doc["latency_ms"]["p50"] > 0


def test_harness_op_missing_in_runtime_names_the_op(harness_dir, device_python, bench_models):
    # STACK_NOTES: tflite-runtime 2.14 has no FULLY_CONNECTED v12, which TF 2.21 emits for dynamic range.
    rc, doc, err = run_harness(device_python, harness_dir, bench_models["small_dynamic"], *FAST)
    assert rc == 2
    assert doc["error"]["kind"] == "op-unsupported"
    msg = doc["error"]["message"]
    assert "FULLY_CONNECTED" in msg and "version 12" in msg and "tflite_runtime 2.14.0" in msg
    assert "pip install" in msg
    assert "Traceback" not in err


def test_harness_thread_sweep_reports_speedup(harness_dir, tiny_tflite_float32):
    rc, docs, err = run_harness(sys.executable, harness_dir, tiny_tflite_float32, "--threads", "1,2", *FAST)
    assert rc == 0, err
    assert isinstance(docs, list) and [d["threads"] for d in docs] == [1, 2]
    assert docs[0]["speedup"] == 1.0 and all(d["speedup_vs_threads"] == 1 for d in docs)
    assert docs[1]["speedup"] == pytest.approx(docs[0]["latency_ms"]["p50"] / docs[1]["latency_ms"]["p50"], rel=1e-3)


@pytest.mark.parametrize("case", ["missing", "not-tflite", "bad-cpus-syntax", "cpu-absent", "bad-threads",
                                  "truncated", "runs-zero"])
def test_harness_bad_input_exits_2_with_reason(harness_dir, tiny_tflite_float32, case):
    model = Path(tiny_tflite_float32)
    extra: list[str] = []
    if case == "missing":
        model = harness_dir / "nope.tflite"
    elif case == "not-tflite":
        model = harness_dir / "model.keras"
        model.write_bytes(b"PK\x03\x04" + os.urandom(200))
    elif case == "bad-cpus-syntax":
        extra = ["--cpus", "0-x"]
    elif case == "cpu-absent":
        extra = ["--cpus", str((os.cpu_count() or 1) + 64)]
    elif case == "bad-threads":
        extra = ["--threads", "1,0"]
    elif case == "truncated":
        model = harness_dir / "trunc.tflite"
        model.write_bytes(Path(tiny_tflite_float32).read_bytes()[:300])
    elif case == "runs-zero":
        extra = ["--runs", "0"]
    rc, doc, err = run_harness(sys.executable, harness_dir, model, *FAST, *extra)
    assert rc == 2, err
    assert doc["schema_version"] == 1 and doc["error"]["message"]
    expected = {"missing": "no such file", "not-tflite": "TFL3", "bad-cpus-syntax": "CPU list",
                "cpu-absent": "not available", "bad-threads": "positive integers", "truncated": "Flatbuffer",
                "runs-zero": "at least 1"}[case]
    assert expected in doc["error"]["message"]
    assert "Traceback" not in err


def test_harness_missing_runtime_says_what_to_install(harness_dir, tmp_path_factory, tiny_tflite_int8):
    from sshd import numpy_only_python

    py = numpy_only_python(tmp_path_factory.getbasetemp())
    rc, doc, _ = run_harness(py, harness_dir, tiny_tflite_int8, *FAST)
    assert rc == 3 and doc["error"]["kind"] == "runtime-missing"
    assert "pip install ai-edge-litert" in doc["error"]["message"] and "tflite-runtime" in doc["error"]["message"]
    rc, doc, _ = run_harness(sys.executable, harness_dir, tiny_tflite_int8, "--runtime", "tflite_runtime", *FAST)
    assert rc == 3 and "tflite_runtime is not installed" in doc["error"]["message"]


def test_harness_inputs_file_and_dumped_outputs_agree_across_runtimes(harness_dir, device_python, tiny_tflite_int8,
                                                                      digits_npz):
    x = np.load(digits_npz)["x_test"][:7]
    np.savez(harness_dir / "inputs.npz", x=x)
    dumps = {}
    for name, py in (("litert", sys.executable), ("tflite_runtime", device_python)):
        out = harness_dir / f"{name}.npz"
        rc, doc, err = run_harness(py, harness_dir, tiny_tflite_int8, *FAST, "--inputs", "inputs.npz",
                                   "--dump-outputs", out)
        assert rc == 0, err
        assert doc["dump"]["samples"] == 7 and doc["inputs"][0]["source"] == "file"
        dumps[name] = np.load(out)
    a, b = dumps["litert"], dumps["tflite_runtime"]
    assert a["output_0"].shape == (7, 10) and a["output_0"].dtype == np.int8
    inp = doc["inputs"][0]
    expected_q = np.clip(np.round(x / inp["scale"] + inp["zero_point"]), -128, 127).astype(np.int8)
    assert np.array_equal(a["input_0"], expected_q)  # float inputs were quantized with the input's scale
    assert np.array_equal(a["input_0"], b["input_0"])
    # both runtimes compute the same outputs within 2 LSB (XNNPACK vs builtin kernels)
    assert np.abs(a["output_0"].astype(int) - b["output_0"].astype(int)).max() <= 2
    assert (a["output_0"].argmax(1) == b["output_0"].argmax(1)).mean() >= 6 / 7


def test_harness_random_inputs_cover_the_quantized_range(harness_dir, tiny_tflite_int8, tiny_tflite_float32):
    rc, _, err = run_harness(sys.executable, harness_dir, tiny_tflite_int8, *FAST, "--dump-outputs", "q.npz")
    assert rc == 0, err
    q = np.load(harness_dir / "q.npz")["input_0"]
    assert q.dtype == np.int8 and q.min() < -100 and q.max() > 100  # the whole int8 range, not just 0..1
    rc, _, err = run_harness(sys.executable, harness_dir, tiny_tflite_float32, *FAST, "--dump-outputs", "f.npz",
                             "--seed", "3")
    assert rc == 0, err
    f = np.load(harness_dir / "f.npz")["input_0"]
    assert f.dtype == np.float32 and -1.0 <= f.min() < -0.5 and 0.5 < f.max() <= 1.0


@pytest.mark.parametrize("bad", ["shape", "nan", "key"])
def test_harness_bad_inputs_file_is_a_data_error(harness_dir, tiny_tflite_float32, bad):
    if bad == "shape":
        np.save(harness_dir / "in.npy", np.zeros((3, 4, 4), np.float32))
        name, expected = "in.npy", "expected shape"
    elif bad == "nan":
        arr = np.zeros((4, 8, 8, 1), np.float32)
        arr[2, 1, 1, 0] = np.nan
        np.save(harness_dir / "in.npy", arr)
        name, expected = "in.npy", "sample 2"
    else:
        np.savez(harness_dir / "in.npz", wrong=np.zeros((1, 8, 8, 1), np.float32))
        name, expected = "in.npz", "no array for input 0"
    rc, doc, _ = run_harness(sys.executable, harness_dir, tiny_tflite_float32, *FAST, "--inputs", name)
    assert rc == 2 and doc["error"]["kind"] == "data" and expected in doc["error"]["message"]


def test_harness_affinity_and_xnnpack_switch(harness_dir, tiny_tflite_float32):
    rc, doc, err = run_harness(sys.executable, harness_dir, tiny_tflite_float32, *FAST, "--cpus", "0",
                               "--no-xnnpack", "--samples")
    assert rc == 0, err
    assert doc["cpus"] == [0] and doc["device"]["cpus_available"] == [0]  # the pin really applied
    assert doc["xnnpack"] is False
    assert len(doc["samples_ms"]) == doc["runs"] == 20


def test_harness_compare_interleaves_and_pairs_samples(harness_dir, tiny_tflite_float32, bench_models):
    rc, doc, err = run_harness(sys.executable, harness_dir, tiny_tflite_float32, *FAST, "--samples",
                               "--compare", bench_models["big_f32"])
    assert rc == 0, err
    sub = doc["compare"]
    assert len(sub["samples_ms"]) == len(doc["samples_ms"]) == doc["runs"] == sub["runs"] >= 20
    assert sub["model"]["size_bytes"] == Path(bench_models["big_f32"]).stat().st_size
    assert sub["ratio_of_medians"] == pytest.approx(doc["latency_ms"]["p50"] / sub["latency_ms"]["p50"], rel=1e-3)
    assert sub["ratio_of_medians"] < 1.0  # the small model is faster than the 32x32x48 CNN


def test_harness_statistics_match_host_statistics():
    import edgekit.harness as h
    from edgekit.bench import stats

    rng = np.random.default_rng(1)
    for n in (6, 7, 50, 333, 2000):
        samples = list(rng.lognormal(0.0, 0.5, size=n))
        got = h.summarize(samples)
        ref = stats.summarize(samples)
        for key in ("min", "p50", "p90", "p99", "mean", "std"):
            assert got["latency_ms"][key] == pytest.approx(ref["latency_ms"][key], rel=1e-5)
        assert got["p50_ci_ms"] == pytest.approx(ref["p50_ci_ms"], rel=1e-5)
    assert h.summarize([1.0, 2.0, 3.0])["p50_ci_ms"] is None  # too few samples for 95 %


def test_harness_is_self_contained_python39_source():
    source = HARNESS.read_text()
    tree = ast.parse(source, feature_version=(3, 9))  # rejects `match` and other 3.10+ syntax
    assert not any(type(node).__name__ == "Match" for node in ast.walk(tree))
    allowed = {"__future__", "argparse", "hashlib", "json", "math", "os", "platform", "re", "socket", "sys", "time",
               "typing", "resource", "importlib", "numpy", "ai_edge_litert", "tflite_runtime", "tensorflow"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import in the harness"
            names = [(node.module or "").split(".")[0]]
        else:
            continue
        assert set(names) <= allowed, names
    assert "from __future__ import annotations" in source  # annotations are never evaluated on 3.9
