"""Train ``fashion_mnist_cnn.keras``: a small image classifier for phones and Raspberry Pis.

Data: ``builtin:fashion-mnist`` (9,000 train / 2,000 test images shipped with edgekit).
Model: three Conv2D + BatchNorm + ReLU + max-pool blocks (16, 32, 64 channels), a Dense(60) ReLU
layer, dropout and a softmax Dense layer; about 59k parameters. Every layer is one that tfmot can
prune and quantize-aware-train (Conv2D directly followed by BatchNormalization, separate ReLU
layers after the convolutions, no Rescaling: inputs arrive in [0, 1]).

Deterministic: fixed seeds and TensorFlow op determinism, so the same versions on the same CPU
give the same weights. Takes about two minutes on 2 CPU cores. Run from the repository root::

    python sample_models/train_fashion_mnist.py
"""
from __future__ import annotations

import time

from _common import HERE, SEED, compile_model, record, setup_tensorflow

MODEL_FILE = "fashion_mnist_cnn.keras"
EPOCHS = 20
LEARNING_RATE = 2e-3  # peak; cosine-decayed to 2 % of it over the run
BATCH = 64


def build(keras, input_shape, num_classes):
    """The CNN: Conv-BN-ReLU-pool x3 (16, 32, 64 channels), a Dense(60) ReLU layer, dropout, softmax."""
    layers = keras.layers
    return keras.Sequential([
        keras.Input(shape=input_shape, name="image"),
        layers.Conv2D(16, 3, padding="same", use_bias=False, name="conv1"),
        layers.BatchNormalization(name="bn1"),
        layers.ReLU(name="relu1"),
        layers.MaxPooling2D(2, name="pool1"),
        layers.Conv2D(32, 3, padding="same", use_bias=False, name="conv2"),
        layers.BatchNormalization(name="bn2"),
        layers.ReLU(name="relu2"),
        layers.MaxPooling2D(2, name="pool2"),
        layers.Conv2D(64, 3, padding="same", use_bias=False, name="conv3"),
        layers.BatchNormalization(name="bn3"),
        layers.ReLU(name="relu3"),
        layers.MaxPooling2D(2, name="pool3"),
        layers.Flatten(name="flatten"),
        layers.Dropout(0.3, name="dropout1"),
        layers.Dense(60, activation="relu", name="hidden"),
        layers.Dropout(0.3, name="dropout2"),
        layers.Dense(num_classes, activation="softmax", name="probs"),
    ], name="fashion_mnist_cnn")


def main() -> None:
    tf, keras = setup_tensorflow(SEED)
    from edgekit.data import load_dataset

    import numpy as np

    ds = load_dataset("builtin:fashion-mnist")
    model = build(keras, ds.sample_shape, ds.num_classes)
    steps = EPOCHS * int(np.ceil(len(ds.x_train) / BATCH))
    compile_model(keras, model, keras.optimizers.schedules.CosineDecay(LEARNING_RATE, steps, alpha=0.02))
    model.summary()
    start = time.perf_counter()
    model.fit(np.asarray(ds.x_train), np.asarray(ds.y_train), epochs=EPOCHS, batch_size=BATCH,
              shuffle=True, verbose=2)
    seconds = time.perf_counter() - start
    probs = model.predict(np.asarray(ds.x_test), batch_size=256, verbose=0)
    accuracy = float(np.mean(np.argmax(probs, axis=1) == ds.y_test))
    compile_model(keras, model, LEARNING_RATE)  # drop the optimizer state before saving
    model.save(HERE / MODEL_FILE)
    print(f"{MODEL_FILE}: test accuracy {accuracy:.4f} on {len(ds.x_test)} samples; trained in {seconds:.0f} s")
    record(MODEL_FILE, {
        "task": "image classification (mobile, Raspberry Pi)", "dataset": ds.spec, "data_fingerprint": ds.fingerprint,
        "n_train": len(ds.x_train), "n_test": len(ds.x_test), "input_shape": list(ds.sample_shape),
        "num_classes": ds.num_classes, "params": int(model.count_params()),
        "file_bytes": (HERE / MODEL_FILE).stat().st_size, "test_accuracy": round(accuracy, 4),
        "epochs": EPOCHS, "train_seconds": round(seconds, 1), "seed": SEED, "script": "train_fashion_mnist.py",
    })


if __name__ == "__main__":
    main()
