"""Run the training stages of a recipe in order, through the stage cache (inside the child process).

``preflight → prune → cluster → qat`` (conversion follows in :mod:`edgekit.pipeline`). Every stage
is looked up in the :class:`~edgekit.cache.StageCache` first; its key chains the hash of the
stage's input (the model file, then each stage's output artifact) with the stage name and
version, its config, the data fingerprint and the tool versions. Each stage is recorded as
``{name, seconds, cached, metrics}`` for ``report["stages"]``.

Cached artifacts: pruning and clustering store the stripped model (``model.keras``); QAT stores
its weights (``qat.weights.h5``) plus the per-layer plan, and is rebuilt on its (cached) input
model, because tfmot's QAT models cannot be reloaded as a whole.
"""
from __future__ import annotations

import hashlib
import time
from typing import Any

from ..cache import StageCache, stage_key
from ..recipe import Recipe, resolve_recipe
from . import cluster as cluster_stage
from . import prune as prune_stage
from . import qat as qat_stage
from .finetune import DISTILL_KINDS, make_split, resolve_loss, with_teacher


class _TargetView:
    """The parts of a target profile the stages need, rebuilt from plain data in the child."""

    def __init__(self, name: str | None, runtime: dict[str, Any] | None) -> None:
        self.name = name or "?"
        self.runtime = _Obj(runtime or {})


class _Obj:
    def __init__(self, data: dict[str, Any]) -> None:
        self.__dict__.update(data)

    def __getattr__(self, item: str) -> Any:  # missing fields read as None
        return None


def recipe_of(settings: Any) -> Recipe:
    """The settings' full recipe (``settings.recipe``), else one built from its flat fields."""
    data = getattr(settings, "recipe", None)
    if data:
        return Recipe.model_validate(data)
    flat = {k: getattr(settings, k, None) for k in ("prune", "structured", "clusters", "qat", "quantize",
                                                    "io_dtype", "epochs")}
    return resolve_recipe(flags=flat).recipe


def model_fingerprint(model: Any) -> str:
    """sha256 of a model's architecture and weights (when no input file hash is known)."""
    h = hashlib.sha256(model.to_json().encode("utf-8"))
    for w in model.get_weights():
        h.update(w.tobytes())
    return h.hexdigest()


def _log(progress: bool, text: str) -> None:
    from ..report.progress import note

    note(text, enabled=progress)


