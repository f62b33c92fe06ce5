"""Pre-flight plan: per-layer support, automatic fixes, precise refusals before any training."""
import numpy as np
import pytest

from _compress_models import keras, load_fresh, odd_layers_model, subclassed_model
from edgekit.data import dataset_from_arrays, load_dataset
from edgekit.errors import ConfigError, DataError, ModelError
from edgekit.preflight import format_report, preflight
from edgekit.recipe import resolve_recipe
from edgekit.stages.finetune import resolve_loss

pytestmark = pytest.mark.tf


def _recipe(**flags):
    return resolve_recipe(flags={"epochs": 1, **flags}).recipe


def _random_ds(n_train=200, *, y=None, classes=10):
    rng = np.random.default_rng(0)
    x = rng.random((n_train + 20, 8, 8, 1), dtype=np.float32)
    y = rng.integers(0, classes, n_train + 20) if y is None else y
    return dataset_from_arrays(x[:n_train], y[:n_train], x[n_train:], y[n_train:], spec="random.npz")


def test_preflight_lists_layers_and_applies_known_fixes():
    model = odd_layers_model()
    out, report = preflight(model, _recipe(prune=0.5, qat=True), dataset=_random_ds(), source="random.npz")
    rows = {r["name"]: r for r in report.layers}
    assert rows["dense"]["prune"] == "prune" and rows["conv_a"]["prune"].startswith("dense: first")
    assert rows["prelu"]["prune"].startswith("dense:") and "not supported" in rows["rescale"]["prune"]
    assert rows["conv_a"]["qat"] == "int8" and rows["bn_conv"]["qat"] == "folded"
    assert rows["bn_dense"]["qat"].startswith("skip")
    assert rows["conv_hs"]["qat"].startswith("noop")
    fixes = " ".join(report.fixes)
    for name in ("bn_dense", "rescale", "prelu", "ln", "conv_hs"):
        assert name in fixes
    assert report.loss["name"] == "sparse_categorical_crossentropy" and report.data["train"] == 180
    text = format_report(report.as_dict())
    assert "layers:" in text and "fixes applied:" in text and "bn_dense" in text
    assert out is model


def test_preflight_inlines_nested_models():
    k = keras()
    inner = k.Sequential([k.layers.Input((8, 8, 1)), k.layers.Conv2D(4, 3, activation="relu", name="c1"),
                          k.layers.Flatten(name="f")], name="backbone")
    inp = k.Input((8, 8, 1))
    x = inner(inp)
    x = k.layers.Dense(16, activation="relu", name="d1")(x)
    model = k.Model(inp, k.layers.Dense(10, activation="softmax", name="head")(x))
    out, report = preflight(model, _recipe(qat=True), dataset=_random_ds())
    assert "backbone" in report.fixes[0] and "nested" in report.fixes[0]
    assert not any(isinstance(layer, k.Model) for layer in out.layers)


def test_preflight_refuses_subclassed_model():
    with pytest.raises(ModelError, match="subclassed") as exc:
        preflight(subclassed_model(), _recipe(prune=0.5), dataset=_random_ds())
    assert exc.value.exit_code == 2


def test_preflight_refuses_too_little_data_for_one_epoch(tiny_keras_model):
    with pytest.raises(DataError, match="one epoch needs at least one batch of 32") as exc:
        preflight(load_fresh(tiny_keras_model), _recipe(prune=0.5), dataset=_random_ds(20), source="small.npz")
    assert "small.npz" in str(exc.value) and exc.value.exit_code == 2


def test_preflight_refuses_labels_that_do_not_fit_the_loss(tiny_keras_model):
    model = load_fresh(tiny_keras_model)
    floats = np.random.default_rng(1).random(220).astype(np.float32)  # regression targets, softmax model
    with pytest.raises(DataError, match="expected integer class ids for sparse categorical crossentropy, got 0.5"):
        preflight(model, _recipe(qat=True), dataset=_random_ds(y=floats))
    sigmoid = keras().Sequential([keras().layers.Input((8, 8, 1)), keras().layers.Flatten(),
                                  keras().layers.Dense(1, activation="sigmoid")])
    with pytest.raises(DataError, match=r"expected labels in \[0, 1\] for binary crossentropy"):
        preflight(sigmoid, _recipe(qat=True), dataset=_random_ds())


def test_preflight_structured_infeasible_and_xnnpack_refused(tiny_keras_model, tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("prune: {skip_first: false}\n")
    rec = resolve_recipe(recipe_path=path, flags={"structured": "3:4", "epochs": 1}).recipe
    with pytest.raises(ConfigError, match="'conv'.*1 input channels"):
        preflight(load_fresh(tiny_keras_model), rec, dataset=_random_ds())
    path.write_text("prune: {policy: xnnpack}\n")
    rec = resolve_recipe(recipe_path=path, flags={"prune": 0.5, "epochs": 1}).recipe
    with pytest.raises(ConfigError, match="XNNPACK"):
        preflight(load_fresh(tiny_keras_model), rec, dataset=_random_ds())


def test_preflight_without_training_needs_no_data(tiny_keras_model):
    _, report = preflight(load_fresh(tiny_keras_model), _recipe(prune=0, qat=False), dataset=None)
    assert report.layers == [] and "post-training quantization only" in report.notes[-1]
    with pytest.raises(ConfigError, match="need training data"):
        preflight(load_fresh(tiny_keras_model), _recipe(prune=0.5), dataset=None)


def test_loss_inferred_from_the_output_layer():
    k = keras()
    L = k.layers

    def head(*layers):
        return k.Sequential([L.Input((4,)), *layers])

    assert resolve_loss(head(L.Dense(3, activation="softmax")), task="classification").name == \
        "sparse_categorical_crossentropy"
    logits = resolve_loss(head(L.Dense(3)), task="classification")
    assert logits.kind == "sparse" and logits.from_logits
    assert resolve_loss(head(L.Dense(1, activation="sigmoid")), task="classification").kind == "binary"
    assert resolve_loss(head(L.Dense(2)), task="regression").name == "mse"
    compiled = head(L.Dense(3))
    compiled.compile(loss=k.losses.CategoricalCrossentropy(from_logits=True))
    spec = resolve_loss(compiled, task="classification")
    assert spec.source == "compiled" and spec.kind == "categorical" and spec.from_logits
    assert resolve_loss(compiled, task="classification", override="mse").source == "recipe"
    assert load_dataset  # imported for symmetry with other tests
