"""Multiply-accumulate counts, bytes moved and the arithmetic type of each operator.

MACs follow the usual convention (one multiply + one add = 1 MAC), from the static shapes stored in
the model (a dynamic batch counts as 1):

* ``CONV_2D``: out_elements × KH × KW × (filter input channels)   (grouped convs included)
* ``DEPTHWISE_CONV_2D``: out_elements × KH × KW
* ``TRANSPOSE_CONV``: in_elements × KH × KW × out_channels
* ``FULLY_CONNECTED``: out_elements × K   (K = weight columns)
* ``BATCH_MATMUL``: out_elements × K
* ``CONV_3D`` / ``CONV_3D_TRANSPOSE``: as 2D with a depth axis
* recurrent ops (LSTM, RNN, SVDF, ...): batch × time × (elements of their 2-D weight matrices)

Other ops have no MACs; their work is counted in output elements.
"""
from __future__ import annotations

from typing import Sequence

from .model import OpInfo, TensorInfo

_RECURRENT = {"LSTM", "UNIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM", "RNN",
              "UNIDIRECTIONAL_SEQUENCE_RNN", "BIDIRECTIONAL_SEQUENCE_RNN", "SVDF"}
_INT8 = {"int8", "uint8"}
_FLOAT = {"float32", "float16", "bfloat16", "float64"}


def _prod(dims: Sequence[int]) -> int:
    n = 1
    for d in dims:
        n *= max(int(d), 1)
    return n


def _t(tensors: list[TensorInfo], idx: int) -> TensorInfo | None:
    return tensors[idx] if 0 <= idx < len(tensors) else None


def _macs(op: OpInfo, tensors: list[TensorInfo]) -> int:
    ins = [_t(tensors, i) for i in op.inputs]
    out = _t(tensors, op.outputs[0]) if op.outputs else None
    if out is None:
        return 0
    out_el = out.elements
    name = op.name

    def shape(i: int) -> tuple[int, ...]:
        return ins[i].shape if len(ins) > i and ins[i] is not None else ()

    if name == "CONV_2D":
        f = shape(1)
        return out_el * _prod(f[1:4]) if len(f) == 4 else 0
    if name == "DEPTHWISE_CONV_2D":
        f = shape(1)
        return out_el * _prod(f[1:3]) if len(f) == 4 else 0
    if name == "TRANSPOSE_CONV":
        f, x = shape(1), shape(2)  # inputs: output_shape, weights [O, KH, KW, I], input
        return _prod(x) * _prod(f[0:3]) if len(f) == 4 and x else 0
    if name == "CONV_3D":
        f = shape(1)  # [KD, KH, KW, I, O]
        return out_el * _prod(f[0:4]) if len(f) == 5 else 0
    if name == "CONV_3D_TRANSPOSE":
        f, x = shape(1), shape(2)  # output_shape, filter [KD, KH, KW, O, I], input
        return _prod(x) * _prod(f[0:4]) if len(f) == 5 and x else 0
    if name == "FULLY_CONNECTED":
        w = shape(1)
        return out_el * int(w[-1]) if w else 0
    if name == "BATCH_MATMUL":
        a = shape(0)
        if len(a) < 2:
            return 0
        k = a[-2] if op.options.get("adj_x") else a[-1]
        return out_el * max(int(k), 1)
    if name in _RECURRENT:
        x = shape(0)
        rows = _prod(x[:-1]) if len(x) >= 2 else 1
        weights = sum(t.elements for t in ins[1:] if t is not None and t.constant and len(t.shape) == 2)
        return rows * weights
    return 0


def _compute_dtype(op: OpInfo, tensors: list[TensorInfo]) -> str:
    ins = [t for t in (_t(tensors, i) for i in op.inputs) if t is not None]
    outs = [t for t in (_t(tensors, i) for i in op.outputs) if t is not None]
    acts = [t for t in ins if not t.constant] or ins
    weights = [t for t in ins if t.constant and t.dtype not in ("int32", "int64")]
    act = acts[0].dtype if acts else (outs[0].dtype if outs else "float32")
    if act in _INT8:
        return "int8"
    if act == "int16":
        return "int16x8"
    if act in ("float16", "bfloat16"):
        return "float16"
    if act in _FLOAT:
        if any(w.dtype in _INT8 for w in weights):
            return "hybrid"
        return "float32"
    return "other"


def annotate(op: OpInfo, tensors: list[TensorInfo]) -> None:
    """Fill ``macs``, ``elements``, ``bytes_moved``, ``compute_dtype`` and ``free`` of ``op``."""
    op.macs = _macs(op, tensors) if not op.custom else 0
    outs = [t for t in (_t(tensors, i) for i in op.outputs) if t is not None]
    ins = [t for t in (_t(tensors, i) for i in op.inputs) if t is not None]
    op.elements = sum(t.elements for t in outs)
    op.bytes_moved = sum(t.nbytes for t in ins) + sum(t.nbytes for t in outs)
    op.compute_dtype = _compute_dtype(op, tensors)
    # DEQUANTIZE of a constant (float16 / int8 weights) is folded into the weights at init time by
    # XNNPACK and the GPU delegate, so it costs nothing per inference.
    op.free = op.name == "DEQUANTIZE" and bool(ins) and ins[0].constant
