"""Run a Raspberry Pi target's real aarch64 LiteRT / tflite-runtime build under QEMU user mode.

Kernels differ between x86 and Arm and between runtime builds: a model can agree on the laptop and
misbehave on the Pi. This module builds, once, an aarch64 Python 3.11 (Debian bookworm arm64
packages, as on Raspberry Pi OS) with the target's runtime wheels, and runs the unmodified
on-device harness (``edgekit/harness.py``) in it with ``qemu-aarch64 -cpu <the Pi's core>``.
No chroot, no binfmt, no Docker, no root: see :mod:`edgekit.emulator_rootfs` and
:mod:`edgekit.emulator_qemu` for how, and why ``-cpu max`` is never used.

Public API (stable: ``edgekit benchmark --emulate`` calls :func:`run_harness`,
``edgekit validate/check --emulate`` call :func:`emulated_parity`)::

    setup(*, target="rpi4", runtime=None, progress=None) -> EmulatorEnv
        Build (or reuse) the cached environment for the target's runtime + version, under
        ``$EDGEKIT_CACHE_DIR/emulator/aarch64-<package>-<version>/`` (default cache dir:
        platformdirs ``edgekit``). Needs network the first time only.

    run_harness(harness_args, *, target, timeout=600.0, runtime=None, cpu=None) -> dict
        ``python harness.py *harness_args`` in the emulated Pi; returns the harness JSON with
        ``source: "emulated"``, an ``emulation`` block (qemu, cpu, runtime, ...) and a note that
        timings are not device timings. Sets the environment up first if needed.

    compare_outputs(host, emulated, *, output_details) -> dict
        Verdict ``identical`` / ``within_1_lsb`` / ``different`` for one output, worst inputs listed
        (:mod:`edgekit.emulator_compare`).

    emulated_parity(model_path, inputs, *, target, threads=1, timeout=600.0, runtime=None, cpu=None) -> dict
        Runs the harness on the host (this Python) and emulated, on the same ``inputs``, and
        compares every output: ``{verdict, outputs[...], worst_inputs[...], host{...}, emulated{...}}``.

    doctor(*, targets=None) -> list[dict]
        One entry per requirement: ``{name, ok, required, detail, fix}``; ``fix`` is the exact
        command to run.

``cpu`` overrides the target's QEMU CPU model; it exists to prove that a mismatched CPU is
detected (``cpu="max"`` yields ``different`` on quantized models) and is marked in the result.
Errors: ``ConfigError`` (exit 2) for a missing QEMU / keyring / non-emulatable target, with the
install command; ``DeviceError`` (exit 3) for download failures and ``ChildCrash`` for a crashed or
timed-out emulated run.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .emulator_compare import compare_outputs, worst_verdict
from .emulator_qemu import (QEMU_PACKAGE, UNSAFE_CPUS, Qemu, check_cpu, cpu_view, find_qemu,
                            require_qemu)
from .emulator_rootfs import (GUEST_PYTHON, RuntimeSpec, build_env, build_lock, emulator_root, env_size_bytes,
                              install_command, read_manifest, remove_stale_builds, runtime_spec)
from .errors import ChildCrash, ConfigError, DeviceError, EdgekitError, ModelError

__all__ = ["EmulatorEnv", "setup", "run_harness", "compare_outputs", "emulated_parity", "doctor", "HARNESS",
           "target_cpu", "EMULATED_NOTE"]

HARNESS = Path(__file__).resolve().parent / "harness.py"
EMULATED_NOTE = ("emulated with QEMU user mode on this machine: outputs come from the real aarch64 runtime build, "
                 "timings are NOT device timings")
EMULATABLE_FAMILIES = ("raspberry-pi",)


@dataclass(frozen=True)
class EmulatorEnv:
    """A ready emulated environment (see :func:`setup`).

    Attributes:
        name: folder name, ``aarch64-<package>-<version>``.
        root: the environment folder in the cache.
        rootfs: the unpacked Debian arm64 root file system.
        python: the guest interpreter (an aarch64 ELF inside ``rootfs``).
        site: the site-packages folder holding the runtime wheels.
        runtime: PyPI name of the runtime (``ai-edge-litert`` / ``tflite-runtime``).
        runtime_module: the module the harness imports.
        runtime_version: exact installed version.
        numpy_version: exact numpy version in the guest.
        python_version: guest Python version.
        manifest: the full manifest (packages, wheels and their sha256).
        built: whether this call built it (False: reused from the cache).
        seconds: time this call took.
    """

    name: str
    root: Path
    rootfs: Path
    python: Path
    site: Path
    runtime: str
    runtime_module: str
    runtime_version: str
    numpy_version: str
    python_version: str
    manifest: dict[str, Any] = field(repr=False)
    built: bool = False
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (for ``edgekit emulator setup --json``)."""
        return {"name": self.name, "path": str(self.root), "python": str(self.python),
                "python_version": self.python_version, "runtime": self.runtime,
                "runtime_version": self.runtime_version, "numpy_version": self.numpy_version,
                "built": self.built, "seconds": round(self.seconds, 1),
                "build_seconds": self.manifest.get("build_seconds"), "built_at": self.manifest.get("built_at"),
                "packages": len(self.manifest.get("debs", [])), "wheels": len(self.manifest.get("wheels", []))}


