"""Pre-flight plan: check a recipe against the model, the data and the target before any training.

A user should learn in seconds what would otherwise fail after twenty minutes of training
(DESIGN.md §3). :func:`check_target` needs no TensorFlow; :func:`preflight` walks a loaded tf_keras
model (so it runs in the child process, the same one that trains) and, for each layer, says
whether pruning / clustering / QAT will handle it. Known problems are fixed automatically and
listed (``fixes``):

* nested models are inlined into one functional graph (tfmot cannot quantize nested models);
* ``BatchNormalization`` not directly after a convolution, ``Rescaling``, ``LayerNormalization``,
  ``PReLU``, ``TFOpLambda`` and other layers tfmot's QAT does not know are left unannotated
  (float during QAT; the converter quantizes them from calibration data);
* registry layers with an activation the fake-quant cannot model (``hard_sigmoid``, ...) get a
  no-op quantize config;
* layers pruning or clustering cannot handle are left dense.

Everything without a fix is refused with one precise message: subclassed models, several model
outputs, structured N:M sparsity on a kernel that cannot hold it, the XNNPACK policy on a graph it
does not fit, too little training data for one epoch, labels that do not fit the loss, a
quantization the target cannot run.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import ConfigError, DataError, ModelError
from .recipe import Recipe, describe


@dataclass
class PreflightReport:
    """What the pre-flight check found; plain data (crosses the child-process boundary)."""

    plan: list[str] = field(default_factory=list)
    layers: list[dict[str, Any]] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    loss: dict[str, Any] | None = None
    data: dict[str, Any] | None = None
    model: dict[str, Any] | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------------------------------
# target (no TensorFlow)
# ------------------------------------------------------------------------------------------------
def check_target(recipe: Recipe, target: Any) -> list[str]:
    """Check the target can run what the recipe exports; returns notes, raises ConfigError if not.

    Args:
        recipe: the resolved recipe.
        target: an :class:`edgekit.targets.Target` (or None to skip).
    """
    if target is None:
        return []
    notes: list[str] = []
    runtime = getattr(target, "runtime", None)
    name = getattr(target, "name", "?")
    quantize = recipe.convert.quantize
    required = getattr(runtime, "required_quantization", None)
    if required == "int8" and quantize != "int8":
        raise ConfigError(f"target {name} runs int8-only kernels (runtime.required_quantization: int8) but the "
                          f"recipe exports {quantize}", hint="use --quantize int8 (with --qat for the best accuracy)")
    if getattr(runtime, "name", None) == "tflite-micro" and quantize in ("dynamic", "float16"):
        raise ConfigError(f"target {name} uses TFLite Micro, which cannot run {quantize} models "
                          "(hybrid / float16 weights)", hint="use --quantize int8 or int16x8")
    if required == "int8":
        notes.append(f"target {name} needs int8 everywhere: full-int8 conversion is checked after export")
    delegates = list(getattr(runtime, "delegates", []) or [])
    if "prune" in recipe.stages:
        if quantize in ("float32", "float16") and "xnnpack" in delegates:
            notes.append("pruned float model on XNNPACK: sparse kernels may apply to 1x1 convolutions with >= 2/3 "
                         "zeros (see the prune stage's payoff)")
        else:
            notes.append("pruning shrinks the gzipped download; the raw .tflite and latency stay the same "
                         f"({quantize} export{'' if 'xnnpack' in delegates else ', no XNNPACK'})")
    return notes


# ------------------------------------------------------------------------------------------------
# model + data (inside the child)
# ------------------------------------------------------------------------------------------------
def _model_summary(model: Any) -> dict[str, Any]:
    return {"name": model.name, "class": type(model).__name__, "params": int(model.count_params()),
            "layers": len(model.layers),
            "inputs": [[None if d is None else int(d) for d in t.shape[1:]] for t in model.inputs or []],
            "outputs": [[None if d is None else int(d) for d in t.shape[1:]] for t in model.outputs or []]}


def preflight(model: Any, recipe: Recipe, *, dataset: Any = None, target: Any = None,
              source: str = "the data", trial: bool | None = True) -> tuple[Any, PreflightReport]:
    """Check ``recipe`` against ``model`` (tf_keras) and ``dataset``; apply known fixes.

    Args:
        model: the loaded tf_keras model.
        recipe: the resolved recipe.
        dataset: an :class:`edgekit.data.Dataset` (needed when any stage trains).
        target: the target profile (for quantization and delegate checks).
        source: the dataset spec, for messages.
        trial: also build the QAT model once, without training, to catch what the layer tables
            miss (a few seconds); None: only when some layer needed a fix (``--dry-run`` always
            tries, a real run relies on the tables for models tfmot handles as they are).

    Returns:
        ``(model, report)``: the model to train (possibly with nested models inlined) and the report.

    Raises:
        ModelError, ConfigError, DataError: a problem without a known fix, before any training.
    """
    t0 = time.perf_counter()
    report = PreflightReport(plan=describe(recipe), notes=check_target(recipe, target))
    report.model = _model_summary(model)
    if not recipe.training:
        report.notes.append("no training stage: post-training quantization only")
        report.seconds = round(time.perf_counter() - t0, 3)
        return model, report

    from .keras_backend import flatten_nested
    from .keras_backend import keras as _keras
    from .stages.qat import check_cloneable

    keras = _keras()
    check_cloneable(model, what=" / ".join(recipe.stages))
    if any(isinstance(layer, keras.Model) for layer in model.layers):
        nested = [layer.name for layer in model.layers if isinstance(layer, keras.Model)]
        model = flatten_nested(model)
        report.fixes.append(f"inlined nested model(s) {', '.join(nested)} into one functional graph "
                            "(tfmot cannot quantize nested models)")
    _check_data(model, recipe, dataset, source, report)
    rows: dict[str, dict[str, Any]] = {}

    def row(name: str, cls: str) -> dict[str, Any]:
        return rows.setdefault(name, {"name": name, "class": cls, "prune": "-", "cluster": "-", "qat": "-"})

    for layer in model.layers:
        if type(layer).__name__ != "InputLayer":
            r = row(layer.name, type(layer).__name__)
            r["params"] = int(layer.count_params()) if layer.built else 0
    if "prune" in recipe.stages:
        _plan_prune(model, recipe, target, report, row)
    if "cluster" in recipe.stages:
        _plan_cluster(model, recipe, report, row)
    if "qat" in recipe.stages:
        _plan_qat(model, recipe, report, row, trial=trial)
    report.layers = list(rows.values())
    report.seconds = round(time.perf_counter() - t0, 3)
    return model, report


def _check_data(model: Any, recipe: Recipe, dataset: Any, source: str, report: PreflightReport) -> None:
    from .stages.finetune import check_labels, output_info, resolve_loss, steps_per_epoch

    if dataset is None:
        raise ConfigError(f"the {', '.join(recipe.stages)} stage(s) fine-tune the model and need training data",
                          hint="pass --data (an .npz with x_train/y_train or builtin:NAME), or use --prune 0 --no-qat")
    out = output_info(model)
    if len(model.inputs) != 1:
        raise ModelError(f"the model has {len(model.inputs)} inputs; fine-tuning supports one input",
                         hint="compress without training stages (--prune 0 --no-qat)")
    loss = resolve_loss(model, task=dataset.task, override=recipe.train.loss, source=source)
    check_labels(loss, dataset.y_train, output_units=out["units"], source=f"{source} (y_train)")
    if len(dataset.y_test):
        check_labels(loss, dataset.y_test, output_units=out["units"], source=f"{source} (y_test)")
    n = len(dataset.x_train) if recipe.train.max_samples is None else min(len(dataset.x_train),
                                                                            recipe.train.max_samples)
    n_val = max(1, int(round(n * recipe.train.validation_split)))
    n_train = n - n_val
    if n_train < recipe.train.batch_size:
        raise DataError(f"{source}: {n} training samples leave {max(n_train, 0)} for training after the "
                        f"{recipe.train.validation_split:.0%} validation split; one epoch needs at least one batch "
                        f"of {recipe.train.batch_size}",
                        hint="provide more training data or lower train.batch_size in a recipe")
    report.loss = loss.as_dict()
    report.data = {"train": n_train, "validation": n_val, "test": int(len(dataset.x_test)),
                   "batch_size": recipe.train.batch_size,
                   "steps_per_epoch": steps_per_epoch(n_train, recipe.train.batch_size)}


def _plan_prune(model: Any, recipe: Recipe, target: Any, report: PreflightReport, row: Any) -> None:
    from .stages.prune import check_structured, choose_layers, plan_schedule, resolve_policy

    cfg = recipe.prune
    use_policy, reason = resolve_policy(model, cfg, quantize=recipe.convert.quantize)
    report.notes.append(f"prune: {reason}")
    choices = choose_layers(model, cfg, use_policy=use_policy)
    for c in choices:
        if c.cls == "InputLayer":
            continue
        row(c.name, c.cls)["prune"] = "prune" if c.selected else f"dense: {c.reason}"
        if not c.selected and "not supported" in c.reason:
            report.fixes.append(f"prune: {c.name} ({c.cls}) left dense: tfmot cannot prune it")
    if not any(c.selected for c in choices):
        raise ConfigError("pruning would select no layer (" + "; ".join(
            f"{c.name}: {c.reason}" for c in choices if c.cls != "InputLayer")[:300] + ")",
            hint="adjust prune.include / exclude / skip_first / skip_last in a recipe, or use --prune 0")
    if cfg.m_by_n:
        check_structured(choices, model, cfg.m_by_n, structured=cfg.structured or "")
    if report.data:
        plan = plan_schedule(cfg, epochs=recipe.epochs_for("prune"), n_train=report.data["train"],
                             batch_size=recipe.train.batch_size)
        report.notes.append(f"prune schedule: {plan.kind}, final sparsity {plan.final_sparsity:.0%} "
                            + (f"reached at step {plan.end_step} of {plan.total_steps}" if plan.kind == "polynomial"
                               else f"from step 0 of {plan.total_steps}") + f", masks updated every {plan.frequency}")


def _plan_cluster(model: Any, recipe: Recipe, report: PreflightReport, row: Any) -> None:
    from .stages.cluster import cluster_choices

    cfg = recipe.cluster
    if "prune" in recipe.stages and cfg.clusters < 3:
        raise ConfigError(f"--clusters {cfg.clusters}: sparsity-preserving clustering (after pruning) needs at least "
                          "3 clusters (one is kept for the zeros)", hint="use --clusters 3 or more")
    choices = cluster_choices(model, cfg)
    for c in choices:
        if c.cls != "InputLayer":
            row(c.name, c.cls)["cluster"] = "cluster" if c.selected else f"as is: {c.reason}"
    if not any(c.selected for c in choices):
        raise ConfigError("clustering would select no layer",
                          hint="adjust cluster.include / cluster.exclude, or drop --clusters")


def _plan_qat(model: Any, recipe: Recipe, report: PreflightReport, row: Any, *, trial: bool) -> None:
    from .stages.qat import build_qat_model, qat_plan, scheme_name

    scheme = scheme_name(pruned="prune" in recipe.stages, clustered="cluster" in recipe.stages)
    choices = qat_plan(model, recipe.qat, scheme=scheme)
    for c in choices:
        r = row(c.name, c.cls)
        r["qat"] = {"quantize": "int8", "fold": "folded"}.get(c.action, f"{c.action}: {c.reason}")
        if c.action == "noop":
            report.fixes.append(f"qat: {c.name} ({c.cls}) gets a no-op quantize config: {c.reason}")
        elif c.action == "skip" and "excluded" not in c.reason:
            report.fixes.append(f"qat: {c.name} ({c.cls}) left unannotated: {c.reason}")
    report.notes.append(f"qat scheme: {scheme}")
    if trial or (trial is None and any(c.action in ("noop", "skip") for c in choices)):
        build_qat_model(model, choices, scheme=scheme)  # raises ModelError with tfmot's reason


def format_report(report: dict[str, Any]) -> str:
    """Plain-text rendering of a pre-flight report dict (for ``--dry-run`` on a terminal)."""
    lines = ["plan:"] + [f"  {i + 1}. {p}" for i, p in enumerate(report.get("plan", []))]
    model = report.get("model") or {}
    if model:
        lines.append(f"model: {model.get('name')} ({model.get('class')}, {model.get('params')} params, "
                     f"inputs {model.get('inputs')}, outputs {model.get('outputs')})")
    if report.get("loss"):
        loss = report["loss"]
        lines.append(f"loss: {loss['name']}{' (from logits)' if loss['from_logits'] else ''} — {loss['reason']}")
    if report.get("data"):
        d = report["data"]
        lines.append(f"data: {d['train']} train / {d['validation']} validation / {d['test']} test samples, "
                     f"{d['steps_per_epoch']} steps per epoch")
    if report.get("layers"):
        lines.append("layers:")
        width = max(len(r["name"]) for r in report["layers"])
        for r in report["layers"]:
            cells = [f"{k} {r[k]}" for k in ("prune", "cluster", "qat") if r.get(k) not in (None, "-")]
            lines.append(f"  {r['name']:<{width}}  {r['class']:<20} " + " | ".join(cells))
    for title, key in (("fixes applied", "fixes"), ("notes", "notes")):
        if report.get(key):
            lines.append(f"{title}:")
            lines.extend(f"  - {x}" for x in report[key])
    return "\n".join(lines)


def format_dry_run(report: dict[str, Any]) -> str:
    """Plain-text ``--dry-run`` output: resolved settings with their sources, then the pre-flight report."""
    settings = report.get("settings") or {}
    sources = settings.get("sources") or {}
    lines = [f"edgekit compress --dry-run (target {report.get('target')}): nothing was trained", "settings:"]
    for path, src in sorted(sources.items()):
        lines.append(f"  {path:<22} from {src}")
    pre = dict(report.get("preflight") or {})
    for note in settings.get("notes") or []:
        if note not in (pre.get("notes") or []):
            lines.append(f"  note: {note}")
    pre.setdefault("plan", report.get("plan") or [])
    lines.append(format_report(pre))
    lines.append(f"pre-flight finished in {pre.get('seconds', 0):.1f} s")
    return "\n".join(lines)
