"""Train ``basic_motions_cnn.keras``: a tiny 1-D CNN over smartwatch motion for microcontrollers.

Data: ``builtin:basic-motions`` (UEA BasicMotions: 100 time steps x 6 channels of accelerometer +
gyroscope, 4 activities, 40 train / 40 test series).

Model: a 1-D convolution network written with 2-D layers. tfmot's quantization-aware training
rejects ``Conv1D`` ("Layer conv1d ... is not supported"), so the (100, 6) series is reshaped to a
(100, 1, 6) image and convolved with (k, 1) ``Conv2D`` kernels, which computes exactly what a
``Conv1D`` with kernel k would, and which tfmot can prune and quantize (Conv2D followed directly by
BatchNormalization). A few thousand parameters, so the int8 model and its tensor arena fit a
Cortex-M4.

Deterministic: fixed seeds and TensorFlow op determinism. Takes well under a minute on 2 CPU
cores. Run from the repository root::

    python sample_models/train_basic_motions.py
"""
from __future__ import annotations


from _common import SEED, setup_tensorflow, train_and_record

MODEL_FILE = "basic_motions_cnn.keras"
EPOCHS = 60
LEARNING_RATE = 5e-3
BATCH = 8


def build(keras, input_shape, num_classes):
    """Reshape to (steps, 1, channels), two Conv(k x 1)-BN-ReLU blocks, global average pool, softmax."""
    layers = keras.layers
    steps, channels = input_shape
    return keras.Sequential([
        keras.Input(shape=input_shape, name="motion"),
        layers.Reshape((steps, 1, channels), name="as_image"),
        layers.Conv2D(16, (5, 1), strides=(2, 1), padding="same", use_bias=False, name="conv1"),
        layers.BatchNormalization(name="bn1"),
        layers.ReLU(name="relu1"),
        layers.MaxPooling2D((2, 1), name="pool1"),
        layers.Conv2D(24, (5, 1), padding="same", use_bias=False, name="conv2"),
        layers.BatchNormalization(name="bn2"),
        layers.ReLU(name="relu2"),
        layers.GlobalAveragePooling2D(name="gap"),
        layers.Dense(num_classes, activation="softmax", name="probs"),
    ], name="basic_motions_cnn")


def main() -> None:
    tf, keras = setup_tensorflow(SEED)
    from edgekit.data import load_dataset

    ds = load_dataset("builtin:basic-motions")
    model = build(keras, ds.sample_shape, ds.num_classes)
    train_and_record(keras, model, ds, model_file=MODEL_FILE,
                     task="sensor time-series classification (microcontrollers)", script="train_basic_motions.py",
                     epochs=EPOCHS, batch=BATCH, learning_rate=LEARNING_RATE, final_learning_rate=LEARNING_RATE)


if __name__ == "__main__":
    main()
