"""The fine-tuning loop shared by the pruning, clustering and QAT stages.

It trains on the user's training split, holds out a validation split for early stopping, uses the
model's own loss when it was saved compiled (else infers one from the output layer: softmax →
sparse categorical cross-entropy, linear output on class labels → cross-entropy from logits,
sigmoid → binary cross-entropy, regression → mean squared error; ``train.loss`` overrides), shows
a rich progress bar per epoch on a terminal and writes TensorBoard logs on request.

The checks (:func:`resolve_loss`, :func:`check_labels`, :func:`make_split`) run before any
training starts and raise :class:`~edgekit.errors.DataError` (exit 2). Only :func:`fine_tune`
imports TensorFlow (through :mod:`edgekit.keras_backend`), inside the child process.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import DataError

_LOSS_KINDS = {
    "sparse_categorical_crossentropy": ("sparse", False),
    "sparse_categorical_crossentropy_from_logits": ("sparse", True),
    "categorical_crossentropy": ("categorical", False),
    "categorical_crossentropy_from_logits": ("categorical", True),
    "binary_crossentropy": ("binary", False),
    "binary_crossentropy_from_logits": ("binary", True),
    "mse": ("regression", False),
    "mean_squared_error": ("regression", False),
    "mae": ("regression", False),
    "mean_absolute_error": ("regression", False),
    "huber": ("regression", False),
}


@dataclass(frozen=True)
class LossSpec:
    """The loss a stage trains with.

    Attributes:
        name: canonical name (a key of ``_LOSS_KINDS``), or the compiled loss's own name.
        kind: ``sparse`` (class ids), ``categorical`` (one-hot), ``binary`` or ``regression``.
        from_logits: the model outputs logits (no softmax/sigmoid).
        source: ``compiled`` (the model's own loss), ``inferred`` (from the output) or ``recipe``.
        reason: one line saying why this loss was chosen.
    """

    name: str
    kind: str
    from_logits: bool
    source: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "from_logits": self.from_logits, "source": self.source,
                "reason": self.reason}


def output_info(model: Any) -> dict[str, Any]:
    """Describe the model's (single) output: units and final activation name."""
    if len(model.outputs) != 1:
        raise DataError(f"the model has {len(model.outputs)} outputs; fine-tuning supports one output",
                        hint="compress without training stages (--prune 0 --no-qat) or export a single-output model")
    units = model.outputs[0].shape[-1]
    layer = model.layers[-1]
    activation = _activation_name(layer)
    return {"units": None if units is None else int(units), "activation": activation, "layer": layer.name,
            "rank": len(model.outputs[0].shape)}


def _activation_name(layer: Any) -> str:
    cls = type(layer).__name__
    if cls == "Softmax":
        return "softmax"
    if cls in ("ReLU",):
        return "relu"
    act = getattr(layer, "activation", None)
    if act is None:
        if cls in ("InputLayer", "Flatten", "Reshape", "Dropout") and getattr(layer, "_inbound_nodes", None):
            inbound = layer._inbound_nodes[0].inbound_layers  # look through shape-only layers
            if not isinstance(inbound, (list, tuple)):
                return _activation_name(inbound)
        return "linear"
    return getattr(act, "__name__", str(act)).lower()


def _compiled_loss(model: Any) -> tuple[str, bool] | None:
    loss = getattr(model, "loss", None)
    if loss is None or isinstance(loss, (list, tuple, dict)):
        return None
    if isinstance(loss, str):
        name, from_logits = loss, False
    else:
        conf = {}
        if hasattr(loss, "get_config"):
            try:
                conf = loss.get_config() or {}
            except Exception:  # noqa: BLE001 - a custom loss without config
                conf = {}
        name = conf.get("name") or getattr(loss, "__name__", type(loss).__name__)
        from_logits = bool(conf.get("from_logits", False))
    name = _snake(name)
    return name, from_logits


def _snake(name: str) -> str:
    import re

    name = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
    return {"sparse_categorical_crossentropy": "sparse_categorical_crossentropy",
            "categorical_crossentropy": "categorical_crossentropy", "binary_crossentropy": "binary_crossentropy",
            "mean_squared_error": "mse", "mean_absolute_error": "mae", "huber": "huber",
            "huber_loss": "huber"}.get(name, name)


def resolve_loss(model: Any, *, task: str, override: str = "auto", source: str = "the data") -> LossSpec:
    """Pick the training loss: the recipe's override, else the compiled loss, else infer one.

    Raises:
        DataError: the compiled loss is one edgekit cannot train with, or nothing fits the output.
    """
    out = output_info(model)
    if override != "auto":
        kind, logits = _LOSS_KINDS[override]
        return LossSpec(override.removesuffix("_from_logits"), kind, logits, "recipe", "train.loss in the recipe")
    compiled = _compiled_loss(model)
    if compiled is not None:
        name, logits = compiled
        if name not in _LOSS_KINDS:
            raise DataError(f"the model was compiled with loss {name!r}, which edgekit cannot fine-tune with",
                            hint="set train.loss in a recipe (e.g. sparse_categorical_crossentropy)")
        kind, _ = _LOSS_KINDS[name]
        return LossSpec(name, kind, logits, "compiled", f"the model was saved compiled with {name}")
    act, units = out["activation"], out["units"]
    if task == "regression":
        return LossSpec("mse", "regression", False, "inferred", f"{source} is a regression task")
    if act == "softmax":
        return LossSpec("sparse_categorical_crossentropy", "sparse", False, "inferred",
                        f"output layer {out['layer']!r} ends in softmax")
    if act == "sigmoid":
        return LossSpec("binary_crossentropy", "binary", False, "inferred",
                        f"output layer {out['layer']!r} ends in sigmoid")
    if act == "linear":
        if units == 1:
            return LossSpec("binary_crossentropy", "binary", True, "inferred",
                            f"output layer {out['layer']!r} is one linear unit on class labels (logit)")
        return LossSpec("sparse_categorical_crossentropy", "sparse", True, "inferred",
                        f"output layer {out['layer']!r} is linear on class labels (logits)")
    raise DataError(f"cannot infer a loss from output layer {out['layer']!r} with activation {act!r}",
                    hint="set train.loss in a recipe file (--recipe)")


def check_labels(loss: LossSpec, y: np.ndarray, *, output_units: int | None, source: str) -> None:
    """Check that labels ``y`` fit the loss and the output; DataError ("expected … got …") if not."""
    y = np.asarray(y)
    if y.size == 0:
        raise DataError(f"{source}: the training labels are empty", hint="provide labelled training data")
    if y.dtype.kind in "fc":
        bad = ~np.isfinite(y.reshape(len(y), -1)).all(axis=1)
        if bad.any():
            raise DataError(f"{source}: training label {int(np.argmax(bad))} is NaN or inf", hint="clean the labels")
    name = loss.name.replace("_", " ")
    if loss.kind in ("sparse", "categorical") and y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1
                                                                  and loss.kind == "sparse"):
        flat = y.reshape(-1)
        if flat.dtype.kind in "fc" and not np.all(np.equal(np.mod(flat, 1), 0)):
            idx = int(np.argmax(np.mod(flat, 1) != 0))
            raise DataError(f"{source}: expected integer class ids for {name}, got {flat[idx].item()!r} at sample {idx}",
                            hint="the labels look like regression targets: use a regression model or set "
                                 "train.loss: mse in a recipe")
        lo, hi = int(flat.min()), int(flat.max())
        if lo < 0 or (output_units is not None and hi >= output_units):
            idx = int(np.argmax((flat < 0) | ((flat >= output_units) if output_units else False)))
            raise DataError(f"{source}: expected class ids in [0, {output_units}) for {name}, got {int(flat[idx])} "
                            f"at sample {idx}", hint="the model's output has fewer classes than the labels")
        return
    if loss.kind == "categorical":
        if y.ndim != 2 or (output_units is not None and y.shape[1] != output_units):
            raise DataError(f"{source}: expected one-hot labels of shape (N, {output_units}) for {name}, "
                            f"got {tuple(y.shape)}", hint="pass class ids or one-hot labels matching the output")
        return
    if loss.kind == "sparse":
        raise DataError(f"{source}: expected one class id per sample for {name}, got labels of shape "
                        f"{tuple(y.shape)}", hint="pass 1-D integer labels or set train.loss in a recipe")
    if loss.kind == "binary":
        vals = y.reshape(-1)
        if vals.min() < 0 or vals.max() > 1:
            idx = int(np.argmax((vals < 0) | (vals > 1)))
            raise DataError(f"{source}: expected labels in [0, 1] for {name}, got {vals[idx].item()!r} at sample "
                            f"{idx % len(y)}", hint="a binary (sigmoid) model needs 0/1 labels; for several "
                                                    "classes use a softmax output")
        want = output_units or 1
        got = 1 if y.ndim == 1 else int(np.prod(y.shape[1:]))
        if got != want:
            raise DataError(f"{source}: expected {want} label value(s) per sample for {name}, got {got}",
                            hint="labels must match the model's output units")
        return
    # regression
    want = output_units or 1
    got = 1 if y.ndim == 1 else int(np.prod(y.shape[1:]))
    if got != want:
        raise DataError(f"{source}: expected {want} target value(s) per sample for {name}, got {got} "
                        f"(labels of shape {tuple(y.shape)})", hint="labels must match the model's output")


