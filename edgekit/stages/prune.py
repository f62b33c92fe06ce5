"""Pruning stage: magnitude pruning with tfmot, then ``strip_pruning`` for export.

Schedules: ``PolynomialDecay`` (ramps from ``initial_sparsity`` to ``sparsity`` over the first
``ramp`` fraction of the training steps, steps = epochs × batches) and ``ConstantSparsity``.
Structured N:M sparsity uses tfmot's ``sparsity_m_by_n`` (N zeros in every M consecutive weights
along the input channels). The XNNPACK latency policy prunes only the 1×1 convolutions XNNPACK's
sparse kernels can use, and only where the graph allows it. ``UpdatePruningStep`` is always used.

The stage reports the sparsity reached per layer and overall and whether the runtime can profit
from it (:func:`sparsity_payoff`); after conversion :func:`tflite_weight_sparsity` counts the zeros
that survived in the ``.tflite`` weights. Layer selection (:func:`select_layers`) and the
feasibility checks are pure functions of the layers, shared with the pre-flight plan.
"""
from __future__ import annotations

import fnmatch
import math
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable

import numpy as np

from ..errors import ConfigError
from ..recipe import PruneConfig
from .finetune import LossSpec, TrainData, fine_tune, steps_per_epoch

STAGE_VERSION = 1

XNNPACK_MIN_SPARSITY = 2 / 3
"""XNNPACK switches a 1×1 convolution to its sparse kernel only with at least 2/3 zero weights."""


# ------------------------------------------------------------------------------------------------
# layer selection (shared with clustering and the pre-flight plan)
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerChoice:
    """Whether one layer takes part in a stage, and why (not)."""

    name: str
    cls: str
    selected: bool
    reason: str
    params: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def wrap_selected(keras: Any, model: Any, selected: set[str] | Iterable[str], wrapper: Any) -> Any:
    """Clone ``model`` (nested models too) with ``wrapper(layer)`` in place of each selected layer.

    Like tfmot's own model wrapper: wrapped and untouched layers keep their weights.
    ``selected`` holds qualified names as yielded by :func:`iter_layers`.
    """
    chosen = set(selected)
    names_by_layer = {id(layer): name for name, layer in iter_layers(model)}

    def wrap(layer: Any) -> Any:
        if isinstance(layer, keras.Model):
            return keras.models.clone_model(layer, clone_function=wrap)
        if names_by_layer.get(id(layer)) in chosen:
            return wrapper(layer)
        return layer

    return keras.models.clone_model(model, clone_function=wrap)


def iter_layers(model: Any, prefix: str = "") -> Iterable[tuple[str, Any]]:
    """Yield ``(qualified_name, layer)`` for every layer, descending into nested models."""
    for layer in model.layers:
        name = f"{prefix}{layer.name}"
        if hasattr(layer, "layers") and getattr(layer, "_is_graph_network", False) or \
                type(layer).__name__ == "Sequential":
            yield from iter_layers(layer, prefix=f"{name}/")
        else:
            yield name, layer


def _matches(name: str, patterns: Iterable[str]) -> str | None:
    short = name.rsplit("/", 1)[-1]
    for pat in patterns:
        if fnmatch.fnmatchcase(name, pat) or fnmatch.fnmatchcase(short, pat):
            return pat
    return None


