"""``edgekit check`` end to end with real, really degraded models and the real interpreter.

The session's tiny digits CNN (``conftest.py``) is the baseline model. One subprocess derives the
degraded candidates from its Keras model: a copy with half of its weights zeroed / noised and
re-converted to int8 (must fail on accuracy), and one with NaN weights (NaN metric: must fail
closed). The session's float32 conversion of the same model must fail on size; the original passes.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from junitparser import Failure, JUnitXml, Skipped

from conftest import run_python
from edgekit.cli import main

pytestmark = pytest.mark.tf

_DEGRADE = """
import sys, numpy as np, tf_keras as keras
from edgekit.stages.convert import convert_keras
model_path, data_path, out_dir = sys.argv[1:4]
d = np.load(data_path)
m = keras.models.load_model(model_path)
rng = np.random.default_rng(1)
weights = m.get_weights()
bad = []
for w in weights:
    if w.ndim > 1:  # kernels: zero 30 %, add noise to another 30 %
        r = rng.random(w.shape)
        w = np.where(r < 0.3, 0.0, w) + (r > 0.7) * rng.normal(0, 2.0 * w.std(), w.shape)
    bad.append(w.astype(np.float32))
m.set_weights(bad)
acc = float(np.mean(m.predict(d["x_test"], verbose=0).argmax(1) == d["y_test"]))
open(out_dir + "/degraded.tflite", "wb").write(
    convert_keras(m, mode="int8", io_dtype="int8", representative=d["x_train"][:100]))
m.set_weights([np.full_like(w, np.nan) for w in weights])
open(out_dir + "/nan.tflite", "wb").write(convert_keras(m, mode="float32"))
print(acc)
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_keras_model, tiny_tflite_int8, tiny_tflite_float32, digits_npz) -> dict:
    out = tmp_path_factory.mktemp("gate_models")
    proc = run_python(_DEGRADE, str(tiny_keras_model), str(digits_npz), str(out))
    paths = {"original": out / "model.tflite", "float32": out / "float32.tflite",
             "degraded": out / "degraded.tflite", "nan": out / "nan.tflite"}
    shutil.copy(tiny_tflite_int8, paths["original"])
    shutil.copy(tiny_tflite_float32, paths["float32"])
    return {**paths, "degraded_keras_accuracy": float(proc.stdout.split()[-1]), "data": digits_npz, "dir": out}


def _run(*args: str, env: dict | None = None):
    return CliRunner().invoke(main, [str(a) for a in args], env={"GITHUB_ACTIONS": "false", "GITHUB_STEP_SUMMARY": "",
                                                                  **(env or {})})


@pytest.fixture(scope="module")
def baseline(models) -> Path:
    path = models["dir"] / "edgekit-baseline.json"
    res = _run("check", models["original"], "--data", models["data"], "--baseline", path, "--update-baseline",
               "--max-accuracy-drop", "0.02")
    assert res.exit_code == 0, res.output
    assert "baseline written" in res.output
    return path


def test_check_update_baseline_writes_small_versioned_json(baseline, models):
    doc = json.loads(baseline.read_text())
    assert doc["schema_version"] == 1 and doc["kind"] == "edgekit-baseline"
    assert doc["model"]["size_bytes"] == models["original"].stat().st_size
    assert doc["model"]["quantization"] == "int8" and len(doc["model"]["sha256"]) == 64
    assert 0 < doc["model"]["gzip_bytes"] < doc["model"]["size_bytes"]
    assert doc["data"]["samples"] == 397 and len(doc["data"]["fingerprint"]) == 64
    assert 0.8 < doc["metrics"]["accuracy"] <= 1.0
    assert doc["tolerances"]["max_accuracy_drop"] == 0.02  # the flag is stored for later runs
    assert doc["versions"]["ai-edge-litert"] and doc["versions"]["edgekit"]
    assert baseline.stat().st_size < 3000


def test_check_original_passes_with_junit(baseline, models, tmp_path):
    junit = tmp_path / "junit.xml"
    res = _run("check", models["original"], "--data", models["data"], "--baseline", baseline, "--junit", junit)
    assert res.exit_code == 0, res.output
    assert "edgekit check: passed" in res.output
    suite = list(JUnitXml.fromfile(str(junit)))[0]
    cases = {c.name: c for c in suite}
    assert {"accuracy", "model_size", "arena", "latency"} <= set(cases)
    assert suite.failures == 0 and suite.errors == 0
    assert cases["accuracy"].is_passed and cases["model_size"].is_passed
    assert any(isinstance(r, Skipped) and "not measured" in r.message for r in cases["latency"].result)


def test_check_degraded_model_fails_on_accuracy(baseline, models, tmp_path):
    junit = tmp_path / "junit.xml"
    summary = tmp_path / "step_summary.md"
    res = _run("check", models["degraded"], "--data", models["data"], "--baseline", baseline, "--junit", junit,
               env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)})
    assert res.exit_code == 1, res.output
    assert "[FAIL] accuracy" in res.output
    assert "::error file=" in res.output and "title=edgekit check failed%3A accuracy::" in res.output
    suite = list(JUnitXml.fromfile(str(junit)))[0]
    cases = {c.name: c for c in suite}
    fail = [r for r in cases["accuracy"].result if isinstance(r, Failure)]
    assert fail and "minimum" in fail[0].message and "value:" in fail[0].text and "limit: >=" in fail[0].text
    assert cases["model_size"].is_passed  # same architecture, same size: only accuracy regressed
    text = summary.read_text()
    assert "| accuracy | ❌ failed |" in text and "| model_size | ✅ passed |" in text