@dataclass
class TrainData:
    """Training and validation arrays after the split (plain numpy, picklable).

    ``teacher_train`` / ``teacher_val``: class probabilities predicted by a teacher model for the
    same samples, mixed into the targets with weight ``distill`` (see :func:`with_teacher`).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    teacher_train: np.ndarray | None = None
    teacher_val: np.ndarray | None = None
    distill: float = 0.0

    @property
    def n_train(self) -> int:
        return int(len(self.x_train))


DISTILL_KINDS = ("sparse", "categorical")
"""Loss kinds knowledge distillation applies to (single-label classifiers: softmax or logits)."""


def with_teacher(data: TrainData, teacher: Any, *, loss: LossSpec, weight: float,
                 batch_size: int = 256) -> TrainData:
    """``data`` with the teacher's class probabilities attached, for knowledge distillation.

    The fine-tuning target of a sample becomes ``(1 - weight) * one_hot(label) + weight * p_teacher``
    (Hinton et al. 2015 at temperature 1), trained with categorical cross-entropy. ``weight`` is at
    most 0.5, so the labelled class stays the largest entry of every target. Loss kinds outside
    :data:`DISTILL_KINDS` (binary, regression) and ``weight == 0`` return ``data`` unchanged.

    Args:
        data: the split from :func:`make_split`.
        teacher: the float tf_keras model whose predictions guide the compressed one (the input model).
        loss: the stage loss; ``from_logits`` teachers are turned into probabilities with a softmax.
        weight: the teacher's share of each target, in [0, 0.5].
    """
    if weight <= 0 or loss.kind not in DISTILL_KINDS:
        return data
    if weight > 0.5:
        raise ValueError(f"distillation weight {weight} > 0.5 would let the teacher overrule labels")

    def probs(x: np.ndarray) -> np.ndarray:
        out = np.asarray(teacher.predict(x, batch_size=batch_size, verbose=0), dtype=np.float64)
        out = out.reshape(len(x), -1)
        if loss.from_logits:
            out = np.exp(out - out.max(axis=1, keepdims=True))
        out = np.clip(out, 0.0, None)
        return (out / np.maximum(out.sum(axis=1, keepdims=True), 1e-12)).astype(np.float32)

    return TrainData(data.x_train, data.y_train, data.x_val, data.y_val, teacher_train=probs(data.x_train),
                     teacher_val=probs(data.x_val), distill=float(weight))


def _soft_target_loss(loss: LossSpec) -> LossSpec:
    """The loss for soft (distillation) targets: the dense categorical form of ``loss``. With a weight
    of at most 0.5 every target's argmax is still its label, so categorical accuracy stays the
    accuracy on the labels."""
    return LossSpec("categorical_crossentropy", "categorical", loss.from_logits, loss.source, loss.reason)


def _targets(loss: LossSpec, y: np.ndarray, teacher: np.ndarray | None, weight: float, *,
             output_units: int | None) -> np.ndarray:
    """The fit targets: labels in the loss's form, mixed with the teacher's probabilities when given."""
    if teacher is None:
        return prepare_labels(loss, y, output_units=output_units)
    if y.ndim == 2 and y.shape[1] == 1:  # class ids stored as a column
        y = y[:, 0]
    one_hot = prepare_labels(_soft_target_loss(loss), y, output_units=teacher.shape[1]).astype(np.float32)
    return ((1.0 - weight) * one_hot + weight * teacher).astype(np.float32)


def make_split(x: np.ndarray, y: np.ndarray, *, validation_split: float, batch_size: int, seed: int = 0,
               max_samples: int | None = None, source: str = "the data") -> TrainData:
    """Shuffle deterministically and hold out ``validation_split`` for early stopping.

    Raises:
        DataError: fewer training samples than one batch, or no validation sample.
    """
    n = int(len(x))
    if n != len(y):
        raise DataError(f"{source}: x_train has {n} samples but y_train has {len(y)}", hint="fix the .npz arrays")
    order = np.random.default_rng(seed).permutation(n)
    if max_samples is not None:
        order = order[:max_samples]
    n_val = max(1, int(round(len(order) * validation_split)))
    n_train = len(order) - n_val
    if n_train < batch_size or n_train < 1:
        raise DataError(f"{source}: {len(order)} training samples leave {max(n_train, 0)} for training after the "
                        f"{validation_split:.0%} validation split; one epoch needs at least one batch of {batch_size}",
                        hint="provide more training data or lower train.batch_size in a recipe")
    val, train = order[:n_val], order[n_val:]
    return TrainData(x[train], y[train], x[val], y[val])


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Batches per epoch (the last partial batch counts)."""
    return max(1, math.ceil(n_train / batch_size))


