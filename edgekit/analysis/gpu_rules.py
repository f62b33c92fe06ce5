"""Per-op constraints of the LiteRT GPU delegate.

A Python restatement of the checks in ``tensorflow/lite/tools/versioning/gpu_compatibility.cc``
(``CheckGpuDelegateCompatibility``), limited to what can be read from the flatbuffer. The op list
itself is data (``op_tables/gpu.json``). :func:`check` returns ``None`` when the delegate takes the
op, otherwise the reason it leaves the op to the CPU.
"""
from __future__ import annotations

from typing import AbstractSet, Optional

from .model import OpInfo, TensorInfo
from .optables import load_table

_SIGN_BIT = 5  # ActivationFunctionType.SIGN_BIT in schema.fbs
_MIRROR_REFLECT = 0  # MirrorPadMode.REFLECT
_UNARY = {"ABS", "CEIL", "COS", "ELU", "EXP", "FLOOR", "GELU", "LOG", "LOGISTIC", "NEG", "RSQRT", "SIGN", "SIN",
          "SQRT", "SQUARE", "TANH"}
_BINARY = {"ATAN2", "DIV", "EQUAL", "FLOOR_DIV", "FLOOR_MOD", "GREATER", "GREATER_EQUAL", "LOGICAL_AND", "LESS",
           "LESS_EQUAL", "MAXIMUM", "MINIMUM", "NOT_EQUAL", "POW", "SQUARED_DIFFERENCE", "SUB"}
