#!/usr/bin/env python3
"""edgekit on-device benchmark harness: one self-contained file.

Copy this file to a device (Raspberry Pi, any Linux board) next to a ``.tflite`` model and run::

    python3 harness.py model.tflite --threads 1,2,4 --runs 200

It prints one JSON document (a list of them for several thread counts) with the runtime, device
facts, latency percentiles with a confidence interval for the median, init time and peak memory.

Needs only the Python (>= 3.9) standard library, numpy, and one of ``ai_edge_litert``,
``tflite_runtime`` (which needs numpy < 2) or ``tensorflow.lite``. It never imports the rest of
edgekit, so it runs unchanged on a device that only has a LiteRT runtime.

Methodology: the model is opened from bytes (so ``ai_edge_litert`` runs its flatbuffer verifier),
initialisation is timed, warm-up continues until two consecutive windows of runs agree within 5 %
(at least ``--warmup`` runs, at most ``--warmup-time`` seconds), then ``invoke()`` alone is timed
until both ``--runs`` and ``--min-time`` are reached (bounded by ``--max-time`` and
``--max-runs``). The median's confidence interval comes from order statistics (distribution-free).
``--compare OTHER.tflite`` interleaves the two models in short blocks (A B A B ...), each
block after one untimed run, so both are measured warm under the same drifting conditions.

Exit codes: 0 success; 2 bad input (model, inputs file, flags, an op the runtime lacks);
3 the runtime or Python environment failed (missing numpy or runtime, failed invoke). On failure a
JSON document ``{"schema_version": 1, "error": {"kind": ..., "message": ...}}`` is printed too.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import re
import socket
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

HARNESS_VERSION = "1"
SCHEMA_VERSION = 1
RUNTIMES = ("ai_edge_litert", "tflite_runtime", "tensorflow")
SOURCES = ("measured-device", "measured-host", "emulated")
INSTALL_HINT = ("install a LiteRT runtime for this Python on the device: "
                "`python3 -m pip install ai-edge-litert` (64-bit Linux or macOS, Python 3.9 or newer), "
                "or `python3 -m pip install 'numpy<2' tflite-runtime`")
CONFIDENCE = 0.95
WARMUP_WINDOW = 5
WARMUP_TOLERANCE = 0.05
COMPARE_BLOCK = 5

# ARM "CPU part" numbers from /proc/cpuinfo -> core names (Raspberry Pi kernels report no model name).
_ARM_PARTS = {
    "0xc07": "Cortex-A7", "0xc0f": "Cortex-A15", "0xd01": "Cortex-A32", "0xd03": "Cortex-A53",
    "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57", "0xd08": "Cortex-A72",
    "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76", "0xd0d": "Cortex-A77",
    "0xd41": "Cortex-A78", "0xd44": "Cortex-X1", "0xd46": "Cortex-A510", "0xd47": "Cortex-A710",
    "0xd48": "Cortex-X2", "0xd4d": "Cortex-A715", "0xd4e": "Cortex-X3",
}


class HarnessError(Exception):
    """A failure the harness explains in one line; ``kind`` tells the host how to classify it."""

    def __init__(self, kind: str, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.exit_code = exit_code


# ---------------------------------------------------------------------------------------------
# Argument parsing
# ---------------------------------------------------------------------------------------------
def parse_threads(text: str) -> List[int]:
    """Parse ``"1,2,4"`` into ``[1, 2, 4]``; each a positive integer, no duplicates."""
    out: List[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part.isdigit() or int(part) < 1:
            raise HarnessError("usage", f"--threads {text!r}: expected positive integers like 1,2,4")
        if int(part) in out:
            raise HarnessError("usage", f"--threads {text!r}: {part} is listed twice")
        out.append(int(part))
    return out


def parse_cpus(text: str) -> List[int]:
    """Parse a CPU list like ``"0-3,6"`` into ``[0, 1, 2, 3, 6]``."""
    cpus: List[int] = []
    for part in str(text).split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise HarnessError("usage", f"--cpus {text!r}: expected a CPU list like 0-3 or 0,2")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise HarnessError("usage", f"--cpus {text!r}: range {part} runs backwards")
        cpus.extend(c for c in range(lo, hi + 1) if c not in cpus)
    return sorted(cpus)


def format_cpus(cpus: List[int]) -> str:
    """Inverse of :func:`parse_cpus` (``[0, 1, 2, 5]`` -> ``"0-2,5"``)."""
    parts: List[str] = []
    cpus = sorted(cpus)
    i = 0
    while i < len(cpus):
        j = i
        while j + 1 < len(cpus) and cpus[j + 1] == cpus[j] + 1:
            j += 1
        parts.append(str(cpus[i]) if i == j else f"{cpus[i]}-{cpus[j]}")
        i = j + 1
    return ",".join(parts)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="harness.py", allow_abbrev=False,
        description="Benchmark a .tflite model with LiteRT and print one JSON document.")
    p.add_argument("model", help="the .tflite file")
    p.add_argument("--threads", default="1", help="thread count, or a list for a sweep: 1,2,4 (default 1)")
    p.add_argument("--runs", type=int, default=100, help="minimum timed runs (default 100)")
    p.add_argument("--warmup", type=int, default=5,
                   help="minimum warm-up runs; warm-up goes on until latency is stable (0: no warm-up)")
    p.add_argument("--warmup-time", type=float, default=5.0, help="maximum warm-up seconds (default 5)")
    p.add_argument("--min-time", type=float, default=1.0, help="minimum timed seconds (default 1)")
    p.add_argument("--max-time", type=float, default=60.0, help="maximum timed seconds per model and thread count")
    p.add_argument("--max-runs", type=int, default=20000, help="maximum timed runs (default 20000)")
    p.add_argument("--cpus", default=None, help="pin the process to these CPUs, e.g. 0-3")
    p.add_argument("--no-xnnpack", action="store_true", help="use the builtin kernels without the XNNPACK delegate")
    p.add_argument("--runtime", default="auto", choices=("auto",) + RUNTIMES,
                   help="which runtime to use (default: the first importable of ai_edge_litert, tflite_runtime, tensorflow)")
    p.add_argument("--inputs", default=None, help="inputs from a .npy (one input) or .npz (one array per input)")
    p.add_argument("--dump-outputs", default=None, metavar="FILE",
                   help="run every input sample once and save inputs and outputs to this .npz")
    p.add_argument("--seed", type=int, default=0, help="seed for random inputs (default 0)")
    p.add_argument("--samples", action="store_true", help="include every timed latency (samples_ms) in the JSON")
    p.add_argument("--compare", default=None, metavar="OTHER",
                   help="also run OTHER.tflite, interleaved with MODEL in short blocks, and report both")
    p.add_argument("--source", default="measured-device", choices=SOURCES,
                   help="label of where the numbers come from (default measured-device)")
    p.add_argument("--output", default=None, metavar="FILE", help="also write the JSON to this file")
    p.add_argument("--version", action="version", version=f"edgekit-harness {HARNESS_VERSION}")
    return p


def check_args(args: argparse.Namespace) -> None:
    if args.runs < 1:
        raise HarnessError("usage", f"--runs {args.runs}: must be at least 1")
    if args.warmup < 0:
        raise HarnessError("usage", f"--warmup {args.warmup}: must be 0 or more")
    if args.max_runs < args.runs:
        raise HarnessError("usage", f"--max-runs {args.max_runs} is below --runs {args.runs}")
    for flag in ("min_time", "max_time", "warmup_time"):
        value = getattr(args, flag)
        if not (value >= 0) or math.isinf(value):
            raise HarnessError("usage", f"--{flag.replace('_', '-')} {value}: must be a finite number >= 0")
    if args.max_time < args.min_time:
        raise HarnessError("usage", f"--max-time {args.max_time} is below --min-time {args.min_time}")


# ---------------------------------------------------------------------------------------------
# Device facts
# ---------------------------------------------------------------------------------------------
def _read(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as fh:
            return fh.read(65536).decode("utf-8", "replace").replace("\x00", "").strip()
    except OSError:
        return None


def _cpuinfo() -> Dict[str, str]:
    info: Dict[str, str] = {}
    text = _read("/proc/cpuinfo") or ""
    for line in text.splitlines():
        if ":" in line:
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key and key not in info and value.strip():
                info[key] = value.strip()
    return info


def cpu_model() -> Optional[str]:
    """A human name for the CPU: x86 ``model name``, else the ARM core from ``CPU part``."""
    info = _cpuinfo()
    if info.get("model name") and not info["model name"].startswith("ARMv"):
        return info["model name"]
    part = info.get("cpu part", "").lower()
    if part in _ARM_PARTS:
        return f"ARM {_ARM_PARTS[part]}"
    return info.get("model name") or info.get("hardware") or platform.processor() or None


def available_cpus() -> List[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def read_temperature_c() -> Optional[float]:
    """The CPU/SoC temperature in °C from ``/sys/class/thermal``, when readable."""
    base = "/sys/class/thermal"
    try:
        zones = sorted(z for z in os.listdir(base) if z.startswith("thermal_zone"))
    except OSError:
        return None
    best: Optional[float] = None
    for zone in zones:
        kind = (_read(os.path.join(base, zone, "type")) or "").lower()
        raw = _read(os.path.join(base, zone, "temp"))
        try:
            value = int(raw or "") / 1000.0
        except ValueError:
            continue
        if any(word in kind for word in ("cpu", "soc", "x86_pkg", "core")):
            return value
        if best is None:
            best = value
    return best


def device_facts(cpus: Optional[List[int]]) -> Dict[str, Any]:
    """Facts about the machine that explain its numbers (all best effort, None when unreadable)."""
    first = (cpus or available_cpus() or [0])[0]
    cpufreq = f"/sys/devices/system/cpu/cpu{first}/cpufreq"

    def khz_to_mhz(path: str) -> Optional[float]:
        raw = _read(path)
        try:
            return round(int(raw or "") / 1000.0, 1)
        except ValueError:
            return None

    mem_mb = None
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            try:
                mem_mb = round(int(line.split()[1]) / 1024.0, 1)
            except (IndexError, ValueError):
                pass
    throttled = _read("/sys/devices/platform/soc/soc:firmware/get_throttled")
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        load = None
    return {
        "hostname": socket.gethostname(),
        "system": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "board": _read("/proc/device-tree/model") or None,
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "cpus_available": available_cpus(),
        "governor": _read(os.path.join(cpufreq, "scaling_governor")),
        "cpu_cur_mhz": khz_to_mhz(os.path.join(cpufreq, "scaling_cur_freq")),
        "cpu_max_mhz": khz_to_mhz(os.path.join(cpufreq, "cpuinfo_max_freq")),
        "temperature_c": read_temperature_c(),
        "throttled": throttled,
        "mem_total_mb": mem_mb,
        "load_avg": load,
        "python": platform.python_version(),
    }


def rss_mb() -> Tuple[Optional[float], Optional[float]]:
    """(current RSS, peak RSS) of this process in MiB."""
    cur = peak = None
    for line in (_read("/proc/self/status") or "").splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("VmRSS:", "VmHWM:"):
            value = round(int(parts[1]) / 1024.0, 2)
            if parts[0] == "VmRSS:":
                cur = value
            else:
                peak = value
    if peak is None:
        try:
            import resource

            raw = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            peak = round(raw / (1024.0 * 1024.0 if sys.platform == "darwin" else 1024.0), 2)
        except (ImportError, OSError):
            pass
    return cur, peak


# ---------------------------------------------------------------------------------------------
# Runtime
# ---------------------------------------------------------------------------------------------
class Runtime:
    """One imported LiteRT runtime: its Interpreter class and how to turn XNNPACK off."""

    def __init__(self, name: str, version: str, interpreter_cls: Any, resolver: Any) -> None:
        self.name = name
        self.version = version
        self.interpreter_cls = interpreter_cls
        self.resolver = resolver

    def open(self, content: bytes, threads: int, xnnpack: bool) -> Any:
        kwargs: Dict[str, Any] = {"model_content": content, "num_threads": threads}
        if not xnnpack:
            if self.resolver is None:
                raise HarnessError("usage", f"--no-xnnpack: {self.name} {self.version} cannot turn XNNPACK off")
            kwargs["experimental_op_resolver_type"] = self.resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        return self.interpreter_cls(**kwargs)


def _dist_version(dist: str) -> Optional[str]:
    try:
        from importlib import metadata

        return metadata.version(dist)
    except Exception:  # noqa: BLE001 - metadata is optional
        return None


def _import_runtime(name: str) -> Runtime:
    if name == "ai_edge_litert":
        from ai_edge_litert import interpreter as mod

        import ai_edge_litert

        version = _dist_version("ai-edge-litert") or getattr(ai_edge_litert, "__version__", "unknown")
        return Runtime(name, version, mod.Interpreter, getattr(mod, "OpResolverType", None))
    if name == "tflite_runtime":
        from tflite_runtime import interpreter as mod

        import tflite_runtime

        version = getattr(tflite_runtime, "__version__", None) or _dist_version("tflite-runtime") or "unknown"
        return Runtime(name, version, mod.Interpreter, getattr(mod, "OpResolverType", None))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    resolver = getattr(getattr(tf.lite, "experimental", None), "OpResolverType", None)
    return Runtime("tensorflow", tf.__version__, tf.lite.Interpreter, resolver)


def load_runtime(choice: str) -> Runtime:
    """Import the chosen runtime, or the first importable one for ``"auto"``."""
    names = list(RUNTIMES) if choice == "auto" else [choice]
    problems: List[str] = []
    for name in names:
        try:
            return _import_runtime(name)
        except ImportError as exc:
            text = str(exc)
            if "No module named" in text and name.split("_")[0] in text.replace("-", "_"):
                problems.append(f"{name} is not installed")
            else:
                hint = " (tflite-runtime needs numpy<2: `python3 -m pip install 'numpy<2'`)" \
                    if name == "tflite_runtime" and "numpy" in text.lower() else ""
                problems.append(f"{name} is installed but failed to import: {text.splitlines()[0] if text else exc!r}{hint}")
        except Exception as exc:  # noqa: BLE001 - broken installs raise anything (numpy ABI, missing .so)
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            hint = " (tflite-runtime needs numpy<2)" if name == "tflite_runtime" and "numpy" in first.lower() else ""
            problems.append(f"{name} failed to import: {first}{hint}")
    raise HarnessError("runtime-missing",
                       f"no usable LiteRT runtime for {sys.executable}: {'; '.join(problems)}; {INSTALL_HINT}",
                       exit_code=3)


_OP_PATTERNS = (
    re.compile(r"Didn't find op for builtin opcode '(?P<op>[A-Z0-9_]+)' version '(?P<version>\d+)'"),
    re.compile(r"Encountered unresolved custom op: (?P<op>[^\s.]+)"),
    re.compile(r"\((?P<op>Flex\w+)\)"),
)


def explain_open_error(exc: BaseException, rt: Runtime, model: str) -> HarnessError:
    """Turn a runtime's exception at model load into a one-line, classified error."""
    text = " ".join(str(exc).split())
    for pattern in _OP_PATTERNS:
        m = pattern.search(text)
        if m:
            op = m.group("op")
            version = m.groupdict().get("version")
            what = f"op {op} version {version}" if version else f"op {op}"
            return HarnessError(
                "op-unsupported",
                f"{model}: the runtime {rt.name} {rt.version} on this device has no kernel for {what}; "
                f"install a newer runtime on the device (`python3 -m pip install -U ai-edge-litert`) or "
                f"convert the model for this runtime's op set", exit_code=2)
    return HarnessError("model", f"{model}: {rt.name} {rt.version} cannot load the model: {text}", exit_code=2)


