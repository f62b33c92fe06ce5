"""Clustering stage with real tfmot: K shared values per kernel, sparsity kept after pruning (PCQAT)."""
import numpy as np
import pytest

from _compress_models import load_fresh, split_and_loss
from edgekit.errors import ConfigError
from edgekit.recipe import ClusterConfig, PruneConfig, QatConfig
from edgekit.stages import cluster as C
from edgekit.stages import prune as P
from edgekit.stages import qat as Q

pytestmark = pytest.mark.tf

TRAIN = dict(epochs=1, learning_rate=1e-3, batch_size=32, patience=2)


def test_cluster_limits_distinct_weight_values(tiny_keras_model, digits):
    model = load_fresh(tiny_keras_model)
    data, loss = split_and_loss(model, digits, max_samples=600)
    out, m = C.cluster_model(model, ClusterConfig(clusters=8), data=data, loss=loss, **TRAIN)
    assert set(m["unique_values"]) == {"conv", "hidden", "probs"}
    assert all(n <= 8 for n in m["unique_values"].values())
    assert not any("cluster_" in layer.name for layer in out.layers)  # stripped


def test_cluster_after_pruning_keeps_zeros_then_pcqat(tiny_keras_model, digits):
    model = load_fresh(tiny_keras_model)
    data, loss = split_and_loss(model, digits, max_samples=600)
    pruned, pm = P.prune_model(model, PruneConfig(sparsity=0.5, schedule="constant"), data=data, loss=loss, **TRAIN)
    clustered, cm = C.cluster_model(pruned, ClusterConfig(clusters=8), data=data, loss=loss, preserve_sparsity=True,
                                    **TRAIN)
    assert cm["sparsity_check"]["preserved"] is True
    assert cm["sparsity_check"]["layers"]["hidden"]["after"] >= 0.49
    hidden = next(layer for layer in clustered.layers if layer.name == "hidden").kernel.numpy()
    assert np.unique(hidden).size <= 8 and 0 in np.unique(hidden)
    qat_model, qm = Q.quantize_model(clustered, QatConfig(), data=data, loss=loss, input_sparsity=pm["per_layer"],
                                     clustered=True, **TRAIN)
    assert qm["scheme"] == "pcqat" and qm["sparsity_check"]["preserved"] is True


def test_cluster_sparsity_preserving_needs_three_clusters(tiny_keras_model, digits):
    model = load_fresh(tiny_keras_model)
    data, loss = split_and_loss(model, digits, max_samples=200)
    with pytest.raises(ConfigError, match="at least 3 clusters"):
        C.cluster_model(model, ClusterConfig(clusters=2), data=data, loss=loss, preserve_sparsity=True, **TRAIN)
