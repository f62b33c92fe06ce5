"""Weight clustering stage (tfmot ``cluster_weights``), sparsity-preserving after pruning.

Each selected layer's kernel is reduced to K shared values (``--clusters K``), fine-tuned, and
the wrappers are stripped (``strip_clustering``). After pruning the zeros are kept as their own
cluster (``preserve_sparsity=True``). QAT afterwards uses the cluster-preserving scheme (see
:mod:`edgekit.stages.qat`). Clustering mostly pays off in the gzipped size: K distinct values per
kernel compress well; the raw ``.tflite`` is unchanged.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError
from ..recipe import ClusterConfig
from .finetune import LossSpec, TrainData, fine_tune
from .prune import LayerChoice, fresh_copy, iter_layers, layer_sparsity, select_layers, wrap_selected

STAGE_VERSION = 1

_INIT = {"kmeans++": "KMEANS_PLUS_PLUS", "linear": "LINEAR", "density": "DENSITY_BASED", "random": "RANDOM"}


def cluster_candidate(layer: Any, *, clusters: int) -> tuple[bool, str]:
    """Can tfmot cluster this layer with ``clusters`` clusters?"""
    from ..keras_backend import tfmot_internal

    registry = tfmot_internal("clustering_registry").ClusteringRegistry
    cls = type(layer).__name__
    if not registry.supports(layer):
        return False, f"{cls} is not supported by tfmot clustering (left as is)"
    if not layer.trainable_weights:
        return False, f"{cls} has no weights to cluster"
    if layer.__class__ in getattr(registry, "_LAYERS_WEIGHTS_MAP", {}) and not registry._weight_names(layer):
        return False, f"{cls} has no clusterable weights"
    kernel = getattr(layer, "kernel", None)
    if kernel is not None and int(np.prod(kernel.shape)) <= clusters:
        return False, f"kernel has {int(np.prod(kernel.shape))} weights, not more than {clusters} clusters"
    return True, "clusters the kernel"


def cluster_choices(model: Any, cfg: ClusterConfig) -> list[LayerChoice]:
    """Per-layer selection for clustering (shared with the pre-flight plan)."""
    return select_layers(model, candidate=lambda layer: cluster_candidate(layer, clusters=cfg.clusters),
                         skip_first=cfg.skip_first, skip_last=cfg.skip_last, include=cfg.include,
                         exclude=cfg.exclude, what="cluster", skip_max_share=cfg.skip_max_share)


def unique_values(model: Any, names: set[str]) -> dict[str, int]:
    """Distinct kernel values per layer."""
    return {name: int(np.unique(np.asarray(layer.kernel.numpy())).size)
            for name, layer in iter_layers(model) if name in names and getattr(layer, "kernel", None) is not None}


def cluster_model(model: Any, cfg: ClusterConfig, *, data: TrainData, loss: LossSpec, epochs: int,
                  learning_rate: float, batch_size: int, patience: int, seed: int = 0,
                  preserve_sparsity: bool = False, progress: bool = False,
                  tensorboard_dir: str | None = None, lr_schedule: str = "constant") -> tuple[Any, dict[str, Any]]:
    """Cluster the selected layers' weights while fine-tuning, then strip the wrappers.

    Args:
        model: a tf_keras model (pruned and stripped, or the original).
        cfg: the recipe's cluster section.
        data, loss, epochs, learning_rate, batch_size, patience, seed: fine-tuning settings.
        preserve_sparsity: keep pruned zeros (the model was pruned before).
        progress, tensorboard_dir: progress bar and TensorBoard logs.

    Returns:
        ``(stripped_model, metrics)`` with the distinct values per layer and the sparsity kept.
    """
    from ..keras_backend import keras as _keras
    from ..keras_backend import tfmot as _tfmot

    keras, tfmot = _keras(), _tfmot()
    ck = tfmot.clustering.keras
    if preserve_sparsity and cfg.clusters < 3:
        raise ConfigError(f"--clusters {cfg.clusters}: sparsity-preserving clustering needs at least 3 clusters "
                          "(one is reserved for the zeros)", hint="use --clusters 3 or more")
    choices = cluster_choices(model, cfg)
    selected = {c.name for c in choices if c.selected}
    if not selected:
        raise ConfigError("clustering selected no layer", hint="adjust cluster.include / cluster.exclude, or drop "
                                                               "--clusters")
    before = layer_sparsity(model, selected) if preserve_sparsity else {}
    params = {"number_of_clusters": cfg.clusters,
              "cluster_centroids_init": getattr(ck.CentroidInitialization, _INIT[cfg.init]),
              "preserve_sparsity": preserve_sparsity}
    wrapped = wrap_selected(keras, model, selected, lambda layer: ck.cluster_weights(layer, **params))
    fit = fine_tune(wrapped, data, loss=loss, epochs=epochs, learning_rate=learning_rate, batch_size=batch_size,
                    patience=patience, seed=seed, stage="cluster", progress=progress,
                    tensorboard_dir=tensorboard_dir, lr_schedule=lr_schedule)
    stripped = fresh_copy(ck.strip_clustering(wrapped))
    uniq = unique_values(stripped, selected)
    metrics: dict[str, Any] = {
        "clusters": cfg.clusters,
        "init": cfg.init,
        "preserve_sparsity": preserve_sparsity,
        "unique_values": uniq,
        "max_unique_values": max(uniq.values()) if uniq else None,
        "layers": [c.as_dict() for c in choices if c.reason],
        "fit": fit.as_metrics(),
    }
    if preserve_sparsity:
        after = layer_sparsity(stripped, selected)
        kept = {n: {"before": before[n]["sparsity"], "after": after[n]["sparsity"],
                    "preserved": after[n]["sparsity"] >= before[n]["sparsity"] - 0.02} for n in before}
        metrics["sparsity_check"] = {"preserved": all(v["preserved"] for v in kept.values()), "layers": kept}
        per_layer = layer_sparsity(stripped)
        zeros = sum(v["zeros"] for n, v in per_layer.items() if n in before)
        total = sum(v["total"] for n, v in per_layer.items() if n in before)
        metrics["sparsity"] = round(zeros / max(1, total), 6)
    return stripped, metrics