# ---------------------------------------------------------------------------------------------
# Model, tensors and inputs
# ---------------------------------------------------------------------------------------------
def read_model(path: str, flag: str = "model") -> bytes:
    if not os.path.exists(path):
        raise HarnessError("model", f"{flag} {path}: no such file")
    if os.path.isdir(path):
        raise HarnessError("model", f"{flag} {path}: is a directory, expected a .tflite file")
    try:
        with open(path, "rb") as fh:
            content = fh.read()
    except OSError as exc:
        raise HarnessError("model", f"{flag} {path}: cannot read: {exc.strerror or exc}") from exc
    if len(content) < 8 or content[4:8] != b"TFL3":
        raise HarnessError("model", f"{flag} {path}: not a TFLite model (no 'TFL3' identifier at byte 4); "
                                    "pass a .tflite file produced by the TFLite converter")
    return content


def _jsonable_number(value: Any) -> Any:
    value = float(value)
    return value if math.isfinite(value) else None


def tensor_info(detail: Dict[str, Any]) -> Dict[str, Any]:
    np = _np()
    scale, zero_point = detail.get("quantization", (0.0, 0)) or (0.0, 0)
    params = detail.get("quantization_parameters") or {}
    scales = params.get("scales")
    per_channel = scales is not None and len(scales) > 1
    sig = detail.get("shape_signature")
    return {
        "name": detail.get("name"),
        "shape": [int(d) for d in detail["shape"]],
        "shape_signature": [int(d) for d in sig] if sig is not None else None,
        "dtype": np.dtype(detail["dtype"]).name,
        "scale": _jsonable_number(scale) if scale else None,
        "zero_point": int(zero_point) if scale else None,
        "per_channel": bool(per_channel),
    }


