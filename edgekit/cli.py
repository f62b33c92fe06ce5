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
            os.environ["EDGEKIT_DEBUG"] = "1"  # child processes keep TensorFlow's full logs
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
    from .report.progress import progress_enabled

    report = api.compress(
        model=model, target=target, data=data, recipe=recipe, prune=prune, structured=structured,
        clusters=clusters, qat=qat, quantize=quantize, io_dtype=io_dtype, epochs=epochs,
        tensorboard=tensorboard, output=output, dry_run=dry_run, trust_model=trust_model,
        use_cache=not no_cache, progress=progress_enabled(quiet=quiet, as_json=as_json),
    )
    if as_json:
        _emit_json(report)
    elif not quiet:
        print_compress_summary(report)
    if isinstance(report, dict) and report.get("passed") is False:
        sys.exit(1)


# ---------------------------------------------------------------------------------------------
# targets + inspect (issue 4: target profiles, offline model analysis per target)
# ---------------------------------------------------------------------------------------------
@main.group("targets")
def targets_group() -> None:
    """List and show target profiles (built-in and on EDGEKIT_TARGETS_PATH)."""


@targets_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print [{name, family, description, ...}] as JSON.")
@debug_option
@handle_errors
def targets_list(as_json: bool, debug: bool) -> None:
    """List the known target profiles."""
    from .targets import list_targets, target_summary

    targets = list_targets()
    if as_json:
        _emit_json([target_summary(t) for t in targets])
    else:
        from .analysis.render import print_targets

        print_targets(targets)


@targets_group.command("show")
@click.argument("name", metavar="NAME|FILE")
@click.option("--json", "as_json", is_flag=True, help="Print the whole profile as JSON.")
@debug_option
@handle_errors
def targets_show(name: str, as_json: bool, debug: bool) -> None:
    """Show one target profile (hardware, runtime, budgets, estimator coefficients)."""
    from .targets import load_target, target_document

    target = load_target(name)
    if as_json:
        _emit_json(target_document(target))
    else:
        from .analysis.render import print_target

        print_target(target)


@main.command("inspect")
@click.argument("model", type=click.Path(path_type=str))
@click.option("--target", "targets", metavar="NAME|FILE", multiple=True,
              help="Target profile to check against (repeatable). Default: every known target.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for the latency estimates. Default: each target's own (all big cores).")
@click.option("--json", "as_json", is_flag=True, help="Print the inspect JSON to stdout.")
@debug_option
@handle_errors
def inspect_cmd(model: str, targets: tuple[str, ...], threads: int | None, as_json: bool, debug: bool) -> None:
    """Ops, size, MACs, tensor arena, op support and estimated latency of a .tflite, per target."""
    from .api import inspect as inspect_model

    doc = inspect_model(model=model, targets=list(targets) or None, threads=threads)
    if as_json:
        _emit_json(doc)
    else:
        from .analysis.render import print_inspect

        print_inspect(doc)


# ---------------------------------------------------------------------------------------------
# benchmark (issue 5: on-device harness, local / SSH runners, interleaved comparison)
# ---------------------------------------------------------------------------------------------
@main.command()
@click.argument("model", type=click.Path(path_type=str))
@click.option("--target", metavar="NAME|FILE", default=None,
              help="Target profile: its thread count, and (on this machine) CPU affinity for its core count.")
@click.option("--threads", metavar="N[,N..]", default=None,
              help="Thread count, or a sweep such as 1,2,4 (reports the speed-up). Default: the target's, else 1.")
@click.option("--runs", type=int, default=100, show_default=True, help="Minimum timed runs.")
@click.option("--warmup", type=int, default=5, show_default=True,
              help="Minimum warm-up runs; warm-up continues until latency is stable (0: none).")
@click.option("--min-time", type=float, default=1.0, show_default=True, help="Minimum timed seconds.")
@click.option("--max-time", type=float, default=60.0, show_default=True,
              help="Maximum timed seconds per model and thread count.")
@click.option("--cpus", metavar="LIST", default=None, help="Pin the harness to these CPUs, e.g. 0-3 or 0,2.")
@click.option("--no-xnnpack", is_flag=True, help="Builtin kernels only, without the XNNPACK delegate.")
@click.option("--runtime", type=click.Choice(["auto", "ai_edge_litert", "tflite_runtime", "tensorflow"]),
              default="auto", show_default=True, help="Runtime the harness uses.")
@click.option("--inputs", metavar="FILE", default=None,
              help="Inputs from a .npy/.npz (default: random within each input's quantized range).")
