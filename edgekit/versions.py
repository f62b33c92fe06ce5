"""Tool versions, read from package metadata (never by importing TensorFlow)."""
from __future__ import annotations

import platform
from importlib import metadata

from . import __version__

PACKAGES = ("tensorflow", "tf_keras", "tensorflow-model-optimization", "ai-edge-litert", "numpy", "keras")


def tool_versions() -> dict[str, str]:
    """Versions of edgekit, Python and the ML stack, for reports, baselines and cache keys."""
    out = {"edgekit": __version__, "python": platform.python_version()}
    for pkg in PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out
