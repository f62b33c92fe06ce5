"""``edgekit validate``: metrics, parity, per-layer quantization error, model integrity.

Unit tests use hand-computed numbers (no TensorFlow). Integration tests (``tf``) run the real LiteRT
interpreter on the session's tiny digits models (see ``conftest.py``).
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import run_python
from edgekit.cli import main
from edgekit.errors import ConfigError, DataError, ModelError
from edgekit.fsutil import sha256_bytes
from edgekit.validate import (
    _dequant, _match_ops, classification_metrics, parity_metrics, read_model, regression_metrics, sqnr_db,
)

# ------------------------------------------------------------------------------------ metrics (unit)


def test_classification_metrics_hand_computed():
    y = np.array([0, 0, 1, 1, 2, 2])
    scores = np.array([[.9, .1, 0], [.2, .7, .1], [.1, .8, .1], [.1, .6, .3], [.3, .3, .4], [.5, .1, .4]])
    m = classification_metrics(y, scores, num_classes=3, class_names=["a", "b", "c"], top_k=(2, 5))
    # predictions: 0, 1, 1, 1, 2, 0  -> 4 of 6 right
    assert m["accuracy"] == pytest.approx(4 / 6, abs=1e-6)
    assert m["top2_accuracy"] == pytest.approx(1.0)  # every label is in the top 2
    assert "top5_accuracy" not in m  # k >= classes is meaningless
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    b = m["per_class"][1]
    assert b["name"] == "b" and b["precision"] == pytest.approx(2 / 3, abs=1e-6) and b["recall"] == 1.0
    assert b["f1"] == pytest.approx(0.8, abs=1e-6) and b["support"] == 2
    assert m["macro_recall"] == pytest.approx((0.5 + 1 + 0.5) / 3, abs=1e-6)
    assert m["samples"] == 6


def test_classification_metrics_single_sigmoid_unit():
    y = np.array([0, 1, 1, 0])
    m = classification_metrics(y, np.array([[0.2], [0.9], [0.4], [0.1]]), num_classes=2)
    assert m["accuracy"] == pytest.approx(0.75)
    logits = classification_metrics(y, np.array([[-2.0], [3.0], [0.5], [-0.1]]), num_classes=2)
    assert logits["accuracy"] == pytest.approx(1.0)  # outside [0, 1]: thresholded at 0


def test_regression_metrics_hand_computed():
    m = regression_metrics(np.array([1.0, 2.0, 3.0, 4.0]), np.array([[1.5], [2.0], [2.0], [4.0]]))
    assert m["mae"] == pytest.approx(0.375) and m["rmse"] == pytest.approx(math.sqrt(1.25 / 4))
    assert m["max_abs_error"] == pytest.approx(1.0) and m["r2"] == pytest.approx(1 - 1.25 / 5)
    with pytest.raises(DataError, match="expected shape"):
        regression_metrics(np.zeros((4, 2)), np.zeros((4, 3)))


def test_sqnr_db_known_values():
    assert sqnr_db([1.0, 1.0], [1.1, 0.9]) == pytest.approx(20.0)
    assert sqnr_db([1.0, -2.0], [1.0, -2.0]) == math.inf
    assert math.isnan(sqnr_db([0.0, 0.0], [0.1, 0.0]))


def test_parity_metrics_lists_disagreements_first():
    ref = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]], np.float32)
    got = np.array([[0.4, 0.6], [0.21, 0.79], [0.45, 0.55], [0.3, 0.7]], np.float32)
    p = parity_metrics([ref], [got], task="classification", y_true=np.array([0, 1, 0, 1]), output_names=["probs"])
    assert p["top1_agreement"] == pytest.approx(0.5) and p["disagreements"] == 2
    assert p["max_abs_diff"] == pytest.approx(0.5)
    assert [w["index"] for w in p["worst_inputs"]] == [0, 2, 1, 3]  # disagreements first, then by |diff|
    first = p["worst_inputs"][0]
    assert (first["label"], first["reference"], first["model"]) == (0, 0, 1)
    assert p["per_output"][0]["name"] == "probs" and p["sqnr_db"] > 0
    same = parity_metrics([ref], [ref], task="classification")
    assert same["sqnr_db"] is None and same["max_abs_diff"] == 0.0 and same["top1_agreement"] == 1.0


def test_parity_metrics_mismatched_outputs_is_model_error():
    with pytest.raises(ModelError, match="do not match"):
        parity_metrics([np.zeros((3, 10))], [np.zeros((3, 4))], task="classification")


def test_match_ops_falls_back_to_op_order_when_names_differ():
    def t(name, shape):
        return {"name": name, "shape": np.array(shape)}

    cand_t = {0: t("in", [1, 8]), 1: t("q", [1, 8]), 2: t("quant_dense/MatMul", [1, 4]), 3: t("quant_relu", [1, 4]),
              4: t("out", [1, 2])}
    ref_t = {0: t("in", [1, 8]), 2: t("dense/MatMul", [1, 4]), 3: t("relu", [1, 4]), 4: t("out", [1, 2])}
    cand = [{"index": 0, "op": "QUANTIZE", "inputs": [0], "outputs": [1]},
            {"index": 1, "op": "FULLY_CONNECTED", "inputs": [1], "outputs": [2]},
            {"index": 2, "op": "RELU", "inputs": [2], "outputs": [3]},
            {"index": 3, "op": "FULLY_CONNECTED", "inputs": [3], "outputs": [4]}]
    ref = [{"index": 0, "op": "FULLY_CONNECTED", "inputs": [0], "outputs": [2]},
           {"index": 1, "op": "RELU", "inputs": [2], "outputs": [3]},
           {"index": 2, "op": "FULLY_CONNECTED", "inputs": [3], "outputs": [4]}]
    assert _match_ops(cand, ref, cand_t, ref_t) == {4: 4, 2: 2, 3: 3}


def test_dequant_per_channel():
    detail = {"quantization_parameters": {"scales": [0.5, 2.0], "zero_points": [0, 1], "quantized_dimension": 1}}
    out = _dequant(np.array([[2, 3], [4, 1]], np.int8), detail)
    assert out.tolist() == [[1.0, 4.0], [2.0, 0.0]]


# ------------------------------------------------------------------------------------ integrity (unit)


def test_read_model_checks_recorded_sha256(tmp_path):
    model = tmp_path / "model.tflite"
    model.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(range(64)))
    data, digest = read_model(model)
    assert digest == sha256_bytes(data)
    assert read_model(model, expect_sha256=digest.upper())[1] == digest
    with pytest.raises(ModelError, match="does not match .* --expect-sha256"):
        read_model(model, expect_sha256="0" * 64)
    with pytest.raises(ConfigError, match="64 hex digits"):
        read_model(model, expect_sha256="abc")
    (tmp_path / "model.tflite.sha256").write_text(f"{'1' * 64}  model.tflite\n")
    with pytest.raises(ModelError, match="model.tflite.sha256") as info:
        read_model(model)
    assert info.value.exit_code == 2
    (tmp_path / "model.tflite.sha256").unlink()
    (tmp_path / "report.json").write_text(json.dumps({"result": {"path": str(model), "sha256": "2" * 64}}))
    with pytest.raises(ModelError, match="report.json"):
        read_model(model)


def test_read_model_missing_or_empty(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        read_model(tmp_path / "nope.tflite")
    (tmp_path / "empty.tflite").write_bytes(b"")
    with pytest.raises(ModelError, match="empty"):
        read_model(tmp_path / "empty.tflite")


# ------------------------------------------------------------------------------------ real interpreter


@pytest.mark.tf
def test_validate_int8_metrics_parity_and_layers(tiny_tflite_int8, tiny_tflite_float32, digits_npz):
    from edgekit.api import validate

    doc = validate(model=str(tiny_tflite_int8), data=str(digits_npz), reference=str(tiny_tflite_float32),
                   layer_samples=32)
    assert doc["schema_version"] == 1
    assert doc["model"]["quantization"] == "int8" and doc["model"]["inputs"][0]["dtype"] == "int8"
    m = doc["metrics"]
    assert m["samples"] == 397 and 0.8 < m["accuracy"] <= 1.0 and m["top3_accuracy"] >= m["accuracy"]
    assert len(m["confusion_matrix"]) == 10 and sum(map(sum, m["confusion_matrix"])) == 397
    p = doc["parity"]
    assert p["top1_agreement"] > 0.95 and 10 < p["sqnr_db"] < 100 and p["max_abs_diff"] > 0
    assert abs(doc["reference_metrics"]["accuracy"] - m["accuracy"]) < 0.05
    layers = doc["layers"]
    assert layers["samples"] == 32 and layers["matched"] >= 4 and layers["unmatched"] == 0
    ops = [l["op"] for l in layers["layers"]]
    assert ops[0] == "CONV_2D" and "FULLY_CONNECTED" in ops
    for layer in layers["layers"]:
        assert layer["dtype"] == "int8" and layer["scale"] > 0 and layer["sqnr_db"] > 10
    assert layers["worst"][0]["sqnr_drop_db"] == max(l["sqnr_drop_db"] for l in layers["layers"])


@pytest.mark.tf
def test_validate_cli_keras_reference_json(tiny_tflite_int8, tiny_keras_model, digits_npz):
    res = CliRunner().invoke(main, ["validate", str(tiny_tflite_int8), "--data", str(digits_npz),
                                    "--reference", str(tiny_keras_model), "--layer-samples", "16", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert set(doc["parity"]) >= {"top1_agreement", "max_abs_diff", "sqnr_db", "per_output", "worst_inputs"}
    assert doc["parity"]["reference"]["kind"] == "keras" and doc["parity"]["top1_agreement"] > 0.95
    assert doc["layers"]["matched"] >= 4  # float32 conversion of the Keras reference, matched by tensor name
    assert doc["metrics"]["accuracy"] > 0.8


_FLIP = """
import sys, numpy as np
from ai_edge_litert.interpreter import Interpreter
path, out = sys.argv[1], sys.argv[2]
data = bytearray(open(path, "rb").read())
it = Interpreter(model_content=bytes(data))
it.allocate_tensors()
consts = []
for d in it.get_tensor_details():
    try:
        v = it.get_tensor(d["index"])
    except ValueError:
        continue
    if v.dtype == np.int8 and v.size >= 256:
        consts.append(v.tobytes())
blob = max(consts, key=len)
at = bytes(data).find(blob)
assert at > 0, "weights not found in the file"
for k in range(0, 64, 4):
    data[at + k] ^= 0x55
open(out, "wb").write(bytes(data))
"""


@pytest.mark.tf
def test_validate_flipped_weight_bytes_with_recorded_sha256_exit_2(tiny_tflite_int8, digits_npz, tmp_path):
    """RELIABILITY row 2: flipped weights still load and run; a recorded sha256 catches them."""
    flipped = tmp_path / "model.tflite"
    run_python(_FLIP, str(tiny_tflite_int8), str(flipped))
    runner = CliRunner()
    ran = runner.invoke(main, ["validate", str(flipped), "--data", str(digits_npz), "--json"])
    assert ran.exit_code == 0, ran.output  # the verifier does not notice: the model runs
    (tmp_path / "model.tflite.sha256").write_text(f"{sha256_bytes(tiny_tflite_int8.read_bytes())}  model.tflite\n")
    res = runner.invoke(main, ["validate", str(flipped), "--data", str(digits_npz)])
    assert res.exit_code == 2
    assert "does not match" in res.output and "model.tflite.sha256" in res.output