@click.option("--dump-outputs", metavar="FILE", default=None,
              help="Save the outputs for the inputs to this .npz (to compare device and reference).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for random inputs.")
@click.option("--host", "hosts", multiple=True, metavar="[USER@]HOST[:PORT]",
              help="Run on this device over SSH (repeat for a fleet, run in parallel).")
@click.option("--identity", metavar="KEY", default=None, help="SSH private key for --host.")
@click.option("--known-hosts", metavar="FILE", default=None,
              help="known_hosts file to trust for --host (strict checking; unknown keys are refused).")
@click.option("--remote-python", metavar="PATH", default="python3", show_default=True,
              help="Python on the device (e.g. a virtual environment's bin/python).")
@click.option("--python", "local_python", metavar="PATH", default=None,
              help="Python for a run on this machine (default: edgekit's own).")
@click.option("--compare", metavar="OTHER.tflite", default=None,
              help="Run OTHER interleaved with MODEL; report the ratio of medians, its CI and significance.")
@click.option("--emulate", is_flag=True, help="Run in the emulated target (QEMU) instead.")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON result (a list for several threads/hosts).")
@debug_option
@handle_errors
def benchmark(model: str, target: str | None, threads: str | None, runs: int, warmup: int, min_time: float,
              max_time: float, cpus: str | None, no_xnnpack: bool, runtime: str, inputs: str | None,
              dump_outputs: str | None, seed: int, hosts: tuple[str, ...], identity: str | None,
              known_hosts: str | None, remote_python: str, local_python: str | None, compare: str | None,
              emulate: bool, as_json: bool, debug: bool) -> None:
    """Measure MODEL's latency here, on devices over SSH (--host), or emulated (--emulate)."""
    from .api import benchmark as run_benchmark
    from .errors import DeviceError

    try:
        result = run_benchmark(
            model=model, target=target, threads=threads, runs=runs, warmup=warmup, min_time=min_time,
            max_time=max_time, hosts=list(hosts), identity=identity, known_hosts=known_hosts,
            remote_python=remote_python, compare=compare, emulate=emulate, cpus=cpus, xnnpack=not no_xnnpack,
            runtime=runtime, inputs=inputs, dump_outputs=dump_outputs, seed=seed, python=local_python)
    except DeviceError as exc:  # a fleet: show the devices that worked, then fail
        partial = getattr(exc, "results", None)
        if partial:
            if as_json:
                _emit_json(partial)
            else:
                from .bench.render import print_benchmark

                print_benchmark(partial)
        raise
    if as_json:
        _emit_json(result)
    else:
        from .bench.render import print_benchmark

        print_benchmark(result)


# Further commands are added below, one section per area (targets, inspect, benchmark,
# validate/check, emulator, report). Keep each a few lines over api.py.


# ---------------------------------------------------------------------------------------------
# emulator (issue 8: run the real aarch64 LiteRT under QEMU user mode)
# ---------------------------------------------------------------------------------------------
@main.group()
def emulator() -> None:
    """Emulate a Raspberry Pi's CPU + runtime with QEMU user mode (used by --emulate)."""


@emulator.command("setup")
@click.option("--target", metavar="NAME|FILE", default="rpi4", show_default=True,
              help="Raspberry Pi target whose runtime (name + version) and CPU to prepare.")
@click.option("--runtime", metavar="SPEC", default=None,
              help="Override the target's runtime, e.g. tflite-runtime==2.14.0 or ai-edge-litert==2.3.0.")
@click.option("--json", "as_json", is_flag=True, help="Print the environment summary as JSON.")
@debug_option
@handle_errors
def emulator_setup(target: str, runtime: str | None, as_json: bool, debug: bool) -> None:
    """Build (once) and cache the target's emulated aarch64 Python + runtime."""
    from .emulator import setup

    progress = None if as_json else (lambda msg: click.echo(f"  {msg} ...", err=True))
    env = setup(target=target, runtime=runtime, progress=progress)
    if as_json:
        _emit_json({"schema_version": 1, **env.as_dict()})
        return
    state = f"built in {env.seconds:.0f} s" if env.built else "already set up"
    click.echo(f"{env.name}: {state}: Python {env.python_version}, {env.runtime} {env.runtime_version}, "
               f"numpy {env.numpy_version}\n  {env.root}")


@emulator.command("doctor")
@click.option("--target", "targets", metavar="NAME", multiple=True,
              help="Report these targets' environments (default: every raspberry-pi target).")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@debug_option
