"""Shared helpers of the sample-model training scripts: determinism and recording results.

Each training script records its measured test accuracy in ``metrics.json`` (read by the tests)
and in the table of ``README.md`` between the ``accuracy-table`` markers.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
METRICS = HERE / "metrics.json"
README = HERE / "README.md"
TABLE_START = "<!-- accuracy-table:start (written by the training scripts) -->"
TABLE_END = "<!-- accuracy-table:end -->"
SEED = 0

sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing edgekit


def setup_tensorflow(seed: int = SEED):
    """Import TensorFlow with tf_keras (Keras 2) and make training deterministic; returns ``(tf, keras)``."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    import tensorflow as tf
    import tf_keras as keras

    keras.utils.set_random_seed(seed)  # Python, NumPy and TensorFlow seeds
    tf.config.experimental.enable_op_determinism()
    return tf, keras


def compile_model(keras, model, learning_rate) -> None:
    """Adam (``learning_rate``: a float or a Keras schedule) + sparse categorical cross-entropy on softmax outputs,
    with an explicit accuracy metric object.

    Explicit metric objects avoid tf_keras guessing the wrong accuracy (STACK_NOTES.md). Called again
    just before saving so the file holds a fresh optimizer (its config, not Adam's moment estimates),
    which keeps the ``.keras`` file small; edgekit compiles its own optimizer for fine-tuning anyway.
    """
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def record(model_file: str, entry: dict) -> None:
    """Store ``entry`` (with versions and the model's sha256) under ``model_file`` and refresh the README table."""
    import numpy as np
    import tensorflow as tf
    import tf_keras

    entry = dict(entry)
    entry["sha256"] = hashlib.sha256((HERE / model_file).read_bytes()).hexdigest()
    entry["versions"] = {"python": platform.python_version(), "tensorflow": tf.__version__,
                         "tf_keras": tf_keras.__version__, "numpy": np.__version__}
    metrics = json.loads(METRICS.read_text()) if METRICS.exists() else {}
    metrics[model_file] = entry
    metrics = dict(sorted(metrics.items()))
    _write(METRICS, json.dumps(metrics, indent=2) + "\n")

    rows = ["| model | task / target family | dataset | input | params | file size | test accuracy | script |",
            "|---|---|---|---|---|---|---|---|"]
    for name, m in metrics.items():
        rows.append(f"| `{name}` | {m['task']} | `{m['dataset']}` ({m['n_train']:,} train / {m['n_test']:,} test) | "
                    f"{tuple(m['input_shape'])} | {m['params']:,} | {m['file_bytes'] / 1024:.0f} KiB | "
                    f"**{100 * m['test_accuracy']:.2f} %** | `{m['script']}` |")
    table = "\n".join(rows)
    text = README.read_text() if README.exists() else f"{TABLE_START}\n{TABLE_END}\n"
    pattern = re.compile(re.escape(TABLE_START) + r".*?" + re.escape(TABLE_END), re.S)
    _write(README, pattern.sub(lambda _: f"{TABLE_START}\n{table}\n{TABLE_END}", text))


def train_and_record(keras, model, ds, *, model_file: str, task: str, script: str, epochs: int, batch: int,
                     learning_rate, final_learning_rate: float, seed: int = SEED) -> float:
    """Train ``model`` on ``ds``'s training split, measure test accuracy, save the model, record the result.

    Args:
        learning_rate: a float or a Keras schedule for training.
        final_learning_rate: the plain rate of the fresh optimizer stored with the model.

    Returns the test accuracy.
    """
    import time

    import numpy as np

    compile_model(keras, model, learning_rate)
    model.summary()
    start = time.perf_counter()
    model.fit(np.asarray(ds.x_train), np.asarray(ds.y_train), epochs=epochs, batch_size=batch, shuffle=True,
              verbose=2)
    seconds = time.perf_counter() - start
    probs = model.predict(np.asarray(ds.x_test), batch_size=256, verbose=0)
    accuracy = float(np.mean(np.argmax(probs, axis=1) == ds.y_test))
    compile_model(keras, model, final_learning_rate)  # drop the optimizer state before saving
    model.save(HERE / model_file)
    print(f"{model_file}: test accuracy {accuracy:.4f} on {len(ds.x_test)} samples; trained in {seconds:.0f} s")
    record(model_file, {
        "task": task, "dataset": ds.spec, "data_fingerprint": ds.fingerprint,
        "n_train": len(ds.x_train), "n_test": len(ds.x_test), "input_shape": list(ds.sample_shape),
        "num_classes": ds.num_classes, "params": int(model.count_params()),
        "file_bytes": (HERE / model_file).stat().st_size, "test_accuracy": round(accuracy, 4),
        "epochs": epochs, "train_seconds": round(seconds, 1), "seed": seed, "script": script,
    })
    return accuracy
