"""Check a model file before it is benchmarked anywhere.

Cheap checks (exists, a file, the ``TFL3`` identifier) always run here. Before a model goes to a
runtime that does not verify flatbuffers (tflite-runtime on a device, an emulated guest, another
local Python), LiteRT's verifier also runs on it in a child process: a truncated or corrupt file is
then a clear exit-2 error on this machine instead of a segfault on the device.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError, DataError, ModelError

_VERIFIER_MARKERS = ("not a valid flatbuffer", "model identifier", "could not", "invalid", "truncated")


def check_model_file(path: Path, *, flag: str = "MODEL") -> None:
    """Exists, is a file, and starts like a TFLite flatbuffer (ModelError otherwise, exit 2)."""
    if not path.exists():
        raise ModelError(f"{flag} {path}: no such file", hint="pass the path of a .tflite model")
    if not path.is_file():
        raise ModelError(f"{flag} {path}: not a file", hint="pass the path of a .tflite model")
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise ModelError(f"{flag} {path}: cannot read: {exc.strerror or exc}") from exc
    if len(head) < 8 or head[4:8] != b"TFL3":
        kind = "a Keras model" if path.suffix.lower() in (".keras", ".h5") else "not a TFLite model"
        raise ModelError(f"{flag} {path}: {kind} (no 'TFL3' identifier at byte 4)",
                         hint="benchmark the .tflite written by `edgekit compress`")


def check_inputs_file(path: Path) -> None:
    if not path.is_file():
        raise DataError(f"--inputs {path}: no such file", hint="pass a .npy (one input) or .npz (one array per input)")
    if path.suffix.lower() not in (".npy", ".npz"):
        raise DataError(f"--inputs {path}: expected a .npy or .npz file, got '{path.suffix or 'no suffix'}'")


def check_output_path(path: Path, *, flag: str) -> None:
    parent = path.resolve().parent
    if path.is_dir():
        raise ConfigError(f"{flag} {path}: is a directory", hint="pass a file name such as outputs.npz")
    if not parent.is_dir():
        raise ConfigError(f"{flag} {path}: the folder {parent} does not exist")


def _verify_in_child(path: str) -> None:  # pragma: no cover - runs in the child process
    from ai_edge_litert.interpreter import Interpreter

    with open(path, "rb") as fh:
        content = fh.read()
    try:
        Interpreter(model_content=content)
    except (ValueError, RuntimeError) as exc:
        text = " ".join(str(exc).split())
        if any(m in text.lower() for m in _VERIFIER_MARKERS) and "find op" not in text and "custom op" not in text:
            raise ModelError(f"{path}: corrupt TFLite file: {text[:200]}",
                             hint="LiteRT's flatbuffer verifier rejected it; re-export the model") from None
        # an op this runtime lacks may exist on the device's runtime: let the device decide


def verify_flatbuffer(path: Path) -> None:
    """Run LiteRT's flatbuffer verifier on ``path`` in a child process (ModelError if corrupt)."""
    from ..child import run_in_child

    run_in_child(_verify_in_child, str(path), what=f"verifying {path}", timeout=120)