@handle_errors
def emulator_doctor(targets: tuple[str, ...], as_json: bool, debug: bool) -> None:
    """Say what emulation needs, what is missing and the command that installs it. Exit 1 if unusable."""
    from .emulator import doctor

    checks = doctor(targets=list(targets) or None)
    ready = all(c["ok"] for c in checks if c["required"])
    if as_json:
        _emit_json({"schema_version": 1, "ready": ready, "checks": checks})
    else:
        for c in checks:
            mark = "ok" if c["ok"] else ("MISSING" if c["required"] else "not yet")
            click.echo(f"[{mark:>7}] {c['name']}: {c['detail']}")
            if c["fix"]:
                click.echo(f"          fix: {c['fix']}")
        click.echo("emulation ready" if ready else "emulation NOT ready: run the fix commands above")
    if not ready:
        sys.exit(1)


# ---------------------------------------------------------------------------------------------
# validate / check (issue 6: accuracy validation and the CI regression gate)
# ---------------------------------------------------------------------------------------------
@main.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=str))
@click.option("--data", "data", metavar="SPEC", required=True,
              help="Evaluation data: an .npz (x_test,y_test used) or builtin:fashion-mnist|digits|basic-motions.")
@click.option("--reference", metavar="MODEL", default=None,
              help="Keras model (.keras/.h5/SavedModel) or float .tflite to compare with: parity + per-layer error.")
@click.option("--target", metavar="NAME|FILE", default=None, help="Target profile (threads, budgets, emulated CPU).")
@click.option("--emulate", is_flag=True, help="Also run under QEMU emulation of the target's CPU and compare outputs.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Interpreter threads (default: target's, else 1).")
@click.option("--layer-samples", type=click.IntRange(min=1), default=64, show_default=True,
              help="Inputs used for the per-layer quantization error.")
@click.option("--worst", type=click.IntRange(min=0), default=5, show_default=True,
              help="How many worst-disagreement inputs and worst layers to list.")
@click.option("--expect-sha256", metavar="HEX", default=None, help="Refuse the model unless its sha256 is HEX.")
@click.option("--trust-model", is_flag=True, help="Allow Lambda layers / custom objects in --reference (runs its code).")
@click.option("--json", "as_json", is_flag=True, help="Print the validation JSON to stdout.")
@debug_option
@handle_errors
def validate(model: str, data: str, reference: str | None, target: str | None, emulate: bool, threads: int | None,
             layer_samples: int, worst: int, expect_sha256: str | None, trust_model: bool, as_json: bool,
             debug: bool) -> None:
    """Measure MODEL.tflite on the test split of --data: accuracy, top-k, per-class F1, parity."""
    from .api import validate as api_validate
    from .validate import format_validate_text

    doc = api_validate(model=model, data=data, reference=reference, target=target, emulate=emulate, threads=threads,
                       trust_model=trust_model, layer_samples=layer_samples, worst=worst, expect_sha256=expect_sha256)
    if as_json:
        _emit_json(doc)
    else:
        click.echo(format_validate_text(doc))
    if not doc.get("passed", True):
        sys.exit(1)


@main.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=str))
@click.option("--baseline", metavar="FILE", required=True, help="Baseline JSON (written by --update-baseline).")
@click.option("--data", "data", metavar="SPEC", required=True, help="Evaluation data (the baseline's data).")
@click.option("--target", metavar="NAME|FILE", default=None,
              help="Target profile: threads, size/arena budgets, emulated CPU (default: the baseline's).")
@click.option("--junit", metavar="FILE", default=None, help="Write a JUnit XML report (one testcase per check).")
@click.option("--update-baseline", is_flag=True, help="Measure MODEL and write --baseline instead of checking.")
@click.option("--allow-data-change", is_flag=True, help="Compare even if the data differs from the baseline's.")
@click.option("--emulate", is_flag=True, help="Add an ARM-parity check under QEMU emulation of the target's CPU.")
@click.option("--reference-model", metavar="BASELINE.tflite", default=None,
              help="The baseline's .tflite: enables the latency check (interleaved A/B run + significance test).")
@click.option("--reference", metavar="MODEL", default=None,
              help="Keras / float .tflite reference: parity and per-layer quantization error in the report.")
@click.option("--max-accuracy-drop", type=float, default=None,
              help="Allowed accuracy drop (RMSE growth for regression); absolute unless --relative.")
