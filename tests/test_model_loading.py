"""Model loading: Keras 3 and tf_keras files in every format, moved onto tf_keras (issue 2, item 2).

The integration tests (``tf``) build their models with real Keras 3 / tf_keras in one subprocess
(:mod:`fixtures_models`) and load them all in one child process through
:func:`edgekit.child.run_in_child`, the way ``edgekit compress`` does. The config-rewriting unit
tests at the bottom import no TensorFlow.
"""
from __future__ import annotations

import json

import pytest

import fixtures_models as fm
from edgekit.errors import ModelError
from edgekit.keras3_port import port_model_config, snake_case
from edgekit.keras_backend import PORT_TOLERANCE
from edgekit.model_scan import scan_model_file

INFO_KEYS = {"format", "saved_by", "keras_version", "ported", "port_max_abs_diff", "port_notes", "input_shape",
             "input_shapes", "input_dtype", "output_shape", "output_shapes", "output_activation", "compiled_loss",
             "from_logits", "num_params", "layers", "nested_models", "trusted", "findings", "path"}


def ok(loaded, key):
    result = loaded[key]
    assert "ok" in result, f"{key} failed to load: {result}"
    return result["ok"]


# ------------------------------------------------------------------------------------------------
# Keras 3 files → tf_keras
# ------------------------------------------------------------------------------------------------

@pytest.mark.tf
def test_load_model_child_sees_keras3_beside_legacy_tf_keras(loaded):
    env = loaded["__env__"]
    assert env["TF_USE_LEGACY_KERAS"] == "1"
    assert env["keras_version"].startswith("3.")


@pytest.mark.tf
def test_load_model_keras3_sequential_is_ported_with_parity(loaded):
    info = ok(loaded, "k3_seq.keras")
    assert (info["format"], info["saved_by"], info["ported"]) == ("keras-v3-zip", "keras3", True)
    assert info["port_max_abs_diff"] is not None and info["port_max_abs_diff"] <= PORT_TOLERANCE
    assert info["input_shape"] == [6] and info["output_shape"] == [3]
    assert info["output_activation"] == "softmax"
    assert info["compiled_loss"] == "sparse_categorical_crossentropy"
    assert info["num_params"] == 6 * 5 + 5 + 5 * 3 + 3
    assert [l["class_name"] for l in info["layers"]] == ["Dense", "Dense"]
    assert set(info) >= INFO_KEYS


@pytest.mark.tf
def test_load_model_keras3_functional_is_ported_with_parity(loaded):
    info = ok(loaded, "k3_func.keras")
    assert info["ported"] and info["port_max_abs_diff"] <= PORT_TOLERANCE
    classes = [l["class_name"] for l in info["layers"]]
    for cls in ("Conv2D", "BatchNormalization", "SeparableConv2D", "Add", "Dense"):
        assert cls in classes
    assert info["input_shape"] == [8, 8, 1] and info["output_shape"] == [3]
    assert info["output_activation"] == "sigmoid"
    assert (info["compiled_loss"], info["from_logits"]) == ("BinaryCrossentropy", False)


@pytest.mark.tf
def test_load_model_keras3_h5_is_ported_with_parity(loaded):
    info = ok(loaded, "k3_func.h5")
    assert (info["format"], info["saved_by"], info["ported"]) == ("h5", "keras3", True)
    assert info["port_max_abs_diff"] <= PORT_TOLERANCE
    assert info["num_params"] == ok(loaded, "k3_func.keras")["num_params"]


@pytest.mark.tf
def test_load_model_keras3_recurrent_model_is_ported_with_parity(loaded):
    # Bidirectional stores forward/backward weights in sub-groups; Keras-3-only arguments are dropped
    info = ok(loaded, "k3_seq1d.keras")
    assert info["ported"] and info["port_max_abs_diff"] <= PORT_TOLERANCE
    classes = [l["class_name"] for l in info["layers"]]
    assert {"Conv1D", "LayerNormalization", "Bidirectional", "LSTM"} <= set(classes)
    assert any("rms_scaling" in note for note in info["port_notes"])
    assert info["input_shape"] == [12, 3] and info["output_activation"] == "softmax"


@pytest.mark.tf
def test_load_model_keras3_nested_models_are_ported_and_flattened(loaded):
    info = ok(loaded, "k3_nested.keras")
    assert info["ported"] and info["port_max_abs_diff"] <= PORT_TOLERANCE
    assert info["nested_models"] == ["inner_seq", "inner_func"]
    # flatten_nested inlines both inner models: only plain layers remain, outputs unchanged
    assert info["flat_layers"] == ["InputLayer", "Dense", "Dense", "Dense"]
    assert info["flatten_max_abs_diff"] <= 1e-6


