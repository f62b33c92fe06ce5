"""Train ``fashion_mnist_cnn.keras``: a small image classifier for phones and Raspberry Pis.

Data: ``builtin:fashion-mnist`` (9,000 train / 2,000 test images shipped with edgekit).
Model: three Conv2D + BatchNorm + ReLU + max-pool blocks (16, 32, 64 channels), a Dense(128) ReLU
layer, dropout and a softmax Dense layer; about 99k parameters. Every layer is one that tfmot can
prune and quantize-aware-train (Conv2D directly followed by BatchNormalization, separate ReLU
layers after the convolutions, no Rescaling: inputs arrive in [0, 1]).

Deterministic: fixed seeds and TensorFlow op determinism, so the same versions on the same CPU
give the same weights. Takes about two minutes on 2 CPU cores. Run from the repository root::

    python sample_models/train_fashion_mnist.py
"""
from __future__ import annotations


from _common import SEED, setup_tensorflow, train_and_record

MODEL_FILE = "fashion_mnist_cnn.keras"
EPOCHS = 20
LEARNING_RATE = 2e-3  # peak; cosine-decayed to 2 % of it over the run
BATCH = 64


def build(keras, input_shape, num_classes):
    """The CNN: Conv-BN-ReLU-pool x3 (16, 32, 64 channels), a Dense(128) ReLU layer, dropout, softmax."""
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
        layers.Dense(128, activation="relu", name="hidden"),
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
    train_and_record(keras, model, ds, model_file=MODEL_FILE, task="image classification (mobile, Raspberry Pi)",
                     script="train_fashion_mnist.py", epochs=EPOCHS, batch=BATCH,
                     learning_rate=keras.optimizers.schedules.CosineDecay(LEARNING_RATE, steps, alpha=0.02),
                     final_learning_rate=LEARNING_RATE)


if __name__ == "__main__":
    main()
