"""The ``edgekit`` command line: thin click commands over :mod:`edgekit.api`.

Every command maps :class:`~edgekit.errors.EdgekitError` to a one-line message on stderr and the
exit code of DESIGN.md §7 (2 usage/config/input, 1 failed check, 3 runtime failure). ``--debug``
shows the full traceback and TensorFlow's own logging.
"""
from __future__ import annotations

import functools
import json
import os
import sys
import traceback
from typing import Any, Callable

import click

from . import __version__
from .errors import EdgekitError


def _emit_json(doc: Any) -> None:
    click.echo(json.dumps(doc, indent=2, sort_keys=False, default=str))


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: turn edgekit errors into one line + exit code; ``debug`` kwarg shows tracebacks."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = bool(kwargs.get("debug")) or os.environ.get("EDGEKIT_DEBUG") == "1"
        if debug:
            os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        try:
            return fn(*args, **kwargs)
        except EdgekitError as exc:
            if debug:
                traceback.print_exc()
                tb = getattr(exc, "child_traceback", None)
                if tb:
                    click.echo(tb, err=True)
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("error: interrupted", err=True)
            sys.exit(130)

    return wrapper


def debug_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--debug", is_flag=True, help="Show full tracebacks and TensorFlow logs.")(fn)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="edgekit")
def main() -> None:
    """edgekit: take a trained Keras model to an edge device.

    Prune, quantize (QAT or post-training), convert to TFLite, then benchmark and validate the
    result against a target profile (Raspberry Pi, phone, microcontroller).
    """


# ---------------------------------------------------------------------------------------------
# compress (issue: foundation + compress)
# ---------------------------------------------------------------------------------------------
@main.command()
@click.argument("model", type=click.Path(dir_okay=True, path_type=str))
@click.option("--target", "target", metavar="NAME|FILE", default=None,
              help="Target profile name (see `edgekit targets list`) or a YAML file. Default: rpi4.")
@click.option("--data", "data", metavar="SPEC", default=None,
              help="An .npz (x_train,y_train,x_test,y_test or x,y) or builtin:fashion-mnist|digits|basic-motions.")
@click.option("--recipe", type=click.Path(exists=False, dir_okay=False), default=None,
              help="A recipe YAML file (target defaults < recipe < flags).")
@click.option("--prune", type=float, default=None, help="Target sparsity in [0, 1), e.g. 0.5. 0 disables pruning.")
@click.option("--structured", default=None, metavar="N:M", help="Structured N:M sparsity, e.g. 2:4.")
@click.option("--clusters", type=int, default=None, help="Weight clustering with K clusters.")
@click.option("--qat/--no-qat", default=None, help="Quantization-aware training (default: per target).")
@click.option("--quantize", type=click.Choice(["int8", "float16", "dynamic", "int16x8", "float32"]), default=None,
              help="Quantization of the exported .tflite (default: per target).")
@click.option("--io", "io_dtype", type=click.Choice(["int8", "float32"]), default=None,
              help="I/O dtype for --quantize int8 (default: per target).")
@click.option("--epochs", type=int, default=None, help="Fine-tuning epochs for pruning / QAT.")
@click.option("--tensorboard", type=click.Path(file_okay=False), default=None, help="Write TensorBoard logs here.")
@click.option("-o", "--output", "output", type=click.Path(file_okay=False), default="edgekit-out", show_default=True,
              help="Output directory for model.tflite and the reports.")
@click.option("--dry-run", is_flag=True, help="Print the resolved plan and pre-flight check; train nothing.")
@click.option("--trust-model", is_flag=True, help="Allow Lambda layers / custom objects (runs the model's code).")
@click.option("--no-cache", is_flag=True, help="Do not read or write the stage cache.")
@click.option("--json", "as_json", is_flag=True, help="Print the report JSON to stdout (nothing else).")
@click.option("--quiet", is_flag=True, help="No progress output.")
@debug_option
@handle_errors
def compress(model: str, target: str | None, data: str | None, recipe: str | None, prune: float | None,
             structured: str | None, clusters: int | None, qat: bool | None, quantize: str | None,
             io_dtype: str | None, epochs: int | None, tensorboard: str | None, output: str, dry_run: bool,
             trust_model: bool, no_cache: bool, as_json: bool, quiet: bool, debug: bool) -> None:
    """Compress MODEL for a target: prune, QAT, convert, validate, report."""
    from . import api
    from .report.console import print_compress_summary

    report = api.compress(
        model=model, target=target, data=data, recipe=recipe, prune=prune, structured=structured,
        clusters=clusters, qat=qat, quantize=quantize, io_dtype=io_dtype, epochs=epochs,
        tensorboard=tensorboard, output=output, dry_run=dry_run, trust_model=trust_model,
        use_cache=not no_cache, progress=not (quiet or as_json),
    )
    if as_json:
        _emit_json(report)
    elif not quiet:
        print_compress_summary(report)
    if isinstance(report, dict) and report.get("passed") is False:
        sys.exit(1)


# Further commands are added below, one section per area (targets, inspect, benchmark,
# validate/check, emulator, report). Keep each a few lines over api.py.
