"""TFLite conversion stage: float32, float16, dynamic-range int8, full int8 and int16x8.

Runs inside a child process (it imports TensorFlow through :mod:`edgekit.keras_backend`). After
converting, :func:`verify_conversion` checks the produced model really has the requested I/O dtypes
and quantized tensors: the converter silently falls back to float in some cases (e.g. all-NaN or
empty calibration data) and that must be an error, not a surprise on the device.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Iterator

import numpy as np

from ..errors import ConfigError, ModelError

MODES = ("float32", "float16", "dynamic", "int8", "int16x8")
"""Quantization modes, as named on the command line (``--quantize``)."""

NEEDS_CALIBRATION = {"int8", "int16x8"}


def check_mode(mode: str, io_dtype: str | None) -> tuple[str, str]:
    """Validate a (mode, io_dtype) pair and return it with io_dtype resolved."""
    if mode not in MODES:
        raise ConfigError(f"unknown quantization mode {mode!r}", hint=f"choose one of {', '.join(MODES)}")
    io = io_dtype or "float32"
    if io not in ("float32", "int8"):
        raise ConfigError(f"unknown I/O dtype {io!r}", hint="use int8 or float32")
    if io == "int8" and mode != "int8":
        raise ConfigError(f"int8 I/O needs --quantize int8, got --quantize {mode}",
                          hint="drop --io int8 or use --quantize int8")
    return mode, io


def _representative(samples: np.ndarray) -> Iterator[list[np.ndarray]]:
    for s in samples:
        yield [np.asarray(s, np.float32)[None, ...]]


def convert_keras(model: Any, *, mode: str, io_dtype: str = "float32",
                  representative: np.ndarray | None = None, allow_select_tf_ops: bool = False) -> bytes:
    """Convert a tf_keras model to ``.tflite`` bytes.

    Args:
        model: a tf_keras model (inside the child process).
        mode: one of :data:`MODES`.
        io_dtype: ``int8`` or ``float32`` inputs/outputs (int8 only with mode ``int8``).
        representative: calibration samples (N, ...) for ``int8`` / ``int16x8``.
        allow_select_tf_ops: allow TensorFlow ops the builtins lack (explicit opt-in).
    """
    from ..keras_backend import tf

    tfm = tf()
    mode, io_dtype = check_mode(mode, io_dtype)
    conv = tfm.lite.TFLiteConverter.from_keras_model(model)
    if mode != "float32":
        conv.optimizations = [tfm.lite.Optimize.DEFAULT]
    if mode == "float16":
        conv.target_spec.supported_types = [tfm.float16]
    if mode in NEEDS_CALIBRATION:
        if representative is None or len(representative) == 0:
            raise ConfigError(f"--quantize {mode} needs calibration data", hint="pass --data with training samples")
        samples = np.asarray(representative, np.float32)
        conv.representative_dataset = lambda: _representative(samples)
        if mode == "int8":
            conv.target_spec.supported_ops = [tfm.lite.OpsSet.TFLITE_BUILTINS_INT8]
            if io_dtype == "int8":
                conv.inference_input_type = tfm.int8
                conv.inference_output_type = tfm.int8
        else:
            conv.target_spec.supported_ops = [
                tfm.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    if allow_select_tf_ops:
        conv.target_spec.supported_ops = list(conv.target_spec.supported_ops) + [tfm.lite.OpsSet.SELECT_TF_OPS]
    try:
        return bytes(conv.convert())
    except Exception as exc:  # the converter raises many types; all mean "this model cannot be converted"
        text = " ".join(str(exc).split())
        ops = sorted(set(_ops_in_message(text)))
        if ops:
            raise ModelError(f"the converter cannot express these ops as TFLite builtins: {', '.join(ops)}",
                             hint="replace those layers, or allow select TF ops explicitly") from exc
        raise ModelError(f"TFLite conversion ({mode}) failed: {text[:300]}") from exc


def _ops_in_message(text: str) -> list[str]:
    import re

    return re.findall(r"tf\.([A-Z][A-Za-z0-9]+)", text)


def tensor_dtypes(model_bytes: bytes) -> dict[str, Any]:
    """Summarize a model's tensors: I/O dtypes and a count of tensors per dtype."""
    from ..interp import make_interpreter

    interp = make_interpreter(model_bytes)
    details = interp.get_tensor_details()
    return {
        "inputs": [np.dtype(d["dtype"]).name for d in interp.get_input_details()],
        "outputs": [np.dtype(d["dtype"]).name for d in interp.get_output_details()],
        "tensors": dict(Counter(np.dtype(d["dtype"]).name for d in details)),
        "quantized_tensors": sum(1 for d in details if d.get("quantization", (0.0, 0))[0]),
    }


def verify_conversion(model_bytes: bytes, *, mode: str, io_dtype: str = "float32") -> dict[str, Any]:
    """Check the converted model matches what was asked; ModelError if the converter fell back.

    Returns the tensor summary of :func:`tensor_dtypes`.
    """
    info = tensor_dtypes(model_bytes)
    counts = info["tensors"]
    want_io = "int8" if (mode == "int8" and io_dtype == "int8") else "float32"
    problems = []
    for kind in ("inputs", "outputs"):
        wrong = [d for d in info[kind] if d != want_io]
        if wrong:
            problems.append(f"{kind} are {','.join(info[kind])}, expected {want_io}")
    if mode == "float16" and not counts.get("float16"):
        problems.append("no float16 weights")
    if mode in ("dynamic", "int8") and not counts.get("int8"):
        problems.append("no int8 tensors")
    if mode == "int8" and info["quantized_tensors"] < 2:
        problems.append("activations are not quantized")
    if mode == "int16x8" and not counts.get("int16"):
        problems.append("no int16 activations")
    if mode == "float32" and (counts.get("int8") or counts.get("float16")):
        problems.append("unexpected quantized tensors in a float32 model")
    if problems:
        raise ModelError(f"the converter did not produce a {mode} model: {'; '.join(problems)}",
                         hint="check the calibration data (NaN/constant values) and that every layer is quantizable")
    return info