def select_layers(model: Any, *, candidate: Callable[[Any], tuple[bool, str]], skip_first: bool, skip_last: bool,
                  include: list[str], exclude: list[str], what: str,
                  skip_max_share: float = 1.0) -> list[LayerChoice]:
    """Decide per layer whether a stage applies to it.

    Args:
        candidate: ``layer -> (eligible, reason)``: whether the stage can handle the layer at all.
        skip_first, skip_last: leave the first / last eligible layer alone, as long as it holds less
            than ``skip_max_share`` of the eligible layers' parameters (skipping a classifier that
            holds most of the weights would give away most of the compression).
        include, exclude: fnmatch patterns on layer names (qualified ``outer/inner`` or short).
        what: the stage's name for reasons (``"prune"``).
    """
    rows: list[tuple[str, Any, bool, str]] = []
    for name, layer in iter_layers(model):
        ok, reason = candidate(layer)
        rows.append((name, layer, ok, reason))
    eligible = [i for i, r in enumerate(rows) if r[2]]
    adjective = {"prune": "prunable", "cluster": "clusterable"}.get(what, what)
    sizes = {i: int(rows[i][1].count_params()) if rows[i][1].built else 0 for i in eligible}
    total = max(1, sum(sizes.values()))
    out: list[LayerChoice] = []
    for i, (name, layer, ok, reason) in enumerate(rows):
        selected = ok
        if ok:
            share = sizes[i] / total
            edge = ("first", "skip_first") if skip_first and i == eligible[0] else \
                ("last", "skip_last") if skip_last and i == eligible[-1] else None
            if edge and len(eligible) > 1 and share < skip_max_share:
                selected, reason = False, f"{edge[0]} {adjective} layer ({what}.{edge[1]}, {share:.1%} of the weights)"
            elif edge and len(eligible) > 1:
                reason = (f"{reason}; {edge[0]} {adjective} layer kept in: it holds {share:.0%} of the weights "
                          f"({what}.skip_max_share {skip_max_share:.0%})")
            if not selected:
                pass
            elif include and not _matches(name, include):
                selected, reason = False, f"not matched by {what}.include"
            elif (pat := _matches(name, exclude)) is not None:
                selected, reason = False, f"excluded by {what}.exclude pattern {pat!r}"
        out.append(LayerChoice(name=name, cls=type(layer).__name__, selected=selected, reason=reason,
                               params=int(layer.count_params()) if layer.built else 0))
    return out


def prune_candidate(layer: Any) -> tuple[bool, str]:
    """Can tfmot prune this layer, and does it have weights worth pruning?"""
    from ..keras_backend import tfmot_internal

    registry = tfmot_internal("prune_registry").PruneRegistry
    cls = type(layer).__name__
    if hasattr(layer, "get_prunable_weights"):
        return True, "custom prunable layer"
    if not registry.supports(layer):
        return False, f"{cls} is not supported by tfmot pruning (left dense)"
    if registry._is_rnn_layer(layer) or registry._is_mha_layer(layer):
        return True, "recurrent / attention weights"
    names = registry._weight_names(layer)
    if not names:
        return False, f"{cls} has no prunable weights"
    return True, f"prunes {', '.join(names)}"


def kernel_shape(layer: Any) -> tuple[int, ...] | None:
    """Shape of a layer's ``kernel`` weight, or None."""
    kernel = getattr(layer, "kernel", None)
    return tuple(int(d) for d in kernel.shape) if kernel is not None else None


def structured_problem(layer: Any, m_by_n: tuple[int, int]) -> str | None:
    """Why ``layer``'s kernel cannot hold N:M sparsity (None when it can).

    tfmot groups weights along the input channels (TFLite layout): a Dense kernel ``(in, out)`` and a
    Conv2D kernel ``(h, w, in, out)`` need ``in`` to be a multiple of M; other ranks are refused.
    """
    zeros, block = m_by_n
    shape = kernel_shape(layer)
    if shape is None:
        return "has no kernel"
    if len(shape) == 2:
        cin = shape[0]
    elif len(shape) == 4:
        cin = shape[2]
    else:
        return f"kernel {shape} has rank {len(shape)}; N:M sparsity needs a Dense or Conv2D kernel"
    if cin % block:
        return f"kernel {shape} has {cin} input channels, not a multiple of the block size {block}"
    return None


def check_structured(choices: list[LayerChoice], model: Any, m_by_n: tuple[int, int], *, structured: str) -> None:
    """Raise ConfigError naming the first selected layer whose shape cannot hold N:M sparsity."""
    layers = dict(iter_layers(model))
    for c in choices:
        if not c.selected:
            continue
        problem = structured_problem(layers[c.name], m_by_n)
        if problem:
            raise ConfigError(f"--structured {structured}: layer {c.name!r} {problem}",
                              hint=f"exclude it (prune.exclude: [{c.name!r}] in a recipe) or use a block size that "
                                   f"divides its input channels, or unstructured --prune")


# ------------------------------------------------------------------------------------------------
# XNNPACK latency policy
# ------------------------------------------------------------------------------------------------
def xnnpack_policy_problem(model: Any) -> str | None:
    """Why tfmot's ``PruneForLatencyOnXNNPack`` cannot be used on this graph (None: it can)."""
    from ..keras_backend import tfmot

    policy = tfmot().sparsity.keras.PruneForLatencyOnXNNPack()
    try:
        policy.ensure_model_supports_pruning(model)
    except ValueError as exc:
        return " ".join(str(exc).split())
    return None


