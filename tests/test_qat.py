"""QAT stage with real tfmot: default 8-bit, prune-preserving after pruning, fixes for odd layers."""
import numpy as np
import pytest

from _compress_models import load_fresh, odd_layers_model, split_and_loss, subclassed_model
from edgekit.errors import ModelError
from edgekit.recipe import PruneConfig, QatConfig
from edgekit.stages import prune as P
from edgekit.stages import qat as Q
from edgekit.stages.convert import convert_keras, verify_conversion

pytestmark = pytest.mark.tf

TRAIN = dict(epochs=1, learning_rate=1e-3, batch_size=32, patience=2)


def test_qat_after_pruning_preserves_sparsity_through_int8_conversion(tiny_keras_model, digits):
    model = load_fresh(tiny_keras_model)
    data, loss = split_and_loss(model, digits)
    pruned, pm = P.prune_model(model, PruneConfig(sparsity=0.6, schedule="constant"), data=data, loss=loss, **TRAIN)
    qat_model, qm = Q.quantize_model(pruned, QatConfig(), data=data, loss=loss, input_sparsity=pm["per_layer"],
                                     **TRAIN)
    assert qm["scheme"] == "pqat"
    assert qm["sparsity_check"]["preserved"] is True
    assert qm["sparsity_check"]["layers"]["hidden"]["after"] >= 0.59  # zeros of the fake-quantized kernel
    tflite = convert_keras(qat_model, mode="int8", io_dtype="int8", representative=digits.x_train[:50])
    verify_conversion(tflite, mode="int8", io_dtype="int8")
    after = P.verify_tflite_sparsity(tflite, pm["per_layer"])
    assert after["survived"] and after["layers"]["hidden"]["tflite_sparsity"] >= 0.59
    from edgekit.interp import predict_tflite

    acc = float(np.mean(np.argmax(predict_tflite(tflite, digits.x_test), 1) == digits.y_test))
    assert acc > 0.8


def test_qat_default_scheme_and_cached_rebuild(tiny_keras_model, digits, tmp_path):
    model = load_fresh(tiny_keras_model)
    data, loss = split_and_loss(model, digits, max_samples=400)
    qat_model, qm = Q.quantize_model(model, QatConfig(), data=data, loss=loss, **TRAIN)
    assert qm["scheme"] == "qat" and qm["quantized_layers"] == 4 and "sparsity_check" not in qm
    weights = tmp_path / "qat.weights.h5"
    qat_model.save_weights(str(weights))
    choices = Q.qat_plan(model, QatConfig())
    rebuilt = Q.restore_qat_model(model, choices, scheme="qat", weights_path=str(weights))
    probe = digits.x_test[:16]
    assert np.array_equal(rebuilt.predict(probe, verbose=0), qat_model.predict(probe, verbose=0))


def test_qat_plan_fixes_layers_tfmot_rejects():
    model = odd_layers_model()
    plan = {c.name: c for c in Q.qat_plan(model, QatConfig(exclude=["conv_b"]))}
    assert plan["conv_a"].action == "quantize" and plan["bn_conv"].action == "fold"
    assert plan["bn_dense"].action == "skip" and "not directly after a convolution" in plan["bn_dense"].reason
    assert plan["rescale"].action == "skip" and plan["prelu"].action == "skip" and plan["ln"].action == "skip"
    assert plan["conv_hs"].action == "noop" and "hard_sigmoid" in plan["conv_hs"].reason
    assert plan["concat"].action == "quantize" and plan["reshape"].action == "quantize"
    assert plan["conv_b"].action == "noop" and "qat.exclude" in plan["conv_b"].reason
    qat_model = Q.build_qat_model(model, list(plan.values()), scheme="qat")  # tfmot accepts the fixed model
    rng = np.random.default_rng(0)
    tflite = convert_keras(qat_model, mode="int8", representative=rng.random((20, 8, 8, 1), dtype=np.float32))
    verify_conversion(tflite, mode="int8")


def test_qat_refuses_subclassed_model():
    with pytest.raises(ModelError, match="subclassed") as exc:
        Q.qat_plan(subclassed_model(), QatConfig())
    assert exc.value.exit_code == 2


def test_qat_folds_batchnorm_after_pruning(digits):
    """Stages hand over models of their own: Conv2D→BatchNorm still folds after pruning."""
    from _compress_models import keras
    from edgekit.stages.finetune import make_split, resolve_loss

    k = keras()
    L = k.layers
    model = k.Sequential([L.Input((8, 8, 1)), L.Conv2D(8, 3, use_bias=False, name="c1"),
                          L.BatchNormalization(name="bn1"), L.ReLU(name="r1"), L.Flatten(name="f"),
                          L.Dense(32, activation="relu", name="d1"), L.Dense(10, activation="softmax", name="out")])
    data = make_split(digits.x_train, digits.y_train, validation_split=0.1, batch_size=32, max_samples=300)
    loss = resolve_loss(model, task="classification")
    pruned, _ = P.prune_model(model, PruneConfig(sparsity=0.5, schedule="constant"), data=data, loss=loss, **TRAIN)
    plan = {c.name: c.action for c in Q.qat_plan(pruned, QatConfig(), scheme="pqat")}
    assert plan["bn1"] == "fold" and plan["c1"] == "quantize"