def run_stages(model: Any, ds: Any, settings: Any, *, progress: bool = False) -> tuple[Any, list[dict[str, Any]]]:
    """Pre-flight, then the recipe's training stages on a tf_keras model (call inside the child).

    Args:
        model: the loaded tf_keras model.
        ds: the :class:`edgekit.data.Dataset` (None only when no stage trains).
        settings: the pipeline's settings: ``recipe`` (dict), ``use_cache``, ``cache_dir``,
            ``input_sha256``, ``tensorboard``, ``data_spec``, ``target_name``, ``target_runtime``
            (all optional; flat ``prune/qat/...`` fields are used when ``recipe`` is missing).
        progress: progress bars and one line per stage on stderr.

    Returns:
        ``(model_to_convert, stage_records)``.
    """
    from ..preflight import preflight

    recipe = recipe_of(settings)
    target = _TargetView(getattr(settings, "target_name", None), getattr(settings, "target_runtime", None))
    source = getattr(settings, "data_spec", None) or "the data"
    records: list[dict[str, Any]] = []

    t = time.perf_counter()
    model, pf = preflight(model, recipe, dataset=ds, target=target, source=source, trial=None)
    records.append({"name": "preflight", "seconds": round(time.perf_counter() - t, 3), "cached": False,
                    "metrics": pf.as_dict()})
    for fix in pf.fixes:
        _log(progress, f"pre-flight fix: {fix}")
    if not recipe.training:
        return model, records

    loss = resolve_loss(model, task=ds.task, override=recipe.train.loss, source=source)
    tr = recipe.train
    data = make_split(ds.x_train, ds.y_train, validation_split=tr.validation_split, batch_size=tr.batch_size,
                      seed=tr.seed, max_samples=tr.max_samples, source=source)
    cache = StageCache(getattr(settings, "cache_dir", None), enabled=bool(getattr(settings, "use_cache", True)))
    current = getattr(settings, "input_sha256", None) or model_fingerprint(model)
    if pf.fixes:
        current = hashlib.sha256(f"{current}|fixes:{'|'.join(pf.fixes)}".encode()).hexdigest()
    quantize = recipe.convert.quantize
    delegates = list(getattr(target.runtime, "delegates", None) or [])
    tb = getattr(settings, "tensorboard", None)
    common = {"batch_size": tr.batch_size, "patience": tr.patience, "seed": tr.seed, "progress": progress,
              "tensorboard_dir": tb, "lr_schedule": tr.lr_schedule}
    pruned_layers: dict[str, Any] | None = None
    clustered = False
    teacher = model  # the float input model (after pre-flight fixes) guides every stage when distilling
    distill = _distill_record(tr.distill, loss)
    from ..keras_backend import keras as _keras

    keras = _keras()

    for stage in recipe.stages:
        epochs, lr = recipe.epochs_for(stage), recipe.learning_rate_for(stage)
        config: dict[str, Any] = {"recipe": recipe.stage_config(stage), "loss": loss.as_dict()}
        if stage == "prune" and recipe.prune.policy == "auto":
            config["quantize"] = quantize
        if stage == "qat":
            scheme = qat_stage.scheme_name(pruned=bool(pruned_layers), clustered=clustered)
            choices = qat_stage.qat_plan(model, recipe.qat, scheme=scheme)
            config["scheme"] = scheme
            config["choices"] = [c.as_dict() for c in choices]
        version = {"prune": prune_stage.STAGE_VERSION, "cluster": cluster_stage.STAGE_VERSION,
                   "qat": qat_stage.STAGE_VERSION}[stage]
        key = stage_key(input_sha256=current, stage=stage, stage_version=version, config=config,
                        data_fingerprint=getattr(ds, "fingerprint", None))
        t = time.perf_counter()
        entry = cache.lookup(key)
        if entry is not None:
            _log(progress, f"{stage}: reused from the stage cache ({key[:12]})")
            metrics = entry.metrics
            if stage == "qat":
                model = qat_stage.restore_qat_model(model, choices, scheme=scheme,
                                                    weights_path=str(entry.file("qat.weights.h5")))
            else:
                model = keras.models.load_model(str(entry.output), compile=False)
            current = entry.output_sha256 or key
            cached = True
        else:
            _log(progress, f"{stage}: fine-tuning {epochs} epoch(s) on {data.n_train} samples")
            if distill["applied"] and data.teacher_train is None:  # once, and only when some stage trains
                data = with_teacher(data, teacher, loss=loss, weight=tr.distill)
            with cache.writer(key, stage=stage, info={"input_sha256": current}) as w:
                if stage == "prune":
                    model, metrics = prune_stage.prune_model(
                        model, recipe.prune, data=data, loss=loss, epochs=epochs, learning_rate=lr,
                        quantize=quantize, delegates=delegates, **common)
                elif stage == "cluster":
                    model, metrics = cluster_stage.cluster_model(
                        model, recipe.cluster, data=data, loss=loss, epochs=epochs, learning_rate=lr,
                        preserve_sparsity=bool(pruned_layers), **common)
                else:
                    model, metrics = qat_stage.quantize_model(
                        model, recipe.qat, data=data, loss=loss, epochs=epochs, learning_rate=lr,
                        input_sparsity=pruned_layers, clustered=clustered, choices=choices, **common)
                metrics = _plain(metrics)
                if distill["weight"]:
                    metrics["distill"] = distill
                if cache.enabled:
                    if stage == "qat":
                        model.save_weights(str(w.dir / "qat.weights.h5"))
                        w.set_output("qat.weights.h5")
                    else:
                        model.save(str(w.dir / "model.keras"))
                        w.set_output("model.keras")
                    w.metrics = metrics
            current = _output_hash(cache, key) or key
            cached = False
        if stage == "prune":
            pruned_layers = metrics.get("per_layer") or None
            metrics = dict(metrics)
            metrics["payoff"] = prune_stage.sparsity_payoff(
                model, metrics.get("per_layer") or {}, quantize=quantize, delegates=delegates,
                graph_problem=None if (metrics.get("policy") or {}).get("xnnpack")
                else prune_stage.xnnpack_policy_problem(model))
        if stage == "cluster":
            clustered = True
        records.append({"name": stage, "seconds": round(time.perf_counter() - t, 3), "cached": cached,
                        "metrics": metrics, "key": key})
    return model, records


def _distill_record(weight: float, loss: Any) -> dict[str, Any]:
    """What the report says about knowledge distillation for this run."""
    if not weight:
        return {"weight": 0.0, "applied": False, "reason": "train.distill is 0"}
    if loss.kind not in DISTILL_KINDS:
        return {"weight": weight, "applied": False,
                "reason": f"distillation needs a softmax or logits classifier; the loss is {loss.kind}"}
    return {"weight": weight, "applied": True, "teacher": "the input model (float32)",
            "reason": f"targets = {1 - weight:.2f} x labels + {weight:.2f} x the input model's probabilities"}


