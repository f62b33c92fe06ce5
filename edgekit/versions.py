"""Tool versions, read from package metadata (never by importing TensorFlow)."""
from __future__ import annotations

import functools
import platform
from importlib import metadata

from . import __version__

PACKAGES = ("tensorflow", "tf_keras", "tensorflow-model-optimization", "ai-edge-litert", "numpy", "keras")


def tool_versions() -> dict[str, str]:
    """Versions of edgekit, Python and the ML stack, for reports, baselines and cache keys."""
    return dict(_tool_versions())


@functools.lru_cache(maxsize=1)
def _tool_versions() -> dict[str, str]:
    out = {"edgekit": __version__, "python": platform.python_version()}
    for pkg in PACKAGES:
        out[pkg] = package_version(pkg) or "not installed"
    return out


def package_version(name: str) -> str | None:
    """The installed version of distribution ``name``, or None when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
