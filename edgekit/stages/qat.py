"""Quantization-aware training stage (tfmot default 8-bit).

The scheme follows what ran before it, so earlier work survives:

* nothing before: ``Default8BitQuantizeScheme`` (QAT)
* after pruning: ``Default8BitPrunePreserveQuantizeScheme`` (PQAT, keeps the zeros)
* after clustering: ``Default8BitClusterPreserveQuantizeScheme`` (CQAT; PCQAT with
  ``preserve_sparsity`` when the model was pruned too)

Layers tfmot cannot quantize get a known fix instead of an error (:func:`qat_plan`): layers the
registry does not know are left unannotated (float during QAT; the converter still quantizes them
from calibration data), and registry layers whose activation the fake-quant cannot model (e.g.
``hard_sigmoid``) get a no-op quantize config (otherwise tfmot would add an output quantizer to
them and fail). ``Conv2D``/``DepthwiseConv2D`` followed by ``BatchNormalization`` is folded by tfmot.

A QAT model cannot be saved and reloaded as a whole (tfmot's CQAT/PCQAT wrappers fail on reload),
so the stage cache stores its input model and its weights; :func:`build_qat_model` rebuilds the
same wrapped graph deterministically and the weights are loaded into it.
"""
from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass
from typing import Any, Iterable

import numpy as np

from ..errors import ModelError
from ..recipe import QatConfig
from .finetune import LossSpec, TrainData, fine_tune

STAGE_VERSION = 1

QAT_ACTIVATIONS = frozenset({"linear", "relu", "softmax", "sigmoid", "tanh", "gelu", "swish"})
"""Activations tfmot's QuantizeAwareActivation can model (tfmot 0.8.1)."""

_FOLDS_BN = ("Conv2D", "DepthwiseConv2D")


@dataclass(frozen=True)
class QatChoice:
    """How one layer is treated by QAT."""

    name: str
    cls: str
    action: str  # "quantize" | "noop" | "skip" | "fold"
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def scheme_name(*, pruned: bool, clustered: bool) -> str:
    """``qat``, ``pqat``, ``cqat`` or ``pcqat``."""
    if clustered:
        return "pcqat" if pruned else "cqat"
    return "pqat" if pruned else "qat"


def _scheme(tfmot: Any, name: str) -> Any:
    combine = tfmot.experimental.combine
    if name == "pqat":
        return combine.Default8BitPrunePreserveQuantizeScheme()
    if name in ("cqat", "pcqat"):
        return combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=name == "pcqat")
    return tfmot.quantization.keras.default_8bit.Default8BitQuantizeScheme()


def _activation(layer: Any) -> str | None:
    act = getattr(layer, "activation", None)
    if act is None:
        return None
    return getattr(act, "__name__", str(act))


def _graph_edges(model: Any) -> tuple[dict[str, list[Any]], dict[str, int]]:
    """Producers of each layer and the consumer count of each layer, in this model's graph only.

    Layers can be shared with other models (tfmot's wrappers reuse layer objects), so the layer's
    own ``_inbound_nodes`` may describe another model; the model's nodes do not.
    """
    producers: dict[str, list[Any]] = {}
    consumers: dict[str, int] = {}
    for nodes in getattr(model, "_nodes_by_depth", {}).values():
        for node in nodes:
            inbound = node.inbound_layers
            inbound = list(inbound) if isinstance(inbound, (list, tuple)) else [inbound]
            producers[node.outbound_layer.name] = inbound
            for prod in inbound:
                consumers[prod.name] = consumers.get(prod.name, 0) + 1
    return producers, consumers


