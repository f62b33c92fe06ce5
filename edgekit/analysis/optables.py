"""Op-support tables of the runtimes edgekit knows, stored as data with where they came from.

``edgekit/analysis/op_tables/*.json``:

* ``litert.json``: builtin ops and the version range the installed LiteRT's ``BuiltinOpResolver``
  accepts, plus the custom ops it registers. *Generated* by probing the real runtime: for every
  builtin code and version a one-opcode model is built (:mod:`.fbbuild`) and handed to the
  Interpreter, which fails with "Didn't find op for builtin opcode ... version ..." when the resolver
  lacks it (runs in a child process).
* ``tflite-micro.json``: the kernels linked into the ``tflite-micro`` package, *generated* from the
  ``tflite::micro::Register_<OP>`` symbols of its ``_runtime.so`` (TFLM resolves ops by code only,
  ignoring versions), plus the dtype limits measured in STACK_NOTES (no hybrid, no float16 weights).
* ``gpu.json``: the ops the LiteRT GPU delegate accepts, *transcribed* from
  ``tensorflow/lite/tools/versioning/gpu_compatibility.cc`` (its per-op constraints are code in
  :mod:`.gpu_rules`). The analyzer shipped in ai-edge-litert 2.3 reports every model as GPU
  compatible (its check is compiled out), so it cannot serve as the source.

``python -m edgekit.analysis.optables generate`` rewrites the two generated tables from the
installed packages; a test regenerates them and compares.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from typing import Any

TABLE_NAMES = ("litert", "tflite-micro", "gpu")
_PROBE_MAX_VERSION = 24
_LITERT_CUSTOM_CANDIDATES = ("NumericVerify", "Mfcc", "AudioSpectrogram", "TFLite_Detection_PostProcess",
                             "aeq.hadamard_rotation", "MaxPoolingWithArgmax2D", "Convolution2DTransposeBias",
                             "MaxUnpooling2D", "Resampler")
# ops that are structural placeholders, never real kernels
_NOT_OPS = {"CUSTOM", "DELEGATE", "PLACEHOLDER_FOR_GREATER_OP_CODES", "CALL", "CONCAT_EMBEDDINGS"}


def _table_dir():
    return resources.files("edgekit.analysis").joinpath("op_tables")


@lru_cache(maxsize=8)
def load_table(name: str) -> dict[str, Any]:
    """Load one op table (``litert``, ``tflite-micro`` or ``gpu``)."""
    if name not in TABLE_NAMES:
        raise KeyError(f"unknown op table {name!r}; known: {', '.join(TABLE_NAMES)}")
    return json.loads(_table_dir().joinpath(f"{name}.json").read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------------------
# generators (developer tools; the LiteRT probe runs in a child process)
# ------------------------------------------------------------------------------------------------
def _opcode_model(code: int, version: int) -> bytes:
    from .fbbuild import ModelSpec, OpSpec, build_model

    return build_model(ModelSpec(opcodes_only=[OpSpec(code=code, version=version)]))


def probe_litert_builtins() -> dict[str, list[int]]:  # pragma: no cover - child only
    """Child body: ``{op: [min_version, max_version]}`` accepted by the installed LiteRT."""
    from ai_edge_litert.interpreter import Interpreter  # type: ignore[import-not-found]

    from .schema import builtin_names

    found: dict[str, list[int]] = {}
    for code, name in sorted(builtin_names().items()):
        if name in _NOT_OPS:
            continue
        ok = []
        for version in range(1, _PROBE_MAX_VERSION + 1):
            try:
                Interpreter(model_content=_opcode_model(code, version))
                ok.append(version)
            except (ValueError, RuntimeError):
                pass
        if ok:
            if ok != list(range(ok[0], ok[-1] + 1)):
                raise RuntimeError(f"{name}: non-contiguous versions {ok}")
            found[name] = [ok[0], ok[-1]]
    return found


def probe_litert_custom_op(name: str) -> bool:  # pragma: no cover - child only
    """Child body: does the installed LiteRT resolve custom op ``name``?

    A one-op model is prepared; "Encountered unresolved custom op" means no. Any other outcome (the
    kernel's Prepare rejecting, or crashing on, the dummy tensors) means the op was resolved.
    """
    from ai_edge_litert.interpreter import Interpreter  # type: ignore[import-not-found]

    from .fbbuild import ModelSpec, OpSpec, TensorSpec, build_model

    spec = ModelSpec(tensors=[TensorSpec([1, 4]), TensorSpec([1, 4])],
                     ops=[OpSpec(code=32, custom_name=name, inputs=[0], outputs=[1])], inputs=[0], outputs=[1])
    try:
        Interpreter(model_content=build_model(spec)).allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        return "unresolved custom op" not in str(exc).lower()
    return True


def probe_litert_custom() -> list[str]:
    """Custom op names the installed LiteRT resolves (one child process per name: Prepare may crash)."""
    from ..child import run_in_child
    from ..errors import ChildCrash

    found = []
    for name in _LITERT_CUSTOM_CANDIDATES:
        try:
            ok = run_in_child(probe_litert_custom_op, name, what=f"probing custom op {name}", timeout=120)
        except ChildCrash:
            ok = True  # resolved: its kernel crashed preparing the dummy tensors
        if ok:
            found.append(name)
    return found


def _dist_version(dist: str) -> str:
    from importlib import metadata

    return metadata.version(dist)


def tflm_runtime_path() -> str | None:
    """Path of the tflite-micro package's compiled runtime, without importing it."""
    from importlib import metadata

    try:
        files = metadata.files("tflite-micro") or []
    except metadata.PackageNotFoundError:
        return None
    for f in files:
        if f.name.startswith("_runtime") and f.name.endswith(".so"):
            return str(f.locate())
    return None


def scan_tflm_kernels(so_path: str) -> dict[str, list[str]]:
    """Builtin and custom kernels linked into TFLM, from its ``tflite::micro::Register_*`` symbols."""
    from .schema import builtin_codes

    data = open(so_path, "rb").read()
    symbols = {m.decode() for m in re.findall(rb"_ZN6tflite5micro\d+Register_([A-Z0-9_]+)Ev", data)}
    builtins = sorted(symbols & set(builtin_codes()))
    if "L2NORM_REF" in symbols and "L2_NORMALIZATION" not in builtins:
        builtins = sorted({*builtins, "L2_NORMALIZATION"})
    custom = sorted({"TFLite_Detection_PostProcess" for s in symbols if s == "DETECTION_POSTPROCESS"}
                    | {"CIRCULAR_BUFFER" for s in symbols if s == "CIRCULAR_BUFFER"})
    return {"builtin": builtins, "custom": custom}


def generate_litert_table() -> dict[str, Any]:
    """Probe the installed ai-edge-litert (in child processes) and return the table document."""
    from ..child import run_in_child

    builtin = run_in_child(probe_litert_builtins, what="probing LiteRT's op resolver", timeout=600)
    custom = probe_litert_custom()
    version = _dist_version("ai-edge-litert")
    return {
        "table": "litert",
        "runtime": "ai-edge-litert",
        "runtime_version": version,
        "source": (f"generated by probing the installed ai-edge-litert {version}: each builtin op code at versions "
                   f"1-{_PROBE_MAX_VERSION} was put into a one-opcode model and handed to its Interpreter "
                   "(BuiltinOpResolver); 'Didn't find op for builtin opcode' means unsupported"),
        "reference": "google-ai-edge/LiteRT tflite/core/kernels/register.cc (AddBuiltin min/max versions)",
        "regenerate": "python -m edgekit.analysis.optables generate",
        "builtin": builtin,
        "custom": custom,
    }


def generate_tflm_table() -> dict[str, Any]:
    """Scan the installed tflite-micro runtime and return the table document."""
    path = tflm_runtime_path()
    if path is None:
        raise RuntimeError("tflite-micro is not installed")
    kernels = scan_tflm_kernels(path)
    version = _dist_version("tflite-micro")
    return {
        "table": "tflite-micro",
        "runtime": "tflite-micro",
        "runtime_version": version,
        "source": (f"generated from the tflite::micro::Register_<OP> kernel symbols linked into "
                   f"tflite_micro/python/tflite_micro/_runtime.so of tflite-micro {version}; TFLM resolves ops "
                   "by builtin code only (op versions are not checked)"),
        "regenerate": "python -m edgekit.analysis.optables generate",
        "versions_checked": False,
        "builtin": kernels["builtin"],
        "custom": kernels["custom"],
        "dtype_limits": {
            "hybrid": "TFLM does not run hybrid (dynamic-range) ops: 'Hybrid models are not supported'",
            "float16": "TFLM's DEQUANTIZE accepts only int8/int16/uint8 input: float16 weights do not load",
            "dynamic_shapes": "TFLM needs static shapes",
        },
    }


def _write(name: str, doc: dict[str, Any]) -> str:
    from pathlib import Path

    from ..fsutil import atomic_write_text

    path = Path(__file__).resolve().parent / "op_tables" / f"{name}.json"
    text = json.dumps(doc, indent=1, sort_keys=False)
    text = re.sub(r"\[\s+(\d+),\s+(\d+)\s+\]", r"[\1, \2]", text)  # one line per op: "ADD": [1, 6]
    atomic_write_text(path, text + "\n")
    return str(path)


def _main(argv: list[str] | None = None) -> int:  # pragma: no cover - developer tool
    import sys

    args = sys.argv[1:] if argv is None else argv
    if args != ["generate"]:
        print("usage: python -m edgekit.analysis.optables generate", file=sys.stderr)
        return 2
    print("wrote", _write("litert", generate_litert_table()))
    print("wrote", _write("tflite-micro", generate_tflm_table()))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(_main())
