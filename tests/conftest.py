"""Shared, session-scoped fixtures: a tiny real model and dataset, built once per test session.

Fixtures that need TensorFlow build their artifacts in a subprocess so that the pytest process itself
never imports TensorFlow (unit tests stay fast and TF-free).
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EDGEKIT = str(Path(sys.executable).with_name("edgekit"))


def run_python(code: str, *args: str, timeout: float = 900, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a Python snippet in a fresh interpreter (TF_USE_LEGACY_KERAS=1); fail the test on error."""
    full_env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env)
    if proc.returncode != 0:
        raise AssertionError(f"helper script failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc


def run_edgekit(*args: str, timeout: float = 900, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the installed ``edgekit`` console script; returns the completed process (never raises)."""
    return subprocess.run([EDGEKIT, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="session")
def artifacts_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture(scope="session")
def digits_npz(artifacts_dir) -> Path:
    """sklearn digits as (8, 8, 1) float32 in [0, 1], split 1400 / 397, labels int64."""
    import numpy as np
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32").reshape(-1, 8, 8, 1)
    y = y.astype("int64")
    path = artifacts_dir / "digits.npz"
    np.savez(path, x_train=x[:1400], y_train=y[:1400], x_test=x[1400:], y_test=y[1400:])
    return path


@pytest.fixture(scope="session")
def digits(digits_npz):
    """``digits_npz`` loaded with :func:`edgekit.data.load_dataset` (read-only arrays: safe to share)."""
    from edgekit.data import load_dataset

    return load_dataset(str(digits_npz))


_TINY_MODEL = """
import sys, numpy as np, tf_keras as keras, tensorflow as tf
tf.keras.utils.set_random_seed(0)
d = np.load(sys.argv[1])
m = keras.Sequential([keras.layers.Input((8, 8, 1)),
                      keras.layers.Conv2D(8, 3, activation="relu", name="conv"),
                      keras.layers.Flatten(name="flatten"),
                      keras.layers.Dense(32, activation="relu", name="hidden"),
                      keras.layers.Dense(10, activation="softmax", name="probs")])
m.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy",
          metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
m.fit(d["x_train"], d["y_train"], epochs=8, batch_size=32, verbose=0)
m.save(sys.argv[2])
"""


@pytest.fixture(scope="session")
def tiny_keras_model(artifacts_dir, digits_npz) -> Path:
    """A tf_keras ``.keras`` CNN (~10k params) trained on digits to ~95 % accuracy."""
    path = artifacts_dir / "tiny.keras"
    run_python(_TINY_MODEL, str(digits_npz), str(path))
    return path


_CONVERT = """
import sys, numpy as np, tf_keras as keras
from edgekit.stages.convert import convert_keras
m = keras.models.load_model(sys.argv[1])
rep = np.load(sys.argv[2])["x_train"][:100]
open(sys.argv[3], "wb").write(convert_keras(m, mode=sys.argv[4], io_dtype=sys.argv[5], representative=rep))
"""


def _convert(tiny_keras_model, digits_npz, artifacts_dir, mode: str, io: str) -> Path:
    path = artifacts_dir / f"tiny_{mode}_{io}.tflite"
    if not path.exists():
        run_python(_CONVERT, str(tiny_keras_model), str(digits_npz), str(path), mode, io)
    return path


@pytest.fixture(scope="session")
def tiny_tflite_int8(tiny_keras_model, digits_npz, artifacts_dir) -> Path:
    """Full-int8 conversion of :func:`tiny_keras_model` with int8 I/O."""
    return _convert(tiny_keras_model, digits_npz, artifacts_dir, "int8", "int8")


@pytest.fixture(scope="session")
def tiny_tflite_float32(tiny_keras_model, digits_npz, artifacts_dir) -> Path:
    """float32 conversion of :func:`tiny_keras_model`."""
    return _convert(tiny_keras_model, digits_npz, artifacts_dir, "float32", "float32")


# --- QEMU emulation (issue 8): one emulated Raspberry Pi environment, built once and kept ------------
os.environ.setdefault("EDGEKIT_EMULATOR_DIR", str(Path.home() / ".cache" / "edgekit-test" / "emulator"))


@pytest.fixture(scope="session")
def emu_env():
    """The rpi4 emulator environment (shared by every Pi target: same runtime); built once, then cached."""
    import time

    from edgekit import emulator

    started = time.monotonic()
    env = emulator.setup(target="rpi4")
    if env.built:  # visible with -rP / in the CI log: the one-off cost
        print(f"emulator setup built {env.name} in {time.monotonic() - started:.1f} s")
    return env


# --- compression stages (issue 3): keep the stage cache out of the user's cache directory --------
@pytest.fixture(scope="session", autouse=True)
def _isolated_stage_cache(tmp_path_factory):
    """Every test session gets its own ``$EDGEKIT_CACHE_DIR`` (inherited by CLI subprocesses)."""
    old = os.environ.get("EDGEKIT_CACHE_DIR")
    os.environ["EDGEKIT_CACHE_DIR"] = str(tmp_path_factory.mktemp("edgekit-cache"))
    yield
    if old is None:
        os.environ.pop("EDGEKIT_CACHE_DIR", None)
    else:
        os.environ["EDGEKIT_CACHE_DIR"] = old


# --- benchmark harness (issue 5): a device-like venv (numpy<2 + tflite-runtime) and models of 3 sizes --
@pytest.fixture(scope="session")
def device_python() -> Path:
    """Python of a venv holding only numpy < 2 and tflite-runtime 2.14 (what a Pi typically has)."""
    from sshd import device_venv

    return device_venv()


@pytest.fixture(scope="session")
def bench_models(tmp_path_factory) -> dict[str, Path]:
    """Small, medium and large .tflite models for the harness, built once per session."""
    from sshd import build_models

    return build_models(tmp_path_factory.getbasetemp() / "bench-models")


# --- model loading and safety (issue 2): fixture models of every format, loaded once in one child ----
@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """Keras 3 / tf_keras / h5 / SavedModel / hostile fixture models, built in one subprocess."""
    import fixtures_models as fm

    return fm.built_models(tmp_path_factory)


@pytest.fixture(scope="session")
def loaded(models, tmp_path_factory):
    """The standard fixture models loaded through edgekit in one child process."""
    import fixtures_models as fm

    return fm.loaded_batch(tmp_path_factory, fm.standard_requests(models))
