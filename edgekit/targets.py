"""Target profiles: the hardware, runtime, budgets and estimator coefficients of one device class.

A profile is data, not code: one YAML file per device validated by :class:`Target` (pydantic,
``extra="forbid"``). Built-in profiles ship inside the package (``edgekit/targets_data/``, a copy of
the top-level ``targets/`` folder of the source tree kept identical by a test); users add their own
by passing a file path, or by putting ``*.yaml`` files in a directory listed on
``EDGEKIT_TARGETS_PATH`` (``os.pathsep``-separated). A user profile with the name of a built-in one
shadows it.

``python -m edgekit.targets sync`` regenerates ``targets/schema.json`` from :class:`Target` and copies
``targets/`` into ``edgekit/targets_data/`` (run it after editing a profile in a source checkout).
"""
from __future__ import annotations

import difflib
import json
import os
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from .errors import ConfigError

DEFAULT_TARGET = "rpi4"
TARGETS_PATH_ENV = "EDGEKIT_TARGETS_PATH"
SCHEMA_ID = "https://edgekit.dev/schemas/target-1.json"

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
          "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4, "tb": 1000**4}
_SIZE_RE = re.compile(r"^\s*(-?[0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(value: Any) -> Any:
    """Turn ``"512 KiB"`` / ``"4GiB"`` / ``"1.5 MB"`` into an int of bytes; pass ints through.

    Anything else is returned unchanged for pydantic to reject with its own message.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        match = _SIZE_RE.match(value)
        if not match or match.group(2).lower() not in _UNITS:
            raise ValueError(f"{value!r} is not a size; write bytes as an integer or e.g. '512 KiB', '4 GiB'")
        return int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    return value


def _size(*, gt: int | None = None, ge: int | None = None, description: str) -> Any:
    return Annotated[int, BeforeValidator(parse_size, json_schema_input_type=int | str),
                     Field(gt=gt, ge=ge, description=description)]


ByteSize = _size(gt=0, description="bytes (an integer, or a string such as '512 KiB' / '4 GiB')")
OptByteSize = Optional[_size(gt=0, description="bytes, or null for no limit")]
OptNonNegBytes = _size(ge=0, description="bytes (integer or e.g. '64 KiB'); 0 for none")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Hardware(_Strict):
    """The device: CPU, memory, storage."""

    arch: Literal["aarch64", "armv7", "armv7em", "xtensa", "x86_64", "riscv32"] = Field(
        description="instruction set (aarch64 for 64-bit Arm Linux/Android, armv7em for Cortex-M4/M7)")
    cpu: str = Field(min_length=1, description="CPU core type of the big cores, e.g. cortex-a72, cortex-m4, lx7")
    cores: int = Field(ge=1, le=256, description="CPU cores in total")
    big_cores: Optional[int] = Field(default=None, ge=1, le=256,
                                     description="fast cores on big.LITTLE SoCs (default: all cores)")
    clock_mhz: float = Field(gt=0, le=10000, description="clock of the big cores in MHz")
    ram_bytes: ByteSize = Field(description="RAM available to the application (SRAM on MCUs)")
    flash_bytes: ByteSize = Field(description="storage for the model (flash on MCUs, typical SD card / app size elsewhere)")
    gpu: Optional[str] = Field(default=None, description="GPU, when the runtime uses a GPU delegate")

    @model_validator(mode="after")
    def _big_le_cores(self) -> "Hardware":
        if self.big_cores is not None and self.big_cores > self.cores:
            raise ValueError(f"big_cores ({self.big_cores}) is larger than cores ({self.cores})")
        return self


class Runtime(_Strict):
    """The inference runtime on the device and what it can run."""

    name: Literal["litert", "tflite-micro"] = Field(description="LiteRT (TFLite) or TensorFlow Lite Micro")
    version: str = Field(min_length=1, description="runtime version the op table refers to, e.g. '2.3'")
    delegates: list[Literal["xnnpack", "gpu", "nnapi", "cmsis-nn", "esp-nn"]] = Field(
        default_factory=list, description="delegates / optimized kernel libraries in use")
    required_quantization: Optional[Literal["int8"]] = Field(
        default=None, description="dtype every compute op must use (int8-only MCU kernels); null: any")
    op_max_versions: dict[str, int] = Field(
        default_factory=dict, description="override the op table: highest op version per builtin (older runtimes)")
    unsupported_ops: list[str] = Field(default_factory=list,
                                       description="builtin ops to treat as missing although the table has them")
    flex: bool = Field(default=False, description="the Select-TF-ops (Flex) delegate is linked in")
    code_bytes: OptNonNegBytes = Field(default=0, description="flash taken by the runtime code itself")
    ram_overhead_bytes: OptNonNegBytes = Field(
        default=0, description="RAM used by the runtime besides tensors (interpreter, packed weights excluded)")


class DefaultRecipe(_Strict):
    """What ``edgekit compress`` does for this target unless a recipe file or flags say otherwise."""

    quantize: Literal["int8", "float16", "dynamic", "int16x8", "float32"]
    io_dtype: Literal["int8", "float32"] = "float32"
    qat: bool = False
    prune: float = Field(default=0.0, ge=0.0, lt=1.0)
    structured: Optional[str] = Field(default=None, pattern=r"^[0-9]+:[0-9]+$", description="N:M sparsity, e.g. 2:4")
    clusters: Optional[int] = Field(default=None, ge=2)
    epochs: int = Field(default=2, ge=0, le=1000)


class Budgets(_Strict):
    """Pass/fail limits for reports and CI; null means no limit."""

    max_model_bytes: OptByteSize = None
    max_arena_bytes: OptByteSize = None
    max_latency_ms: Optional[float] = Field(default=None, gt=0)
    max_accuracy_drop: Optional[float] = Field(default=None, ge=0, le=1)


class CalibrationPoint(_Strict):
    """A published latency the estimator is checked against (``benchmarks/estimator_calibration.py``)."""

    model: Literal["mobilenet_v1_1.0_224", "mobilenet_v2_1.0_224"]
    dtype: Literal["float32", "int8"]
    threads: int = Field(ge=1)
    latency_ms: float = Field(gt=0)
    source: str = Field(min_length=1)
    fitted: bool = Field(default=True, description="true if the coefficients were fitted to this point")


class MacsPerCycle(_Strict):
    """Sustained multiply-accumulates per clock cycle of ONE core for a dense convolution."""

    float32: float = Field(gt=0)
    float16: Optional[float] = Field(default=None, gt=0, description="null: computed as float32")
    int8: float = Field(gt=0)
    int16x8: Optional[float] = Field(default=None, gt=0, description="null: half the int8 rate")
    hybrid: Optional[float] = Field(default=None, gt=0, description="dynamic-range ops; null: the float32 rate")


class OpEfficiency(_Strict):
    """Throughput of each op class relative to a dense convolution (1.0)."""

    conv: float = Field(default=1.0, gt=0, le=4)
    depthwise: float = Field(default=0.3, gt=0, le=4)
    fully_connected: float = Field(default=0.6, gt=0, le=4)
    transpose_conv: float = Field(default=0.6, gt=0, le=4)
    batch_matmul: float = Field(default=0.6, gt=0, le=4)


class Estimator(_Strict):
    """Coefficients of the per-op latency model (see :mod:`edgekit.analysis.estimator`)."""

    kernels: str = Field(min_length=1, description="kernel library assumed: xnnpack, cmsis-nn, esp-nn, "
                                                   "tflm-reference, gpu-opencl, ...")
    device: Literal["cpu", "gpu"] = "cpu"
    clock_mhz: Optional[float] = Field(default=None, gt=0, description="default: hardware.clock_mhz")
    macs_per_cycle: MacsPerCycle
    op_efficiency: OpEfficiency = Field(default_factory=OpEfficiency)
    vector_lanes: int = Field(default=1, ge=1, le=256,
                              description="channels processed per SIMD step (low channel counts waste lanes)")
    vector_axis: Literal["input_channels", "output_channels"] = "output_channels"
    elements_per_cycle: float = Field(default=1.0, gt=0, description="elements per cycle per core of ops without MACs")
    mem_bandwidth_gbps: float = Field(gt=0, description="sustained memory bandwidth in GB/s")
    op_overhead_us: float = Field(default=0.0, ge=0, description="fixed cost per op in microseconds")
    invoke_overhead_us: float = Field(default=0.0, ge=0, description="fixed cost per inference in microseconds")
    parallel_efficiency: float = Field(default=0.85, gt=0, le=1,
                                       description="fraction of an extra thread's throughput that is gained")
    little_core_factor: float = Field(default=0.35, gt=0, le=1, description="speed of a little core vs a big one")
    cpu_fallback: Optional["Estimator"] = Field(default=None, description="coefficients for ops a GPU delegate "
                                                                          "leaves on the CPU")
    method: str = Field(default="", description="how the coefficients were chosen")
    calibration: list[CalibrationPoint] = Field(default_factory=list)


class Target(_Strict):
    """One device profile. Loaded with :func:`load_target`; see ``targets/schema.json``."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", description="short name used on the command line")
    family: Literal["mobile", "iot", "raspberry-pi"]
    description: str = Field(min_length=1)
    hardware: Hardware
    runtime: Runtime
    threads: int = Field(ge=1, le=256, description="default thread count (all big cores)")
    qemu_cpu: Optional[str] = Field(default=None, description="QEMU -cpu model for emulation (raspberry-pi)")
    default_recipe: DefaultRecipe
    budgets: Budgets = Field(default_factory=Budgets)
    estimator: Estimator

    _source: Optional[str] = PrivateAttr(default=None)

    @property
    def source(self) -> Optional[str]:
        """The file this profile was read from (None for one built in memory)."""
        return self._source

    @model_validator(mode="after")
    def _consistent(self) -> "Target":
        if self.threads > self.hardware.cores:
            raise ValueError(f"threads ({self.threads}) is larger than hardware.cores ({self.hardware.cores})")
        if self.runtime.name == "tflite-micro" and self.threads != 1:
            raise ValueError("tflite-micro runs on one thread: set threads to 1")
        if self.family == "raspberry-pi" and not self.qemu_cpu:
            raise ValueError("raspberry-pi profiles need qemu_cpu (e.g. cortex-a72) for emulation")
        if "gpu" in self.runtime.delegates and self.estimator.device != "gpu":
            raise ValueError("a gpu delegate target needs estimator.device: gpu")
        return self