def qat_plan(model: Any, cfg: QatConfig, *, scheme: str = "qat") -> list[QatChoice]:
    """Decide per layer how QAT treats it (pure inspection; imports tfmot's registry).

    ``scheme`` matters for weightless layers tfmot does not know (``Rescaling``, ``TFOpLambda``):
    the default scheme leaves them unannotated, but the prune/cluster-preserving registries claim
    every weightless layer and then fail on it, so those get a no-op quantize config instead.

    Raises:
        ModelError: the model is subclassed (cannot be cloned) or still contains nested models.
    """
    from ..keras_backend import keras as _keras
    from ..keras_backend import tfmot_internal

    keras = _keras()
    check_cloneable(model, what="quantization-aware training")
    registry = tfmot_internal("quantize_registry").Default8BitQuantizeRegistry()
    producers, consumers = _graph_edges(model)
    out: list[QatChoice] = []
    for layer in model.layers:
        cls = type(layer).__name__
        if cls == "InputLayer":
            continue
        if isinstance(layer, keras.Model):
            raise ModelError(f"layer {layer.name!r} is a nested model; tfmot cannot quantize nested models",
                             hint="flatten it first (edgekit does this automatically in the pre-flight step)")
        if any(fnmatch.fnmatchcase(layer.name, p) for p in cfg.exclude):
            action = "noop" if registry.supports(layer) else "skip"
            out.append(QatChoice(layer.name, cls, action, "excluded by qat.exclude: stays float during QAT"))
            continue
        if cls == "BatchNormalization":
            prods = producers.get(layer.name, [])
            prod = prods[0] if len(prods) == 1 else None
            if prod is not None and type(prod).__name__ in _FOLDS_BN and consumers.get(prod.name) == 1:
                out.append(QatChoice(layer.name, cls, "fold", f"folded into {prod.name!r}"))
            else:
                out.append(QatChoice(layer.name, cls, "skip",
                                     "BatchNormalization not directly after a convolution: left unannotated "
                                     "(float during QAT, quantized by the converter)"))
            continue
        if registry.supports(layer):
            act = _activation(layer)
            if act is not None and act not in QAT_ACTIVATIONS:
                out.append(QatChoice(layer.name, cls, "noop",
                                     f"activation {act!r} has no fake-quant model: no-op quantize config"))
            else:
                out.append(QatChoice(layer.name, cls, "quantize", "default 8-bit"))
            continue
        if scheme != "qat" and not layer.trainable_weights:
            out.append(QatChoice(layer.name, cls, "noop", f"{cls} is not supported by tfmot QAT: no-op quantize "
                                                          f"config (the {scheme} registry fails on it otherwise)"))
            continue
        out.append(QatChoice(layer.name, cls, "skip", f"{cls} is not supported by tfmot QAT: left unannotated "
                                                      "(float during QAT, quantized by the converter)"))
    if not any(c.action == "quantize" for c in out):
        raise ModelError("quantization-aware training found no layer tfmot can quantize",
                         hint="use --no-qat (post-training quantization) for this model")
    return out


def check_cloneable(model: Any, *, what: str) -> None:
    """ModelError unless ``model`` is a Sequential or functional model (tfmot clones the graph)."""
    from ..keras_backend import keras as _keras

    keras = _keras()
    if not (isinstance(model, keras.Sequential) or getattr(model, "_is_graph_network", False)):
        raise ModelError(f"{what} needs a Sequential or functional model; {type(model).__name__!r} is a subclassed "
                         "model whose graph tfmot cannot rebuild",
                         hint="rebuild it with the functional API, or compress without training stages "
                              "(--prune 0 --no-qat)")


def _noop_config_class() -> type:
    from ..keras_backend import tfmot as _tfmot

    global _NOOP
    if _NOOP is None:
        base = _tfmot().quantization.keras.QuantizeConfig

        class NoOpQuantizeConfig(base):  # type: ignore[misc, valid-type]
            """Wraps a layer for QAT without quantizing anything in it."""

            def get_weights_and_quantizers(self, layer: Any) -> list:
                return []

            def get_activations_and_quantizers(self, layer: Any) -> list:
                return []

            def set_quantize_weights(self, layer: Any, quantize_weights: list) -> None:
                pass

            def set_quantize_activations(self, layer: Any, quantize_activations: list) -> None:
                pass

            def get_output_quantizers(self, layer: Any) -> list:
                return []

            def get_config(self) -> dict:
                return {}

        _NOOP = NoOpQuantizeConfig
    return _NOOP


_NOOP: type | None = None


def build_qat_model(model: Any, choices: list[QatChoice], *, scheme: str) -> Any:
    """Annotate per ``choices`` and apply the tfmot scheme; deterministic for a given model."""
    from ..keras_backend import keras as _keras
    from ..keras_backend import tfmot as _tfmot

    keras, tfmot = _keras(), _tfmot()
    qk = tfmot.quantization.keras
    noop = _noop_config_class()
    action = {c.name: c.action for c in choices}

    def annotate(layer: Any) -> Any:
        what = action.get(layer.name)
        if what in ("quantize", "fold"):
            return qk.quantize_annotate_layer(layer)
        if what == "noop":
            return qk.quantize_annotate_layer(layer, quantize_config=noop())
        return layer

    with qk.quantize_scope({"NoOpQuantizeConfig": noop}):
        annotated = keras.models.clone_model(model, clone_function=annotate)  # shares the layers' weights
        try:
            return qk.quantize_apply(annotated, _scheme(tfmot, scheme))
        except (ValueError, RuntimeError, TypeError) as exc:
            raise ModelError(f"tfmot could not prepare the model for QAT: {' '.join(str(exc).split())[:300]}",
                             hint="exclude the layer named above with qat.exclude in a recipe, or use --no-qat") from exc