@pytest.mark.tf
@pytest.mark.parametrize("key", ["k3_func.keras", "k3_nested.keras"])
def test_load_model_result_is_accepted_by_tfmot(loaded, key):
    # k3_func has a layer stored as "conv2d" and a SeparableConv2D that QAT splits into a new,
    # auto-named Conv2D: without reserve_layer_names both were "conv2d" and tfmot mixed their weights
    info = ok(loaded, key)["tfmot"]
    assert "QuantizeWrapperV2" in info["quantized_layers"]
    assert "PruneLowMagnitude" in info["pruned_layers"]
    assert "Sequential" not in info["quantized_layers"] and "Functional" not in info["quantized_layers"]


@pytest.mark.tf
def test_load_model_weights_not_matching_config_are_refused(loaded):
    result = loaded["k3_mismatch.keras"]
    assert result["error"] == "ModelError" and result["exit_code"] == 2
    assert "k3_mismatch.keras" in result["message"] and "expected shapes" in result["message"]


# ------------------------------------------------------------------------------------------------
# tf_keras files
# ------------------------------------------------------------------------------------------------

@pytest.mark.tf
@pytest.mark.parametrize("key,fmt", [("tfk_func.keras", "keras-v3-zip"), ("tfk_func.h5", "h5"),
                                     ("tfk_savedmodel", "savedmodel")])
def test_load_model_tf_keras_formats_load_directly(loaded, key, fmt):
    info = ok(loaded, key)
    assert (info["format"], info["saved_by"], info["ported"]) == (fmt, "tf_keras", False)
    assert info["port_max_abs_diff"] is None
    assert info["input_shape"] == [8, 8, 1] and info["output_shape"] == [3]
    assert info["output_activation"] == "softmax"
    assert info["compiled_loss"] == "sparse_categorical_crossentropy"
    assert info["num_params"] == 3 * 3 * 4 + 4 + 6 * 6 * 4 * 3 + 3


@pytest.mark.tf
def test_load_model_keras3_export_savedmodel_says_to_pass_the_keras_file(loaded):
    result = loaded["k3_export"]
    assert result["error"] == "ModelError" and result["exit_code"] == 2
    assert "no Keras layers" in result["message"] and ".keras file" in result["message"]


@pytest.mark.tf
def test_load_model_subclassed_model_says_what_to_do(loaded):
    result = loaded["k3_subclassed.keras"]
    assert result["error"] == "ModelError"
    assert "subclassed" in result["message"] and "Functional or Sequential" in result["message"]


# ------------------------------------------------------------------------------------------------
# a third-party legacy .h5 (mini-Xception from the `fer` package, see tests/data/third_party)
# ------------------------------------------------------------------------------------------------

def test_scan_model_file_reads_third_party_h5_without_tensorflow():
    info = scan_model_file(fm.THIRD_PARTY_H5)
    assert (info["format"], info["saved_by"], info["keras_version"]) == ("h5", "tf_keras", "2.0.5")
    classes = {l["class_name"] for l in info["layers"]}
    assert {"SeparableConv2D", "BatchNormalization", "Add"} <= classes
    assert info["findings"] == []


@pytest.mark.tf
def test_load_model_third_party_h5_converts_with_float32_parity(loaded):
    info = ok(loaded, "third_party")
    assert (info["format"], info["ported"]) == ("h5", False)
    assert info["input_shape"] == [64, 64, 1] and info["output_shape"] == [7]
    assert info["output_activation"] == "softmax"
    assert info["num_params"] == 58423
    assert info["tflite_max_abs_diff"] <= 1e-4


# ------------------------------------------------------------------------------------------------
# config rewriting (no TensorFlow)
# ------------------------------------------------------------------------------------------------

def _tensor(name: str, node: int = 0) -> dict:
    return {"class_name": "__keras_tensor__", "config": {"shape": [None, 4], "dtype": "float32",
                                                         "keras_history": [name, node, 0]}}


def _functional(layers, inputs, outputs) -> dict:
    return {"module": "keras.src.models.functional", "class_name": "Functional", "registered_name": "Functional",
            "config": {"name": "m", "trainable": True, "layers": layers, "input_layers": inputs,
                       "output_layers": outputs}}


_POLICY = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None}


