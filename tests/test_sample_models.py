"""Tests of the shipped sample models: recorded accuracy is real, files are tf_keras, tfmot accepts them.

The TensorFlow part runs in one subprocess so that pytest itself never imports TensorFlow.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_models"
METRICS = json.loads((SAMPLES / "metrics.json").read_text())
EXPECTED = {  # model file -> (dataset, maximum parameter count)
    "fashion_mnist_cnn.keras": ("builtin:fashion-mnist", 120_000),
    "basic_motions_cnn.keras": ("builtin:basic-motions", 20_000),
}

_EVALUATE = r"""
import json, os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, sys.argv[1])
import numpy as np
import tf_keras as keras
import tensorflow_model_optimization as tfmot
from edgekit.data import load_dataset

out = {}
for name, spec in json.loads(sys.argv[2]).items():
    model = keras.models.load_model(os.path.join(sys.argv[1], "sample_models", name))
    ds = load_dataset(spec)
    probs = model.predict(np.asarray(ds.x_test), batch_size=256, verbose=0)
    qat = tfmot.quantization.keras.quantize_model(model)  # raises if a layer cannot be quantized
    pruned = tfmot.sparsity.keras.prune_low_magnitude(model)  # raises if a layer cannot be pruned
    out[name] = {
        "accuracy": float(np.mean(np.argmax(probs, axis=1) == ds.y_test)),
        "fingerprint": ds.fingerprint, "params": int(model.count_params()),
        "input_shape": list(model.input_shape[1:]), "output_units": int(model.output_shape[-1]),
        "softmax": model.layers[-1].get_config().get("activation") == "softmax",
        "qat_layers": len(qat.layers), "pruned_layers": len(pruned.layers),
    }
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def evaluated() -> dict:
    specs = {name: spec for name, (spec, _) in EXPECTED.items()}
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([sys.executable, "-c", _EVALUATE, str(ROOT), json.dumps(specs)],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    line = [ln for ln in result.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def test_sample_models_recorded_in_metrics_and_readme():
    readme = (SAMPLES / "README.md").read_text()
    for name, (spec, max_params) in EXPECTED.items():
        entry = METRICS[name]
        assert (SAMPLES / name).is_file() and (SAMPLES / entry["script"]).is_file()
        assert entry["dataset"] == spec
        assert entry["test_accuracy"] >= 0.85
        assert entry["params"] <= max_params
        assert f"`{name}`" in readme and f"**{100 * entry['test_accuracy']:.2f} %**" in readme


def test_sample_models_saved_by_tf_keras():
    for name in EXPECTED:
        with zipfile.ZipFile(SAMPLES / name) as zf:
            meta = json.loads(zf.read("metadata.json"))
            config = json.loads(zf.read("config.json"))
        assert meta["keras_version"].startswith("2."), meta  # tf_keras, not Keras 3
        layers = [layer["class_name"] for layer in config["config"]["layers"]]
        assert "Conv1D" not in layers and "Lambda" not in layers


@pytest.mark.tf
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_models_reach_recorded_accuracy(evaluated, name):
    got, recorded = evaluated[name], METRICS[name]
    assert got["fingerprint"] == recorded["data_fingerprint"]  # evaluated on the data it was trained for
    assert abs(got["accuracy"] - recorded["test_accuracy"]) <= 0.005, (got["accuracy"], recorded["test_accuracy"])
    assert got["params"] == recorded["params"]
    assert got["input_shape"] == recorded["input_shape"] and got["output_units"] == recorded["num_classes"]
    assert got["softmax"]


@pytest.mark.tf
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_models_accepted_by_tfmot_qat_and_pruning(evaluated, name):
    assert evaluated[name]["qat_layers"] > 0 and evaluated[name]["pruned_layers"] > 0
