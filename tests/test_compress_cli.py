"""`edgekit compress` on the no-pruning, no-QAT path, end to end through the real CLI.

Real TensorFlow conversion and real LiteRT inference; bad inputs each get a one-line error, exit 2,
and leave nothing behind in the output directory.
"""
import json
import os
import zipfile

import numpy as np
import pytest

from conftest import run_edgekit
from edgekit.fsutil import sha256_file

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def int8_run(tiny_keras_model, digits_npz, tmp_path_factory):
    out = tmp_path_factory.mktemp("compress-int8")
    proc = run_edgekit("compress", str(tiny_keras_model), "--data", str(digits_npz), "--prune", "0", "--no-qat",
                       "--quantize", "int8", "--io", "int8", "--target", "cortex-m7", "-o", str(out), "--json")
    return proc, out


def test_compress_int8_writes_model_and_reports(int8_run):
    proc, out = int8_run
    assert proc.returncode in (0, 1), proc.stderr
    for name in ("model.tflite", "report.json", "report.md"):
        assert (out / name).stat().st_size > 0
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]


def test_compress_json_report_matches_contract(int8_run):
    proc, out = int8_run
    doc = json.loads(proc.stdout)
    assert doc == json.loads((out / "report.json").read_text())
    assert doc["schema_version"] == 1 and doc["target"] == "cortex-m7"
    res, base = doc["result"], doc["baseline"]
    assert res["sha256"] == sha256_file(out / "model.tflite")
    assert res["tflite_bytes"] == (out / "model.tflite").stat().st_size
    assert res["quantization"] == "int8" and res["io_dtype"] == "int8"
    assert res["tflite_bytes"] < 0.4 * base["tflite_float32_bytes"]
    assert 0 < res["tflite_gzip_bytes"] < res["tflite_bytes"]
    assert base["accuracy"] > 0.85
    assert abs(res["accuracy"] - base["accuracy"]) < 0.03
    assert {s["name"] for s in doc["stages"]} >= {"load", "convert-float32", "convert-int8", "validate"}
    assert doc["versions"]["tensorflow"].startswith("2.")
    assert doc["passed"] == all(c["passed"] for c in doc["checks"])
    layers = doc["layers"]  # per-layer quantization error of the int8 model against the float32 one
    assert layers["matched"] >= 3 and layers["worst"]
    assert all(w["sqnr_db"] is None or w["sqnr_db"] > 5 for w in layers["worst"])
    assert proc.returncode == (0 if doc["passed"] else 1)


