"""Read a ``.tflite`` flatbuffer into :class:`~edgekit.analysis.model.ModelAnalysis`.

The accessors come from the generated schema module (:mod:`edgekit.analysis.schema`). Python's
flatbuffers library has no verifier, so this reader checks what it uses: the file identifier, every
vector length against the file size, every tensor/buffer/opcode index against its table, and a
work budget so that a crafted file cannot make it loop for long. Pure Python cannot crash the
process; any exception on malformed input becomes a one-line :class:`~edgekit.errors.ModelError`.
"""
from __future__ import annotations

import hashlib
import re
from typing import Any

from ..errors import EdgekitError, ModelError
from . import macs as macs_mod
from .model import DTYPE_BYTES, ModelAnalysis, OpInfo, SubgraphInfo, TensorInfo
from .schema import builtin_names, schema_module, tensor_type_names

CUSTOM_CODE = 32
_MAX_RANK = 16

# op name -> (options class in the schema, accessor methods to read)
_OPTION_FIELDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "CONV_2D": ("Conv2DOptions", ("Padding", "StrideW", "StrideH", "FusedActivationFunction",
                                  "DilationWFactor", "DilationHFactor")),
    "DEPTHWISE_CONV_2D": ("DepthwiseConv2DOptions", ("Padding", "StrideW", "StrideH", "DepthMultiplier",
                                                     "FusedActivationFunction", "DilationWFactor",
                                                     "DilationHFactor")),
    "FULLY_CONNECTED": ("FullyConnectedOptions", ("FusedActivationFunction", "WeightsFormat", "KeepNumDims")),
    "SOFTMAX": ("SoftmaxOptions", ("Beta",)),
    "STRIDED_SLICE": ("StridedSliceOptions", ("EllipsisMask", "NewAxisMask", "ShrinkAxisMask")),
    "MIRROR_PAD": ("MirrorPadOptions", ("Mode",)),
    "AVERAGE_POOL_2D": ("Pool2DOptions", ("FilterWidth", "FilterHeight", "StrideW", "StrideH",
                                          "FusedActivationFunction")),
    "MAX_POOL_2D": ("Pool2DOptions", ("FilterWidth", "FilterHeight", "StrideW", "StrideH",
                                      "FusedActivationFunction")),
    "BATCH_MATMUL": ("BatchMatMulOptions", ("AdjX", "AdjY")),
    "TRANSPOSE_CONV": ("TransposeConvOptions", ("Padding", "StrideW", "StrideH", "FusedActivationFunction")),
    "ADD": ("AddOptions", ("FusedActivationFunction",)),
    "MUL": ("MulOptions", ("FusedActivationFunction",)),
    "SUB": ("SubOptions", ("FusedActivationFunction",)),
    "DIV": ("DivOptions", ("FusedActivationFunction",)),
    "RESIZE_BILINEAR": ("ResizeBilinearOptions", ("AlignCorners", "HalfPixelCenters")),
    "DEPTH_TO_SPACE": ("DepthToSpaceOptions", ("BlockSize",)),
    "SPACE_TO_DEPTH": ("SpaceToDepthOptions", ("BlockSize",)),
}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class _Budget:
    """Bounds the total number of vector elements visited (defence against crafted lengths)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.left = 8 * size + 100_000

    def take(self, n: int, what: str, elem_size: int = 4) -> int:
        if n < 0 or n * elem_size > self.size:
            raise ModelError(f"{what} claims {n} entries, more than the file can hold")
        self.left -= n
        if self.left < 0:
            raise ModelError("the flatbuffer's vectors overlap far more than a valid model's")
        return n


def _vec(getter_len, getter_np, budget: _Budget, what: str) -> tuple[int, ...]:
    n = budget.take(int(getter_len()), what)
    if n == 0:
        return ()
    arr = getter_np()
    if isinstance(arr, int):  # the generated accessor returns 0 for an absent vector
        return ()
    return tuple(int(x) for x in arr.tolist())


def _options(op: Any, name: str, s: Any) -> dict[str, Any]:
    spec = _OPTION_FIELDS.get(name)
    if spec is None:
        return {}
    cls_name, fields = spec
    expected = getattr(s.BuiltinOptions, cls_name, None)
    if expected is None or op.BuiltinOptionsType() != expected:
        return {}
    table = op.BuiltinOptions()
    if table is None:
        return {}
    opts = getattr(s, cls_name)()
    opts.Init(table.Bytes, table.Pos)
    out: dict[str, Any] = {}
    for f in fields:
        getter = getattr(opts, f, None)
        if getter is not None:
            value = getter()
            out[_snake(f)] = float(value) if isinstance(value, float) else int(value)
    return out


def _tensor(t: Any, index: int, s: Any, budget: _Budget, buffer_sizes: list[int], dtypes: dict[int, str]) -> TensorInfo:
    shape = _vec(t.ShapeLength, t.ShapeAsNumpy, budget, f"tensor {index} shape")
    sig = _vec(t.ShapeSignatureLength, t.ShapeSignatureAsNumpy, budget, f"tensor {index} shape_signature")
    if len(shape) > _MAX_RANK or len(sig) > _MAX_RANK:
        raise ModelError(f"tensor {index} has rank {max(len(shape), len(sig))}, beyond any TFLite kernel")
    type_code = int(t.Type())
    dtype = dtypes.get(type_code)
    if dtype is None:
        raise ModelError(f"tensor {index} has unknown type code {type_code}",
                         hint="the file is corrupt or needs a newer edgekit/ai-edge-litert")
    buf = int(t.Buffer())
    if buf < 0 or buf >= max(len(buffer_sizes), 1):
        raise ModelError(f"tensor {index} refers to buffer {buf}, but the model has {len(buffer_sizes)} buffers")
    raw_name = t.Name()
    name = raw_name.decode("utf-8", "replace") if raw_name else f"tensor_{index}"
    scale: tuple[float, ...] = ()
    zero_point: tuple[int, ...] = ()
    qdim = 0
    q = t.Quantization()
    if q is not None:
        n_scale = budget.take(int(q.ScaleLength()), f"tensor {index} scales")
        n_zp = budget.take(int(q.ZeroPointLength()), f"tensor {index} zero points", 8)
        if n_scale:
            scale = tuple(float(x) for x in q.ScaleAsNumpy().tolist())
        if n_zp:
            zero_point = tuple(int(x) for x in q.ZeroPointAsNumpy().tolist())
        qdim = int(q.QuantizedDimension())
    constant = buffer_sizes[buf] > 0 if buffer_sizes else False
    elements = 1
    for d in shape:
        elements *= max(int(d), 1)
        if elements > 1 << 40:
            raise ModelError(f"tensor {index} ({name}) has an impossible shape {list(shape)}")
    nbytes = buffer_sizes[buf] if constant else int(elements * DTYPE_BYTES.get(dtype, 4))
    return TensorInfo(index=index, name=name, shape=shape, shape_signature=sig or shape, dtype=dtype, buffer=buf,
                      constant=constant, nbytes=nbytes, scale=scale, zero_point=zero_point,
                      quantized_dimension=qdim, variable=bool(t.IsVariable()), sparse=t.Sparsity() is not None)


def _read(data: bytes) -> ModelAnalysis:
    s = schema_module()
    size = len(data)
    if size < 16:
        raise ModelError(f"not a TFLite model: the file has only {size} bytes")
    if not s.Model.ModelBufferHasIdentifier(data, 0):
        ident = data[4:8]
        raise ModelError(f"not a TFLite model: file identifier is {ident!r}, expected b'TFL3'",
                         hint="pass a .tflite flatbuffer (e.g. the output of `edgekit compress`)")
    root = int.from_bytes(data[0:4], "little")
    if root >= size:
        raise ModelError("not a TFLite model: the root table offset points past the end (truncated file?)")
    budget = _Budget(size)
    model = s.Model.GetRootAs(data, 0)
    names = builtin_names()
    dtypes = tensor_type_names()

    # buffers: constant data (inline or, for >2 GB models, after the flatbuffer at offset/size)
    n_buffers = budget.take(int(model.BuffersLength()), "buffers")
    buffer_sizes: list[int] = []
    for i in range(n_buffers):
        b = model.Buffers(i)
        if b is None:
            buffer_sizes.append(0)
            continue
        inline = budget.take(int(b.DataLength()), f"buffer {i}", 1)
        external = int(b.Size()) if hasattr(b, "Size") else 0
        if external and int(b.Offset()) + external > size:
            raise ModelError(f"buffer {i} lies beyond the end of the file (truncated?)")
        buffer_sizes.append(max(inline, external))

    # operator codes
    n_codes = budget.take(int(model.OperatorCodesLength()), "operator codes")
    opcodes: list[tuple[str, int, int, bool]] = []  # (name, code, version, custom)
    for i in range(n_codes):
        oc = model.OperatorCodes(i)
        code = max(int(oc.BuiltinCode()), int(oc.DeprecatedBuiltinCode()))
        version = int(oc.Version()) or 1
        if code == CUSTOM_CODE:
            raw = oc.CustomCode()
            if not raw:
                raise ModelError(f"operator code {i} is CUSTOM without a custom_code name")
            opcodes.append((raw.decode("utf-8", "replace"), code, version, True))
        elif code in names:
            opcodes.append((names[code], code, version, False))
        else:
            raise ModelError(f"operator code {i} uses builtin op number {code}, which this TFLite schema "
                             f"({s.__name__}) does not know",
                             hint="the model needs a newer runtime than any edgekit knows, or the file is corrupt")

    # subgraphs
    n_sub = budget.take(int(model.SubgraphsLength()), "subgraphs")
    if n_sub == 0:
        raise ModelError("the model has no subgraphs")
    subgraphs: list[SubgraphInfo] = []
    for si in range(n_sub):
        sg = model.Subgraphs(si)
        n_t = budget.take(int(sg.TensorsLength()), f"subgraph {si} tensors")
        tensors = [_tensor(sg.Tensors(ti), ti, s, budget, buffer_sizes, dtypes) for ti in range(n_t)]
        inputs = _vec(sg.InputsLength, sg.InputsAsNumpy, budget, f"subgraph {si} inputs")
        outputs = _vec(sg.OutputsLength, sg.OutputsAsNumpy, budget, f"subgraph {si} outputs")
        for idx in (*inputs, *outputs):
            if not 0 <= idx < n_t:
                raise ModelError(f"subgraph {si} names tensor {idx} as input/output but has {n_t} tensors")
        n_ops = budget.take(int(sg.OperatorsLength()), f"subgraph {si} operators")
        ops: list[OpInfo] = []
        for oi in range(n_ops):
            op = sg.Operators(oi)
            idx = int(op.OpcodeIndex())
            if not 0 <= idx < len(opcodes):
                raise ModelError(f"operator {oi} of subgraph {si} uses opcode {idx}, but there are {len(opcodes)}")
            name, code, version, custom = opcodes[idx]
            ins = _vec(op.InputsLength, op.InputsAsNumpy, budget, f"operator {oi} inputs")
            outs = _vec(op.OutputsLength, op.OutputsAsNumpy, budget, f"operator {oi} outputs")
            for t in (*ins, *outs):
                if t != -1 and not 0 <= t < n_t:
                    raise ModelError(f"operator {oi} ({name}) of subgraph {si} uses tensor {t}, "
                                     f"but the subgraph has {n_t} tensors")
            info = OpInfo(subgraph=si, index=oi, name=name, code=code, version=version, custom=custom,
                          inputs=ins, outputs=outs, options={} if custom else _options(op, name, s))
            macs_mod.annotate(info, tensors)
            ops.append(info)
        raw_name = sg.Name()
        subgraphs.append(SubgraphInfo(index=si, name=raw_name.decode("utf-8", "replace") if raw_name else f"subgraph_{si}",
                                      tensors=tensors, inputs=inputs, outputs=outputs, ops=ops))

    # metadata: min_runtime_version (written by the converter)
    min_runtime = None
    n_meta = budget.take(int(model.MetadataLength()), "metadata")
    for i in range(n_meta):
        meta = model.Metadata(i)
        if (meta.Name() or b"") == b"min_runtime_version":
            b = int(meta.Buffer())
            if 0 <= b < n_buffers and model.Buffers(b) is not None and model.Buffers(b).DataLength():
                raw = model.Buffers(b).DataAsNumpy().tobytes()
                min_runtime = raw.split(b"\0", 1)[0].decode("ascii", "replace") or None
    signature_keys = []
    n_sig = budget.take(int(model.SignatureDefsLength()), "signature defs")
    for i in range(n_sig):
        key = model.SignatureDefs(i).SignatureKey()
        signature_keys.append(key.decode("utf-8", "replace") if key else "")

    constant_buffers = {t.buffer for sg in subgraphs for t in sg.tensors if t.constant}
    weights = sum(buffer_sizes[b] for b in constant_buffers)
    desc = model.Description()
    return ModelAnalysis(
        size_bytes=size, sha256=hashlib.sha256(data).hexdigest(), schema_version=int(model.Version()),
        description=desc.decode("utf-8", "replace") if desc else "", min_runtime_version=min_runtime,
        subgraphs=subgraphs, buffers_bytes=sum(buffer_sizes), weights_bytes=weights, schema_module=s.__name__,
        signature_keys=signature_keys)


def analyze_tflite(model_bytes: bytes, *, source: str = "model") -> ModelAnalysis:
    """Read a ``.tflite`` model from its bytes: ops, versions, tensors, I/O, MACs, weights.

    Pure Python over the generated flatbuffer accessors; no interpreter runs, nothing can crash.

    Args:
        model_bytes: the whole file.
        source: a name for error messages (the file path).

    Raises:
        ModelError: not a TFLite flatbuffer, truncated, inconsistent, or with an unknown builtin op.
    """
    if not isinstance(model_bytes, (bytes, bytearray, memoryview)):
        raise ModelError(f"{source}: expected the model's bytes, got {type(model_bytes).__name__}")
    data = bytes(model_bytes)
    try:
        return _read(data)
    except EdgekitError as exc:
        raise ModelError(f"{source}: {exc.message}", hint=exc.hint) from None
    except Exception as exc:  # noqa: BLE001 - malformed flatbuffers raise anything (struct.error, ValueError, ...)
        raise ModelError(f"{source}: not a valid TFLite model (corrupt or truncated flatbuffer: "
                         f"{type(exc).__name__}: {exc})", hint="re-export the model; check the download") from None