@click.option("--relative/--absolute", "relative", default=None, help="Read --max-accuracy-drop as a fraction of the baseline.")
@click.option("--max-size-growth", type=float, default=None, help="Allowed .tflite size growth as a fraction (0.05 = 5%).")
@click.option("--max-arena-growth", type=float, default=None, help="Allowed tensor-arena growth as a fraction.")
@click.option("--max-latency-regression", type=float, default=None,
              help="Allowed median slow-down as a fraction; needs --reference-model.")
@click.option("--measure-latency", is_flag=True, help="With --update-baseline: benchmark and record the median latency.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Interpreter threads (default: target's, else 1).")
@click.option("--runs", type=click.IntRange(min=1), default=None, help="Benchmark runs per model for latency.")
@click.option("--expect-sha256", metavar="HEX", default=None, help="Refuse the model unless its sha256 is HEX.")
@click.option("--trust-model", is_flag=True, help="Allow Lambda layers / custom objects in --reference (runs its code).")
@click.option("--json", "as_json", is_flag=True, help="Print the check report JSON to stdout.")
@debug_option
@handle_errors
def check(model: str, baseline: str, data: str, target: str | None, junit: str | None, update_baseline: bool,
          allow_data_change: bool, emulate: bool, reference_model: str | None, reference: str | None,
          max_accuracy_drop: float | None, relative: bool | None, max_size_growth: float | None,
          max_arena_growth: float | None, max_latency_regression: float | None, measure_latency: bool,
          threads: int | None, runs: int | None, expect_sha256: str | None, trust_model: bool, as_json: bool,
          debug: bool) -> None:
    """CI gate: compare MODEL.tflite with a committed baseline. Exit 0 pass, 1 regression, 2 bad input."""
    from .api import check as api_check
    from .errors import EdgekitError
    from .gate import format_check_text, github_annotations, write_ci_outputs

    summary = os.environ.get("GITHUB_STEP_SUMMARY") or None
    in_actions = os.environ.get("GITHUB_ACTIONS") == "true"
    try:
        report = api_check(
            model=model, baseline=baseline, data=data, target=target, junit=junit, step_summary=summary,
            update_baseline=update_baseline, allow_data_change=allow_data_change, emulate=emulate,
            reference=reference, reference_model=reference_model, max_accuracy_drop=max_accuracy_drop,
            relative=relative, max_size_growth=max_size_growth, max_arena_growth=max_arena_growth,
            max_latency_regression=max_latency_regression, measure_latency=measure_latency, threads=threads,
            runs=runs, trust_model=trust_model, expect_sha256=expect_sha256,
        )
    except EdgekitError as exc:  # fail closed, visibly: the CI page shows why
        stub = {"model": {"path": model}, "baseline": {"path": baseline}, "data": {"spec": data}, "checks": []}
        try:
            write_ci_outputs(stub, junit=junit, step_summary=summary, error=str(exc))
        except EdgekitError:
            pass
        if in_actions:
            for line in github_annotations(stub, error=str(exc)):
                click.echo(line)
        raise
    if in_actions:
        for line in github_annotations(report):
            click.echo(line, err=as_json)
    if as_json:
        _emit_json(report)
    else:
        click.echo(format_check_text(report))
    if not report["passed"]:
        sys.exit(1)


# ---------------------------------------------------------------------------------------------
# report (issue 7: self-contained HTML reports with plots, a calm terminal)
# ---------------------------------------------------------------------------------------------
@main.command("report")
@click.argument("dirs", nargs=-1, required=True, metavar="DIR [DIR...]", type=click.Path(path_type=str))
@click.option("--compare", "compare_path", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Also write one page comparing the compress runs in DIRs (accuracy vs size / latency, "
                   "Pareto front). Default with several DIRs: ./edgekit-comparison.html.")
@click.option("--quiet", is_flag=True, help="Print nothing but errors.")
@debug_option
@handle_errors
def report(dirs: tuple[str, ...], compare_path: str | None, quiet: bool, debug: bool) -> None:
    """Re-render report.html (and report.md) from DIR/report.json.

    DIR is the -o directory of an edgekit run, or a saved --json document (FILE.json →
    FILE.html). With several compress runs, also writes a comparison page.
    """
    from .report.rerender import compare, is_compress_report, rerender

    written = [path for d in dirs for path in rerender(d).values()]
    if compare_path or (len(dirs) > 1 and all(is_compress_report(d) for d in dirs)):
        written.append(compare(dirs, compare_path or "edgekit-comparison.html"))
    if not quiet:
        for path in written:
            click.echo(str(path))