# ---------------------------------------------------------------------------------------------
# target → CPU / runtime
# ---------------------------------------------------------------------------------------------
def _load(target: Any) -> Any:
    from .targets import load_target

    return target if hasattr(target, "runtime") and hasattr(target, "hardware") else load_target(str(target))


def _check_emulatable(tgt: Any) -> None:
    if tgt.runtime.name == "tflite-micro" or tgt.hardware.arch != "aarch64":
        raise ConfigError(f"target {tgt.name} ({tgt.hardware.arch}, {tgt.runtime.name}) cannot be emulated: "
                          "--emulate runs the Linux aarch64 LiteRT build under QEMU user mode",
                          hint="use a raspberry-pi target: rpi-zero2w, rpi3, rpi4 or rpi5")


def target_cpu(target: Any) -> str:
    """The QEMU CPU model of the target's real core (the profile's ``qemu_cpu``)."""
    tgt = _load(target)
    _check_emulatable(tgt)
    cpu = getattr(tgt, "qemu_cpu", None)
    if not cpu:
        raise ConfigError(f"target {tgt.name} has no qemu_cpu, so it cannot be emulated",
                          hint="emulate a raspberry-pi target (rpi-zero2w, rpi3, rpi4, rpi5), or add `qemu_cpu: "
                               "cortex-a72` (the device's core) to a custom profile")
    if cpu in UNSAFE_CPUS:
        raise ConfigError(f"target {tgt.name}: qemu_cpu {cpu!r} is not allowed: {UNSAFE_CPUS[cpu]}",
                          hint="set qemu_cpu to the device's real core, e.g. cortex-a53, cortex-a72, cortex-a76")
    return cpu


def _spec_for(tgt: Any, runtime: str | None) -> RuntimeSpec:
    if runtime:
        return runtime_spec(runtime, None)
    return runtime_spec(tgt.runtime.name, tgt.runtime.version)


# ---------------------------------------------------------------------------------------------
# guest process
# ---------------------------------------------------------------------------------------------
def _guest_environ(site: Path) -> dict[str, str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONPATH": str(site),
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
    }
    for key in ("HOME", "TMPDIR", "TF_CPP_MIN_LOG_LEVEL"):
        if os.environ.get(key):
            env[key] = os.environ[key]
    return env


def _guest_argv(qemu: Qemu, cpu: str, view: Path, python: Path, args: Sequence[str]) -> list[str]:
    return [str(qemu.path), "-cpu", cpu, "-L", str(view), str(python), "-s", "-B", *args]


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(code).name
    except ValueError:
        return f"signal {code}"