def _output_hash(cache: StageCache, key: str) -> str | None:
    entry = cache.lookup(key, verify=False)
    return entry.output_sha256 if entry is not None else None


def _plain(obj: Any) -> Any:
    """numpy scalars → Python numbers, tuples → lists (JSON- and pickle-friendly metrics)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        try:
            return obj.item()
        except (ValueError, AttributeError):
            return obj
    return obj


def verify_export(model_bytes: bytes, records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """After conversion: did the pruned zeros survive into the ``.tflite`` weights? (None if not pruned)."""
    for rec in records:
        if rec.get("name") == "prune":
            per_layer = (rec.get("metrics") or {}).get("per_layer") or {}
            if per_layer:
                return prune_stage.verify_tflite_sparsity(model_bytes, per_layer)
    return None


def dry_run_job(model_path: str, *, trust_model: bool, data_spec: str | None, settings: Any) -> dict[str, Any]:
    """``--dry-run`` in the child: load the model and data, run the pre-flight check, train nothing."""
    from ..data import load_dataset, validate_for_model
    from ..keras_backend import load_model
    from ..preflight import preflight

    loaded = load_model(model_path, trust_model=trust_model)
    model = loaded.model
    ds = load_dataset(data_spec) if data_spec else None
    if ds is not None:
        units = model.outputs[0].shape[-1]
        validate_for_model(ds, input_shape=tuple(model.inputs[0].shape[1:]),
                           output_units=None if units is None else int(units), source=data_spec)
    target = _TargetView(getattr(settings, "target_name", None), getattr(settings, "target_runtime", None))
    _, report = preflight(model, recipe_of(settings), dataset=ds, target=target, source=data_spec or "the data")
    out = report.as_dict()
    out["load_info"] = dict(loaded.info)
    return _plain(out)


def compression_markdown(stages: list[dict[str, Any]]) -> list[str]:
    """Markdown lines describing the compression stages of a report (empty when none ran)."""
    by = {s.get("name"): s.get("metrics") or {} for s in stages}
    if not any(k in by for k in ("preflight", "prune", "cluster", "qat")):
        return []
    lines = ["", "## Compression", ""]
    pre = by.get("preflight") or {}
    for step in pre.get("plan") or []:
        lines.append(f"- plan: {step}")
    for fix in pre.get("fixes") or []:
        lines.append(f"- pre-flight fix: {fix}")
    prune = by.get("prune")
    if prune and prune.get("per_layer"):
        sched = prune.get("schedule") or {}
        lines += ["", f"**Pruning** ({sched.get('kind')} schedule, target {prune.get('target_sparsity', 0):.0%}, "
                      f"reached {prune.get('sparsity', 0):.1%} over the pruned layers; "
                      f"{(prune.get('model_weight_sparsity') or {}).get('sparsity', 0):.1%} of all weights are zero)",
                  ""]
        tflite = {}
        for s in stages:
            if str(s.get("name", "")).startswith("convert-"):
                tflite = ((s.get("metrics") or {}).get("sparsity_check") or {}).get("layers") or {}
        lines += ["| layer | kernel | sparsity | in the .tflite |", "|---|---|---|---|"]
        for name, v in prune["per_layer"].items():
            t = tflite.get(name) or {}
            in_tflite = f"{t['tflite_sparsity']:.1%} ({t.get('tflite_dtype')})" if t.get("tflite_sparsity") is not None \
                else "–"
            lines.append(f"| {name} | {'×'.join(map(str, v.get('shape', [])))} | {v['sparsity']:.1%} | {in_tflite} |")
        payoff = prune.get("payoff") or {}
        if payoff.get("summary"):
            lines += ["", f"Run-time payoff: {payoff['summary']}."]
    cluster = by.get("cluster")
    if cluster and cluster.get("unique_values"):
        lines += ["", f"**Clustering**: {cluster.get('clusters')} clusters ({cluster.get('init')}); distinct values per "
                      "kernel: " + ", ".join(f"{k} {v}" for k, v in cluster["unique_values"].items())]
    qat = by.get("qat")
    if qat and qat.get("scheme"):
        kept = qat.get("sparsity_check")
        text = f"**QAT**: {qat['scheme'].upper()}, {qat.get('quantized_layers')} layers quantization-aware"
        if kept is not None:
            text += f"; sparsity {'preserved' if kept.get('preserved') else '**NOT preserved**'}"
        lines += ["", text]
        for row in qat.get("layers") or []:
            lines.append(f"- {row['name']} ({row['cls']}): {row['action']} — {row['reason']}")
    return lines