def test_check_float32_reconversion_fails_on_size(baseline, models):
    res = _run("check", models["float32"], "--data", models["data"], "--baseline", baseline, "--json")
    assert res.exit_code == 1, res.output
    doc = json.loads(res.stdout)
    checks = {c["name"]: c for c in doc["checks"]}
    assert checks["model_size"]["status"] == "failed" and checks["model_size"]["value"] > 2 * checks["model_size"]["limit"]
    assert checks["accuracy"]["status"] == "passed"
    assert doc["passed"] is False and doc["schema_version"] == 1


def test_check_nan_outputs_fail_closed(baseline, models):
    res = _run("check", models["nan"], "--data", models["data"], "--baseline", baseline)
    assert res.exit_code == 2
    assert "NaN" in res.output


def _npz_variant(models, tmp_path, name, transform) -> Path:
    d = dict(np.load(models["data"]))
    transform(d)
    path = tmp_path / name
    np.savez(path, **d)
    return path


def test_check_data_fingerprint_mismatch_exit_2_unless_allowed(baseline, models, tmp_path):
    def shuffle(d):
        order = np.random.default_rng(0).permutation(len(d["y_test"]))
        d["x_test"], d["y_test"] = d["x_test"][order], d["y_test"][order]

    data = _npz_variant(models, tmp_path, "shuffled.npz", shuffle)
    res = _run("check", models["original"], "--data", data, "--baseline", baseline)
    assert res.exit_code == 2 and "fingerprint" in res.output and "--allow-data-change" in res.output
    ok = _run("check", models["original"], "--data", data, "--baseline", baseline, "--allow-data-change")
    assert ok.exit_code == 0, ok.output
    assert "data changed since the baseline" in ok.output


def test_check_fewer_samples_than_baseline_exit_2(baseline, models, tmp_path):
    def cut(d):
        d["x_test"], d["y_test"] = d["x_test"][:100], d["y_test"][:100]

    data = _npz_variant(models, tmp_path, "small.npz", cut)
    res = _run("check", models["original"], "--data", data, "--baseline", baseline, "--allow-data-change")
    assert res.exit_code == 2 and "fewer than the 397" in res.output


def test_check_reference_model_with_flipped_bytes_is_refused(baseline, models, tmp_path):
    """RELIABILITY row 2: the baseline records the model's sha256; a changed copy is reported."""
    flipped = tmp_path / "baseline-model.tflite"
    data = bytearray(models["original"].read_bytes())
    data[len(data) // 2] ^= 0xFF
    flipped.write_bytes(bytes(data))
    res = _run("check", models["original"], "--data", models["data"], "--baseline", baseline,
               "--reference-model", flipped)
    assert res.exit_code == 2 and "not the baseline's model" in res.output


def test_check_tolerance_flag_overrides_baseline(baseline, models):
    res = _run("check", models["degraded"], "--data", models["data"], "--baseline", baseline,
               "--max-accuracy-drop", "1.0", "--max-size-growth", "0")
    assert res.exit_code == 0, res.output


def test_check_degraded_with_reference_points_at_a_layer(baseline, models):
    # the float32 .tflite of the original model is the reference: per-layer SQNR names where it breaks
    res = _run("check", models["degraded"], "--data", models["data"], "--baseline", baseline, "--json",
               "--reference", models["float32"])
    assert res.exit_code == 1, res.output
    doc = json.loads(res.stdout)
    acc = next(c for c in doc["checks"] if c["name"] == "accuracy")
    assert "largest error vs the reference at" in acc["message"]
    worst = doc["layers"]["worst"][0]
    assert worst["sqnr_drop_db"] > 3 and worst["op"] in ("CONV_2D", "FULLY_CONNECTED")
    assert doc["parity"]["top1_agreement"] < 0.95 and doc["parity"]["reference"]["kind"] == "tflite"


def test_check_latency_gate_measures_interleaved(baseline, models):
    res = _run("check", models["original"], "--data", models["data"], "--baseline", baseline, "--json",
               "--reference-model", models["original"], "--max-latency-regression", "0.5", "--runs", "30")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    lat = next(c for c in doc["checks"] if c["name"] == "latency")
    assert lat["status"] == "passed" and lat["limit"] == pytest.approx(1.5)
    assert 0.5 < lat["value"] < 2.0  # same model on both sides
    assert doc["latency"]["ci_low"] <= doc["latency"]["ratio"] <= doc["latency"]["ci_high"]
    assert doc["latency"]["candidate_p50_ms"] > 0 and doc["latency"]["reference_p50_ms"] > 0


def test_check_emulate_adds_arm_parity_check(baseline, models, emu_env):
    res = _run("check", models["original"], "--data", models["data"], "--baseline", baseline, "--json",
               "--emulate", "--target", "rpi4")
    assert res.exit_code == 0, res.output
    parity = next(c for c in json.loads(res.stdout)["checks"] if c["name"] == "arm_parity")
    assert parity["status"] == "passed" and "cortex-a72" in parity["message"]