def _run_guest(argv: list[str], *, env: Mapping[str, str], timeout: float, what: str) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=dict(env),
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise ChildCrash(f"{what}: timed out after {timeout:.0f} s under emulation; the process was killed",
                         hint="emulation is 10-50x slower than the host: use fewer --runs or raise the timeout") from exc
    except OSError as exc:
        raise ConfigError(f"{what}: cannot start {argv[0]}: {exc.strerror or exc}",
                          hint=f"reinstall QEMU: {install_command(QEMU_PACKAGE)}") from exc
    code = proc.returncode
    if code < 0 or code in (128 + signal.SIGSEGV, 128 + signal.SIGBUS, 128 + signal.SIGILL, 128 + signal.SIGABRT):
        sig = -code if code < 0 else code - 128
        tail = " ".join(proc.stderr.split())[-300:]
        err = ChildCrash(f"{what}: the emulated process crashed with {_signal_name(sig)}",
                         hint=f"a runtime bug for this model or CPU; stderr: {tail}" if tail else None)
        err.child_traceback = proc.stderr  # type: ignore[attr-defined]
        raise err
    return proc


def _verify_guest(rootfs: Path, site: Path, spec: RuntimeSpec, *, qemu: Qemu, cpu: str, env_dir: Path) -> dict[str, str]:
    """Import numpy + the runtime in the fresh guest; returns the versions it reports."""
    view = cpu_view(env_dir, rootfs, cpu)
    code = ("import json, platform, sys, importlib.metadata as md, numpy; "
            f"import {spec.module}.interpreter; "
            "print(json.dumps({'machine': platform.machine(), 'python': platform.python_version(), "
            f"'numpy': numpy.__version__, 'runtime': md.version({spec.package!r})}}))")
    python = rootfs / f"usr/bin/python{GUEST_PYTHON}"
    proc = _run_guest(_guest_argv(qemu, cpu, view, python, ["-c", code]), env=_guest_environ(site), timeout=600,
                      what=f"checking the emulated Python ({spec.package})")
    if proc.returncode != 0:
        raise DeviceError(f"the emulated Python cannot import {spec.module}: "
                          f"{' '.join(proc.stderr.split())[-400:]}",
                          hint="run `edgekit emulator setup --debug`; the runtime wheel may not support this guest")
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    if seen.get("machine") != "aarch64":
        raise DeviceError(f"the emulated Python reports machine {seen.get('machine')!r}, expected aarch64")
    return seen


def _env_from(env_dir: Path, manifest: dict[str, Any], *, built: bool, seconds: float) -> EmulatorEnv:
    rootfs = env_dir / "rootfs"
    return EmulatorEnv(
        name=env_dir.name, root=env_dir, rootfs=rootfs, python=rootfs / manifest["python"]["path"],
        site=rootfs / manifest["site_packages"], runtime=manifest["runtime"]["package"],
        runtime_module=manifest["runtime"]["module"], runtime_version=str(manifest["runtime"]["version"]),
        numpy_version=str(manifest.get("numpy")), python_version=str(manifest["python"]["version"]),
        manifest=manifest, built=built, seconds=seconds)


def _require_build_tools() -> None:
    for tool, package in (("apt-get", "apt"), ("apt-cache", "apt"), ("dpkg", "dpkg"), ("dpkg-deb", "dpkg")):
        if shutil.which(tool) is None:
            raise ConfigError(f"{tool} was not found: building the emulated Raspberry Pi Python needs Debian's apt "
                              "and dpkg tools (they only download and unpack; nothing is installed on the host)",
                              hint=f"run on a Debian/Ubuntu machine or CI image, or install them: "
                                   f"{install_command(package)}")


