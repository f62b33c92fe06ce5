"""``compress``: the main job, from a Keras model + data + target to a validated ``.tflite``.

The parent process (this module) resolves the target and settings, scans the model file without
deserializing it, loads and checks the data, then hands the TensorFlow work to one child process
(:func:`_compress_job`): load the model onto tf_keras, measure the float baseline, run the
training stages, convert, verify the conversion and measure the result with the real interpreter.
The parent writes ``model.tflite`` and the reports atomically.
"""
from __future__ import annotations

import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .child import run_in_child
from .errors import ConfigError, DataError
from .fsutil import atomic_write_bytes, ensure_writable_dir, gzip_size, sha256_bytes, sha256_file
from .stages.convert import NEEDS_CALIBRATION, check_mode
from .versions import tool_versions

SCHEMA_VERSION = 1


@dataclass
class CompressSettings:
    """The resolved settings of one compress run (target defaults < recipe < flags)."""

    quantize: str = "int8"
    io_dtype: str = "float32"
    qat: bool = False
    prune: float = 0.0
    structured: str | None = None
    clusters: int | None = None
    epochs: int = 2
    tensorboard: str | None = None
    sources: dict[str, str] = field(default_factory=dict)
    # compression stages (edgekit.recipe / edgekit.stages.train)
    recipe: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    use_cache: bool = True
    cache_dir: str | None = None
    input_sha256: str | None = None
    data_spec: str | None = None
    target_name: str | None = None
    target_runtime: dict[str, Any] = field(default_factory=dict)


def resolve_settings(target: Any, *, recipe: str | None, flags: dict[str, Any]) -> CompressSettings:
    """Merge the target's default recipe, an optional recipe file and CLI flags (in that order)."""
    from .preflight import check_target
    from .recipe import resolve_recipe

    resolved = resolve_recipe(target_name=getattr(target, "name", None),
                              target_defaults=getattr(target, "default_recipe", None), recipe_path=recipe,
                              flags={k: v for k, v in flags.items() if k != "tensorboard"})
    rec = resolved.recipe
    settings = CompressSettings(
        quantize=rec.convert.quantize, io_dtype=rec.convert.io_dtype, qat="qat" in rec.stages,
        prune=rec.prune.effective_sparsity if "prune" in rec.stages else 0.0,
        structured=rec.prune.structured if "prune" in rec.stages else None,
        clusters=rec.cluster.clusters if "cluster" in rec.stages else None, epochs=rec.train.epochs,
        tensorboard=flags.get("tensorboard"), sources=dict(resolved.sources), recipe=rec.model_dump(),
        notes=list(resolved.notes) + check_target(rec, target), target_name=getattr(target, "name", None),
        target_runtime=_as_dict(target.runtime) if getattr(target, "runtime", None) is not None else {})
    check_mode(settings.quantize, settings.io_dtype if settings.quantize == "int8" else "float32")
    if settings.quantize != "int8":
        settings.io_dtype = "float32"
    if not 0.0 <= float(settings.prune) < 1.0:
        raise ConfigError(f"--prune {settings.prune} is outside [0, 1)", hint="use a sparsity such as 0.5")
    return settings


def _as_dict(obj: Any) -> dict[str, Any]:
    if hasattr(obj, "model_dump"):
        return obj.model_dump()
    if isinstance(obj, dict):
        return dict(obj)
    return dict(vars(obj))


@dataclass
class JobSpec:
    """Everything the child process needs (plain, picklable data)."""

    model_path: str
    trust_model: bool
    data_spec: str | None
    settings: CompressSettings
    progress: bool
    target_name: str


def _log(spec: JobSpec, text: str) -> None:
    from .report.progress import note

    note(text, enabled=spec.progress)


def _accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    from .validate import classification_metrics

    return float(classification_metrics(y, pred, top_k=())["accuracy"])


def _parity(ref: np.ndarray, got: np.ndarray, *, task: str) -> dict[str, Any]:
    from .validate import parity_metrics

    doc = parity_metrics([ref], [got], task=task, worst=3)
    return {k: doc.get(k) for k in ("top1_agreement", "max_abs_diff", "sqnr_db", "worst_inputs")}


def run_training_stages(model: Any, ds: Any, settings: CompressSettings, *, progress: bool) -> tuple[Any, list[dict]]:
    """Pruning / clustering / QAT, in that order, on a tf_keras model (inside the child).

    Returns the model to convert and one stage record per stage run.
    """
    if settings.recipe.get("stages") or settings.prune or settings.structured or settings.clusters or settings.qat:
        from .stages.train import run_stages

        return run_stages(model, ds, settings, progress=progress)
    return model, []