_ONE_IN_ONE_OUT = {"RESHAPE", "TILE", "TRANSPOSE", "QUANTIZE", "HARD_SWISH", "SPACE_TO_DEPTH", "DEPTH_TO_SPACE",
                   "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "AVERAGE_POOL_2D", "MAX_POOL_2D"}


def _io(op: OpInfo, tensors: list[TensorInfo], folded: AbstractSet[int]
        ) -> tuple[list[TensorInfo], list[TensorInfo], list[TensorInfo], list[TensorInfo]]:
    ins = [tensors[i] for i in op.inputs if 0 <= i < len(tensors)]
    outs = [tensors[i] for i in op.outputs if 0 <= i < len(tensors)]
    runtime = [t for t in ins if not t.constant and t.index not in folded]
    const = [t for t in ins if t.constant or t.index in folded]
    return ins, runtime, const, outs


def check(op: OpInfo, tensors: list[TensorInfo], folded: AbstractSet[int] = frozenset()) -> Optional[str]:
    """``None`` if the GPU delegate accepts ``op``, else a one-line reason.

    ``folded``: tensors computed from constants at init (DEQUANTIZE of float16 weights); the
    delegate treats them as constants.
    """
    table = load_table("gpu")
    name = op.name
    if op.custom:
        return None if name in table["custom"] else f"custom op {name} is not supported by the GPU delegate"
    if name not in table["builtin"]:
        return f"{name} is not supported by the GPU delegate"
    ins, runtime, const, outs = _io(op, tensors, folded)
    opts = op.options
    if opts.get("fused_activation_function") == _SIGN_BIT:
        return "fused SIGN_BIT activation is not supported"
    if any(t.dynamic and any(d < 0 for d in t.shape_signature[1:]) for t in (*ins, *outs)):
        return "dynamic tensor shapes are not supported by the GPU delegate"

    if name in ("ADD", "MUL") and len(ins) != 2:
        return f"{name} needs exactly two inputs"
    if name == "ADD_N" and len(ins) != 2:
        return "ADD_N is only supported with 2 inputs"
    if name in _ONE_IN_ONE_OUT and (len(runtime) != 1 or len(outs) != 1):
        return f"{name} needs 1 runtime input and 1 output, has {len(runtime)} and {len(outs)}"
    if name in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        if min(opts.get("filter_width", 1), opts.get("filter_height", 1), opts.get("stride_w", 1),
               opts.get("stride_h", 1)) <= 0:
            return "pooling kernel and strides must be positive"
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV"):
        if len(runtime) > 2 or len(outs) != 1:
            return f"{name} needs 1-2 runtime inputs and 1 output"
        if min(opts.get("stride_w", 1), opts.get("stride_h", 1), opts.get("dilation_w_factor", 1),
               opts.get("dilation_h_factor", 1)) <= 0:
            return "strides and dilation must be positive"
    if name == "DEPTHWISE_CONV_2D" and ins:
        x = ins[0]
        mult = opts.get("depth_multiplier", 1)
        if len(x.shape) != 4:
            return "input must be 4-D"
        if mult != 1 and x.shape[3] != 1:
            return "depth_multiplier != 1 is only supported with 1 input channel"
    if name == "CAST" and ins and outs:
        a, b = ins[0].dtype, outs[0].dtype
        ok = (a == "bool" and b in ("float16", "float32")) or (a in ("float16", "float32") and b == "bool") or (
            a in ("float32", "int32") and b in ("float32", "int32"))
        if not ok:
            return f"CAST from {a} to {b} is not supported"
    if name == "DEQUANTIZE" and ins and ins[0].dtype == "int16":
        return "int16 DEQUANTIZE is not supported"
    if name == "FULLY_CONNECTED":
        if opts.get("weights_format", 0) != 0:
            return "shuffled FULLY_CONNECTED weights are not supported"
        if len(runtime) > 2:
            return "FULLY_CONNECTED with more than 2 runtime inputs"
        if ins and (ins[0].constant or ins[0].index in folded):
            return "FULLY_CONNECTED with a constant input"
        if opts.get("keep_num_dims") and ins and outs and len(ins[0].shape) != len(outs[0].shape):
            return "keep_num_dims with different input/output ranks"
    if name == "GATHER" and len(ins) >= 2:
        if ins[0].dtype == "int32":
            return "GATHER of int32 data is not supported"
        if len(ins[1].shape) != 1 or ins[1].dtype != "int32":
            return "GATHER needs 1-D int32 indices"
    if name in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD"):
        if len(runtime) != 1 or len(ins) < 2:
            return f"{name} needs 1 runtime input and constant axes"
        if not (ins[1].constant or ins[1].index in folded) or ins[1].dtype != "int32":
            return f"{name} is only supported with constant int32 axes"
    if name in ("PAD", "PADV2", "MIRROR_PAD"):
        if name == "MIRROR_PAD" and opts.get("mode", _MIRROR_REFLECT) != _MIRROR_REFLECT:
            return "only REFLECT mirror padding is supported"
        if len(runtime) != 1 or len(ins) < 2:
            return f"{name} needs 1 runtime input"
        pads = ins[1].shape
        if len(pads) != 2 or pads[0] not in (3, 4) or pads[1] != 2:
            return f"paddings must be 4x2 or 3x2, got {list(pads)}"
    if name in ("SLICE", "STRIDED_SLICE") and ins:
        if len(ins[0].shape) not in (3, 4):
            return f"{name} supports 3-D or 4-D tensors only"
        if name == "STRIDED_SLICE" and (opts.get("ellipsis_mask") or opts.get("new_axis_mask")
                                        or opts.get("shrink_axis_mask")):
            return "STRIDED_SLICE with ellipsis/new_axis/shrink_axis masks is not supported"
    if name == "SOFTMAX" and abs(opts.get("beta", 1.0) - 1.0) > 1e-6:
        return "SOFTMAX with beta != 1 is not supported"
    if name == "RESIZE_BILINEAR" and opts.get("align_corners") and opts.get("half_pixel_centers"):
        return "align_corners together with half_pixel_centers"
    if name in ("SPACE_TO_DEPTH", "DEPTH_TO_SPACE") and opts.get("block_size", 2) <= 1:
        return f"{name} block_size must be > 1"
    if name in _UNARY and (len(runtime) != 1 or const):
        return f"{name} needs exactly 1 runtime input"
    if name in _BINARY and not ((len(runtime) == 2 and not const) or (len(runtime) == 1 and len(const) == 1)):
        return f"{name} can only handle 1 or 2 operands"
    return None
