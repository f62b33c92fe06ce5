"""Tiny real models and data for the compression-stage tests (TensorFlow imported lazily)."""
from __future__ import annotations

from typing import Any

import numpy as np


def keras() -> Any:
    from edgekit.keras_backend import keras as _keras

    return _keras()


def load_fresh(path) -> Any:
    """A new copy of a saved model (stages share layers with their input, so each test loads its own)."""
    return keras().models.load_model(str(path))


def split_and_loss(model: Any, ds: Any, *, max_samples: int | None = None):
    from edgekit.stages.finetune import make_split, resolve_loss

    data = make_split(ds.x_train, ds.y_train, validation_split=0.1, batch_size=32, seed=0, max_samples=max_samples)
    return data, resolve_loss(model, task=ds.task)


def odd_layers_model() -> Any:
    """A functional model with every layer kind the pre-flight check has to fix for QAT."""
    k = keras()
    L = k.layers
    inp = L.Input((8, 8, 1), name="image")
    x = L.Rescaling(2.0, offset=-1.0, name="rescale")(inp)
    a = L.Conv2D(8, 3, padding="same", name="conv_a")(x)
    a = L.BatchNormalization(name="bn_conv")(a)
    a = L.ReLU(name="relu_a")(a)
    b = L.Conv2D(8, 1, padding="same", activation="relu", name="conv_b")(x)
    c = L.Concatenate(name="concat")([a, b])
    c = L.Conv2D(8, 3, activation="hard_sigmoid", name="conv_hs")(c)
    c = L.Flatten(name="flat")(c)
    c = L.Reshape((-1,), name="reshape")(c)
    d = L.Dense(16, name="dense")(c)
    d = L.BatchNormalization(name="bn_dense")(d)
    d = L.PReLU(name="prelu")(d)
    d = L.LayerNormalization(name="ln")(d)
    out = L.Dense(10, activation="softmax", name="probs")(d)
    model = k.Model(inp, out, name="odd")
    return model


def subclassed_model() -> Any:
    k = keras()

    class Net(k.Model):
        def __init__(self):
            super().__init__()
            self.flat = k.layers.Flatten()
            self.out = k.layers.Dense(10, activation="softmax")

        def call(self, x):
            return self.out(self.flat(x))

    model = Net()
    model(np.zeros((1, 8, 8, 1), np.float32))
    return model


def xnnpack_model() -> Any:
    """The graph shape XNNPACK's sparse inference needs: padded 3x3/2 stem on 3 channels ... GAP."""
    k = keras()
    L = k.layers
    inp = L.Input((16, 16, 3))
    x = L.ZeroPadding2D(((1, 1), (1, 1)))(inp)
    x = L.Conv2D(8, 3, strides=2, padding="valid", activation="relu", name="stem")(x)
    x = L.Conv2D(32, 1, activation="relu", name="pw1")(x)
    x = L.Conv2D(32, 1, activation="relu", name="pw2")(x)
    x = L.GlobalAveragePooling2D(keepdims=True)(x)
    x = L.Flatten()(x)
    out = L.Dense(4, activation="softmax", name="probs")(x)
    return k.Model(inp, out)
