"""Run a function in a separate process so that a crash there cannot take the CLI down.

TensorFlow's converter segfaults on some inputs, interpreters crash on malformed models, and
deserializing a model can run its code. Everything of that kind goes through :func:`run_in_child`.
The child is started with the ``spawn`` method (no inherited TensorFlow state); the function and
its arguments must be picklable (module-level functions, plain data).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import traceback
from typing import Any, Callable

from .errors import ChildCrash, EdgekitError


def _child_main(conn, fn, args, kwargs, env):  # pragma: no cover - runs in the child
    os.environ.update(env)
    from .report.quiet_tf import quiet_child

    try:
        with quiet_child():
            result = fn(*args, **kwargs)
        conn.send(("ok", result))
    except EdgekitError as exc:
        conn.send(("edgekit", exc))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, never swallowed
        conn.send(("error", f"{type(exc).__name__}: {exc}", traceback.format_exc()))
    finally:
        conn.close()


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def run_in_child(
    fn: Callable[..., Any],
    *args: Any,
    what: str,
    timeout: float | None = 3600.0,
    env: dict[str, str] | None = None,
    **kwargs: Any,
) -> Any:
    """Call ``fn(*args, **kwargs)`` in a fresh child process and return its result.

    Args:
        fn: a module-level function (picklable).
        what: a short description used in error messages ("converting model.keras").
        timeout: seconds before the child is killed; ``None`` waits forever.
        env: extra environment variables for the child.

    Raises:
        EdgekitError: whatever ``EdgekitError`` the function raised, unchanged.
        ChildCrash: the child died by a signal, timed out, or raised an unexpected exception.
    """
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    child_env = {"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}
    child_env.update(env or {})
    proc = ctx.Process(target=_child_main, args=(child, fn, args, kwargs, child_env), daemon=True)
    proc.start()
    child.close()
    try:
        message = None
        if parent.poll(timeout):
            try:
                message = parent.recv()
            except EOFError:
                message = None
        else:
            proc.kill()
            proc.join(5)
            raise ChildCrash(f"{what}: timed out after {timeout:.0f} s; the child process was killed",
                             hint="use a smaller model or dataset, or raise the timeout")
        proc.join(30)
    except KeyboardInterrupt:
        proc.kill()
        proc.join(5)
        raise
    finally:
        parent.close()
        if proc.is_alive():
            proc.kill()
            proc.join(5)
    if message is None:
        code = proc.exitcode
        if code == -signal.SIGKILL:
            raise ChildCrash(f"{what}: the process was killed (SIGKILL), most likely by the kernel for running "
                             "out of memory", hint="free memory, or use a smaller model, batch or dataset")
        if code is not None and code < 0:
            raise ChildCrash(f"{what}: the process crashed with {_signal_name(code)}",
                             hint="this is a bug in TensorFlow/LiteRT triggered by this input; run with --debug for details")
        raise ChildCrash(f"{what}: the process exited with code {code} without a result")
    kind = message[0]
    if kind == "ok":
        return message[1]
    if kind == "edgekit":
        raise message[1]
    _, text, tb = message
    err = ChildCrash(f"{what}: unexpected error: {text}")
    err.child_traceback = tb  # type: ignore[attr-defined]
    raise err
