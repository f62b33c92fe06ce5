"""Read what a harness run left behind: its JSON (validated, never trusted) or why it failed.

A device may be broken or hostile; its output is checked key by key before it becomes a result.
Exit statuses and the harness's error documents become edgekit errors with the right exit code:
a crash (signal) is :class:`~edgekit.errors.ChildCrash` (exit 3), a model the device's runtime
cannot run is :class:`~edgekit.errors.ModelError` (exit 2), a missing runtime on the device is a
:class:`~edgekit.errors.DeviceError` (exit 3) that says what to install.
"""
from __future__ import annotations

import json
import math
import re
import signal
from typing import Any

from ..errors import ChildCrash, ConfigError, DataError, DeviceError, EdgekitError, ModelError

LATENCY_KEYS = ("min", "p50", "p90", "p99", "mean", "std")
MAX_OUTPUT_BYTES = 64 * 1024 * 1024

_KIND_TO_ERROR: dict[str, type[EdgekitError]] = {
    "usage": ConfigError, "model": ModelError, "op-unsupported": ModelError, "data": DataError,
    "runtime-missing": DeviceError, "runtime": DeviceError, "interrupted": DeviceError,
}


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _tail(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat[-limit:]


def decode_json(stdout: str, *, where: str) -> Any:
    """Parse the harness's stdout; tolerate lines printed before it (e.g. a remote shell's rc file)."""
    text = stdout.strip()
    if not text:
        raise DeviceError(f"{where}: the harness printed no result", hint="run with --debug to see its stderr")
    try:
        return json.loads(text)
    except ValueError:
        pass
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line[:1] in ("{", "["):
            try:
                return json.loads("\n".join(lines[i:]))
            except ValueError:
                break
    raise DeviceError(f"{where}: the harness output is not valid JSON: {_tail(text, 160)!r}",
                      hint="the device or its Python printed something unexpected; nothing was recorded")


def _number(value: Any, where: str, key: str, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise DeviceError(f"{where}: invalid result from the harness: {key} is {value!r}, expected a number >= 0",
                          hint="nothing was recorded")


def _int(value: Any, where: str, key: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DeviceError(f"{where}: invalid result from the harness: {key} is {value!r}, expected an integer >= 1",
                          hint="nothing was recorded")


def _string(value: Any, where: str, key: str) -> None:
    if not isinstance(value, str) or not value or len(value) > 200:
        raise DeviceError(f"{where}: invalid result from the harness: {key} is {value!r}, expected a short string",
                          hint="nothing was recorded")


def _check_latencies(doc: dict[str, Any], where: str, prefix: str, *, with_samples: bool) -> None:
    lat = doc.get("latency_ms")
    if not isinstance(lat, dict):
        raise DeviceError(f"{where}: invalid result from the harness: {prefix}latency_ms is missing",
                          hint="nothing was recorded")
    for key in LATENCY_KEYS:
        _number(lat.get(key), where, f"{prefix}latency_ms.{key}")
    if not lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"]:
        raise DeviceError(f"{where}: invalid result from the harness: {prefix}latency percentiles are not ordered",
                          hint="nothing was recorded")
    _int(doc.get("runs"), where, f"{prefix}runs")
    _number(doc.get("init_ms"), where, f"{prefix}init_ms")
    ci = doc.get("p50_ci_ms")
    if ci is not None:
        if not isinstance(ci, list) or len(ci) != 2:
            raise DeviceError(f"{where}: invalid result from the harness: {prefix}p50_ci_ms is {ci!r}")
        for k, v in enumerate(ci):
            _number(v, where, f"{prefix}p50_ci_ms[{k}]")
    samples = doc.get("samples_ms")
    if with_samples or samples is not None:
        if not isinstance(samples, list) or len(samples) != doc["runs"]:
            raise DeviceError(f"{where}: invalid result from the harness: {prefix}samples_ms does not hold "
                              f"{doc['runs']} latencies", hint="nothing was recorded")
        for v in samples:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise DeviceError(f"{where}: invalid result from the harness: {prefix}samples_ms holds {v!r}",
                                  hint="nothing was recorded")


def validate_doc(doc: Any, *, where: str, with_samples: bool = False, compare: bool = False) -> dict[str, Any]:
    """Check one benchmark document from a harness; return it unchanged or raise DeviceError."""
    if not isinstance(doc, dict):
        raise DeviceError(f"{where}: invalid result from the harness: expected a JSON object, got "
                          f"{type(doc).__name__}", hint="nothing was recorded")
    if doc.get("schema_version") != 1:
        raise DeviceError(f"{where}: the harness result has schema_version {doc.get('schema_version')!r}, expected 1",
                          hint="the device runs a different harness version; nothing was recorded")
    for key in ("runtime", "runtime_version", "machine", "source"):
        _string(doc.get(key), where, key)
    _int(doc.get("threads"), where, "threads")
    _number(doc.get("peak_rss_mb"), where, "peak_rss_mb", allow_none=True)
    _check_latencies(doc, where, "", with_samples=with_samples)
    if compare:
        sub = doc.get("compare")
        if not isinstance(sub, dict):
            raise DeviceError(f"{where}: invalid result from the harness: the compare section is missing",
                              hint="nothing was recorded")
        _check_latencies(sub, where, "compare.", with_samples=with_samples)
    return doc


def parse_docs(stdout: str, *, where: str, with_samples: bool = False, compare: bool = False) -> list[dict[str, Any]]:
    """Decode and validate a successful harness run (one document or a list of them)."""
    data = decode_json(stdout, where=where)
    docs = data if isinstance(data, list) else [data]
    if not docs:
        raise DeviceError(f"{where}: the harness returned an empty list", hint="nothing was recorded")
    return [validate_doc(d, where=where, with_samples=with_samples, compare=compare) for d in docs]


def harness_error(stdout: str, *, where: str, rename: dict[str, str] | None = None) -> EdgekitError | None:
    """The harness's own error document, as an edgekit error (None if stdout holds none).

    ``rename`` maps the file names the harness saw (edgekit's own names on a device) back to the
    user's paths, so the message names the user's file.
    """
    try:
        data = json.loads(stdout.strip())
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("error"), dict):
        return None
    kind = str(data["error"].get("kind", ""))
    message = " ".join(str(data["error"].get("message", "")).split())[:1000]
    for theirs, ours in (rename or {}).items():
        message = re.sub(rf"(?<![\w./-]){re.escape(theirs)}(?![\w.-])", lambda _m, ours=ours: ours, message)
    cls = _KIND_TO_ERROR.get(kind, DeviceError)
    return cls(f"{where}: {message}" if message else f"{where}: the harness failed ({kind})")


def failure(returncode: int, stdout: str, stderr: str, *, where: str, model: str,
            rename: dict[str, str] | None = None) -> EdgekitError:
    """Explain a harness run that did not exit 0.

    Args:
        returncode: the process status; negative = killed by that signal (local child), 128+N =
            a shell reporting death by signal N (remote).
        where: "harness on this machine" / "harness on pi@host".
    """
    signum = -returncode if returncode < 0 else (returncode - 128 if 128 < returncode < 160 else None)
    if signum:
        name = signal_name(signum)
        hint = {
            "SIGSEGV": "the runtime crashed on this model; with tflite-runtime a corrupt or unusual model can do "
                       "this (it does not verify models); try ai-edge-litert",
            "SIGKILL": "killed from outside: out of memory on the device, or a timeout",
            "SIGABRT": "the runtime aborted (an internal check failed)",
            "SIGBUS": "the model file was changed or truncated while it was mapped",
        }.get(name, "run with --debug to see the harness output")
        err: EdgekitError = ChildCrash(f"{where}: the interpreter crashed with {name} while running {model}; "
                                       "no result was recorded", hint=hint)
    else:
        err = harness_error(stdout, where=where, rename=rename) or DeviceError(
            f"{where}: the harness failed with exit code {returncode}: {_tail(stderr) or 'no output'}",
            hint="run with --debug to see its full output")
    err.child_traceback = stderr  # type: ignore[attr-defined]
    return err