# ---------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------
def setup(*, target: str = "rpi4", runtime: str | None = None,
          progress: Callable[[str], None] | None = None) -> EmulatorEnv:
    """Build (first time) or reuse the emulated Python + runtime for ``target``.

    Args:
        target: target name or profile path; its ``runtime`` picks the wheels and ``qemu_cpu``
            the CPU used to check the build.
        runtime: override, e.g. ``tflite-runtime==2.14.0`` or ``ai-edge-litert==2.3.0``.
        progress: called with a short message per build step.

    Raises:
        ConfigError: target not emulatable, QEMU / apt / dpkg / keyring missing (message has the fix).
        DeviceError: packages or wheels could not be downloaded or do not work in the guest.
    """
    started = time.monotonic()
    tgt = _load(target)
    cpu = target_cpu(tgt)
    spec = _spec_for(tgt, runtime)
    root = emulator_root()
    env_dir = root / spec.env_name
    manifest = read_manifest(env_dir)
    if manifest is not None:
        return _env_from(env_dir, manifest, built=False, seconds=time.monotonic() - started)
    qemu = require_qemu()
    check_cpu(qemu, cpu)
    _require_build_tools()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the emulator cache {root}: {exc.strerror or exc}",
                          hint="set EDGEKIT_CACHE_DIR to a writable folder") from exc
    with build_lock(root, spec.env_name):
        manifest = read_manifest(env_dir)
        built = manifest is None
        if manifest is None:
            if env_dir.exists():  # a broken leftover: rebuild it
                shutil.rmtree(env_dir)
            remove_stale_builds(root, spec.env_name)

            def verify(rootfs: Path, site: Path, s: RuntimeSpec) -> dict[str, str]:
                return _verify_guest(rootfs, site, s, qemu=qemu, cpu=cpu, env_dir=rootfs.parent)

            manifest = build_env(spec, env_dir, verify=verify, progress=progress)
    return _env_from(env_dir, manifest, built=built, seconds=time.monotonic() - started)


def _parse_harness_json(stdout: str, *, what: str) -> Any:
    text = stdout.strip()
    try:
        return json.loads(text)
    except ValueError:
        pass
    for start in (text.find("{"), text.find("[")):
        if start >= 0:
            try:
                return json.loads(text[start:])
            except ValueError:
                continue
    raise DeviceError(f"{what}: the harness did not print a JSON document: {' '.join(text.split())[-200:]!r}",
                      hint="run with --debug to see the harness output")


def _label(doc: dict[str, Any], emulation: dict[str, Any]) -> dict[str, Any]:
    doc = dict(doc)
    doc["source"] = "emulated"
    doc["emulation"] = emulation
    notes = doc.get("notes")
    notes = list(notes) if isinstance(notes, list) else ([notes] if notes else [])
    notes.append(f"{EMULATED_NOTE} (qemu -cpu {emulation['cpu']}, target {emulation['target']})")
    if emulation.get("cpu_override"):
        notes.append(f"CPU override {emulation['cpu']!r} differs from the target's {emulation['target_cpu']!r}: "
                     "results are NOT representative of the device"
                     + (f" ({UNSAFE_CPUS[emulation['cpu']]})" if emulation["cpu"] in UNSAFE_CPUS else ""))
    doc["notes"] = notes
    return doc


def _harness_error(proc: subprocess.CompletedProcess, what: str) -> EdgekitError:
    """Map a failed harness run to an edgekit error.

    The harness prints ``{"error": {"kind", "message"}}`` and exits 2 for bad input (model, inputs,
    an op the runtime lacks) or 3 for a runtime failure.
    """
    kind, reason = "", ""
    try:
        err = json.loads(proc.stdout).get("error") or {}
        kind, reason = str(err.get("kind") or ""), str(err.get("message") or "")
    except (ValueError, AttributeError):
        pass
    reason = " ".join((reason or proc.stderr or f"exit code {proc.returncode}").split())[-500:]
    if proc.returncode == 2:
        return ModelError(f"{what}: {reason}", hint="the device's runtime build rejects this model or input"
                          if kind in ("model", "op-unsupported") else None)
    error = DeviceError(f"{what}: the harness failed (exit {proc.returncode}{', ' + kind if kind else ''}): {reason}",
                        hint="run with --debug for the full output")
    error.child_traceback = proc.stderr  # type: ignore[attr-defined]
    return error


