"""Run the harness on this machine in a child process (``measured-host``).

The harness runs as ``python <private copy of harness.py> ...`` in a fresh process: an interpreter
crash (segfault, abort) ends that process only and becomes a :class:`~edgekit.errors.ChildCrash`
(exit 3) naming the signal. The copy lives in a private temporary folder so nothing next to
``edgekit/harness.py`` can shadow a standard-library module in the child.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..errors import ChildCrash, ConfigError, DeviceError
from ..fsutil import atomic_write_bytes
from . import result
from .options import HarnessOptions

HARNESS_FILE = Path(__file__).resolve().parent.parent / "harness.py"
WHERE = "harness on this machine"


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        proc.kill()
    proc.wait(10)


def run_local(model: Path, options: HarnessOptions, *, compare: Path | None = None, inputs: Path | None = None,
              dump_outputs: Path | None = None, python: str | None = None, source: str = "measured-host",
              timeout: float | None = None) -> list[dict[str, Any]]:
    """Benchmark ``model`` here; return the validated harness documents (one per thread count).

    Args:
        model: the ``.tflite`` file.
        options: what to measure.
        compare: a second model, run interleaved with the first.
        inputs: a ``.npy``/``.npz`` of input samples (default: random within each input's range).
        dump_outputs: write the outputs for the inputs to this ``.npz`` (atomically).
        python: interpreter for the harness (default: this one). Any Python with numpy and a LiteRT
            runtime works, e.g. a virtual environment with only tflite-runtime.
        timeout: seconds before the child is killed (default: from the options).

    Raises:
        ChildCrash: the harness died by a signal or timed out (exit 3).
        ModelError / DataError / ConfigError: the harness rejected the model, inputs or flags (exit 2).
        DeviceError: the runtime is missing for ``python`` or the run failed (exit 3).
    """
    interpreter = python or sys.executable
    if python is not None and shutil.which(python) is None and not os.access(python, os.X_OK):
        raise ConfigError(f"--python {python}: not found or not executable",
                          hint="pass the path of a Python with numpy and a LiteRT runtime")
    limit = timeout if timeout is not None else options.time_limit(models=2 if compare else 1)
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-") as tmp:
        work = Path(tmp)
        harness_copy = work / "harness.py"
        shutil.copyfile(HARNESS_FILE, harness_copy)
        dump_tmp = work / "outputs.npz" if dump_outputs else None
        argv = [interpreter, str(harness_copy), *options.args(
            model=str(Path(model).resolve()), source=source,
            compare=str(Path(compare).resolve()) if compare else None,
            inputs=str(Path(inputs).resolve()) if inputs else None,
            dump_outputs=str(dump_tmp) if dump_tmp else None)]
        out_path, err_path = work / "stdout.json", work / "stderr.txt"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=tmp,
                                        start_new_session=True)
            except OSError as exc:
                raise DeviceError(f"cannot start {interpreter}: {exc.strerror or exc}",
                                  hint="pass --python with a working interpreter") from exc
            try:
                returncode = proc.wait(limit)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                raise ChildCrash(f"{WHERE}: timed out after {limit:.0f} s benchmarking {model}; the process was killed",
                                 hint="lower --runs/--max-time, or check that the model does not hang") from None
            except BaseException:
                _kill_group(proc)
                raise
        if out_path.stat().st_size > result.MAX_OUTPUT_BYTES:
            raise DeviceError(f"{WHERE}: the harness printed more than {result.MAX_OUTPUT_BYTES} bytes")
        stdout = out_path.read_text("utf-8", errors="replace")
        stderr = err_path.read_text("utf-8", errors="replace")
        if returncode != 0:
            raise result.failure(returncode, stdout, stderr, where=WHERE, model=str(model))
        docs = result.parse_docs(stdout, where=WHERE, with_samples=True, compare=compare is not None)
        if dump_outputs is not None and dump_tmp is not None:
            if not dump_tmp.is_file():
                raise DeviceError(f"{WHERE}: the harness wrote no outputs file")
            atomic_write_bytes(dump_outputs, dump_tmp.read_bytes())
            for doc in docs:
                if isinstance(doc.get("dump"), dict):
                    doc["dump"]["file"] = str(dump_outputs)
        return docs