Estimator.model_rebuild()


# ------------------------------------------------------------------------------------------------
# loading
# ------------------------------------------------------------------------------------------------
def _builtin_dir() -> Path:
    return Path(str(resources.files("edgekit").joinpath("targets_data")))


def _user_dirs() -> list[Path]:
    raw = os.environ.get(TARGETS_PATH_ENV, "")
    return [Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip()]


def _field_names(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names valid at ``loc`` (the parent location of a bad key), for suggestions."""
    current: Any = model
    for part in loc:
        if isinstance(part, int) or not (isinstance(current, type) and issubclass(current, BaseModel)):
            continue
        field = current.model_fields.get(part)
        if field is None:
            return []
        annotation = field.annotation
        for candidate in (annotation, *getattr(annotation, "__args__", ())):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                current = candidate
                break
        else:
            return []
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _explain(exc: ValidationError, source: str) -> ConfigError:
    """One-line ConfigError from the first pydantic error: file, field, what is wrong, the fix."""
    errors = exc.errors()
    # a typo'd key shows up as "extra" + "missing": report the typo, it is the cause
    err = next((e for e in errors if e.get("type") == "extra_forbidden"), errors[0])
    loc = tuple(err.get("loc", ()))
    dotted = ".".join(str(p) for p in loc) or "(top level)"
    extra = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    if err.get("type") == "extra_forbidden":
        valid = _field_names(Target, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
        hint = f"did you mean '{close[0]}'?" if close else f"valid fields here: {', '.join(valid)}"
        others = [e for e in errors if e is not err and not (
            close and e.get("type") == "missing" and tuple(e.get("loc", ()))[:-1] == loc[:-1]
            and tuple(e.get("loc", ()))[-1:] == (close[0],))]
        extra = f" (and {len(others)} more problem(s))" if others else ""
        return ConfigError(f"{source}: unknown field '{dotted}'{extra}", hint=hint)
    if err.get("type") == "missing":
        return ConfigError(f"{source}: required field '{dotted}' is missing{extra}",
                           hint="see targets/schema.json or `edgekit targets show rpi4` for an example")
    msg = str(err.get("msg", "invalid value")).replace("Value error, ", "")
    given = err.get("input")
    shown = "" if isinstance(given, (dict, list)) else f" (got {given!r})"
    return ConfigError(f"{source}: field '{dotted}': {msg}{shown}{extra}",
                       hint="fix the value in the profile; see targets/schema.json")


def target_from_dict(data: Any, *, source: str = "<profile>") -> Target:
    """Validate a parsed profile; raise :class:`ConfigError` naming ``source`` and the field."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a target profile must be a YAML mapping, got {type(data).__name__}",
                          hint="start from `edgekit targets show rpi4` and edit")
    try:
        target = Target.model_validate(data)
    except ValidationError as exc:
        raise _explain(exc, source) from None
    target._source = source
    return target