def _np() -> Any:
    import numpy

    return numpy


def random_sample(detail: Dict[str, Any], rng: Any) -> Any:
    """One random input (with batch dimension) within the tensor's representable range."""
    np = _np()
    dtype = np.dtype(detail["dtype"])
    shape = tuple(int(d) for d in detail["shape"])
    if dtype.kind == "f":
        return rng.uniform(-1.0, 1.0, size=shape).astype(dtype)
    if dtype.kind in "iu":
        scale = (detail.get("quantization") or (0.0, 0))[0]
        if scale or dtype.itemsize <= 2:  # quantized values: the whole integer range is meaningful
            info = np.iinfo(dtype)
            return rng.integers(int(info.min), int(info.max), size=shape, endpoint=True).astype(dtype)
        return rng.integers(0, 2, size=shape).astype(dtype)  # ids/indices: small values stay valid
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    raise HarnessError("data", f"input {detail.get('name')!r} has dtype {dtype.name}; random inputs cannot be "
                               "made for it: pass --inputs FILE")


def _convert_input(arr: Any, detail: Dict[str, Any], where: str) -> Any:
    """Cast/quantize file data to the tensor's dtype (float data is quantized for integer tensors)."""
    np = _np()
    dtype = np.dtype(detail["dtype"])
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            bad = int(np.argwhere(~np.isfinite(arr.reshape(arr.shape[0], -1)))[0][0]) if arr.ndim else 0
            raise HarnessError("data", f"{where}: sample {bad} contains NaN or inf; fix the inputs file")
        if dtype.kind in "iu":
            scale, zero_point = (detail.get("quantization") or (0.0, 0))
            info = np.iinfo(dtype)
            if scale:
                q = np.round(arr / scale + zero_point)
                return np.clip(q, info.min, info.max).astype(dtype)
            if not np.all(arr == np.round(arr)):
                raise HarnessError("data", f"{where}: float values for the integer input; pass integers")
            arr = arr.astype(np.int64)
        else:
            return arr.astype(dtype)
    if arr.dtype.kind in "iub" and dtype.kind in "iu":
        info = np.iinfo(dtype)
        if arr.size and (arr.min() < info.min or arr.max() > info.max):
            raise HarnessError("data", f"{where}: values {arr.min()}..{arr.max()} do not fit {dtype.name} "
                                       f"({info.min}..{info.max})")
        return arr.astype(dtype)
    if dtype.kind == "f" and arr.dtype.kind in "iub":
        return arr.astype(dtype)
    if dtype.kind == "b":
        return arr.astype(bool)
    raise HarnessError("data", f"{where}: dtype {arr.dtype.name} cannot feed a {dtype.name} input")