def test_port_model_config_rewrites_keras3_specifics():
    inp = fm.k3_layer("InputLayer", "in", {"batch_shape": [None, 4], "dtype": "float32", "optional": False},
                      inbound=[])
    dense = fm.k3_layer("Dense", "d", {"units": 4, "dtype": _POLICY, "quantization_config": None,
                                       "kernel_initializer": {"module": "keras.initializers",
                                                              "class_name": "GlorotUniform",
                                                              "config": {"seed": None, "input_axes": None,
                                                                         "output_axes": None}}},
                        inbound=[{"args": [_tensor("in")], "kwargs": {"mask": None}}])
    leaky = fm.k3_layer("LeakyReLU", "lr", {"negative_slope": 0.1},
                        inbound=[{"args": [_tensor("d")], "kwargs": {"training": False}}])
    add = fm.k3_layer("Add", "add", {}, module="keras.src.ops.numpy",
                      inbound=[{"args": [_tensor("lr"), _tensor("in")], "kwargs": {}}])
    ported, notes = port_model_config(_functional([inp, dense, leaky, add], ["in", 0, 0], ["add", 0, 0]))
    layers = ported["config"]["layers"]
    assert layers[0]["config"]["batch_input_shape"] == [None, 4]
    assert "batch_shape" not in layers[0]["config"] and "optional" not in layers[0]["config"]
    assert layers[1]["config"]["dtype"] == "float32"
    assert "quantization_config" not in layers[1]["config"]
    assert layers[1]["config"]["kernel_initializer"]["config"] == {"seed": None}
    assert layers[1]["inbound_nodes"] == [[["in", 0, 0, {}]]]          # mask=None dropped
    assert layers[2]["config"]["alpha"] == 0.1 and "negative_slope" not in layers[2]["config"]
    assert layers[2]["inbound_nodes"] == [[["d", 0, 0, {"training": False}]]]
    assert layers[3]["class_name"] == "Add" and layers[3]["inbound_nodes"] == [[["lr", 0, 0, {}], ["in", 0, 0, {}]]]
    assert ported["config"]["input_layers"] == [["in", 0, 0]] and ported["config"]["output_layers"] == [["add", 0, 0]]
    assert "module" not in json.dumps(ported)
    assert any("keras.ops" in n for n in notes)


def test_port_model_config_shifts_node_index_of_nested_models():
    inp = fm.k3_layer("InputLayer", "in", {"batch_shape": [None, 4]}, inbound=[])
    inner = fm.k3_sequential("inner", [fm.k3_layer("Dense", "d", {"units": 4})])
    inner["name"] = "inner"
    inner["inbound_nodes"] = [{"args": [_tensor("in")], "kwargs": {}}]
    out = fm.k3_layer("Dense", "out", {"units": 2}, inbound=[{"args": [_tensor("inner")], "kwargs": {}}])
    ported, _ = port_model_config(_functional([inp, inner, out], ["in", 0, 0], ["inner", 0, 0]))
    layers = ported["config"]["layers"]
    assert layers[2]["inbound_nodes"] == [[["inner", 1, 0, {}]]]   # tf_keras counts the inner model's own node
    assert ported["config"]["output_layers"] == [["inner", 1, 0]]


@pytest.mark.parametrize("change,needle", [
    ({"quantization_config": {"mode": "int8"}}, "quantization_config"),
    ({"lora_rank": 4}, "lora_rank"),
    ({"dtype": {"module": "keras", "class_name": "QuantizedDTypePolicy", "config": {"name": "int8_from_float32"}}},
     "QuantizedDTypePolicy"),
])
def test_port_model_config_refuses_what_tf_keras_cannot_express(change, needle):
    inp = fm.k3_layer("InputLayer", "in", {"batch_shape": [None, 4]}, inbound=[])
    dense = fm.k3_layer("Dense", "d", {"units": 2, **change}, inbound=[{"args": [_tensor("in")], "kwargs": {}}])
    with pytest.raises(ModelError, match=needle):
        port_model_config(_functional([inp, dense], ["in", 0, 0], ["d", 0, 0]), source="m.keras")


def test_port_model_config_refuses_unsupported_keras_ops_and_tensor_kwargs():
    inp = fm.k3_layer("InputLayer", "in", {"batch_shape": [None, 4]}, inbound=[])
    op = fm.k3_layer("Matmul", "mm", {}, module="keras.src.ops.numpy",
                     inbound=[{"args": [_tensor("in"), _tensor("in")], "kwargs": {}}])
    with pytest.raises(ModelError, match="keras.ops.matmul"):
        port_model_config(_functional([inp, op], ["in", 0, 0], ["mm", 0, 0]))
    attn = fm.k3_layer("MultiHeadAttention", "mha", {"num_heads": 1, "key_dim": 2},
                       inbound=[{"args": [_tensor("in")], "kwargs": {"value": _tensor("in")}}])
    with pytest.raises(ModelError, match="keyword argument 'value'"):
        port_model_config(_functional([inp, attn], ["in", 0, 0], ["mha", 0, 0]))


def test_snake_case_matches_keras3_weight_keys():
    assert [snake_case(c) for c in ("Conv2D", "BatchNormalization", "SeparableConv2D", "InputLayer", "ReLU")] == \
        ["conv2d", "batch_normalization", "separable_conv2d", "input_layer", "re_lu"]
