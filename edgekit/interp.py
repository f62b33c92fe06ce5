"""Run a ``.tflite`` model over a batch of inputs with the real LiteRT interpreter.

Call these functions inside a child process (:func:`edgekit.child.run_in_child`): an interpreter
crash must not take the CLI down. Models are always opened from bytes, so the flatbuffer verifier
runs. Quantized inputs/outputs (int8, uint8, int16) are handled with their scale and zero point:
callers pass and receive float arrays.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .errors import ModelError


def make_interpreter(model_bytes: bytes, *, threads: int = 1, reference_kernels: bool = False) -> Any:
    """Create an ``ai_edge_litert`` interpreter from bytes (verifier on). ModelError if invalid."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kwargs: dict[str, Any] = {"model_content": bytes(model_bytes), "num_threads": int(threads)}
    if reference_kernels:
        kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_REF
    try:
        return Interpreter(**kwargs)
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"LiteRT cannot load the model: {' '.join(str(exc).split())[:300]}",
                         hint="re-export the .tflite; it is corrupt or uses ops this runtime lacks") from exc


def quantize_input(x: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """Float input → the tensor's dtype, using its (scale, zero_point) when it is quantized."""
    dtype = np.dtype(detail["dtype"])
    scale, zero_point = detail.get("quantization", (0.0, 0))
    if np.issubdtype(dtype, np.integer) and scale:
        info = np.iinfo(dtype)
        q = np.round(np.asarray(x, np.float64) / scale + zero_point)
        return np.clip(q, info.min, info.max).astype(dtype)
    return np.asarray(x).astype(dtype)


def dequantize_output(y: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """Tensor output → float32, using its (scale, zero_point) when it is quantized."""
    scale, zero_point = detail.get("quantization", (0.0, 0))
    if np.issubdtype(np.dtype(detail["dtype"]), np.integer) and scale:
        return ((y.astype(np.float32) - zero_point) * scale).astype(np.float32)
    return y.astype(np.float32)


def resize_inputs(interp: Any, batch: int) -> bool:
    """Set every input's batch dimension to ``batch`` and reallocate; False when the model refuses."""
    try:
        for d in interp.get_input_details():
            interp.resize_tensor_input(d["index"], [batch, *list(d["shape"])[1:]], strict=False)
        interp.allocate_tensors()
        return True
    except (ValueError, RuntimeError):
        return False


def predict_tflite_all(model_bytes: bytes, x: np.ndarray, *, threads: int = 1, batch_size: int = 256,
                       reference_kernels: bool = False) -> list[np.ndarray]:
    """Run the model's first input over ``x`` (N, ...) and return every output as float (N, ...), in order.

    Batches by resizing the inputs' batch dimension when the model allows it, otherwise invokes
    once per sample.
    """
    interp = make_interpreter(model_bytes, threads=threads, reference_kernels=reference_kernels)
    n = int(x.shape[0])
    batch = min(batch_size, n) if n else 1
    if not (batch > 1 and resize_inputs(interp, batch)):
        batch = 1
        if not resize_inputs(interp, 1):
            interp.allocate_tensors()
    collected: list[list[np.ndarray]] = [[] for _ in interp.get_output_details()]
    for start in range(0, n, batch):
        chunk = x[start:start + batch]
        if chunk.shape[0] != batch:  # last partial batch
            if not resize_inputs(interp, chunk.shape[0]):
                raise ModelError("cannot resize the model's input for the last batch")
            batch = chunk.shape[0]
        detail = interp.get_input_details()[0]
        interp.set_tensor(detail["index"], quantize_input(chunk, detail))
        interp.invoke()
        for k, out in enumerate(interp.get_output_details()):
            collected[k].append(dequantize_output(interp.get_tensor(out["index"]), out))
    return [np.concatenate(c, axis=0) if c else np.zeros((0,), np.float32) for c in collected]


def predict_tflite(model_bytes: bytes, x: np.ndarray, *, threads: int = 1, batch_size: int = 256,
                   reference_kernels: bool = False) -> np.ndarray:
    """Like :func:`predict_tflite_all`, returning only the first output."""
    return predict_tflite_all(model_bytes, x, threads=threads, batch_size=batch_size,
                              reference_kernels=reference_kernels)[0]


def io_details(model_bytes: bytes) -> dict[str, list[dict[str, Any]]]:
    """Inputs and outputs of the model: name, shape, dtype name, scale, zero point."""
    interp = make_interpreter(model_bytes)

    def conv(d: dict[str, Any]) -> dict[str, Any]:
        scale, zp = d.get("quantization", (0.0, 0))
        return {"name": d["name"], "shape": [int(s) for s in d["shape"]], "dtype": np.dtype(d["dtype"]).name,
                "scale": float(scale), "zero_point": int(zp)}

    return {"inputs": [conv(d) for d in interp.get_input_details()],
            "outputs": [conv(d) for d in interp.get_output_details()]}
