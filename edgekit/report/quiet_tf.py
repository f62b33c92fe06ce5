"""Keep TensorFlow's own log noise off the user's terminal; ``--debug`` shows it all.

TensorFlow and LiteRT talk on three channels, and each needs its own switch:

1. C++ logging that honours ``TF_CPP_MIN_LOG_LEVEL`` (set in the child's environment),
2. native lines that ignore it: absl's "All log messages before absl::InitializeLog()", the CUDA
   stub's "Could not find cuda drivers", the converter's "fully_quantize: 0, …", LiteRT's
   "INFO: Created TensorFlow Lite XNNPACK delegate" — only redirecting file descriptor 2 hides
   these (:func:`native_stderr_silenced`),
3. Python warnings and loggers (``tensorflow``, ``absl``, ``tf_keras``, tfmot) — filters and levels
   (:func:`quiet_python`).

:func:`quiet_child` applies all three around the work of a child process. While it is active the
Python-level ``sys.stderr`` still reaches the terminal, so edgekit's own progress bars and
messages stay visible; only what native code writes to fd 2 goes to a capture file.

This module never imports TensorFlow.
"""
from __future__ import annotations

import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

NOISY_PACKAGES = ("tensorflow", "tf_keras", "keras", "tensorflow_model_optimization", "absl", "ai_edge_litert",
                  "tflite_runtime", "tflite_micro", "h5py", "google.protobuf", "jax", "ml_dtypes")

_depth = 0  # nesting level of native_stderr_silenced in this process


def quiet_env(*, debug: bool = False) -> dict[str, str]:
    """Environment variables for a child process that will import TensorFlow.

    Args:
        debug: keep every log line (``TF_CPP_MIN_LOG_LEVEL=0``).
    """
    if debug:
        return {"TF_CPP_MIN_LOG_LEVEL": "0", "EDGEKIT_DEBUG": "1"}
    return {"TF_CPP_MIN_LOG_LEVEL": "3", "GRPC_VERBOSITY": "ERROR", "AUTOGRAPH_VERBOSITY": "0"}


def quiet_python(*, debug: bool = False) -> None:
    """Silence Python warnings and loggers of the ML stack in this process (nothing when ``debug``)."""
    if debug:
        return
    for pkg in NOISY_PACKAGES:
        pattern = pkg.replace(".", r"\.") + r"(\.|$)"
        warnings.filterwarnings("ignore", module=pattern)
        logging.getLogger(pkg).setLevel(logging.ERROR)
    # numpy / protobuf deprecation chatter raised on behalf of TensorFlow's import machinery
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:  # absl-py is pure Python (a TensorFlow dependency); TensorFlow's Python logging goes through it
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # pragma: no cover - absl ships with TensorFlow
        pass


class _Terminal:
    """The original stderr, kept open while fd 2 points at the capture file."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.stream: IO[str] = open(fd, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)


@contextmanager
def native_stderr_silenced(*, enabled: bool = True, log_path: str | os.PathLike[str] | None = None) -> Iterator[None]:
    """Point file descriptor 2 at a capture file while keeping ``sys.stderr`` on the terminal.

    Native libraries (TensorFlow, the converter, LiteRT) write straight to fd 2; Python code
    writes to ``sys.stderr``. Inside the block the first goes to ``log_path`` (or an anonymous
    temporary file), the second still reaches the user, so progress bars keep working. Nested
    uses are no-ops.

    Args:
        enabled: False makes this a no-op (``--debug``).
        log_path: keep the captured native output here (e.g. for a crash report); it is
            appended to, and the parent can read its tail when the child dies.
    """
    global _depth
    if not enabled or _depth:
        yield
        return
    try:
        sys.stderr.flush()
    except (AttributeError, ValueError, OSError):
        pass
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 at all (daemonized): nothing to silence
        yield
        return
    capture = open(log_path, "ab") if log_path else tempfile.TemporaryFile()
    old_stderr = sys.stderr
    terminal = _Terminal(saved)
    os.dup2(capture.fileno(), 2)
    sys.stderr = terminal.stream
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        try:
            terminal.stream.flush()
        except (ValueError, OSError):
            pass
        sys.stderr = old_stderr
        os.dup2(saved, 2)
        os.close(saved)
        capture.close()


@contextmanager
def quiet_child(*, debug: bool | None = None, log_path: str | os.PathLike[str] | None = None) -> Iterator[None]:
    """Everything at once, for the body of a child process that runs TensorFlow / LiteRT.

    Args:
        debug: show all logs; default: ``EDGEKIT_DEBUG=1`` in the environment.
        log_path: where native stderr output is kept (see :func:`native_stderr_silenced`).

    Call it before TensorFlow is imported: the environment variables only count then.
    """
    if debug is None:
        debug = os.environ.get("EDGEKIT_DEBUG") == "1"
    os.environ.update(quiet_env(debug=debug))
    quiet_python(debug=debug)
    with native_stderr_silenced(enabled=not debug, log_path=log_path):
        yield


def silenced() -> bool:
    """True while :func:`native_stderr_silenced` is active in this process."""
    return _depth > 0