def test_compress_default_target_is_named(tiny_keras_model, tmp_path):
    proc = run_edgekit("compress", str(tiny_keras_model), "--prune", "0", "--no-qat", "--quantize", "float32",
                       "-o", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["target"] == "rpi4"
    assert doc["result"]["quantization"] == "float32"
    assert doc["result"]["accuracy"] is None  # no data given: nothing measured, nothing invented
    # a Pi runs LiteRT, not TFLite Micro: its arena is the planner's estimate, labelled as such
    assert doc["device"]["arena_source"] == "greedy-estimate" and doc["device"]["arena_bytes"] > 0


def _no_outputs(path):
    return not path.exists() or not [f for f in os.listdir(path) if not f.startswith(".")]


def _assert_bad_input(proc, out, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert _no_outputs(out)


def test_compress_corrupt_keras_exit2(tmp_path):
    bad = tmp_path / "broken.keras"
    bad.write_bytes(os.urandom(4096))
    out = tmp_path / "out"
    proc = run_edgekit("compress", str(bad), "--prune", "0", "--no-qat", "--quantize", "float32", "-o", str(out))
    _assert_bad_input(proc, out, "broken.keras")


def test_compress_truncated_keras_exit2(tiny_keras_model, tmp_path):
    bad = tmp_path / "cut.keras"
    bad.write_bytes(tiny_keras_model.read_bytes()[:3000])
    out = tmp_path / "out"
    proc = run_edgekit("compress", str(bad), "--prune", "0", "--no-qat", "--quantize", "float32", "-o", str(out))
    _assert_bad_input(proc, out, "cut.keras")


def test_compress_directory_not_savedmodel_exit2(tmp_path):
    d = tmp_path / "not_a_savedmodel"
    d.mkdir()
    (d / "readme.txt").write_text("hello")
    out = tmp_path / "out"
    proc = run_edgekit("compress", str(d), "--prune", "0", "--no-qat", "--quantize", "float32", "-o", str(out))
    _assert_bad_input(proc, out, "not_a_savedmodel")


def test_compress_npz_missing_keys_exit2(tiny_keras_model, tmp_path):
    npz = tmp_path / "partial.npz"
    np.savez(npz, x_train=np.zeros((4, 8, 8, 1), np.float32))
    out = tmp_path / "out"
    proc = run_edgekit("compress", str(tiny_keras_model), "--data", str(npz), "--prune", "0", "--no-qat",
                       "--quantize", "int8", "-o", str(out))
    _assert_bad_input(proc, out, "partial.npz")


def test_compress_wrong_shape_data_exit2(tiny_keras_model, tmp_path):
    npz = tmp_path / "shape.npz"
    rng = np.random.default_rng(0)
    np.savez(npz, x=rng.random((60, 9, 9, 1), dtype=np.float32), y=rng.integers(0, 10, 60))
    out = tmp_path / "out"
    proc = run_edgekit("compress", str(tiny_keras_model), "--data", str(npz), "--prune", "0", "--no-qat",
                       "--quantize", "int8", "-o", str(out))
    _assert_bad_input(proc, out, "shape.npz", "expected")


def test_compress_nan_and_inf_calibration_data_exit2(tiny_keras_model, digits_npz, tmp_path):
    d = dict(np.load(digits_npz))
    for bad_value, name in ((np.nan, "nan.npz"), (np.inf, "inf.npz")):
        x = d["x_train"].copy()
        x[7, 0, 0, 0] = bad_value
        npz = tmp_path / name
        np.savez(npz, **{**d, "x_train": x})
        out = tmp_path / f"out-{name}"
        proc = run_edgekit("compress", str(tiny_keras_model), "--data", str(npz), "--prune", "0", "--no-qat",
                           "--quantize", "int8", "-o", str(out))
        _assert_bad_input(proc, out, name, "7")


def test_compress_labels_outside_output_range_exit2(tiny_keras_model, digits_npz, tmp_path):
    d = dict(np.load(digits_npz))
    y = d["y_test"].copy()
    y[3] = 12
    npz = tmp_path / "labels.npz"
    np.savez(npz, **{**d, "y_test": y})
    out = tmp_path / "out"
    proc = run_edgekit("compress", str(tiny_keras_model), "--data", str(npz), "--prune", "0", "--no-qat",
                       "--quantize", "int8", "-o", str(out))
    _assert_bad_input(proc, out, "labels.npz", "12")


def test_compress_unwritable_output_exit2(tiny_keras_model, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    proc = run_edgekit("compress", str(tiny_keras_model), "--prune", "0", "--no-qat", "--quantize", "float32",
                       "-o", str(blocker / "out"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "-o" in proc.stderr
    assert blocker.read_text() == "not a directory"


def test_compress_lambda_model_refused_without_running_it(tmp_path):
    from conftest import run_python

    marker = tmp_path / "marker"
    model = tmp_path / "lambda.keras"
    run_python("""
        import sys, tf_keras as keras
        def f(x):
            open(sys.argv[2], "w").write("ran")
            return x
        m = keras.Sequential([keras.layers.Input((4,)), keras.layers.Lambda(f, name="evil"), keras.layers.Dense(2)])
        m.save(sys.argv[1])
    """, str(model), str(marker))
    marker.unlink(missing_ok=True)
    out = tmp_path / "out"
    proc = run_edgekit("compress", str(model), "--prune", "0", "--no-qat", "--quantize", "float32", "-o", str(out))
    _assert_bad_input(proc, out, "evil", "--trust-model")
    assert not marker.exists()


def test_compress_int8_without_data_exit2(tiny_keras_model, tmp_path):
    out = tmp_path / "out"
    proc = run_edgekit("compress", str(tiny_keras_model), "--prune", "0", "--no-qat", "--quantize", "int8",
                       "-o", str(out))
    _assert_bad_input(proc, out, "--data")


def test_compress_debug_shows_traceback(tmp_path):
    bad = tmp_path / "broken.keras"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("metadata.json", "{}")
    proc = run_edgekit("compress", str(bad), "--prune", "0", "--no-qat", "--quantize", "float32",
                       "-o", str(tmp_path / "o"), "--debug")
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr


def test_compress_target_checks_fail_with_exit1(tiny_keras_model, digits_npz, tmp_path):
    """A user profile whose flash budget the model exceeds: the report says so and the exit code is 1."""
    import yaml

    shown = run_edgekit("targets", "show", "cortex-m7")
    assert shown.returncode == 0, shown.stderr
    profile = yaml.safe_load(shown.stdout)
    profile["name"] = "tiny-mcu"
    profile["budgets"]["max_model_bytes"] = 4000
    path = tmp_path / "tiny-mcu.yaml"
    path.write_text(yaml.safe_dump(profile))
    out = tmp_path / "out"
    proc = run_edgekit("compress", str(tiny_keras_model), "--data", str(digits_npz), "--prune", "0", "--no-qat",
                       "--quantize", "int8", "--target", str(path), "-o", str(out), "--json")
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["passed"] is False and doc["target"] == "tiny-mcu"
    failed = {c["name"] for c in doc["checks"] if not c["passed"]}
    assert "model_size" in failed
    assert doc["latency"]["source"] == "estimated" and doc["latency"]["p50_ms"] > 0
    assert (out / "report.md").read_text().startswith("# edgekit compress: FAILED")


def test_compress_reports_host_measurement_beside_estimate(int8_run, tmp_path):
    proc, out = int8_run
    doc = json.loads(proc.stdout)
    assert doc["latency"]["source"] == "estimated"
    assert doc["latency"]["host"] is None  # MCU target: no host timing pretending to be relevant
    assert doc["device"]["arena_source"] == "tflite-micro"  # TFLite Micro's own allocation for an MCU
    assert doc["device"]["arena_bytes"] > 0
