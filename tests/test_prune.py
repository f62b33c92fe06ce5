"""Pruning stage with real tfmot on the tiny digits CNN (conv → flatten → hidden → probs)."""
import numpy as np
import pytest

from _compress_models import load_fresh, split_and_loss, xnnpack_model
from edgekit.data import dataset_from_arrays
from edgekit.errors import ConfigError
from edgekit.recipe import PruneConfig
from edgekit.stages import prune as P
from edgekit.stages.finetune import make_split, resolve_loss

pytestmark = pytest.mark.tf

TRAIN = dict(epochs=1, learning_rate=1e-3, batch_size=32, patience=2)


def test_prune_sparsity_zero_changes_nothing(tiny_keras_model, digits):
    model = load_fresh(tiny_keras_model)
    before = [w.copy() for w in model.get_weights()]
    data, loss = split_and_loss(model, digits)
    out, metrics = P.prune_model(model, PruneConfig(sparsity=0.0), data=data, loss=loss, **TRAIN)
    assert out is model and metrics["sparsity"] == 0.0
    after = out.get_weights()
    assert len(after) == len(before) and all(np.array_equal(a, b) for a, b in zip(before, after))


def test_prune_polynomial_reaches_target_and_skips_first_last(tiny_keras_model, digits, tmp_path):
    model = load_fresh(tiny_keras_model)
    data, loss = split_and_loss(model, digits)
    out, m = P.prune_model(model, PruneConfig(sparsity=0.5), data=data, loss=loss, tensorboard_dir=str(tmp_path),
                           **{**TRAIN, "epochs": 2})
    assert set(m["per_layer"]) == {"hidden"}  # conv (first) and probs (last) stay dense by default
    assert m["per_layer"]["hidden"]["sparsity"] == pytest.approx(0.5, abs=0.01)
    assert m["sparsity"] == pytest.approx(0.5, abs=0.01)
    assert m["schedule"]["kind"] == "polynomial" and 0 < m["schedule"]["end_step"] < m["schedule"]["total_steps"]
    reasons = {row["name"]: row["reason"] for row in m["layers"]}
    assert "skip_first" in reasons["conv"] and "skip_last" in reasons["probs"]
    assert not any("prune_low_magnitude" in layer.name for layer in out.layers)  # stripped for export
    kernels = {layer.name: layer.kernel.numpy() for layer in out.layers if hasattr(layer, "kernel")}
    assert np.mean(kernels["conv"] == 0) < 0.05 and np.mean(kernels["probs"] == 0) < 0.05
    # int8 export: zeros only pay off gzipped; the report says why sparse kernels cannot help
    assert m["payoff"]["xnnpack_sparse_eligible"] is False
    assert any("int8" in r for r in m["payoff"]["reasons"])
    # TensorBoard logs include tfmot's pruning summaries
    assert list((tmp_path / "prune").rglob("events.out.tfevents.*"))
    # the zeros survive int8 conversion
    from edgekit.stages.convert import convert_keras

    tflite = convert_keras(out, mode="int8", representative=digits.x_train[:50])
    check = P.verify_tflite_sparsity(tflite, m["per_layer"])
    assert check["survived"] and check["layers"]["hidden"]["tflite_dtype"] == "int8"
    assert check["layers"]["hidden"]["tflite_sparsity"] >= 0.49
    found = P.tflite_weight_sparsity(tflite)  # plain flatbuffer reading, no interpreter
    assert all(t["dtype"] == "int8" for t in found["tensors"].values())
    assert 0.3 < found["sparsity"] < 0.5  # hidden pruned, conv and probs dense


def test_prune_constant_schedule_with_name_patterns(tiny_keras_model, digits):
    model = load_fresh(tiny_keras_model)
    data, loss = split_and_loss(model, digits)
    cfg = PruneConfig(sparsity=0.75, schedule="constant", skip_first=False, skip_last=False, exclude=["prob*"])
    out, m = P.prune_model(model, cfg, data=data, loss=loss, **TRAIN)
    assert set(m["per_layer"]) == {"conv", "hidden"}
    assert all(v["sparsity"] == pytest.approx(0.75, abs=0.02) for v in m["per_layer"].values())
    assert m["schedule"]["kind"] == "constant"
    assert "prob*" in {row["name"]: row["reason"] for row in m["layers"]}["probs"]


def test_prune_structured_2_4(tiny_keras_model, digits):
    model = load_fresh(tiny_keras_model)
    data, loss = split_and_loss(model, digits)
    out, m = P.prune_model(model, PruneConfig(structured="2:4"), data=data, loss=loss, **TRAIN)
    assert m["structured"] == "2:4" and m["structured_ok"] is True
    assert m["per_layer"]["hidden"]["sparsity"] == pytest.approx(0.5, abs=0.01)


def test_prune_structured_on_a_shape_that_cannot_hold_it(tiny_keras_model, digits):
    model = load_fresh(tiny_keras_model)  # conv kernel (3, 3, 1, 8): 1 input channel
    data, loss = split_and_loss(model, digits)
    with pytest.raises(ConfigError) as exc:
        P.prune_model(model, PruneConfig(structured="3:4", skip_first=False), data=data, loss=loss, **TRAIN)
    assert "'conv'" in str(exc.value) and "1 input channels" in str(exc.value) and exc.value.exit_code == 2


def test_prune_xnnpack_policy_refused_where_the_graph_does_not_allow_it(tiny_keras_model, digits):
    model = load_fresh(tiny_keras_model)
    data, loss = split_and_loss(model, digits)
    with pytest.raises(ConfigError, match="XNNPACK's sparse inference.*Conv2D 3x3"):
        P.prune_model(model, PruneConfig(policy="xnnpack"), data=data, loss=loss, **TRAIN)
    use, why = P.resolve_policy(model, PruneConfig(policy="auto"), quantize="float32")
    assert use is False and "does not fit" in why


def test_prune_xnnpack_policy_prunes_only_1x1_convs_and_reports_eligibility():
    rng = np.random.default_rng(0)
    x = rng.random((160, 16, 16, 3), dtype=np.float32)
    y = rng.integers(0, 4, 160)
    ds = dataset_from_arrays(x[:128], y[:128], x[128:], y[128:], spec="random")
    model = xnnpack_model()
    data = make_split(ds.x_train, ds.y_train, validation_split=0.1, batch_size=16)
    loss = resolve_loss(model, task="classification")
    cfg = PruneConfig(sparsity=0.8, schedule="constant", policy="auto", skip_first=False, skip_last=False)
    out, m = P.prune_model(model, cfg, data=data, loss=loss, quantize="float32", **{**TRAIN, "batch_size": 16})
    assert m["policy"]["xnnpack"] is True
    assert set(m["per_layer"]) == {"pw1", "pw2"}
    assert m["payoff"]["xnnpack_sparse_eligible"] is True, m["payoff"]
    _, why = P.resolve_policy(xnnpack_model(), cfg, quantize="int8")
    assert "float-only" in why


def test_plan_schedule_steps_from_epochs_and_batches():
    plan = P.plan_schedule(PruneConfig(sparsity=0.5), epochs=3, n_train=1000, batch_size=32)
    assert plan.steps_per_epoch == 32 and plan.total_steps == 96
    assert plan.end_step % plan.frequency == 0 and plan.end_step < plan.total_steps
    assert plan.final_epoch == plan.end_step // 32
