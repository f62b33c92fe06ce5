"""Write small synthetic ``.tflite`` flatbuffers with the generated schema builders.

Used to probe what an installed runtime supports (:mod:`edgekit.analysis.optables`) and by tests
to make hostile fixtures (unknown op codes, out-of-range versions). Not a general model writer.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

from .schema import schema_module

_TYPES = {"float32": 0, "float16": 1, "int32": 2, "uint8": 3, "int64": 4, "bool": 6, "int16": 7, "int8": 9}


@dataclass
class OpSpec:
    code: int  # builtin code (32 = custom)
    version: int = 1
    custom_name: Optional[str] = None
    inputs: Sequence[int] = ()
    outputs: Sequence[int] = ()


@dataclass
class TensorSpec:
    shape: Sequence[int]
    dtype: str = "float32"
    name: str = ""
    scale: Optional[float] = None
    zero_point: int = 0


@dataclass
class ModelSpec:
    tensors: list[TensorSpec] = field(default_factory=lambda: [TensorSpec([1, 4])])
    ops: list[OpSpec] = field(default_factory=list)
    opcodes_only: list[OpSpec] = field(default_factory=list)  # operator codes with no operator using them
    inputs: Sequence[int] = (0,)
    outputs: Sequence[int] = (0,)


def _ivec(b, start_fn, values: Sequence[int]) -> int:
    start_fn(b, len(values))
    for v in reversed(list(values)):
        b.PrependInt32(int(v))
    return b.EndVector()


def _ovec(b, start_fn, offsets: Sequence[int]) -> int:
    start_fn(b, len(offsets))
    for off in reversed(list(offsets)):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def build_model(spec: ModelSpec) -> bytes:
    """Serialize ``spec`` into ``.tflite`` bytes (identifier ``TFL3``, schema version 3)."""
    import flatbuffers

    s = schema_module()
    b = flatbuffers.Builder(1024)
    codes: list[tuple[int, int, Optional[str]]] = []
    op_index: list[int] = []
    for op in [*spec.ops, *spec.opcodes_only]:
        key = (op.code, op.version, op.custom_name)
        if key not in codes:
            codes.append(key)
        op_index.append(codes.index(key))
    code_offsets = []
    for code, version, custom in codes:
        custom_off = b.CreateString(custom) if custom else None
        s.OperatorCodeStart(b)
        s.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
        s.OperatorCodeAddBuiltinCode(b, code)
        s.OperatorCodeAddVersion(b, version)
        if custom_off is not None:
            s.OperatorCodeAddCustomCode(b, custom_off)
        code_offsets.append(s.OperatorCodeEnd(b))
    opcodes_vec = _ovec(b, s.ModelStartOperatorCodesVector, code_offsets)

    tensor_offsets = []
    for i, t in enumerate(spec.tensors):
        shape = _ivec(b, s.TensorStartShapeVector, t.shape)
        name = b.CreateString(t.name or f"t{i}")
        quant = None
        if t.scale is not None:
            s.QuantizationParametersStartScaleVector(b, 1)
            b.PrependFloat32(t.scale)
            scales = b.EndVector()
            s.QuantizationParametersStartZeroPointVector(b, 1)
            b.PrependInt64(t.zero_point)
            zps = b.EndVector()
            s.QuantizationParametersStart(b)
            s.QuantizationParametersAddScale(b, scales)
            s.QuantizationParametersAddZeroPoint(b, zps)
            quant = s.QuantizationParametersEnd(b)
        s.TensorStart(b)
        s.TensorAddShape(b, shape)
        s.TensorAddType(b, _TYPES[t.dtype])
        s.TensorAddBuffer(b, 0)
        s.TensorAddName(b, name)
        if quant is not None:
            s.TensorAddQuantization(b, quant)
        tensor_offsets.append(s.TensorEnd(b))
    tensors_vec = _ovec(b, s.SubGraphStartTensorsVector, tensor_offsets)

    op_offsets = []
    for op, idx in zip(spec.ops, op_index):
        ins = _ivec(b, s.OperatorStartInputsVector, op.inputs)
        outs = _ivec(b, s.OperatorStartOutputsVector, op.outputs)
        s.OperatorStart(b)
        s.OperatorAddOpcodeIndex(b, idx)
        s.OperatorAddInputs(b, ins)
        s.OperatorAddOutputs(b, outs)
        op_offsets.append(s.OperatorEnd(b))
    ops_vec = _ovec(b, s.SubGraphStartOperatorsVector, op_offsets)
    ins_vec = _ivec(b, s.SubGraphStartInputsVector, spec.inputs)
    outs_vec = _ivec(b, s.SubGraphStartOutputsVector, spec.outputs)
    s.SubGraphStart(b)
    s.SubGraphAddTensors(b, tensors_vec)
    s.SubGraphAddInputs(b, ins_vec)
    s.SubGraphAddOutputs(b, outs_vec)
    s.SubGraphAddOperators(b, ops_vec)
    subgraph = s.SubGraphEnd(b)
    subgraphs_vec = _ovec(b, s.ModelStartSubgraphsVector, [subgraph])
    s.BufferStart(b)
    empty = s.BufferEnd(b)
    buffers_vec = _ovec(b, s.ModelStartBuffersVector, [empty])
    s.ModelStart(b)
    s.ModelAddVersion(b, 3)
    s.ModelAddOperatorCodes(b, opcodes_vec)
    s.ModelAddSubgraphs(b, subgraphs_vec)
    s.ModelAddBuffers(b, buffers_vec)
    b.Finish(s.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())
