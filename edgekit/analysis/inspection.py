"""``edgekit.inspect``: what a ``.tflite`` costs on each target, from the file alone."""
from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from ..errors import ConfigError, ModelError
from ..targets import Target, list_targets, load_target  # noqa: F401  (re-exported through edgekit.api)
from .arena import attach_arena
from .fit import fit_target
from .reader import analyze_tflite

SCHEMA_VERSION = 1
ModelInput = Union[str, os.PathLike, bytes, bytearray]


def read_model_bytes(model: ModelInput) -> tuple[bytes, Optional[str]]:
    """The model's bytes and its path (None when bytes were given). Raises ModelError if unreadable."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model), None
    path = Path(model)
    if not path.exists():
        raise ModelError(f"model file {path} does not exist", hint="check the path")
    if path.is_dir():
        raise ModelError(f"{path} is a directory, not a .tflite file",
                         hint="pass the .tflite file (e.g. DIR/model.tflite from `edgekit compress`)")
    try:
        return path.read_bytes(), str(path)
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror or exc}", hint="check permissions") from None


def _resolve_targets(targets: Optional[Sequence[Union[str, Target]]]) -> list[Target]:
    if targets is None or len(targets) == 0:
        return list_targets()
    if isinstance(targets, (str, Target)):
        targets = [targets]
    out: list[Target] = []
    for t in targets:
        target = t if isinstance(t, Target) else load_target(t)
        if target.name not in {x.name for x in out}:
            out.append(target)
    return out


def inspect(*, model: ModelInput, targets: Optional[Sequence[Union[str, Target]]] = None,
            threads: Optional[int] = None, measure_arena: bool = True) -> dict[str, Any]:
    """Analyse a ``.tflite`` model and check it against target profiles (DESIGN.md §7 inspect JSON).

    Args:
        model: path to a ``.tflite`` file, or its bytes. The file is read as bytes and parsed with
            the generated flatbuffer accessors; nothing is executed in this process.
        targets: target names / profile paths / Target objects; ``None`` or empty: every known target.
        threads: CPU threads for the latency estimates (default: each target's own ``threads``).
        measure_arena: load the model in TFLite Micro (child process) for the real arena size; when
            it cannot, or with ``False``, the greedy planner's estimate is used (``arena_source``).

    Returns:
        The inspect document: ``schema_version, size_bytes, ops, macs, arena_bytes, arena_source,
        inputs, outputs, targets{NAME: {compatible, unsupported_ops, latency_ms, latency_source,
        fits{flash, ram}, ...}}`` and more.

    Raises:
        ModelError: unreadable or malformed model, unknown builtin op (exit 2).
        ConfigError: unknown target or invalid profile (exit 2).
    """
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"--threads {threads!r} must be a positive integer", hint="e.g. --threads 4")
    resolved = _resolve_targets(targets)
    data, path = read_model_bytes(model)
    analysis = analyze_tflite(data, source=path or "model")
    attach_arena(analysis, data, use_tflm=measure_arena)

    from ..fsutil import gzip_size

    macs_by_op: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for op in analysis.ops:
        macs_by_op[op.name][0] += op.macs
        macs_by_op[op.name][1] += 1
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "path": path,
        "sha256": analysis.sha256,
        "size_bytes": analysis.size_bytes,
        "gzip_bytes": gzip_size(data),
        "weights_bytes": analysis.weights_bytes,
        "quantization": analysis.quantization,
        "min_runtime_version": analysis.min_runtime_version,
        "subgraphs": len(analysis.subgraphs),
        "tensors": sum(len(sg.tensors) for sg in analysis.subgraphs),
        "ops": analysis.op_counts(),
        "custom_ops": analysis.custom_ops,
        "resource_variables": analysis.has_resource_variables,
        "dynamic_shapes": analysis.has_dynamic_shapes,
        "macs": analysis.macs,
        "macs_by_op": sorted(({"name": k, "macs": v[0], "count": v[1]} for k, v in macs_by_op.items() if v[0]),
                             key=lambda r: -r["macs"]),
        "arena_bytes": analysis.arena_bytes,
        "arena_source": analysis.arena_source,
        "arena_detail": analysis.arena_detail,
        "inputs": [t.io_dict() for t in analysis.inputs],
        "outputs": [t.io_dict() for t in analysis.outputs],
        "schema_module": analysis.schema_module,
        "targets": {},
    }
    for target in resolved:
        doc["targets"][target.name] = fit_target(analysis, target, threads=threads)
    return doc
