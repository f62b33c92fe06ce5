"""edgekit: take a trained Keras model to an edge device.

The public API lives in :mod:`edgekit.api` and is re-exported here. Importing edgekit never
imports TensorFlow; only :mod:`edgekit.keras_backend` does, lazily, and usually in a child process.
"""
from __future__ import annotations

__version__ = "0.1.0"

from .errors import BudgetError, ChildCrash, ConfigError, DataError, DeviceError, EdgekitError, ModelError  # noqa: E402

__all__ = [
    "__version__", "EdgekitError", "ConfigError", "ModelError", "DataError", "BudgetError", "DeviceError",
    "ChildCrash", "compress",
]


def __getattr__(name: str):  # lazy re-export of api functions, keeps `import edgekit` light
    import importlib

    if name.startswith("__"):
        raise AttributeError(name)
    api = importlib.import_module(".api", __name__)
    if hasattr(api, name):
        return getattr(api, name)
    raise AttributeError(f"module 'edgekit' has no attribute {name!r}")