def run_harness(harness_args: Sequence[str], *, target: str, timeout: float = 600.0, runtime: str | None = None,
                cpu: str | None = None) -> Any:
    """Run the unmodified ``harness.py`` with ``harness_args`` on the emulated target.

    Args:
        harness_args: arguments after ``harness.py`` (model path first), as on the device.
        target: target name or profile path (raspberry-pi family).
        timeout: seconds before the emulated run is killed (``ChildCrash``).
        runtime: runtime override (see :func:`setup`).
        cpu: QEMU CPU override (diagnostics only; the result is marked as not representative).

    Returns:
        The harness JSON (a dict; a list of dicts if the harness printed several), each with
        ``source: "emulated"``, ``emulation{qemu, qemu_version, cpu, target, target_cpu, env, runtime,
        runtime_version, python, fake_cpuinfo, cpu_override}`` and the emulation note in ``notes``.
    """
    tgt = _load(target)
    wanted_cpu = target_cpu(tgt)
    qemu = require_qemu()
    env = setup(target=target, runtime=runtime)
    use_cpu = cpu or wanted_cpu
    check_cpu(qemu, use_cpu)
    view = cpu_view(env.root, env.rootfs, use_cpu)
    if not HARNESS.is_file():
        raise DeviceError(f"the on-device harness {HARNESS} is missing", hint="reinstall edgekit")
    what = f"emulated {tgt.name} run ({env.runtime} {env.runtime_version}, -cpu {use_cpu})"
    args = [str(a) for a in harness_args]
    if not any(a == "--source" or a.startswith("--source=") for a in args):
        args += ["--source", "emulated"]
    argv = _guest_argv(qemu, use_cpu, view, env.python, [str(HARNESS), *args])
    proc = _run_guest(argv, env=_guest_environ(env.site), timeout=timeout, what=what)
    if proc.returncode != 0:
        raise _harness_error(proc, what)
    doc = _parse_harness_json(proc.stdout, what=what)
    emulation = {"qemu": str(qemu.path), "qemu_version": qemu.version, "cpu": use_cpu, "target": tgt.name,
                 "target_cpu": wanted_cpu, "cpu_override": use_cpu != wanted_cpu, "env": env.name,
                 "runtime": env.runtime, "runtime_version": env.runtime_version, "python": env.python_version,
                 "numpy": env.numpy_version, "fake_cpuinfo": qemu.leaks_host_cpuinfo}
    if isinstance(doc, list):
        return [_label(d, emulation) if isinstance(d, dict) else d for d in doc]
    if not isinstance(doc, dict):
        raise DeviceError(f"{what}: the harness printed {type(doc).__name__}, expected a JSON object")
    return _label(doc, emulation)


# ---------------------------------------------------------------------------------------------
# parity: host vs emulated device on the same inputs
# ---------------------------------------------------------------------------------------------
def _write_inputs(inputs: Any, folder: Path) -> Path:
    """Save ``inputs`` in the harness's ``--inputs`` format (``.npy`` / ``.npz`` with ``input_<i>``)."""
    import numpy as np

    if isinstance(inputs, (str, os.PathLike)):
        path = Path(inputs)
        if not path.is_file():
            raise ConfigError(f"inputs file {path} does not exist", hint="pass an .npy/.npz file or an array")
        return path
    if isinstance(inputs, Mapping):
        arrays = {str(k): np.asarray(v) for k, v in inputs.items()}
    elif isinstance(inputs, (list, tuple)):
        arrays = {f"input_{i}": np.asarray(v) for i, v in enumerate(inputs)}
    else:
        arrays = {"input_0": np.asarray(inputs)}
    if not arrays or any(a.size == 0 for a in arrays.values()):
        raise ConfigError("emulated parity needs at least one input sample", hint="pass a non-empty array")
    path = folder / "inputs.npz"
    np.savez(path, **arrays)
    return path


