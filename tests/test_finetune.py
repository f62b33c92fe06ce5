"""Fine-tuning options: knowledge distillation (``train.distill``) and the learning-rate schedule
(``train.lr_schedule``), with real tf_keras models and real training."""
import numpy as np
import pytest

from _compress_models import keras, load_fresh, split_and_loss
from edgekit.errors import ConfigError
from edgekit.recipe import describe, resolve_recipe
from edgekit.stages.finetune import LossSpec, _targets, fine_tune, with_teacher

pytestmark = pytest.mark.tf


def test_teacher_targets_mix_labels_with_the_teachers_probabilities(tiny_keras_model, digits):
    model = load_fresh(tiny_keras_model)
    data, loss = split_and_loss(model, digits, max_samples=400)
    assert loss.kind == "sparse" and not loss.from_logits
    taught = with_teacher(data, model, loss=loss, weight=0.5)
    want = model.predict(data.x_train, verbose=0)
    assert taught.teacher_train.shape == (data.n_train, 10) and taught.teacher_val.shape == (len(data.x_val), 10)
    np.testing.assert_allclose(taught.teacher_train, want / want.sum(axis=1, keepdims=True), atol=1e-5)
    targets = _targets(loss, taught.y_train, taught.teacher_train, 0.5, output_units=10)
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(targets, 0.5 * np.eye(10)[data.y_train] + 0.5 * taught.teacher_train, atol=1e-6)
    # even where the teacher is wrong, the labelled class stays the largest entry of the target
    assert (np.argmax(targets, axis=1) == data.y_train).all()
    assert with_teacher(data, model, loss=loss, weight=0.0) is data


def test_logits_teacher_is_turned_into_probabilities_and_regression_is_left_alone(digits):
    k = keras()
    logits = k.Sequential([k.layers.Input((8, 8, 1)), k.layers.Flatten(), k.layers.Dense(10, name="logits")])
    data, loss = split_and_loss(logits, digits, max_samples=200)
    assert loss.from_logits
    taught = with_teacher(data, logits, loss=loss, weight=0.3)
    z = logits.predict(data.x_val, verbose=0).astype(np.float64)
    soft = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(taught.teacher_val, soft / soft.sum(axis=1, keepdims=True), atol=1e-5)
    regression = LossSpec("mse", "regression", False, "recipe", "test")
    assert with_teacher(data, logits, loss=regression, weight=0.5) is data
    with pytest.raises(ValueError, match="overrule"):
        with_teacher(data, logits, loss=loss, weight=0.8)


def test_fine_tune_with_a_teacher_reports_accuracy_on_the_labels(tiny_keras_model, digits):
    teacher = load_fresh(tiny_keras_model)
    student = load_fresh(tiny_keras_model)
    data, loss = split_and_loss(student, digits, max_samples=600)
    taught = with_teacher(data, teacher, loss=loss, weight=0.5)
    fit = fine_tune(student, taught, loss=loss, epochs=1, learning_rate=1e-3, batch_size=32, patience=5)
    assert fit.epochs_run == 1 and fit.best_epoch == 0
    # the reported val accuracy is against the labels, not against the soft targets' argmax by luck
    label_acc = float(np.mean(np.argmax(student.predict(data.x_val, verbose=0), 1) == data.y_val))
    assert fit.history["val_accuracy"][-1] == pytest.approx(label_acc, abs=1e-6)
    assert np.isfinite(fit.history["loss"]).all()


def test_recipe_distill_is_bounded_and_shown_in_the_plan(tmp_path):
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text("version: 1\ntrain: {distill: 0.7}\n")
    with pytest.raises(ConfigError) as err:
        resolve_recipe(target_defaults={}, recipe_path=str(recipe_file), flags={})
    assert "distill" in str(err.value) and "0.5" in str(err.value)
    recipe_file.write_text("version: 1\ntrain: {lr_schedule: step}\n")
    with pytest.raises(ConfigError) as err:
        resolve_recipe(target_defaults={}, recipe_path=str(recipe_file), flags={})
    assert "lr_schedule" in str(err.value) and "cosine" in str(err.value)
    recipe_file.write_text("version: 1\ntrain: {distil: 0.3}\n")
    with pytest.raises(ConfigError, match="did you mean 'train.distill'"):
        resolve_recipe(target_defaults={}, recipe_path=str(recipe_file), flags={})
    recipe_file.write_text("version: 1\nstages: [prune, qat]\ntrain: {distill: 0.25}\n")
    plan = describe(resolve_recipe(target_defaults={}, recipe_path=str(recipe_file), flags={}).recipe)
    assert any("75% labels + 25% the input model's predictions" in line for line in plan)


def test_cosine_schedule_decays_to_one_percent_over_the_stage(tiny_keras_model, digits):
    model = load_fresh(tiny_keras_model)
    data, loss = split_and_loss(model, digits, max_samples=330)  # 297 train samples: 10 batches of 32
    fit = fine_tune(model, data, loss=loss, epochs=2, learning_rate=1e-3, batch_size=32, patience=5,
                    lr_schedule="cosine")
    opt = model.optimizer
    steps = int(opt.iterations.numpy())
    assert fit.epochs_run == 2 and steps == 20
    schedule = opt.learning_rate if callable(opt.learning_rate) else opt._learning_rate
    assert float(schedule(0)) == pytest.approx(1e-3)
    assert float(schedule(10)) == pytest.approx(1e-3 * (0.01 + 0.99 * 0.5), rel=1e-4)  # half-way: half-way down
    assert float(schedule(steps)) == pytest.approx(1e-5, rel=1e-4)  # the stage ends at 1 % of the peak
    constant = load_fresh(tiny_keras_model)
    fine_tune(constant, data, loss=loss, epochs=1, learning_rate=1e-3, batch_size=32, patience=5)
    assert float(constant.optimizer.learning_rate.numpy()) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="unknown learning-rate schedule"):
        fine_tune(load_fresh(tiny_keras_model), data, loss=loss, epochs=1, learning_rate=1e-3, batch_size=32,
                  patience=5, lr_schedule="step")