def prepare_labels(loss: LossSpec, y: np.ndarray, *, output_units: int | None) -> np.ndarray:
    """Labels in the form the loss wants (one-hot for categorical losses given class ids)."""
    if loss.kind == "categorical" and y.ndim == 1 and output_units:
        return np.eye(output_units, dtype=np.float32)[y.astype(np.int64)]
    if loss.kind in ("binary", "regression"):
        return y.astype(np.float32)
    return y


@dataclass
class FitResult:
    """What one fine-tuning run did."""

    epochs_run: int
    best_epoch: int | None
    stopped_early: bool
    history: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0

    def as_metrics(self) -> dict[str, Any]:
        last = {k: round(float(v[-1]), 6) for k, v in self.history.items() if v}
        return {"epochs_run": self.epochs_run, "best_epoch": self.best_epoch, "stopped_early": self.stopped_early,
                "final": last, "train_seconds": round(self.seconds, 3)}


def _loss_and_metrics(keras: Any, loss: LossSpec) -> tuple[Any, list[Any]]:
    L, M = keras.losses, keras.metrics
    if loss.kind == "sparse":
        return (L.SparseCategoricalCrossentropy(from_logits=loss.from_logits),
                [M.SparseCategoricalAccuracy(name="accuracy")])
    if loss.kind == "categorical":
        return L.CategoricalCrossentropy(from_logits=loss.from_logits), [M.CategoricalAccuracy(name="accuracy")]
    if loss.kind == "binary":
        return (L.BinaryCrossentropy(from_logits=loss.from_logits),
                [M.BinaryAccuracy(name="accuracy", threshold=0.0 if loss.from_logits else 0.5)])
    fn = {"mse": L.MeanSquaredError(), "mae": L.MeanAbsoluteError(), "huber": L.Huber()}.get(loss.name,
                                                                                           L.MeanSquaredError())
    return fn, [M.MeanAbsoluteError(name="mae")]