def _read_profile(path: Path) -> Target:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read target profile {path}: {getattr(exc, 'strerror', None) or exc}",
                          hint="check the path") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}",
                          hint="fix the YAML syntax") from None
    return target_from_dict(data, source=str(path))


@lru_cache(maxsize=64)
def _cached_profile(path: str, mtime_ns: int, size: int) -> Target:
    return _read_profile(Path(path))


def _load_file(path: Path) -> Target:
    try:
        st = path.stat()
    except OSError:
        raise ConfigError(f"target profile {path} does not exist",
                          hint="pass a built-in name (see `edgekit targets list`) or an existing YAML file") from None
    return _cached_profile(str(path.resolve()), st.st_mtime_ns, st.st_size)


def _catalog() -> dict[str, Path]:
    """name -> profile file; user directories (in order) shadow built-ins."""
    found: dict[str, Path] = {}
    for path in sorted(_builtin_dir().glob("*.yaml")):
        found[path.stem] = path
    for directory in reversed(_user_dirs()):
        if not directory.is_dir():
            raise ConfigError(f"{TARGETS_PATH_ENV} names {directory}, which is not a directory",
                              hint=f"fix {TARGETS_PATH_ENV} (directories separated by '{os.pathsep}')")
        for path in sorted(list(directory.glob("*.yaml")) + list(directory.glob("*.yml"))):
            found[path.stem] = path
    return found


