"""Plain data describing one ``.tflite`` model: what :func:`~edgekit.analysis.analyze_tflite` returns."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Optional

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "int32": 4, "uint8": 1, "int64": 8, "bool": 1,
               "int16": 2, "complex64": 8, "int8": 1, "float64": 8, "complex128": 16, "uint64": 8,
               "uint32": 4, "uint16": 2, "string": 0, "resource": 0, "variant": 0,
               "int4": 0.5, "int2": 0.25, "uint4": 0.5, "float8_e4m3fn": 1, "float8_e5m2": 1}


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a subgraph."""

    index: int
    name: str
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...]
    dtype: str
    buffer: int
    constant: bool
    nbytes: int
    scale: tuple[float, ...] = ()
    zero_point: tuple[int, ...] = ()
    quantized_dimension: int = 0
    variable: bool = False
    sparse: bool = False

    @property
    def dynamic(self) -> bool:
        """True if some dimension is only known at run time (``-1`` in the signature)."""
        return any(d < 0 for d in self.shape_signature) or any(d < 0 for d in self.shape)

    @property
    def elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= max(int(d), 1)
        return n

    def io_dict(self) -> dict[str, Any]:
        """The DESIGN.md §7 inputs/outputs entry."""
        shape = list(self.shape_signature) if self.shape_signature else list(self.shape)
        return {"name": self.name, "shape": shape, "dtype": self.dtype,
                "scale": float(self.scale[0]) if len(self.scale) == 1 else (list(self.scale) or None),
                "zero_point": int(self.zero_point[0]) if len(self.zero_point) == 1 else (list(self.zero_point) or None)}


@dataclass
class OpInfo:
    """One operator instance."""

    subgraph: int
    index: int
    name: str  # builtin name (CONV_2D) or custom code
    code: int  # builtin code (32 for custom)
    version: int
    custom: bool
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)
    macs: int = 0
    elements: int = 0  # output elements (work of ops without MACs)
    bytes_moved: int = 0
    compute_dtype: str = "float32"  # float32 | float16 | int8 | int16x8 | hybrid | other
    free: bool = False  # folded away by the runtime at init (e.g. DEQUANTIZE of constant fp16 weights)

    @property
    def flex(self) -> bool:
        """A Select-TF op (needs the Flex delegate)."""
        return self.custom and self.name.startswith("Flex")


@dataclass
class SubgraphInfo:
    index: int
    name: str
    tensors: list[TensorInfo]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    ops: list[OpInfo]


@dataclass
class ModelAnalysis:
    """Everything edgekit reads from a ``.tflite`` flatbuffer (no interpreter involved)."""

    size_bytes: int
    sha256: str
    schema_version: int
    description: str
    min_runtime_version: Optional[str]
    subgraphs: list[SubgraphInfo]
    buffers_bytes: int
    weights_bytes: int
    schema_module: str
    signature_keys: list[str] = field(default_factory=list)
    arena_bytes: Optional[int] = None
    arena_source: Optional[str] = None
    arena_detail: dict[str, Any] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    # -- derived views -------------------------------------------------------------------------
    @property
    def main(self) -> SubgraphInfo:
        return self.subgraphs[0]

    @property
    def ops(self) -> list[OpInfo]:
        """Every operator of every subgraph, in execution order per subgraph."""
        return [op for sg in self.subgraphs for op in sg.ops]

    @property
    def macs(self) -> int:
        return sum(op.macs for op in self.ops)

    @property
    def inputs(self) -> list[TensorInfo]:
        return [self.main.tensors[i] for i in self.main.inputs]

    @property
    def outputs(self) -> list[TensorInfo]:
        return [self.main.tensors[i] for i in self.main.outputs]

    @property
    def custom_ops(self) -> list[str]:
        return sorted({op.name for op in self.ops if op.custom})

    @property
    def has_resource_variables(self) -> bool:
        return any(op.name in ("VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE") for op in self.ops) or any(
            t.variable or t.dtype == "resource" for sg in self.subgraphs for t in sg.tensors)

    @property
    def has_dynamic_shapes(self) -> bool:
        return any(t.dynamic and not t.constant and t.shape_signature and any(d < 0 for d in t.shape_signature[1:])
                   for sg in self.subgraphs for t in sg.tensors)

    def op_counts(self) -> list[dict[str, Any]]:
        """``[{name, version, count}]`` sorted by count, then name (DESIGN.md §7)."""
        counts = Counter((op.name, op.version) for op in self.ops)
        return [{"name": n, "version": v, "count": c}
                for (n, v), c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0][0], kv[0][1]))]

    @property
    def quantization(self) -> str:
        """``int8`` | ``int16x8`` | ``float16`` | ``dynamic`` | ``float32`` | ``mixed``: the model's scheme."""
        kinds = {op.compute_dtype for op in self.ops if (op.macs or op.name in _COMPUTE_OPS) and not op.free}
        fp16_weights = any(t.constant and t.dtype == "float16" for sg in self.subgraphs for t in sg.tensors)
        if not kinds:
            kinds = {op.compute_dtype for op in self.ops} or {"float32"}
        if kinds == {"int8"}:
            return "int8"
        if kinds <= {"int16x8", "int8"} and "int16x8" in kinds:
            return "int16x8"
        if "hybrid" in kinds and kinds <= {"hybrid", "float32"}:
            return "dynamic"
        if kinds == {"float32"}:
            return "float16" if fp16_weights else "float32"
        if kinds == {"float16"}:
            return "float16"
        return "mixed"


# Ops that count as compute for the quantization summary (besides those with MACs).
_COMPUTE_OPS = frozenset({"ADD", "SUB", "MUL", "AVERAGE_POOL_2D", "MAX_POOL_2D", "SOFTMAX", "MEAN", "LOGISTIC",
                          "TANH", "HARD_SWISH", "CONCATENATION", "PAD", "RELU", "RELU6", "LEAKY_RELU"})
