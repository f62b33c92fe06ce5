"""Progress display for long steps: training epochs, conversion, calibration, benchmark runs.

A calm terminal: one transient bar or spinner per step, replaced by a single "✓ step (time)" line
when the step ends. Nothing is shown when stderr is not a terminal (CI logs, pipes), with
``--quiet`` or with ``--json``; the helpers then cost nothing. Output goes to ``sys.stderr`` so
stdout stays clean for ``--json``; inside :func:`edgekit.report.quiet_tf.quiet_child` that is still
the user's terminal while TensorFlow's native noise is captured.

Usage::

    from edgekit.report.progress import progress_bar, progress_enabled, step

    show = progress_enabled(quiet=quiet, as_json=as_json)      # in the CLI / parent
    with progress_bar(epochs, "fine-tuning (pruning)", enabled=show, unit="epoch") as advance:
        for epoch in range(epochs):
            ...
            advance(info=f"loss {loss:.3f}")
    with step("converting to int8", enabled=show):
        model_bytes = convert(...)
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol


class Advance(Protocol):
    """Moves a progress bar on: ``advance(steps=1, *, info=None, description=None)``."""

    def __call__(self, steps: float = 1, *, info: str | None = None, description: str | None = None) -> None: ...


def _noop(steps: float = 1, *, info: str | None = None, description: str | None = None) -> None:
    return None


def stderr_is_terminal() -> bool:
    """True when ``sys.stderr`` is an interactive terminal (not a pipe, file or CI log)."""
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def progress_enabled(*, quiet: bool = False, as_json: bool = False) -> bool:
    """Whether to draw progress: not with ``--quiet`` / ``--json``, nor when stderr is not a TTY.

    ``EDGEKIT_PROGRESS=0`` turns it off and ``EDGEKIT_PROGRESS=1`` forces it on (for screenshots
    and tests); ``--quiet`` and ``--json`` always win.
    """
    if quiet or as_json:
        return False
    forced = os.environ.get("EDGEKIT_PROGRESS")
    if forced in ("0", "1"):
        return forced == "1"
    return stderr_is_terminal()


def _live_allowed(enabled: bool) -> bool:
    return enabled and (stderr_is_terminal() or os.environ.get("EDGEKIT_PROGRESS") == "1")


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True, force_terminal=True if os.environ.get("EDGEKIT_PROGRESS") == "1" else None,
                   highlight=False)


def _elapsed(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    return f"{minutes} min {sec:02d} s"


@contextmanager
def progress_bar(total: float | None, description: str, *, enabled: bool = True, unit: str = "",
                 done: str | None = None) -> Iterator[Advance]:
    """A transient progress bar; yields ``advance(steps=1, *, info=None, description=None)``.

    Args:
        total: number of steps (epochs, runs, samples); None for an open-ended spinner.
        description: what is happening ("fine-tuning (pruning)").
        enabled: draw at all (pass :func:`progress_enabled`'s answer); without a terminal the bar
            is never drawn.
        unit: shown after the count ("epoch", "run").
        done: the line printed when the block ends without error; default "✓ description".
    """
    if not _live_allowed(enabled):
        yield _noop
        return
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                               TimeElapsedColumn)

    console = _console()
    columns: list[Any] = [SpinnerColumn(style="cyan"), TextColumn("{task.description}"),
                          BarColumn(bar_width=28, complete_style="cyan", finished_style="green")]
    if total is not None:
        columns.append(MofNCompleteColumn())
        if unit:
            columns.append(TextColumn(unit + ("s" if total != 1 else ""), style="dim"))
    columns += [TimeElapsedColumn(), TextColumn("{task.fields[info]}", style="dim")]
    started = time.perf_counter()
    with Progress(*columns, console=console, transient=True) as prog:
        task = prog.add_task(description, total=total, info="")

        def advance(steps: float = 1, *, info: str | None = None, description: str | None = None) -> None:
            fields: dict[str, Any] = {}
            if info is not None:
                fields["info"] = info
            if description is not None:
                fields["description"] = description
            prog.update(task, advance=steps, **fields)

        yield advance
        final = prog.tasks[0]
        count = f"{final.completed:g}/{total:g} {unit}{'s' if total != 1 and unit else ''}".strip() \
            if total is not None else ""
        info = final.fields.get("info") or ""
    tail = ", ".join(x for x in (count, _elapsed(time.perf_counter() - started)) if x)
    extra = f" · {info}" if info else ""
    console.print(f"[green]✓[/] {done or final.description} [dim]({tail}){extra}[/]")


@contextmanager
def step(description: str, *, enabled: bool = True, done: str | None = None) -> Iterator[None]:
    """A spinner while a step without a known length runs (conversion, calibration, a remote run).

    Prints "✓ description (1.2 s)" when the block ends without error; nothing when disabled or
    without a terminal.
    """
    if not _live_allowed(enabled):
        yield
        return
    console = _console()
    started = time.perf_counter()
    with console.status(f"{description}…", spinner="dots"):
        yield
    console.print(f"[green]✓[/] {done or description} [dim]({_elapsed(time.perf_counter() - started)})[/]")


def note(text: str, *, enabled: bool = True) -> None:
    """One calm line on stderr (a fact worth seeing mid-run); nothing when disabled or not a TTY."""
    if _live_allowed(enabled):
        _console().print(f"[dim]·[/] {text}")


def keras_epoch_callback(advance: Advance, *, base: type, metrics: tuple[str, ...] = ("loss", "accuracy")) -> Any:
    """A Keras callback that advances ``advance`` once per epoch, showing the epoch's metrics.

    Args:
        advance: from :func:`progress_bar` (total = epochs).
        base: the Keras ``Callback`` class to subclass, e.g. ``tf_keras.callbacks.Callback`` taken
            from :mod:`edgekit.keras_backend` (this module never imports TensorFlow).
        metrics: log keys to show, when present (``val_`` variants are shown too).

    Returns:
        A callback instance for ``model.fit(callbacks=[...])``.
    """
    def fmt(key: str, value: float) -> str:
        return f"{key} {100 * value:.1f} %" if "acc" in key else f"{key} {value:.4f}"

    def on_epoch_end(self: Any, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        shown = [fmt(k, float(logs[k])) for m in metrics for k in (m, f"val_{m}") if k in logs]
        advance(1, info=" · ".join(shown))

    cls = type("EdgekitEpochProgress", (base,), {"on_epoch_end": on_epoch_end})
    return cls()