def resolve_policy(model: Any, cfg: PruneConfig, *, quantize: str) -> tuple[bool, str]:
    """Decide whether the XNNPACK latency policy is used: ``(use, reason)``.

    Raises:
        ConfigError: ``policy: xnnpack`` on a graph that cannot take it.
    """
    if cfg.policy == "none":
        return False, "policy none: every selected layer is pruned for size"
    problem = xnnpack_policy_problem(model)
    if cfg.policy == "xnnpack":
        if problem:
            raise ConfigError(f"prune.policy xnnpack: the graph does not fit XNNPACK's sparse inference: {problem}",
                              hint="use prune.policy: none (size-oriented pruning) or auto")
        return True, "policy xnnpack: only 1x1 convolutions XNNPACK can run sparse are pruned"
    if problem:
        return False, f"policy auto: not used, the graph does not fit XNNPACK sparse inference ({problem})"
    if quantize not in ("float32", "float16"):
        return False, f"policy auto: not used, XNNPACK sparse kernels are float-only and the export is {quantize}"
    return True, "policy auto: the graph fits XNNPACK sparse inference; only 1x1 convolutions are pruned"


# ------------------------------------------------------------------------------------------------
# schedule
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SchedulePlan:
    kind: str
    final_sparsity: float
    initial_sparsity: float
    begin_step: int
    end_step: int
    frequency: int
    total_steps: int
    steps_per_epoch: int
    final_epoch: int  # 0-based epoch whose end first has the final sparsity

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_schedule(cfg: PruneConfig, *, epochs: int, n_train: int, batch_size: int) -> SchedulePlan:
    """Derive schedule steps from epochs × batches (pure arithmetic, no TensorFlow)."""
    spe = steps_per_epoch(n_train, batch_size)
    total = epochs * spe
    final = cfg.effective_sparsity
    if cfg.schedule == "constant" or cfg.m_by_n or total < 4:
        freq = cfg.frequency or max(1, min(100, spe // 4))
        return SchedulePlan("constant", final, final, 0, -1, freq, total, spe, 0)
    end = min(max(1, int(math.floor(cfg.ramp * total))), total - 1)
    freq = cfg.frequency or max(1, end // 10)
    freq = min(freq, end)
    end = (end // freq) * freq
    return SchedulePlan("polynomial", final, cfg.initial_sparsity, 0, end, freq, total, spe,
                        min(epochs - 1, end // spe))


def _make_schedule(tfmot: Any, plan: SchedulePlan) -> Any:
    sk = tfmot.sparsity.keras
    if plan.kind == "constant":
        return sk.ConstantSparsity(plan.final_sparsity, begin_step=0, frequency=plan.frequency)
    return sk.PolynomialDecay(initial_sparsity=plan.initial_sparsity, final_sparsity=plan.final_sparsity,
                              begin_step=plan.begin_step, end_step=plan.end_step, frequency=plan.frequency)


# ------------------------------------------------------------------------------------------------
# measuring
# ------------------------------------------------------------------------------------------------
def layer_sparsity(model: Any, names: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
    """Zeros per layer kernel: ``{name: {zeros, total, sparsity, shape}}`` (all kernels if names is None)."""
    wanted = set(names) if names is not None else None
    out: dict[str, dict[str, Any]] = {}
    for name, layer in iter_layers(model):
        if wanted is not None and name not in wanted:
            continue
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            continue
        w = np.asarray(kernel.numpy())
        zeros = int(np.count_nonzero(w == 0))
        out[name] = {"zeros": zeros, "total": int(w.size), "sparsity": round(zeros / max(1, w.size), 6),
                     "shape": list(w.shape)}
    return out


def model_weight_sparsity(model: Any) -> dict[str, Any]:
    """Zeros over all of a model's weights (kernels, biases, everything)."""
    zeros = total = 0
    for w in model.get_weights():
        zeros += int(np.count_nonzero(w == 0))
        total += int(w.size)
    return {"zeros": zeros, "total": total, "sparsity": round(zeros / max(1, total), 6)}


def sparsity_payoff(model: Any, per_layer: dict[str, dict[str, Any]], *, quantize: str,
                    delegates: Iterable[str] = ("xnnpack",), graph_problem: str | None = None) -> dict[str, Any]:
    """Can the zeros pay off at run time? (XNNPACK sparse inference eligibility, size effects.)

    XNNPACK runs a 1×1 convolution with sparse kernels only when the model is float32/float16, the
    graph has the shape its sparse subgraph needs (3×3 stride-2 stem ... global average pooling),
    and at least 2/3 of that convolution's weights are zero. Otherwise pruning only shrinks the
    gzipped download, not the raw ``.tflite`` or the latency.
    """
    layers = dict(iter_layers(model))
    conv1x1 = {n: s for n, s in per_layer.items()
               if type(layers.get(n)).__name__ == "Conv2D" and tuple(s["shape"][:2]) == (1, 1)}
    sparse_1x1 = [n for n, s in conv1x1.items() if s["sparsity"] >= XNNPACK_MIN_SPARSITY]
    reasons = []
    if quantize not in ("float32", "float16"):
        reasons.append(f"the export is {quantize}; XNNPACK sparse kernels are float32/float16 only")
    if "xnnpack" not in set(delegates):
        reasons.append("the target runtime does not use XNNPACK")
    if not conv1x1:
        reasons.append("the model has no 1x1 convolutions")
    elif not sparse_1x1:
        best = max(s["sparsity"] for s in conv1x1.values())
        reasons.append(f"no 1x1 convolution has >= 2/3 zero weights (best {best:.0%})")
    if graph_problem:
        reasons.append(f"graph: {graph_problem}")
    eligible = not reasons
    return {
        "xnnpack_sparse_eligible": eligible,
        "conv1x1_layers": len(conv1x1),
        "conv1x1_sparse_layers": sparse_1x1,
        "reasons": reasons,
        "summary": ("XNNPACK can run the pruned 1x1 convolutions with sparse kernels (ARM); store weights "
                    "sparse (EXPERIMENTAL_SPARSITY) to shrink the raw file too"
                    if eligible else
                    "zeros shrink the gzipped download only; raw .tflite size and latency are unchanged ("
                    + "; ".join(reasons) + ")"),
    }


# ------------------------------------------------------------------------------------------------
# the stage
# ------------------------------------------------------------------------------------------------
def choose_layers(model: Any, cfg: Any, *, use_policy: bool) -> list[Any]:
    """Which layers pruning takes (tfmot support, the XNNPACK policy when on, the recipe's filters)."""
    policy = None
    if use_policy:
        from ..keras_backend import tfmot as _tfmot

        policy = _tfmot().sparsity.keras.PruneForLatencyOnXNNPack()

    def candidate(layer: Any) -> tuple[bool, str]:
        ok, why = prune_candidate(layer)
        if ok and policy is not None and not policy.allow_pruning(layer):
            return False, "XNNPACK policy prunes only 1x1 Conv2D"
        return ok, why

    return select_layers(model, candidate=candidate, skip_first=cfg.skip_first, skip_last=cfg.skip_last,
                         include=cfg.include, exclude=cfg.exclude, what="prune", skip_max_share=cfg.skip_max_share)


def prune_model(model: Any, cfg: PruneConfig, *, data: TrainData | None, loss: LossSpec | None, epochs: int,
                learning_rate: float, batch_size: int, patience: int, seed: int = 0, quantize: str = "int8",
                delegates: Iterable[str] = ("xnnpack",), progress: bool = False,
                tensorboard_dir: str | None = None, lr_schedule: str = "constant") -> tuple[Any, dict[str, Any]]:
    """Prune ``model`` while fine-tuning, strip the wrappers, and measure the result.

    Args:
        model: a tf_keras Sequential or functional model.
        cfg: the recipe's prune section.
        data, loss: training split and loss (see :mod:`edgekit.stages.finetune`); unused at sparsity 0.
        epochs, learning_rate, batch_size, patience, seed: fine-tuning settings.
        quantize: the export's quantization (decides whether XNNPACK sparse kernels could apply).
        delegates: the target runtime's delegates.
        progress, tensorboard_dir: progress bar and TensorBoard logs (with pruning summaries).

    Returns:
        ``(stripped_model, metrics)``; at sparsity 0 the input model itself, untouched.
    """
    if cfg.effective_sparsity == 0.0:
        return model, {"skipped": "sparsity 0: nothing to prune", "sparsity": 0.0}
    if data is None or loss is None:
        raise ConfigError("pruning needs training data", hint="pass --data with a training split, or --prune 0")
    from ..keras_backend import keras as _keras
    from ..keras_backend import tfmot as _tfmot

    keras, tfmot = _keras(), _tfmot()
    sk = tfmot.sparsity.keras
    use_policy, policy_reason = resolve_policy(model, cfg, quantize=quantize)
    choices = choose_layers(model, cfg, use_policy=use_policy)
    selected = {c.name for c in choices if c.selected}
    if not selected:
        raise ConfigError("pruning selected no layer: " + "; ".join(f"{c.name}: {c.reason}" for c in choices
                                                                   if c.reason and "prunable" not in c.reason)[:400],
                          hint="adjust prune.include / prune.exclude / skip_first / skip_last, or use --prune 0")
    if cfg.m_by_n:
        check_structured(choices, model, cfg.m_by_n, structured=cfg.structured or "")
    plan = plan_schedule(cfg, epochs=epochs, n_train=data.n_train, batch_size=batch_size)
    schedule = _make_schedule(tfmot, plan)
    params: dict[str, Any] = {"pruning_schedule": schedule}
    if cfg.m_by_n:
        params["sparsity_m_by_n"] = cfg.m_by_n
    if use_policy:
        sk.PruneForLatencyOnXNNPack().ensure_model_supports_pruning(model)
    wrapped = wrap_selected(keras, model, selected, lambda layer: sk.prune_low_magnitude(layer, **params))

    extra = [lambda log_dir: sk.PruningSummaries(log_dir=log_dir)] if tensorboard_dir else []
    fit = fine_tune(wrapped, data, loss=loss, epochs=epochs, learning_rate=learning_rate, batch_size=batch_size,
                    patience=patience, seed=seed, stage="prune", callbacks=[sk.UpdatePruningStep()],
                    lr_schedule=lr_schedule,
                    best_from_epoch=plan.final_epoch, progress=progress, tensorboard_dir=tensorboard_dir,
                    extra_tensorboard=extra)
    stripped = fresh_copy(sk.strip_pruning(wrapped))
    per_layer = layer_sparsity(stripped, selected)
    zeros = sum(v["zeros"] for v in per_layer.values())
    total = sum(v["total"] for v in per_layer.values())
    achieved = zeros / max(1, total)
    graph_problem = None if use_policy else xnnpack_policy_problem(model)
    metrics = {
        "target_sparsity": cfg.effective_sparsity,
        "sparsity": round(achieved, 6),
        "model_weight_sparsity": model_weight_sparsity(stripped),
        "per_layer": per_layer,
        "layers": [c.as_dict() for c in choices if c.reason],
        "schedule": plan.as_dict(),
        "structured": cfg.structured,
        "policy": {"xnnpack": use_policy, "reason": policy_reason},
        "payoff": sparsity_payoff(stripped, per_layer, quantize=quantize, delegates=delegates,
                                  graph_problem=graph_problem),
        "fit": fit.as_metrics(),
    }
    if cfg.m_by_n:
        metrics["structured_ok"] = _check_m_by_n(stripped, selected, cfg.m_by_n)
    return stripped, metrics


def fresh_copy(model: Any) -> Any:
    """A copy of ``model`` with its own layer objects and the same weights.

    tfmot's wrappers reuse layer objects, so a stripped model shares layers (and their graph
    nodes) with the models it came from; the next stage should see a model of its own, exactly
    like one loaded from the stage cache.
    """
    from ..keras_backend import keras as _keras

    copy = _keras().models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def _check_m_by_n(model: Any, names: Iterable[str], m_by_n: tuple[int, int]) -> bool:
    """True if every selected kernel has at least N zeros in every block of M input channels."""
    zeros_needed, block = m_by_n
    layers = dict(iter_layers(model))
    for name in names:
        w = np.asarray(layers[name].kernel.numpy())
        if w.ndim == 2:
            w2 = w.T  # (out, in)
        elif w.ndim == 4:
            w2 = np.transpose(w, (3, 0, 1, 2)).reshape(-1, w.shape[2])
        else:
            return False
        blocks = w2.reshape(w2.shape[0], -1, block)
        if (np.count_nonzero(blocks == 0, axis=-1) < zeros_needed).any():
            return False
    return True


# ------------------------------------------------------------------------------------------------
# after conversion
# ------------------------------------------------------------------------------------------------
def tflite_weight_sparsity(model_bytes: bytes, *, min_elements: int = 64) -> dict[str, Any]:
    """Count zeros in the constant weight tensors (rank >= 2) of a ``.tflite`` model.

    Pure flatbuffer reading (no interpreter). For int8 weights, zero is exactly the quantized zero
    (weights use symmetric quantization, zero point 0), so pruned zeros show up as int8 zeros.

    Returns:
        ``{"tensors": {name: {dtype, shape, zeros, total, sparsity}}, "zeros", "total", "sparsity"}``.
    """
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(bytearray(model_bytes), 0)
    types = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    np_types = {"int8": np.int8, "uint8": np.uint8, "float32": np.float32, "float16": np.float16,
                "int16": np.int16}
    out: dict[str, Any] = {}
    zeros = total = 0
    for sg in range(model.SubgraphsLength()):
        graph = model.Subgraphs(sg)
        for ti in range(graph.TensorsLength()):
            t = graph.Tensors(ti)
            dtype = types.get(t.Type(), "?")
            shape = [int(d) for d in t.ShapeAsNumpy()] if t.ShapeLength() else []
            if dtype not in np_types or len(shape) < 2 or t.Buffer() <= 0 or t.Buffer() >= model.BuffersLength():
                continue
            buf = model.Buffers(t.Buffer())
            if buf.DataLength() == 0:
                continue
            data = np.frombuffer(buf.DataAsNumpy().tobytes(), dtype=np_types[dtype])
            if data.size < min_elements or data.size != int(np.prod(shape)):
                continue
            z = int(np.count_nonzero(data == 0))
            name = t.Name().decode("utf-8", "replace") if t.Name() else f"tensor_{ti}"
            out[name] = {"dtype": dtype, "shape": shape, "zeros": z, "total": int(data.size),
                         "sparsity": round(z / data.size, 6)}
            zeros += z
            total += int(data.size)
    return {"tensors": out, "zeros": zeros, "total": total, "sparsity": round(zeros / max(1, total), 6)}


def verify_tflite_sparsity(model_bytes: bytes, per_layer: dict[str, dict[str, Any]], *,
                           tolerance: float = 0.02) -> dict[str, Any]:
    """Check that the zeros of the pruned Keras kernels survived into the ``.tflite`` weights.

    Every pruned layer's kernel is matched to a weight tensor of the same element count whose
    name mentions the layer; its zero fraction must be at least the Keras one minus ``tolerance``
    (quantization can only add zeros: symmetric int8 maps 0 to 0).
    """
    found = tflite_weight_sparsity(model_bytes)
    tensors = found["tensors"]
    layers_out: dict[str, Any] = {}
    ok = True
    for name, keras_stats in per_layer.items():
        short = name.rsplit("/", 1)[-1]
        match = None
        for tname, t in tensors.items():
            if t["total"] == keras_stats["total"] and (f"/{short}/" in tname or f"quant_{short}" in tname
                                                       or tname.endswith(short) or f"{short}/" in tname):
                match = (tname, t)
                break
        if match is None:
            same_size = [(n, t) for n, t in tensors.items() if t["total"] == keras_stats["total"]]
            match = same_size[0] if len(same_size) == 1 else None
        if match is None:
            layers_out[name] = {"keras_sparsity": keras_stats["sparsity"], "tflite_tensor": None}
            continue
        tname, t = match
        survived = t["sparsity"] >= keras_stats["sparsity"] - tolerance
        ok = ok and survived
        layers_out[name] = {"keras_sparsity": keras_stats["sparsity"], "tflite_tensor": tname,
                            "tflite_dtype": t["dtype"], "tflite_sparsity": t["sparsity"], "survived": survived}
    matched = [v for v in layers_out.values() if v.get("tflite_tensor")]
    return {"survived": ok and bool(matched), "layers": layers_out, "weight_sparsity": found["sparsity"],
            "matched_layers": len(matched)}