def fine_tune(model: Any, data: TrainData, *, loss: LossSpec, epochs: int, learning_rate: float,
              batch_size: int, patience: int, seed: int = 0, stage: str = "train",
              callbacks: Sequence[Any] = (), best_from_epoch: int = 0, progress: bool = False,
              tensorboard_dir: str | Path | None = None, extra_tensorboard: Sequence[Any] = (),
              lr_schedule: str = "constant") -> FitResult:
    """Compile ``model`` with ``loss`` + Adam and train it, with early stopping on ``val_loss``.

    Args:
        model: a tf_keras model (possibly wrapped for pruning / clustering / QAT).
        data: the train / validation split.
        loss: from :func:`resolve_loss`.
        epochs, learning_rate, batch_size, patience, seed: training settings.
        stage: name shown in progress and used for the TensorBoard sub-directory.
        callbacks: stage callbacks (e.g. ``UpdatePruningStep``).
        best_from_epoch: only epochs from this one (0-based) may be "best" and restored, e.g. the
            epoch where a pruning schedule has reached its final sparsity.
        progress: show a progress bar (only drawn when stderr is a terminal).
        tensorboard_dir: write TensorBoard logs under ``<dir>/<stage>``.
        extra_tensorboard: callbacks that are added only with ``tensorboard_dir`` (built lazily
            by the caller, e.g. pruning summaries), given the log dir.
        lr_schedule: ``constant``, or ``cosine``: the learning rate decays from ``learning_rate``
            along a half cosine to 1 % of it over all ``epochs`` (the weights settle at the end of
            the stage instead of stopping mid-stride).

    Returns:
        A :class:`FitResult`; the model keeps the best weights seen from ``best_from_epoch`` on.
    """
    from ..keras_backend import keras as _keras

    keras = _keras()
    keras.utils.set_random_seed(seed)
    out_units = output_info(model)["units"]
    if data.teacher_train is not None:
        loss = _soft_target_loss(loss)
    y_train = _targets(loss, data.y_train, data.teacher_train, data.distill, output_units=out_units)
    y_val = _targets(loss, data.y_val, data.teacher_val, data.distill, output_units=out_units)
    loss_obj, metrics = _loss_and_metrics(keras, loss)
    model.compile(optimizer=keras.optimizers.Adam(_learning_rate(keras, learning_rate, lr_schedule,
                                                                 steps=epochs * steps_per_epoch(data.n_train,
                                                                                                batch_size))),
                  loss=loss_obj, metrics=metrics)

    best = _best_weights_callback(keras, patience=patience, start_epoch=best_from_epoch)
    cbs: list[Any] = [*callbacks, best]
    if tensorboard_dir is not None:
        log_dir = str(Path(tensorboard_dir) / stage)
        cbs.append(keras.callbacks.TensorBoard(log_dir=log_dir, write_graph=False, update_freq="epoch"))
        cbs.extend(factory(log_dir) for factory in extra_tensorboard)
    if progress:
        cbs.append(_progress_callback(keras, stage=stage, epochs=epochs,
                                      steps=steps_per_epoch(data.n_train, batch_size)))
    t = time.perf_counter()
    hist = model.fit(data.x_train, y_train, batch_size=batch_size, epochs=epochs, verbose=0, shuffle=True,
                     validation_data=(data.x_val, y_val), callbacks=cbs)
    seconds = time.perf_counter() - t
    history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    return FitResult(epochs_run=len(history.get("loss", [])), best_epoch=best.best_epoch,
                     stopped_early=best.stopped_early, history=history, seconds=seconds)


