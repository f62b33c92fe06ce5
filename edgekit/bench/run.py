"""``edgekit.benchmark``: measure a model's latency here, on devices over SSH, or emulated.

Precedence for what to measure: the target's defaults (thread count; CPU affinity for runs on this
machine) < explicit arguments. Every result is a harness document (DESIGN.md §7) labelled with where
it was measured: ``measured-host``, ``measured-device`` or ``emulated``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from ..errors import ConfigError, DeviceError, EdgekitError
from . import compare as compare_mod
from .local import run_local
from .options import HarnessOptions, parse_cpus, parse_threads
from .verify import check_inputs_file, check_model_file, check_output_path, verify_flatbuffer

EMULATOR_MISSING = "--emulate needs the emulator; run `edgekit emulator setup`"


def _target_defaults(target: str | None) -> tuple[Any, str | None]:
    if target is None:
        return None, None
    from ..targets import load_target

    tgt = load_target(target)
    return tgt, tgt.name


def _host_affinity(tgt: Any, notes: list[str]) -> tuple[int, ...] | None:
    """CPUs 0..cores-1 of this machine for a target with ``cores`` cores (as many as exist here)."""
    avail = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    cores = int(tgt.hardware.cores)
    chosen = tuple(avail[:cores])
    if len(avail) < cores:
        notes.append(f"target {tgt.name} has {cores} cores; this machine offers {len(avail)} CPUs, so its "
                     f"threads share CPUs {','.join(str(c) for c in chosen)}: host numbers are not device numbers")
    if tgt.threads > len(chosen):
        notes.append(f"{tgt.threads} threads on {len(chosen)} CPUs: oversubscribed")
    return chosen


def _emulator_run(args: list[str], *, target: str, timeout: float) -> Any:
    import importlib

    try:
        emulator = importlib.import_module("edgekit.emulator")
    except ImportError as exc:
        raise ConfigError(EMULATOR_MISSING) from exc
    run_harness = getattr(emulator, "run_harness", None)
    if run_harness is None:
        raise ConfigError(EMULATOR_MISSING)
    return run_harness(args, target=target, timeout=timeout)


def _finish(doc: dict[str, Any], *, model: Path, compare: Path | None, target_name: str | None, source: str,
            notes: list[str], keep_samples: bool, confidence: float, seed: int) -> dict[str, Any]:
    doc["source"] = source
    doc["target"] = target_name
    if isinstance(doc.get("model"), dict):
        doc["model"]["path"] = str(model)
    if compare is not None and isinstance(doc.get("compare"), dict):
        if isinstance(doc["compare"].get("model"), dict):
            doc["compare"]["model"]["path"] = str(compare)
        compare_mod.add_comparison(doc, model_name=model.name, other_name=compare.name,
                                   confidence=confidence, seed=seed)
    if notes:
        existing = doc.get("notes")
        doc["notes"] = (list(existing) if isinstance(existing, list) else []) + notes
    if not keep_samples:
        doc.pop("samples_ms", None)
        if isinstance(doc.get("compare"), dict):
            doc["compare"].pop("samples_ms", None)
    return doc


def benchmark(*, model: str | os.PathLike[str], target: str | None = None,
              threads: int | str | Sequence[int] | None = None, runs: int = 100, warmup: int = 5,
              min_time: float = 1.0, max_time: float = 60.0, hosts: Sequence[str] = (),
              identity: str | os.PathLike[str] | None = None, known_hosts: str | os.PathLike[str] | None = None,
              remote_python: str = "python3", compare: str | os.PathLike[str] | None = None, emulate: bool = False,
              cpus: str | Sequence[int] | None = None, xnnpack: bool = True, runtime: str = "auto",
              inputs: str | os.PathLike[str] | None = None, dump_outputs: str | os.PathLike[str] | None = None,
              seed: int = 0, python: str | None = None, keep_samples: bool = False,
              confidence: float = 0.95, connect_timeout: int = 10,
              timeout: float | None = None) -> dict[str, Any] | list[dict[str, Any]]:
    """Measure a ``.tflite`` model's latency with the on-device harness.

    Args:
        model: the ``.tflite`` file.
        target: a target name or profile YAML: its ``threads`` is the default thread count, and on
            this machine the harness is pinned to as many CPUs as the target has cores.
        threads: a thread count or a list for a sweep (``"1,2,4"``); each gets a speed-up.
        runs: minimum timed runs (also bounded by ``min_time``/``max_time`` seconds).
        warmup: minimum warm-up runs; warm-up continues until latency is stable (0: none).
        hosts: ``[user@]host[:port]`` devices to run on over SSH (in parallel); none: this machine.
        identity: SSH private key. known_hosts: the known_hosts file to trust (strict checking).
        remote_python: the device's Python (e.g. a virtual environment's ``bin/python``).
        compare: a second model run interleaved with ``model``; adds ``compare`` with the ratio of
            medians, its confidence interval and a verdict to each document.
        emulate: run in the emulated target (QEMU) instead (``source: emulated``).
        cpus: pin to these CPUs (``"0-3"``), overriding the target's affinity.
        xnnpack: use the XNNPACK delegate (the runtime's default).
        runtime: ``auto`` | ``ai_edge_litert`` | ``tflite_runtime`` | ``tensorflow``.
        inputs: ``.npy``/``.npz`` inputs (default: random within each input's range).
        dump_outputs: save the model's outputs for those inputs to this ``.npz`` (parity checks).
        python: local interpreter for the harness (default: this one).
        keep_samples: keep every per-run latency (``samples_ms``) in the result.

    Returns:
        One document (DESIGN.md §7 ``benchmark`` keys and more), or a list of them for several
        thread counts or hosts.

    Raises:
        ModelError / DataError / ConfigError (exit 2): bad model, inputs, flags or an op the
            device's runtime lacks. DeviceError / ChildCrash (exit 3): crash, unreachable device,
            missing runtime on the device. A DeviceError for a fleet carries the successful
            documents in ``.results``.
    """
    model_path = Path(model)
    check_model_file(model_path)
    compare_path = Path(compare) if compare is not None else None
    if compare_path is not None:
        check_model_file(compare_path, flag="--compare")
    inputs_path = Path(inputs) if inputs is not None else None
    if inputs_path is not None:
        check_inputs_file(inputs_path)
    dump_path = Path(dump_outputs) if dump_outputs is not None else None
    if dump_path is not None:
        check_output_path(dump_path, flag="--dump-outputs")
    host_list = list(hosts or ())
    if emulate and host_list:
        raise ConfigError("--emulate and --host exclude each other", hint="emulate here, or measure on the device")
    if dump_path is not None and len(host_list) > 1:
        raise ConfigError("--dump-outputs takes one device at a time", hint="pass a single --host")
    if not 0.5 <= confidence < 1.0:
        raise ConfigError(f"confidence {confidence}: expected a value in [0.5, 1)")
    from .ssh import parse_host

    parsed_hosts = [parse_host(h) for h in host_list]

    notes: list[str] = []
    if emulate and target is None:
        from ..targets import DEFAULT_TARGET

        target = DEFAULT_TARGET
        notes.append(f"--emulate without --target: emulating {DEFAULT_TARGET}")
    tgt, target_name = _target_defaults(target)
    thread_counts = parse_threads(threads) or ((int(tgt.threads),) if tgt is not None else (1,))
    cpu_list = parse_cpus(cpus)
    if cpu_list is None and tgt is not None and not host_list and not emulate:
        cpu_list = _host_affinity(tgt, notes)
    options = HarnessOptions(threads=thread_counts, runs=int(runs), warmup=int(warmup), min_time=float(min_time),
                             max_time=float(max_time), cpus=cpu_list, xnnpack=bool(xnnpack), runtime=runtime,
                             seed=int(seed))

    unverified_runtime = bool(host_list) or emulate or python is not None or runtime not in ("auto", "ai_edge_litert")
    if unverified_runtime:
        verify_flatbuffer(model_path)
        if compare_path is not None:
            verify_flatbuffer(compare_path)

    finish = dict(model=model_path, compare=compare_path, target_name=target_name, notes=notes,
                  keep_samples=keep_samples, confidence=confidence, seed=int(seed))
    if emulate:
        limit = timeout or options.time_limit(models=2 if compare_path else 1) * 20  # QEMU is 5-20x slower
        from .result import validate_doc

        args = options.args(model=str(model_path.resolve()), source="emulated",
                            compare=str(compare_path.resolve()) if compare_path else None,
                            inputs=str(inputs_path.resolve()) if inputs_path else None,
                            dump_outputs=str(dump_path.resolve()) if dump_path else None)
        raw = _emulator_run(args, target=str(target), timeout=limit)
        raw_docs = raw if isinstance(raw, list) else [raw]
        docs = [validate_doc(d, where=f"emulated {target_name}", with_samples=True,
                             compare=compare_path is not None) for d in raw_docs]
        out = [_finish(d, source="emulated", **finish) for d in docs]
    elif host_list:
        from .ssh import run_hosts

        outcomes = run_hosts(parsed_hosts, model_path, options,
                             identity=Path(identity).expanduser() if identity else None,
                             known_hosts=Path(known_hosts).expanduser().resolve() if known_hosts else None,
                             remote_python=remote_python, compare=compare_path, inputs=inputs_path,
                             dump_outputs=dump_path, connect_timeout=connect_timeout)
        out = []
        failures: list[tuple[str, EdgekitError]] = []
        for host, outcome in outcomes:
            if isinstance(outcome, EdgekitError):
                failures.append((host.display, outcome))
            else:
                out.extend(_finish(d, source="measured-device", **finish) for d in outcome)
        if failures:
            if len(outcomes) == 1:
                raise failures[0][1]
            err = DeviceError(f"{len(failures)} of {len(outcomes)} devices failed: "
                              + "; ".join(str(e) for _, e in failures),
                              hint="the other devices' results are still reported")
            err.results = out  # type: ignore[attr-defined]
            err.exit_code = max(e.exit_code for _, e in failures)
            raise err
    else:
        docs = run_local(model_path, options, compare=compare_path, inputs=inputs_path, dump_outputs=dump_path,
                         python=python, timeout=timeout)
        out = [_finish(d, source="measured-host", **finish) for d in docs]
    return out[0] if len(out) == 1 else out