def effective_kernel_sparsity(qat_model: Any) -> dict[str, dict[str, Any]]:
    """Zeros in each wrapped layer's kernel as the fake-quant sees it (what the converter exports)."""
    out: dict[str, dict[str, Any]] = {}
    for layer in qat_model.layers:
        for weight, quantizer, qvars in getattr(layer, "_weight_vars", []) or []:
            if "kernel" not in weight.name:
                continue
            q = np.asarray(quantizer(weight, training=False, weights=qvars))
            zeros = int(np.count_nonzero(q == 0))
            out[getattr(layer, "layer", layer).name] = {"zeros": zeros, "total": int(q.size),
                                                        "sparsity": round(zeros / max(1, q.size), 6)}
    return out


def unique_kernel_values(qat_model: Any) -> dict[str, int]:
    """Distinct values per wrapped kernel (float, before fake-quant): shows clusters surviving CQAT."""
    out: dict[str, int] = {}
    for layer in qat_model.layers:
        inner = getattr(layer, "layer", None)
        kernel = getattr(inner, "kernel", None) if inner is not None else None
        if kernel is not None:
            out[inner.name] = int(np.unique(np.asarray(kernel.numpy())).size)
    return out


def quantize_model(model: Any, cfg: QatConfig, *, data: TrainData, loss: LossSpec, epochs: int,
                   learning_rate: float, batch_size: int, patience: int, seed: int = 0,
                   input_sparsity: dict[str, dict[str, Any]] | None = None, clustered: bool = False,
                   choices: list[QatChoice] | None = None, progress: bool = False,
                   tensorboard_dir: str | None = None, lr_schedule: str = "constant") -> tuple[Any, dict[str, Any]]:
    """Wrap ``model`` for QAT (scheme chosen from what ran before) and fine-tune it.

    Args:
        model: a tf_keras model (pruned and/or clustered, stripped of their wrappers).
        cfg: the recipe's qat section.
        data, loss, epochs, learning_rate, batch_size, patience, seed: fine-tuning settings.
        input_sparsity: per-layer sparsity from the pruning stage (``{name: {sparsity, ...}}``);
            when given, PQAT is used and the zeros are verified after training.
        clustered: the model was clustered (CQAT / PCQAT).
        choices: a pre-computed :func:`qat_plan` (the pre-flight one), else computed here.
        progress, tensorboard_dir: progress bar and TensorBoard logs.

    Returns:
        ``(qat_model, metrics)``; metrics include ``scheme``, the per-layer plan and the sparsity
        check (``sparsity_preserved``).
    """
    pruned = bool(input_sparsity) and any(v.get("sparsity", 0) > 0 for v in input_sparsity.values())
    scheme = scheme_name(pruned=pruned, clustered=clustered)
    choices = choices if choices is not None else qat_plan(model, cfg, scheme=scheme)
    qat_model = build_qat_model(model, choices, scheme=scheme)
    fit = fine_tune(qat_model, data, loss=loss, epochs=epochs, learning_rate=learning_rate, batch_size=batch_size,
                    patience=patience, seed=seed, stage="qat", progress=progress, tensorboard_dir=tensorboard_dir,
                    lr_schedule=lr_schedule)
    metrics: dict[str, Any] = {"scheme": scheme, "layers": [c.as_dict() for c in choices if c.action != "quantize"],
                               "quantized_layers": sum(c.action in ("quantize", "fold") for c in choices),
                               "fit": fit.as_metrics()}
    if pruned:
        metrics["sparsity_check"] = check_sparsity_preserved(qat_model, input_sparsity or {})
        metrics["sparsity"] = metrics["sparsity_check"]["sparsity"]
    return qat_model, metrics


def check_sparsity_preserved(qat_model: Any, input_sparsity: dict[str, dict[str, Any]], *,
                             tolerance: float = 0.02) -> dict[str, Any]:
    """Compare each pruned layer's zeros before QAT with its fake-quantized kernel after QAT."""
    after = effective_kernel_sparsity(qat_model)
    layers: dict[str, Any] = {}
    ok = True
    zeros = total = 0
    for name, before in input_sparsity.items():
        short = name.rsplit("/", 1)[-1]
        now = after.get(short)
        if now is None:
            layers[name] = {"before": before["sparsity"], "after": None}
            continue
        kept = now["sparsity"] >= before["sparsity"] - tolerance
        ok = ok and kept
        zeros += now["zeros"]
        total += now["total"]
        layers[name] = {"before": before["sparsity"], "after": now["sparsity"], "preserved": kept}
    return {"preserved": ok, "sparsity": round(zeros / max(1, total), 6), "layers": layers}


def restore_qat_model(model: Any, choices: list[QatChoice], *, scheme: str, weights_path: str) -> Any:
    """Rebuild a cached QAT model: same annotation of the same input model, then its weights."""
    qat_model = build_qat_model(model, choices, scheme=scheme)
    qat_model.load_weights(weights_path)
    return qat_model


def choices_from_dicts(rows: Iterable[dict[str, Any]]) -> list[QatChoice]:
    """Inverse of ``[c.as_dict() for c in choices]`` (for cache manifests)."""
    return [QatChoice(**r) for r in rows]