def load_inputs(path: str, details: List[Dict[str, Any]]) -> List[Any]:
    """Read ``--inputs``: one array per model input, each shaped ``(N, *input_shape[1:])``.

    A ``.npy`` holds the single input; a ``.npz`` is keyed by input name, ``x`` (single input),
    ``input_<i>`` or ``arr_<i>`` (positional). An array may be one sample without the batch
    dimension, one batch of the input's exact shape, or N samples for a batch-1 input.
    """
    np = _np()
    if not os.path.isfile(path):
        raise HarnessError("data", f"--inputs {path}: no such file")
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - numpy raises many kinds for bad files
        raise HarnessError("data", f"--inputs {path}: not a readable .npy/.npz file: {exc}") from exc
    if isinstance(loaded, np.ndarray):
        if len(details) != 1:
            raise HarnessError("data", f"--inputs {path}: the model has {len(details)} inputs; "
                                       "pass an .npz with one array per input name")
        arrays = [loaded]
        keys = ["(npy)"]
    else:
        with loaded:
            names = list(loaded.files)
            arrays, keys = [], []
            for i, d in enumerate(details):
                for key in (d.get("name"), "x" if len(details) == 1 else None, f"input_{i}", f"arr_{i}"):
                    if key and key in names:
                        arrays.append(loaded[key])
                        keys.append(key)
                        break
                else:
                    raise HarnessError("data", f"--inputs {path}: no array for input {i} ({d.get('name')!r}); "
                                               f"expected key {d.get('name')!r}, input_{i} or arr_{i}; "
                                               f"found {', '.join(names) or 'nothing'}")
    out: List[Any] = []
    count: Optional[int] = None
    for arr, key, d in zip(arrays, keys, details):
        shape = tuple(int(s) for s in d["shape"])
        sig = tuple(int(s) for s in (d.get("shape_signature") if d.get("shape_signature") is not None else shape))
        where = f"--inputs {path} [{key}]"

        def fits(sample_shape: Tuple[int, ...]) -> bool:
            if len(sample_shape) != len(sig) - 1:
                return False
            return all(a == b or b < 0 for a, b in zip(sample_shape, sig[1:]))

        batch = shape[0] if shape else 1
        if len(sig) >= 1 and arr.ndim == len(sig) - 1 and fits(tuple(arr.shape)):
            arr = arr[None, ...]  # one sample without the batch dimension
        elif len(sig) >= 1 and arr.ndim == len(sig) and fits(tuple(arr.shape[1:])):
            if batch != 1 and sig[0] >= 0:  # a fixed batch of B: the array is one whole batch
                if arr.shape[0] != batch:
                    raise HarnessError("data", f"{where}: input {d.get('name')!r} takes a batch of exactly "
                                               f"{batch}, got {arr.shape[0]}")
                arr = arr[None, ...]
        else:
            raise HarnessError("data", f"{where}: expected shape (N, {', '.join(str(s) for s in sig[1:])}) for "
                                       f"input {d.get('name')!r} (-1: any size), got {tuple(arr.shape)}")
        if arr.shape[0] == 0:
            raise HarnessError("data", f"{where}: no samples (the array is empty)")
        if count is not None and arr.shape[0] != count:
            raise HarnessError("data", f"{where}: {arr.shape[0]} samples but the first input has {count}")
        count = int(arr.shape[0])
        out.append(_convert_input(np.asarray(arr), d, where))
    return out