LR_SCHEDULES = ("constant", "cosine")


def _learning_rate(keras: Any, learning_rate: float, schedule: str, *, steps: int) -> Any:
    if schedule == "constant":
        return learning_rate
    if schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, steps), alpha=0.01)
    raise ValueError(f"unknown learning-rate schedule {schedule!r}; expected one of {', '.join(LR_SCHEDULES)}")


def _best_weights_callback(keras: Any, *, patience: int, start_epoch: int) -> Any:
    """Early stopping on ``val_loss`` that restores the best weights seen from ``start_epoch`` on."""

    class BestWeights(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.best = math.inf
            self.best_epoch: int | None = None
            self.best_weights: list[Any] | None = None
            self.wait = 0
            self.stopped_early = False

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if epoch < start_epoch:
                return
            value = (logs or {}).get("val_loss")
            if value is None or not math.isfinite(value):
                return
            if value < self.best:
                self.best, self.best_epoch, self.wait = value, epoch, 0
                self.best_weights = self.model.get_weights()
            else:
                self.wait += 1
                if self.wait >= patience:
                    self.stopped_early = True
                    self.model.stop_training = True

        def on_train_end(self, logs: dict | None = None) -> None:
            if self.best_weights is not None and self.best_epoch is not None:
                self.model.set_weights(self.best_weights)

    return BestWeights()


def _fmt_logs(logs: dict[str, Any]) -> str:
    keys = [k for k in ("loss", "accuracy", "mae", "val_loss", "val_accuracy", "val_mae") if k in logs]
    return "  ".join(f"{k} {float(logs[k]):.4f}" for k in keys)


def _progress_callback(keras: Any, *, stage: str, epochs: int, steps: int) -> Any:
    """A rich progress bar per epoch on a terminal; one plain line per epoch otherwise."""
    tty = sys.stderr.isatty()

    class RichProgress(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.bar = None
            self.task = None

        def on_train_begin(self, logs: dict | None = None) -> None:
            if not tty:
                return
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), TextColumn("{task.fields[info]}"),
                                console=Console(stderr=True), transient=False)
            self.bar.start()

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            if self.bar is not None:
                self.task = self.bar.add_task(f"{stage} epoch {epoch + 1}/{epochs}", total=steps, info="")

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            if self.bar is not None and self.task is not None:
                loss = (logs or {}).get("loss")
                self.bar.update(self.task, advance=1, info="" if loss is None else f"loss {float(loss):.4f}")

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            text = _fmt_logs(logs or {})
            if self.bar is not None and self.task is not None:
                self.bar.update(self.task, completed=steps, info=text)
            else:
                print(f"[edgekit] {stage} epoch {epoch + 1}/{epochs}: {text}", file=sys.stderr, flush=True)

        def on_train_end(self, logs: dict | None = None) -> None:
            if self.bar is not None:
                self.bar.stop()
                self.bar = None

    return RichProgress()


def evaluate(model: Any, x: np.ndarray, y: np.ndarray, *, loss: LossSpec, batch_size: int = 256) -> dict[str, float]:
    """Accuracy (classification) or MAE (regression) of a Keras model on ``(x, y)``."""
    pred = np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
    if loss.kind in ("sparse", "categorical"):
        labels = y if y.ndim == 1 else np.argmax(y, axis=1)
        return {"accuracy": float(np.mean(np.argmax(pred, axis=1) == labels))}
    if loss.kind == "binary":
        thr = 0.0 if loss.from_logits else 0.5
        return {"accuracy": float(np.mean((pred.reshape(len(y), -1) > thr) == (y.reshape(len(y), -1) > 0.5)))}
    return {"mae": float(np.mean(np.abs(pred.reshape(len(y), -1) - y.reshape(len(y), -1))))}