def _looks_like_path(name: str) -> bool:
    return name.endswith((".yaml", ".yml")) or os.sep in name or (os.altsep or "\0") in name


def load_target(name_or_path: str) -> Target:
    """Load a built-in or user profile by name, or a profile YAML by path.

    Args:
        name_or_path: a name from ``edgekit targets list`` or a path to a ``.yaml`` file.

    Raises:
        ConfigError: unknown name (with the closest name), unreadable or invalid profile (file + field).
    """
    if isinstance(name_or_path, Target):
        return name_or_path
    if isinstance(name_or_path, os.PathLike):
        name_or_path = os.fspath(name_or_path)
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise ConfigError("target name is empty", hint="pass e.g. --target rpi4 (see `edgekit targets list`)")
    name = name_or_path.strip()
    if _looks_like_path(name) or Path(name).is_file():
        return _load_file(Path(name).expanduser())
    catalog = _catalog()
    path = catalog.get(name)
    if path is None:
        close = difflib.get_close_matches(name, list(catalog), n=1, cutoff=0.4)
        hint = f"did you mean '{close[0]}'?" if close else "see `edgekit targets list`"
        raise ConfigError(f"unknown target '{name}'", hint=f"{hint}; known targets: {', '.join(sorted(catalog))}")
    target = _load_file(path)
    if target.name != path.stem:
        raise ConfigError(f"{path}: field 'name' is '{target.name}' but the file is named {path.name}",
                          hint=f"rename the file to {target.name}.yaml or set name: {path.stem}")
    return target


def list_targets() -> list[Target]:
    """All known profiles (built-in and on ``EDGEKIT_TARGETS_PATH``), sorted by family then name."""
    targets = [load_target(name) for name in _catalog()]
    order = {"raspberry-pi": 0, "mobile": 1, "iot": 2}
    return sorted(targets, key=lambda t: (order.get(t.family, 9), t.name))


def target_summary(target: Target) -> dict[str, Any]:
    """The ``targets list --json`` entry of one target."""
    return {"name": target.name, "family": target.family, "description": target.description,
            "runtime": target.runtime.name, "threads": target.threads,
            "builtin": bool(target.source) and Path(target.source).parent == _builtin_dir(),
            "source": target.source}


def target_document(target: Target) -> dict[str, Any]:
    """The full profile as a JSON-ready dict (``targets show --json``)."""
    return {"schema_version": 1, **target.model_dump(mode="json"), "source": target.source}


# ------------------------------------------------------------------------------------------------
# schema + sync of the packaged copy
# ------------------------------------------------------------------------------------------------
def target_json_schema() -> dict[str, Any]:
    """The JSON Schema of a profile file, generated from :class:`Target`."""
    schema = Target.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def schema_text() -> str:
    """``targets/schema.json`` exactly as it must be on disk."""
    return json.dumps(target_json_schema(), indent=2, sort_keys=True) + "\n"


def sync(source_dir: Path, package_dir: Path) -> list[str]:
    """Write ``schema.json`` into ``source_dir`` and mirror its profiles into ``package_dir``.

    Returns the files written. Used by ``python -m edgekit.targets sync`` in a source checkout.
    """
    from .fsutil import atomic_write_bytes, atomic_write_text

    written = []
    atomic_write_text(source_dir / "schema.json", schema_text())
    written.append(str(source_dir / "schema.json"))
    package_dir.mkdir(parents=True, exist_ok=True)
    wanted = {p.name for p in source_dir.glob("*.yaml")} | {"schema.json"}
    for stale in package_dir.iterdir():
        if stale.is_file() and stale.name not in wanted:
            stale.unlink()
    for name in sorted(wanted):
        atomic_write_bytes(package_dir / name, (source_dir / name).read_bytes())
        written.append(str(package_dir / name))
    return written


def _main(argv: list[str] | None = None) -> int:  # pragma: no cover - developer tool
    import sys

    args = sys.argv[1:] if argv is None else argv
    if args != ["sync"]:
        print("usage: python -m edgekit.targets sync   (run in the source checkout)", file=sys.stderr)
        return 2
    root = Path(__file__).resolve().parent.parent
    for path in sync(root / "targets", Path(__file__).resolve().parent / "targets_data"):
        print("wrote", path)
    for target in list_targets():
        print("ok", target.name)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(_main())