def _sample(arrays: List[Any], details: List[Dict[str, Any]], i: int) -> List[Any]:
    """Sample ``i`` of each input, shaped like the tensor (a batch of 1, or the whole batch)."""
    res = []
    for arr, d in zip(arrays, details):
        shape = tuple(int(s) for s in d["shape"])
        item = arr[i]
        res.append(item if item.shape == shape else item[None, ...])
    return res


# ---------------------------------------------------------------------------------------------
# Statistics (stdlib + numpy; edgekit.bench.stats has the host-side twin)
# ---------------------------------------------------------------------------------------------
def median_ci_ranks(n: int, confidence: float = CONFIDENCE) -> Optional[Tuple[int, int]]:
    """0-based ranks (lo, hi) of sorted samples bracketing the median with >= ``confidence``.

    Distribution-free: the number of samples below the true median is Binomial(n, 1/2), so
    ``P(x_(j) <= m <= x_(n-j-1)) = 1 - 2 * P(B <= j)``; the largest such ``j`` is chosen.
    Returns None when ``n`` is too small for the confidence.
    """
    if n < 1:
        return None
    alpha_half = (1.0 - confidence) / 2.0
    log_half_n = n * math.log(0.5)
    cdf = 0.0
    j = -1
    for k in range(0, n // 2 + 1):
        cdf += math.exp(math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + log_half_n)
        if cdf > alpha_half:
            break
        j = k
    # P(B <= j) <= alpha/2, so x_(j+1) .. x_(n-j) (1-based) covers the median
    if j < 0:
        return None
    return j, n - 1 - j


def summarize(samples_ms: List[float]) -> Dict[str, Any]:
    """min/p50/p90/p99/mean/std/max of latencies plus the median's confidence interval."""
    np = _np()
    arr = np.asarray(samples_ms, dtype=np.float64)
    srt = np.sort(arr)
    ranks = median_ci_ranks(len(srt))
    latency = {
        "min": float(srt[0]),
        "p50": float(np.percentile(srt, 50)),
        "p90": float(np.percentile(srt, 90)),
        "p99": float(np.percentile(srt, 99)),
        "mean": float(arr.mean()),
        "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
        "max": float(srt[-1]),
    }
    ci = [float(srt[ranks[0]]), float(srt[ranks[1]])] if ranks else None
    return {"latency_ms": {k: round(v, 6) for k, v in latency.items()},
            "p50_ci_ms": [round(v, 6) for v in ci] if ci else None,
            "ci_confidence": CONFIDENCE}


def timer_overhead_us(reps: int = 2000) -> float:
    """Median cost of one ``perf_counter()`` pair, the floor of every per-invoke measurement."""
    clock = time.perf_counter
    deltas = []
    for _ in range(reps):
        t0 = clock()
        t1 = clock()
        deltas.append(t1 - t0)
    deltas.sort()
    return round(deltas[len(deltas) // 2] * 1e6, 4)


# ---------------------------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------------------------
class Subject:
    """One model opened at one thread count, with its inputs set."""

    def __init__(self, rt: Runtime, path: str, content: bytes, threads: int, xnnpack: bool,
                 inputs: Optional[List[Any]], seed: int, label: str) -> None:
        np = _np()
        self.path = path
        self.label = label
        clock = time.perf_counter
        t0 = clock()
        try:
            interp = rt.open(content, threads, xnnpack)
            details = interp.get_input_details()
            for d in details:  # dynamic dims (-1): give them a concrete size
                sig = d.get("shape_signature")
                if sig is not None and any(int(s) < 0 for s in sig):
                    wanted = [1 if int(s) < 0 else int(s) for s in sig]
                    if inputs is not None:
                        arr = inputs[details.index(d)]
                        wanted = [1] + [int(s) for s in arr.shape[1:]]
                    interp.resize_tensor_input(d["index"], wanted)
            interp.allocate_tensors()
        except HarnessError:
            raise
        except Exception as exc:  # noqa: BLE001 - runtimes raise ValueError/RuntimeError
            raise explain_open_error(exc, rt, path) from exc
        self.init_ms = (clock() - t0) * 1000.0
        self.interp = interp
        self.inputs = interp.get_input_details()
        self.outputs = interp.get_output_details()
        rng = np.random.default_rng(seed)
        if inputs is None:
            self.data = [random_sample(d, rng)[None, ...] for d in self.inputs]
            self.input_source = "random"
        else:
            self.data = inputs
            self.input_source = "file"
        self.set_sample(0)
        t0 = clock()
        self.invoke()
        self.first_invoke_ms = (clock() - t0) * 1000.0

    @property
    def sample_count(self) -> int:
        return int(self.data[0].shape[0]) if self.data else 1

    def set_sample(self, i: int) -> None:
        try:
            for d, value in zip(self.inputs, _sample(self.data, self.inputs, i)):
                self.interp.set_tensor(d["index"], value)
        except ValueError as exc:
            raise HarnessError("data", f"{self.path}: cannot set input: {' '.join(str(exc).split())}") from exc

    def invoke(self) -> None:
        try:
            self.interp.invoke()
        except HarnessError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise HarnessError("runtime", f"{self.path}: invoke() failed: {' '.join(str(exc).split())}",
                               exit_code=3) from exc


def warm_up(invokers: List[Callable[[], None]], min_runs: int, max_seconds: float,
            max_runs: int = 1000) -> Dict[str, Any]:
    """Invoke until the median of the last window is within 5 % of the window before it."""
    clock = time.perf_counter
    if min_runs <= 0:
        return {"runs": 0, "seconds": 0.0, "stable": None}
    times: List[List[float]] = [[] for _ in invokers]
    start = clock()
    stable = False
    while True:
        for k, invoke in enumerate(invokers):
            t0 = clock()
            invoke()
            times[k].append(clock() - t0)
        n = len(times[0])
        if n >= max(min_runs, 2 * WARMUP_WINDOW):
            w = WARMUP_WINDOW
            ok = True
            for series in times:
                prev = sorted(series[-2 * w:-w])[w // 2]
                last = sorted(series[-w:])[w // 2]
                if abs(last - prev) > WARMUP_TOLERANCE * prev:
                    ok = False
            if ok:
                stable = True
                break
        if n >= max_runs or clock() - start >= max_seconds:
            break
    return {"runs": len(times[0]), "seconds": round(clock() - start, 4), "stable": stable}


def measure(invokers: List[Callable[[], None]], runs: int, min_time: float, max_time: float,
            max_runs: int, block: int = COMPARE_BLOCK) -> Tuple[List[List[float]], str]:
    """Time ``invoke()`` alone until ``runs`` and ``min_time`` are reached (or a cap).

    Several subjects (``--compare``) are interleaved in blocks: A A A A A, B B B B B, A ..., each
    block preceded by one untimed invoke that brings the model back into the caches. Every
    measurement is then a warm one, as for a single model, while slow drift (heat, load) still
    hits both sides alike. Sample ``i`` of A and of B come from the same round (paired).
    """
    clock = time.perf_counter
    samples: List[List[float]] = [[] for _ in invokers]
    per_turn = 1 if len(invokers) == 1 else max(1, block)
    start = clock()
    stop = "runs"
    done = 0
    while True:
        for k, invoke in enumerate(invokers):
            if len(invokers) > 1:
                invoke()  # untimed: refill the caches the other model evicted
            series = samples[k]
            for _ in range(per_turn):
                t0 = clock()
                invoke()
                t1 = clock()
                series.append((t1 - t0) * 1000.0)
        done += per_turn
        elapsed = clock() - start
        if done >= runs and elapsed >= min_time:
            stop = "runs" if done < runs + per_turn else "min-time"
            break
        if done >= max_runs:
            stop = "max-runs"
            break
        if elapsed >= max_time:
            stop = "max-time"
            break
    return samples, stop


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _model_doc(path: str, content: bytes) -> Dict[str, Any]:
    return {"path": path, "sha256": _sha256(content), "size_bytes": len(content)}


def dump_outputs(subject: Subject, path: str) -> Dict[str, Any]:
    """Run every input sample once and save ``input_<i>`` and ``output_<i>`` arrays to ``path``."""
    np = _np()
    outs: List[List[Any]] = [[] for _ in subject.outputs]
    for i in range(subject.sample_count):
        subject.set_sample(i)
        subject.invoke()
        for k, d in enumerate(subject.outputs):
            outs[k].append(np.array(subject.interp.get_tensor(d["index"])))
    arrays: Dict[str, Any] = {}
    for k, arr in enumerate(subject.data):
        arrays[f"input_{k}"] = arr
    for k, chunks in enumerate(outs):
        arrays[f"output_{k}"] = np.concatenate(chunks, axis=0) if chunks[0].ndim else np.stack(chunks)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise HarnessError("usage", f"--dump-outputs {path}: cannot write: {exc.strerror or exc}") from exc
    subject.set_sample(0)
    return {"file": path, "samples": subject.sample_count,
            "arrays": sorted(arrays), "outputs": [tensor_info(d) for d in subject.outputs]}


def run_config(rt: Runtime, args: argparse.Namespace, threads: int, model: Tuple[str, bytes],
               other: Optional[Tuple[str, bytes]], base: Dict[str, Any], first: bool) -> Dict[str, Any]:
    """Benchmark the model (and ``--compare`` model) at one thread count; return one document."""
    xnnpack = not args.no_xnnpack
    subjects: List[Subject] = []
    for label, (path, content) in (("a", model),) + ((("b", other),) if other else ()):
        subjects.append(_open_subject(rt, path, content, threads, xnnpack, args, label))
    invokers = [s.invoke for s in subjects]
    warm = warm_up(invokers, args.warmup, args.warmup_time)
    temp_before = read_temperature_c()
    t0 = time.perf_counter()
    samples, stop = measure(invokers, args.runs, args.min_time, args.max_time, args.max_runs)
    seconds = time.perf_counter() - t0
    temp_after = read_temperature_c()
    _, peak = rss_mb()
    a = subjects[0]
    doc = dict(base)
    doc.update({
        "model": _model_doc(model[0], model[1]),
        "threads": threads,
        "runs": len(samples[0]),
        "stopped_by": stop,
        "warmup": warm,
    })
    doc.update(summarize(samples[0]))
    doc.update({
        "init_ms": round(a.init_ms, 4),
        "first_invoke_ms": round(a.first_invoke_ms, 4),
        "measure_seconds": round(seconds, 4),
        "peak_rss_mb": peak,
        "temperature_c": {"before": temp_before, "after": temp_after},
        "inputs": [dict(tensor_info(d), source=a.input_source) for d in a.inputs],
        "outputs": [tensor_info(d) for d in a.outputs],
    })
    if args.samples:
        doc["samples_ms"] = [round(v, 6) for v in samples[0]]
    if other is not None:
        b = subjects[1]
        sub = {"model": _model_doc(other[0], other[1]), "runs": len(samples[1]),
               "init_ms": round(b.init_ms, 4), "first_invoke_ms": round(b.first_invoke_ms, 4),
               "interleaving": f"blocks of {COMPARE_BLOCK} runs: A..., B..., A..., each after one untimed run"}
        sub.update(summarize(samples[1]))
        if args.samples:
            sub["samples_ms"] = [round(v, 6) for v in samples[1]]
        sub["ratio_of_medians"] = round(doc["latency_ms"]["p50"] / sub["latency_ms"]["p50"], 6) \
            if sub["latency_ms"]["p50"] > 0 else None
        doc["compare"] = sub
    if args.dump_outputs and first:
        doc["dump"] = dump_outputs(a, args.dump_outputs)
    return doc


def _open_subject(rt: Runtime, path: str, content: bytes, threads: int, xnnpack: bool,
                  args: argparse.Namespace, label: str) -> Subject:
    inputs = None
    if args.inputs:
        try:
            probe = rt.open(content, threads, xnnpack)
            details = probe.get_input_details()
        except HarnessError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise explain_open_error(exc, rt, path) from exc
        inputs = load_inputs(args.inputs, details)
        del probe
    return Subject(rt, path, content, threads, xnnpack, inputs, args.seed, label)


def run(args: argparse.Namespace) -> Any:
    """Everything after argument parsing; returns the JSON-able result."""
    check_args(args)
    thread_counts = parse_threads(args.threads)
    cpus: Optional[List[int]] = None
    if args.cpus is not None:
        cpus = parse_cpus(args.cpus)
        avail = available_cpus()
        missing = [c for c in cpus if c not in avail]
        if missing:
            raise HarnessError("usage", f"--cpus {args.cpus}: CPU {format_cpus(missing)} is not available here "
                                        f"(available: {format_cpus(avail)})")
        if not hasattr(os, "sched_setaffinity"):
            raise HarnessError("usage", f"--cpus: CPU affinity is not supported on {platform.system()}")
        os.sched_setaffinity(0, cpus)  # before numpy and the runtime start their threads
    model = (args.model, read_model(args.model))
    other = (args.compare, read_model(args.compare, "--compare")) if args.compare else None
    if args.inputs and not os.path.isfile(args.inputs):
        raise HarnessError("data", f"--inputs {args.inputs}: no such file")
    try:
        np = _np()
    except ImportError as exc:
        raise HarnessError("runtime-missing", f"numpy is not installed for {sys.executable} ({exc}); install it "
                                              "with a LiteRT runtime on the device: `python3 -m pip install "
                                              "ai-edge-litert` (brings numpy), or `python3 -m pip install 'numpy<2' "
                                              "tflite-runtime`", exit_code=3) from exc
    rss_start, _ = rss_mb()
    rt = load_runtime(args.runtime)
    base: Dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "tool": "edgekit-harness",
        "harness_version": HARNESS_VERSION,
        "source": args.source,
        "runtime": rt.name,
        "runtime_version": rt.version,
        "xnnpack": not args.no_xnnpack,
        "machine": platform.machine(),
        "device": device_facts(cpus),
        "numpy_version": np.__version__,
        "cpus": cpus,
        "timer_overhead_us": timer_overhead_us(),
        "rss_before_load_mb": rss_start,
    }
    docs = [run_config(rt, args, t, model, other, base, first=(i == 0)) for i, t in enumerate(thread_counts)]
    if len(docs) == 1:
        return docs[0]
    ref = docs[0]["latency_ms"]["p50"]
    for doc in docs:
        doc["speedup"] = round(ref / doc["latency_ms"]["p50"], 4) if doc["latency_ms"]["p50"] > 0 else None
        doc["speedup_vs_threads"] = thread_counts[0]
    return docs


def _write_output(path: str, text: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the harness; the JSON goes to the real stdout, everything else to stderr."""
    out_fd = os.dup(1)
    os.dup2(2, 1)  # native runtime chatter must not corrupt the JSON on stdout
    out = os.fdopen(out_fd, "w", encoding="utf-8")
    args = build_parser().parse_args(argv)  # exits 2 on bad usage, as argparse does
    try:
        result: Any = run(args)
        code = 0
    except HarnessError as exc:
        result = {"schema_version": SCHEMA_VERSION, "error": {"kind": exc.kind, "message": exc.message}}
        code = exc.exit_code
        sys.stderr.write(f"error: {exc.message}\n")
    except KeyboardInterrupt:
        result = {"schema_version": SCHEMA_VERSION, "error": {"kind": "interrupted", "message": "interrupted"}}
        code = 130
    text = json.dumps(result, indent=2, allow_nan=False)
    if args.output and code == 0:
        try:
            _write_output(args.output, text + "\n")
        except OSError as exc:
            sys.stderr.write(f"error: --output {args.output}: {exc}\n")
            code = 2
    sys.stdout.flush()
    out.write(text + "\n")
    out.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