def _compress_job(spec: JobSpec) -> dict[str, Any]:  # runs in the child process
    from .data import load_dataset, representative_samples, validate_for_model
    from .interp import predict_tflite
    from .keras_backend import load_model
    from .report.progress import step
    from .stages.convert import convert_keras, verify_conversion

    stages: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    with step(f"loading {spec.model_path}", enabled=spec.progress):
        loaded = load_model(spec.model_path, trust_model=spec.trust_model)
    model = loaded.model
    info = dict(loaded.info)
    if info.get("nested_models"):  # tfmot cannot prune/quantize a model nested inside another
        from .keras_backend import flatten_nested

        model = flatten_nested(model)
        info["flattened"] = True
    stages.append({"name": "load", "seconds": round(time.perf_counter() - t0, 3), "cached": False,
                   "metrics": {k: info.get(k) for k in ("format", "saved_by", "ported", "port_max_abs_diff")}})

    ds = load_dataset(spec.data_spec) if spec.data_spec else None
    settings = spec.settings
    baseline_acc = None
    if ds is not None:
        output_units = int(model.outputs[0].shape[-1]) if model.outputs[0].shape[-1] is not None else None
        validate_for_model(ds, input_shape=tuple(model.inputs[0].shape[1:]), output_units=output_units,
                           source=spec.data_spec)
        if ds.task == "classification":
            t = time.perf_counter()
            keras_pred = np.asarray(model.predict(ds.x_test, batch_size=256, verbose=0))
            baseline_acc = _accuracy(keras_pred, ds.y_test)
            stages.append({"name": "baseline", "seconds": round(time.perf_counter() - t, 3), "cached": False,
                           "metrics": {"accuracy": baseline_acc}})

    t = time.perf_counter()
    with step("converting the float32 baseline", enabled=spec.progress):
        float_bytes = convert_keras(model, mode="float32")
        float_ref = None
        if ds is not None:
            float_ref = predict_tflite(float_bytes, ds.x_test)
    stages.append({"name": "convert-float32", "seconds": round(time.perf_counter() - t, 3), "cached": False,
                   "metrics": {"tflite_bytes": len(float_bytes)}})

    model, train_records = run_training_stages(model, ds, settings, progress=spec.progress)
    stages.extend(train_records)

    representative = None
    if settings.quantize in NEEDS_CALIBRATION:
        if ds is None:
            raise ConfigError(f"--quantize {settings.quantize} needs calibration data",
                              hint="pass --data (an .npz or builtin:NAME)")
        representative = representative_samples(ds, count=200)
        bad = ~np.isfinite(representative.reshape(len(representative), -1)).all(axis=1)
        if bad.any():
            raise DataError(f"calibration sample {int(np.argmax(bad))} of {spec.data_spec} contains NaN or inf",
                            hint="clean the training data")
    t = time.perf_counter()
    what = "calibrating and converting" if representative is not None else "converting"
    with step(f"{what} ({settings.quantize}, {settings.io_dtype} I/O)", enabled=spec.progress):
        if settings.quantize == "float32" and not train_records:
            result_bytes = float_bytes
        else:
            result_bytes = convert_keras(model, mode=settings.quantize, io_dtype=settings.io_dtype,
                                         representative=representative)
        tensors = verify_conversion(result_bytes, mode=settings.quantize, io_dtype=settings.io_dtype)
    stages.append({"name": f"convert-{settings.quantize}", "seconds": round(time.perf_counter() - t, 3),
                   "cached": False, "metrics": {"tflite_bytes": len(result_bytes), "tensors": tensors["tensors"],
                                                "io": {"inputs": tensors["inputs"], "outputs": tensors["outputs"]}}})
    if train_records:  # did the pruned zeros survive conversion? (int8 zeros in the .tflite weights)
        from .stages.train import verify_export

        sparsity_check = verify_export(result_bytes, train_records)
        if sparsity_check is not None:
            stages[-1]["metrics"]["sparsity_check"] = sparsity_check

    result_acc = parity = None
    if ds is not None:
        t = time.perf_counter()
        with step("measuring the result with the LiteRT interpreter", enabled=spec.progress):
            pred = predict_tflite(result_bytes, ds.x_test)
        if ds.task == "classification":
            result_acc = _accuracy(pred, ds.y_test)
        parity = _parity(float_ref, pred, task=ds.task) if float_ref is not None else None
        stages.append({"name": "validate", "seconds": round(time.perf_counter() - t, 3), "cached": False,
                       "metrics": {"accuracy": result_acc, "parity_vs_float32_tflite": parity}})
    layers = None
    if ds is not None and settings.quantize in ("int8", "int16x8"):
        from .validate import layer_errors_here

        with step("measuring the quantization error per layer", enabled=spec.progress):
            layers = layer_errors_here(result_bytes, float_bytes, ds.x_test, samples=64)
    return {
        "load_info": info,
        "baseline_accuracy": baseline_acc,
        "float_bytes": len(float_bytes),
        "result_bytes": result_bytes,
        "result_accuracy": result_acc,
        "parity": parity,
        "layers": layers,
        "stages": stages,
        "data": None if ds is None else {"spec": spec.data_spec, "fingerprint": ds.fingerprint,
                                         "train": int(len(ds.x_train)), "test": int(len(ds.x_test)),
                                         "task": ds.task},
    }