def _run_host_harness(args: list[str], *, timeout: float) -> dict[str, Any]:
    what = "host run of the harness"
    try:
        proc = subprocess.run([sys.executable, str(HARNESS), *args, "--source", "measured-host"], capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise ChildCrash(f"{what}: timed out after {timeout:.0f} s") from exc
    if proc.returncode < 0:
        raise ChildCrash(f"{what}: the process crashed with {_signal_name(-proc.returncode)}")
    if proc.returncode != 0:
        raise _harness_error(proc, what)
    doc = _parse_harness_json(proc.stdout, what=what)
    if not isinstance(doc, dict):
        raise DeviceError(f"{what}: expected one JSON object")
    return doc


def _side(doc: dict[str, Any]) -> dict[str, Any]:
    device = doc.get("device") or {}
    out = {"runtime": doc.get("runtime"), "runtime_version": doc.get("runtime_version"),
           "machine": doc.get("machine"), "cpu_model": device.get("cpu_model"),
           "numpy_version": doc.get("numpy_version"), "python": device.get("python"), "source": doc.get("source")}
    if "emulation" in doc:
        out.update({k: doc["emulation"][k] for k in ("qemu_version", "cpu", "env", "cpu_override", "fake_cpuinfo")})
    return out


def emulated_parity(model_path: str | os.PathLike[str], inputs: Any, *, target: str, threads: int = 1,
                    timeout: float = 600.0, runtime: str | None = None, cpu: str | None = None,
                    worst: int = 5) -> dict[str, Any]:
    """Run the harness on the host and on the emulated target with the same inputs; compare outputs.

    Args:
        model_path: the ``.tflite`` model.
        inputs: an array ``(N, ...)`` for a single-input model, a list / dict (name → array) for
            several inputs, or a path to an ``.npy``/``.npz`` in the harness's ``--inputs`` format.
            Float data for an integer input is quantized with the input's scale/zero point by the
            harness, identically on both sides.
        target: raspberry-pi target (name or profile path).
        threads: interpreter threads on both sides.
        timeout: seconds per run (host and emulated separately).
        runtime: runtime override for the emulated side (see :func:`setup`).
        cpu: QEMU CPU override (diagnostics; marked in the result).
        worst: how many worst inputs to list.

    Returns:
        ``{schema_version, model{path,sha256}, target, cpu, source: "emulated", verdict, passed,
        samples, inputs_identical, outputs[compare_outputs(...)], worst_inputs[{index, output,
        max_diff, unit}], host{...}, emulated{...}, notes[]}``; ``passed`` is ``verdict != "different"``.
    """
    import numpy as np

    model = Path(model_path)
    if not model.is_file():
        raise ConfigError(f"model {model} does not exist", hint="pass the path of a .tflite file")
    with tempfile.TemporaryDirectory(prefix="edgekit-parity-") as tmp_name:
        tmp = Path(tmp_name)
        inputs_file = _write_inputs(inputs, tmp).resolve()
        common = [str(model.resolve()), "--threads", str(int(threads)), "--runs", "1", "--warmup", "0",
                  "--min-time", "0", "--inputs", str(inputs_file)]
        host_doc = _run_host_harness([*common, "--dump-outputs", str(tmp / "host.npz")], timeout=timeout)
        emu_doc = run_harness([*common, "--dump-outputs", str(tmp / "emulated.npz")], target=target,
                              timeout=timeout, runtime=runtime, cpu=cpu)
        with np.load(tmp / "host.npz", allow_pickle=False) as h, np.load(tmp / "emulated.npz", allow_pickle=False) as e:
            host_arrays = {k: h[k] for k in h.files}
            emu_arrays = {k: e[k] for k in e.files}
    details = host_doc.get("dump", {}).get("outputs") or host_doc.get("outputs") or []
    emu_details = emu_doc.get("dump", {}).get("outputs") or emu_doc.get("outputs") or []
    input_keys = sorted(k for k in host_arrays if k.startswith("input_"))
    inputs_identical = all(k in emu_arrays and np.array_equal(host_arrays[k], emu_arrays[k]) for k in input_keys)
    outputs = []
    for i, detail in enumerate(details):
        key = f"output_{i}"
        if key not in emu_arrays:
            outputs.append({"name": detail.get("name"), "verdict": "different",
                            "reason": "the emulated run produced no such output", "worst_inputs": []})
            continue
        result = compare_outputs(host_arrays[key], emu_arrays[key], output_details=detail, worst=worst)
        other = emu_details[i] if i < len(emu_details) else {}
        if other and (other.get("dtype") != detail.get("dtype") or other.get("scale") != detail.get("scale")):
            result["verdict"] = "different"
            result["reason"] = (f"output tensor differs: {detail.get('dtype')} scale {detail.get('scale')} on the host, "
                                f"{other.get('dtype')} scale {other.get('scale')} emulated")
        outputs.append(result)
    verdict = worst_verdict([o["verdict"] for o in outputs]) if outputs else "different"
    if not inputs_identical:
        verdict = "different"
    ranked = sorted(({"index": w["index"], "output": o.get("name"), "max_diff": w["max_diff"], "unit": o.get("unit")}
                     for o in outputs for w in o.get("worst_inputs", [])), key=lambda w: -w["max_diff"])
    seen_idx: set[int] = set()
    worst_inputs = []
    for w in ranked:
        if w["index"] not in seen_idx:
            seen_idx.add(w["index"])
            worst_inputs.append(w)
    emulation = emu_doc.get("emulation", {})
    notes = [EMULATED_NOTE]
    if emulation.get("cpu_override"):
        notes.append(f"CPU override {emulation.get('cpu')!r} instead of the target's {emulation.get('target_cpu')!r}: "
                     "not representative of the device")
    if not inputs_identical:
        notes.append("the host and emulated runs did not see identical inputs (numpy conversion differs)")
    samples = int(host_doc.get("dump", {}).get("samples") or 0)
    return {
        "schema_version": 1,
        "model": (host_doc.get("model") or {"path": str(model)}),
        "target": emulation.get("target"),
        "cpu": emulation.get("cpu"),
        "source": "emulated",
        "verdict": verdict,
        "passed": verdict != "different",
        "samples": samples,
        "threads": int(threads),
        "inputs_identical": inputs_identical,
        "outputs": outputs,
        "worst_inputs": worst_inputs[:worst],
        "host": _side(host_doc),
        "emulated": _side(emu_doc),
        "notes": notes,
    }


# ---------------------------------------------------------------------------------------------
# doctor
# ---------------------------------------------------------------------------------------------
def _check(name: str, ok: bool, detail: str, *, fix: str | None = None, required: bool = True) -> dict[str, Any]:
    return {"name": name, "ok": bool(ok), "required": required, "detail": detail, "fix": None if ok else fix}


def _emulatable_targets(targets: Sequence[str] | None) -> list[Any]:
    from .targets import list_targets

    if targets:
        return [_load(t) for t in targets]
    return [t for t in list_targets() if t.family in EMULATABLE_FAMILIES]


def doctor(*, targets: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """What emulation needs, what is present and the exact command to fix what is missing.

    Args:
        targets: targets whose cached environments to report (default: every raspberry-pi target).

    Returns:
        A list of ``{name, ok, required, detail, fix}``; ``required`` items must be ok for
        ``--emulate`` to work, the others (environments not built yet) are built on first use.
    """
    checks: list[dict[str, Any]] = []
    linux = os.uname().sysname == "Linux"
    checks.append(_check("linux host", linux, f"{os.uname().sysname} {os.uname().machine}",
                         fix="run emulation on a Linux machine or CI runner"))
    qemu = find_qemu() if linux else None
    qemu_fix = install_command(QEMU_PACKAGE)
    if qemu is None:
        checks.append(_check("qemu-aarch64", False, "qemu-aarch64 / qemu-aarch64-static not found on PATH"
                             + (" (EDGEKIT_QEMU is set)" if os.environ.get("EDGEKIT_QEMU") else ""), fix=qemu_fix))
    else:
        checks.append(_check("qemu-aarch64", True, f"{qemu.path} (QEMU {qemu.version})"))
        needed = sorted({c for c in ("cortex-a53", "cortex-a72", "cortex-a76")})
        missing = [c for c in needed if c not in qemu.cpus]
        checks.append(_check("qemu cpu models", not missing,
                             f"has {', '.join(needed)}" if not missing else f"missing {', '.join(missing)}",
                             fix=f"install a newer QEMU: {qemu_fix}"))
        checks.append(_check("guest /proc/cpuinfo", True,
                             "QEMU < 8.2 shows the guest the host's /proc/cpuinfo (LiteRT crashes on it): edgekit "
                             "gives each CPU model a matching one through the -L prefix" if qemu.leaks_host_cpuinfo
                             else "QEMU emulates /proc/cpuinfo itself", required=False))
    for tool, package in (("apt-get", "apt"), ("dpkg-deb", "dpkg")):
        path = shutil.which(tool)
        checks.append(_check(tool, path is not None, path or f"{tool} not found (needed once, to build the guest)",
                             fix=install_command(package)))
    from .emulator_rootfs import guest_sources

    try:
        sources = guest_sources()
        checks.append(_check("debian arm64 sources", True,
                             "; ".join(f"{s['uri']} {s['suites']}" for s in sources)))
    except ConfigError as exc:
        checks.append(_check("debian arm64 sources", False, exc.message, fix=install_command("debian-archive-keyring")))
    pip = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, text=True)
    checks.append(_check("pip", pip.returncode == 0, (pip.stdout.split(" from ")[0] if pip.returncode == 0
                                                      else f"{sys.executable} -m pip does not work"),
                         fix=f"{sys.executable} -m ensurepip --upgrade"))
    checks.append(_check("harness", HARNESS.is_file(), str(HARNESS), fix="reinstall edgekit"))
    root = emulator_root()
    checks.append(_check("cache dir", os.access(root if root.exists() else _first_existing(root), os.W_OK), str(root),
                         fix="set EDGEKIT_CACHE_DIR to a writable folder"))
    seen: set[str] = set()
    for tgt in _emulatable_targets(targets):
        try:
            spec = _spec_for(tgt, None)
            cpu = target_cpu(tgt)
        except ConfigError as exc:
            checks.append(_check(f"target {tgt.name}", False, exc.message, fix=exc.hint, required=False))
            continue
        env_dir = root / spec.env_name
        manifest = read_manifest(env_dir)
        if manifest is None:
            checks.append(_check(f"target {tgt.name}", False,
                                 f"environment {spec.env_name} not built yet (-cpu {cpu}); built on first use, "
                                 "about 30 s with network", fix=f"edgekit emulator setup --target {tgt.name}",
                                 required=False))
        elif spec.env_name not in seen:
            size_mb = env_size_bytes(env_dir) / 1e6
            checks.append(_check(f"target {tgt.name}", True,
                                 f"-cpu {cpu}, environment {spec.env_name}: Python {manifest['python']['version']}, "
                                 f"{manifest['runtime']['package']} {manifest['runtime']['version']}, numpy "
                                 f"{manifest.get('numpy')}, {size_mb:.0f} MB at {env_dir}", required=False))
        else:
            checks.append(_check(f"target {tgt.name}", True, f"-cpu {cpu}, environment {spec.env_name}",
                                 required=False))
        seen.add(spec.env_name)
    return checks


def _first_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
