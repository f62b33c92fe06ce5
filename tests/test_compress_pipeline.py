"""`edgekit compress` with pruning + QAT end to end through the CLI: stages, cache, dry run, bad input."""
import json
import os

import numpy as np
import pytest

from conftest import run_edgekit
from edgekit.fsutil import sha256_file

pytestmark = pytest.mark.tf

STAGES = ["load", "baseline", "convert-float32", "preflight", "prune", "qat", "convert-int8", "validate"]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("stage-cache")


def _compress(model, data, out, cache_dir, *extra):
    return run_edgekit("compress", str(model), "--data", str(data), "--target", "rpi4", "--prune", "0.5", "--qat",
                       "--epochs", "1", "-o", str(out), "--json", *extra, env={"EDGEKIT_CACHE_DIR": str(cache_dir)})


@pytest.fixture(scope="module")
def first_run(tiny_keras_model, digits_npz, tmp_path_factory, cache_dir):
    out = tmp_path_factory.mktemp("compress-pqat")
    proc = _compress(tiny_keras_model, digits_npz, out, cache_dir)
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout), out


def test_compress_pipeline_prune_qat_end_to_end(first_run):
    doc, out = first_run
    assert [s["name"] for s in doc["stages"]] == STAGES
    assert all(set(s) >= {"name", "seconds", "cached", "metrics"} and s["cached"] is False for s in doc["stages"])
    by_name = {s["name"]: s["metrics"] for s in doc["stages"]}
    assert by_name["prune"]["sparsity"] == pytest.approx(0.5, abs=0.01)
    assert by_name["qat"]["scheme"] == "pqat" and by_name["qat"]["sparsity_check"]["preserved"] is True
    survived = by_name["convert-int8"]["sparsity_check"]
    assert survived["survived"] is True and survived["layers"]["hidden"]["tflite_sparsity"] >= 0.49
    assert by_name["preflight"]["plan"][0].startswith("prune:") and by_name["preflight"]["layers"]
    assert doc["result"]["sparsity"] == pytest.approx(0.5, abs=0.01)
    assert doc["result"]["quantization"] == "int8" and doc["result"]["sha256"] == sha256_file(out / "model.tflite")
    assert doc["result"]["tflite_gzip_bytes"] < doc["result"]["tflite_bytes"] < doc["baseline"]["tflite_float32_bytes"] / 2.5
    assert doc["result"]["accuracy"] >= doc["baseline"]["accuracy"] - 0.03
    assert doc["settings"]["recipe"]["stages"] == ["prune", "qat"]


def test_compress_pipeline_cached_rerun_reuses_every_stage(first_run, tiny_keras_model, digits_npz, tmp_path,
                                                          cache_dir):
    doc, _ = first_run
    proc = _compress(tiny_keras_model, digits_npz, tmp_path, cache_dir)
    assert proc.returncode in (0, 1), proc.stderr
    again = json.loads(proc.stdout)
    assert [s["name"] for s in again["stages"]] == STAGES and all(s["cached"] for s in again["stages"])
    assert again["result"]["sha256"] == doc["result"]["sha256"]
    assert "fine-tuning" not in proc.stderr
    # one flag changed: the training stages are reused, only conversion and what follows rerun
    proc = _compress(tiny_keras_model, digits_npz, tmp_path / "io", cache_dir, "--io", "int8")
    assert proc.returncode in (0, 1), proc.stderr
    changed = {s["name"]: s["cached"] for s in json.loads(proc.stdout)["stages"]}
    assert changed["prune"] is True and changed["qat"] is True and changed["convert-int8"] is False


def test_compress_pipeline_dry_run_trains_nothing(tiny_keras_model, digits_npz, tmp_path):
    cache = tmp_path / "cache"
    proc = run_edgekit("compress", str(tiny_keras_model), "--data", str(digits_npz), "--structured", "2:4",
                       "--dry-run", "-o", str(tmp_path / "out"), env={"EDGEKIT_CACHE_DIR": str(cache)})
    assert proc.returncode == 0, proc.stderr
    for text in ("nothing was trained", "prune: structured 2:4", "qat: prune-preserving (PQAT)", "layers:",
                 "hidden", "stages.prune", "from flags", "target rpi4"):
        assert text in proc.stderr, text
    assert not (tmp_path / "out").exists() and not cache.exists()


def test_compress_pipeline_structured_shape_refused_before_training(tiny_keras_model, digits_npz, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("prune: {skip_first: false}\n")
    proc = run_edgekit("compress", str(tiny_keras_model), "--data", str(digits_npz), "--recipe", str(recipe),
                       "--structured", "3:4", "-o", str(tmp_path / "out"),
                       env={"EDGEKIT_CACHE_DIR": str(tmp_path / "cache")})
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: --structured 3:4: layer 'conv'") and "1 input channels" in last
    assert "fine-tuning" not in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "model.tflite").exists()
    assert not list((tmp_path / "cache").rglob("manifest.json"))


def test_compress_pipeline_too_little_training_data_refused(tiny_keras_model, tmp_path):
    rng = np.random.default_rng(0)
    small = tmp_path / "small.npz"
    np.savez(small, x_train=rng.random((30, 8, 8, 1), dtype=np.float32), y_train=np.arange(30) % 10,
             x_test=rng.random((10, 8, 8, 1), dtype=np.float32), y_test=np.arange(10))
    proc = run_edgekit("compress", str(tiny_keras_model), "--data", str(small), "--epochs", "1",
                       "-o", str(tmp_path / "out"), env={"EDGEKIT_CACHE_DIR": str(tmp_path / "cache")})
    assert proc.returncode == 2, proc.stderr
    assert "one epoch needs at least one batch of 32" in proc.stderr and "fine-tuning" not in proc.stderr
    assert not os.path.exists(tmp_path / "out" / "model.tflite")