def _device_facts(target: Any, tflite_path: Path, *, progress: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """What the target would make of the result: op support, memory fit, latency.

    Uses the same analysis as ``edgekit inspect`` and a short host benchmark at the target's thread
    count. The tensor arena comes from TFLite Micro itself only for a TFLite Micro target (its arena
    says nothing about LiteRT on a phone or a Pi, which get the greedy planner's estimate, labelled
    ``greedy-estimate``). The target latency is an estimate and is labelled so; the host measurement
    is reported beside it, never in its place.
    """
    from .analysis.inspection import inspect as inspect_model
    from .bench.run import benchmark

    on_tflm = getattr(getattr(target, "runtime", None), "name", None) == "tflite-micro"
    doc = inspect_model(model=str(tflite_path), targets=[target], measure_arena=on_tflm)
    fit = doc["targets"][target.name]
    fit["arena_bytes"] = doc.get("arena_bytes", fit.get("arena_bytes"))
    fit["arena_source"] = doc.get("arena_source", fit.get("arena_source"))
    latency: dict[str, Any] = {"p50_ms": fit.get("latency_ms"), "source": fit.get("latency_source"),
                               "threads": fit.get("threads"), "host": None}
    if target.family != "iot":  # an MCU model says nothing useful about a desktop CPU's speed
        host = benchmark(model=str(tflite_path), threads=fit.get("threads") or 1, runs=50, warmup=5,
                         min_time=0.5, max_time=20.0)
        host = host[0] if isinstance(host, list) else host
        latency["host"] = {"p50_ms": host["latency_ms"]["p50"], "p90_ms": host["latency_ms"]["p90"],
                           "threads": host.get("threads"), "runtime": host.get("runtime"),
                           "machine": host.get("machine"), "source": host.get("source")}
    return fit, latency


def _cached_device_facts(cache: Any, target: Any, tflite_path: Path, model_sha256: str, *,
                         progress: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """:func:`_device_facts`, reused from the stage cache for the same model bytes and target profile.

    A reused host measurement keeps its ``measured-host`` label and says ``cached: true``.
    """
    from .cache import FACTS_STAGE, FACTS_VERSION, load_json_entry, stage_key, store_json_entry

    key = stage_key(input_sha256=model_sha256, stage=FACTS_STAGE, stage_version=FACTS_VERSION,
                    config={"target": target.model_dump(mode="json")}, data_fingerprint=None)
    stored = load_json_entry(cache, key)
    if isinstance(stored, dict) and {"fit", "latency"} <= set(stored):
        if stored["latency"].get("host"):
            stored["latency"]["host"]["cached"] = True
        return stored["fit"], stored["latency"]
    fit, latency = _device_facts(target, tflite_path, progress=progress)
    store_json_entry(cache, key, {"fit": fit, "latency": latency}, stage=FACTS_STAGE)
    return fit, latency


def _target_checks(target: Any, report: dict[str, Any], fit: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Budget checks against the target profile: ops, size, flash/RAM fit, latency, accuracy drop."""
    checks: list[dict[str, Any]] = []
    budgets = getattr(target, "budgets", None)
    res = report["result"]
    if fit is not None:
        checks.append({"name": "ops_supported", "value": ", ".join(fit["unsupported_ops"]) or "all",
                       "limit": f"{fit.get('runtime')}", "passed": bool(fit["compatible"])})
        limits = fit.get("limits", {})
        checks.append({"name": "fits_flash", "value": fit.get("flash_bytes"), "limit": limits.get("flash_bytes"),
                       "passed": fit.get("flash_bytes", 0) <= limits.get("flash_bytes", 0)})
        checks.append({"name": "fits_ram", "value": fit.get("ram_bytes"), "limit": limits.get("ram_bytes"),
                       "passed": fit.get("ram_bytes", 0) <= limits.get("ram_bytes", 0)})
        if limits.get("max_arena_bytes") and fit.get("arena_bytes") is not None:
            checks.append({"name": "arena", "value": fit["arena_bytes"], "limit": limits["max_arena_bytes"],
                           "passed": fit["arena_bytes"] <= limits["max_arena_bytes"],
                           "source": fit.get("arena_source")})
        max_ms = getattr(budgets, "max_latency_ms", None)
        if max_ms is not None and fit.get("latency_ms") is not None:
            checks.append({"name": "latency_estimated", "value": round(fit["latency_ms"], 3), "limit": max_ms,
                           "passed": fit["latency_ms"] <= max_ms, "source": fit.get("latency_source")})
    max_bytes = getattr(budgets, "max_model_bytes", None)
    if max_bytes:
        checks.append({"name": "model_size", "value": res["tflite_bytes"], "limit": max_bytes,
                       "passed": res["tflite_bytes"] <= max_bytes})
    max_drop = getattr(budgets, "max_accuracy_drop", None)
    base_acc = report["baseline"]["accuracy"]
    if max_drop is not None and base_acc is not None and res["accuracy"] is not None:
        drop = round(base_acc - res["accuracy"], 6)
        checks.append({"name": "accuracy_drop", "value": drop, "limit": max_drop, "passed": drop <= max_drop})
    return checks


def _warm_up_reporting() -> None:
    """Load the report and inspection code (matplotlib, the flatbuffer schema, the harness runner) in a
    daemon thread while the training child runs: this process only waits then, and those imports
    otherwise come after the child, on the critical path. Failures are ignored: the real import
    later reports them."""
    def warm() -> None:
        try:
            from .analysis import inspection  # noqa: F401
            from .bench import run  # noqa: F401
            from .report import html  # noqa: F401
            from .report.plots import warm_up

            warm_up()
        except Exception:  # noqa: BLE001 - best effort; the same import on the main path raises properly
            pass

    import threading

    threading.Thread(target=warm, name="edgekit-warm-up", daemon=True).start()


def compress(*, model: str, target: str | None = None, data: str | None = None, recipe: str | None = None,
             prune: float | None = None, structured: str | None = None, clusters: int | None = None,
             qat: bool | None = None, quantize: str | None = None, io_dtype: str | None = None,
             epochs: int | None = None, tensorboard: str | None = None, output: str = "edgekit-out",
             dry_run: bool = False, trust_model: bool = False, use_cache: bool = True,
             progress: bool = True) -> dict[str, Any]:
    """Compress a Keras model for a target and write ``model.tflite`` + reports into ``output``.

    Args:
        model: path to a ``.keras`` / ``.h5`` file or a SavedModel directory.
        target: built-in target name or a profile YAML path (default :data:`edgekit.targets.DEFAULT_TARGET`).
        data: dataset spec (``.npz`` path or ``builtin:NAME``); needed for int8 calibration and accuracy.
        recipe: optional recipe YAML (target defaults < recipe < these keyword arguments).
        prune, structured, clusters, qat, quantize, io_dtype, epochs, tensorboard: stage settings.
        output: output directory (created; must be writable).
        dry_run: only resolve and print the plan.
        trust_model: allow models with Lambda layers / custom objects (runs their code).
        use_cache: reuse finished stages from the stage cache.
        progress: print progress to stderr.

    Returns:
        The report (``report.json`` content) as a dict; ``report["passed"]`` is the verdict.
    """
    from .keras_backend import scan_model_file
    from .targets import DEFAULT_TARGET, load_target

    started = time.perf_counter()
    tgt = load_target(target or DEFAULT_TARGET)
    flags = {"quantize": quantize, "io_dtype": io_dtype, "qat": qat, "prune": prune, "structured": structured,
             "clusters": clusters, "epochs": epochs, "tensorboard": tensorboard}
    settings = resolve_settings(tgt, recipe=recipe, flags=flags)
    if not os.path.exists(model):
        raise ConfigError(f"model {model} does not exist", hint="pass a .keras, .h5 or SavedModel directory")
    scan = scan_model_file(model, trust_model=trust_model)
    data_fingerprint = None
    if data is not None:
        from .data import load_dataset

        data_fingerprint = load_dataset(data).fingerprint  # fail fast on a bad dataset before starting TensorFlow
    elif settings.quantize in NEEDS_CALIBRATION:
        raise ConfigError(f"--quantize {settings.quantize} needs calibration data",
                          hint="pass --data (an .npz or builtin:fashion-mnist|digits|basic-motions)")
    from .cache import JOB_STAGE, JOB_VERSION, StageCache, load_job, stage_key, store_job

    cache = StageCache(enabled=use_cache)
    settings.use_cache, settings.cache_dir, settings.data_spec = use_cache, str(cache.root), data
    settings.input_sha256 = sha256_file(model)
    if dry_run:
        from .recipe import describe
        from .stages.train import dry_run_job

        pre = run_in_child(dry_run_job, str(model), trust_model=trust_model, data_spec=data, settings=settings,
                           what=f"pre-flight check of {model}", timeout=600)
        return {"schema_version": SCHEMA_VERSION, "dry_run": True, "target": tgt.name,
                "plan": describe(_recipe_model(settings)), "settings": asdict(settings), "model_scan": scan,
                "preflight": pre}
    out_dir = ensure_writable_dir(output)

    spec = JobSpec(model_path=str(model), trust_model=trust_model, data_spec=data, settings=settings,
                   progress=progress, target_name=tgt.name)
    job_config = {k: v for k, v in asdict(settings).items()
                  if k not in ("tensorboard", "sources", "notes", "use_cache", "cache_dir", "input_sha256")}
    job_key = stage_key(input_sha256=settings.input_sha256, stage=JOB_STAGE, stage_version=JOB_VERSION,
                        config={"settings": job_config, "trust_model": trust_model}, data_fingerprint=data_fingerprint)
    job = load_job(cache, job_key)
    if job is not None:
        _log(spec, "every stage reused from the stage cache (--no-cache to recompute)")
    else:
        _warm_up_reporting()
        job = run_in_child(_compress_job, spec, what=f"compressing {model}", timeout=None)
        store_job(cache, job_key, job)

    result_bytes: bytes = job.pop("result_bytes")
    tflite_path = out_dir / "model.tflite"
    atomic_write_bytes(tflite_path, result_bytes)
    _log(spec, f"checking the result against {tgt.name}")
    result_sha256 = sha256_bytes(result_bytes)
    fit, latency = _cached_device_facts(cache, tgt, tflite_path, result_sha256, progress=progress)
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "kind": "compress",
        "target": tgt.name,
        "target_family": tgt.family,
        "passed": True,
        "input": {"path": str(model), "sha256": settings.input_sha256, "format": job["load_info"].get("format"),
                  "saved_by": job["load_info"].get("saved_by"), "ported_to_tf_keras": job["load_info"].get("ported"),
                  "port_max_abs_diff": job["load_info"].get("port_max_abs_diff")},
        "data": job["data"],
        "settings": {k: v for k, v in asdict(settings).items() if k != "sources"},
        "settings_sources": settings.sources,
        "baseline": {"accuracy": job["baseline_accuracy"], "tflite_float32_bytes": job["float_bytes"]},
        "result": {"path": str(tflite_path), "sha256": result_sha256,
                   "quantization": settings.quantize, "io_dtype": settings.io_dtype,
                   "accuracy": job["result_accuracy"], "tflite_bytes": len(result_bytes),
                   "tflite_gzip_bytes": gzip_size(result_bytes), "sparsity": _sparsity(job),
                   "parity_vs_float32": job["parity"]},
        "stages": job["stages"],
        "layers": job.get("layers"),
        "latency": latency,
        "device": {k: fit.get(k) for k in ("compatible", "unsupported_ops", "cpu_fallback_ops", "fits",
                                           "flash_bytes", "ram_bytes", "arena_bytes", "arena_source",
                                           "limits", "runtime", "delegates", "issues", "ops")},
        "checks": [],
        "versions": tool_versions(),
        "command": "edgekit compress " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if sys.argv[1:2] == ["compress"] else None,
        "seconds": None,
    }
    report["checks"] = _target_checks(tgt, report, fit)
    report["passed"] = all(c["passed"] for c in report["checks"])
    report["seconds"] = round(time.perf_counter() - started, 2)
    from .report.writer import write_reports

    write_reports(report, out_dir, chart_cache=cache)
    return report


def _recipe_model(settings: CompressSettings) -> Any:
    from .stages.train import recipe_of

    return recipe_of(settings)


def _sparsity(job: dict[str, Any]) -> float:
    for stage in job["stages"]:
        value = stage.get("metrics", {}).get("sparsity")
        if value is not None:
            return float(value)
    return 0.0
