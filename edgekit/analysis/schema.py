"""The TFLite flatbuffer schema module, taken from an installed package (never hand-written).

``ai_edge_litert`` ships ``schema_py_generated`` (flatc's Python output for ``schema.fbs``); the
``tflite-micro`` package ships a copy too. TensorFlow has one as well, but importing
``tensorflow.lite.python`` runs TensorFlow's package ``__init__`` (seconds, and forbidden outside the
Keras backend), so it is not used. Importing the LiteRT module costs ~0.2 s (flatbuffers + numpy).
"""
from __future__ import annotations

from functools import lru_cache
from types import ModuleType

from ..errors import ConfigError


@lru_cache(maxsize=1)
def schema_module() -> ModuleType:
    """Return the generated schema module (``ai_edge_litert`` first, then ``tflite_micro``)."""
    try:
        from ai_edge_litert import schema_py_generated as mod  # type: ignore[import-not-found]

        return mod
    except ImportError:
        pass
    try:
        from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as mod  # type: ignore

        return mod
    except ImportError:
        raise ConfigError("cannot read .tflite files: neither ai-edge-litert nor tflite-micro is installed",
                          hint="pip install ai-edge-litert") from None


def schema_source() -> str:
    """Which package the schema module came from (for reports)."""
    return schema_module().__name__


@lru_cache(maxsize=1)
def builtin_names() -> dict[int, str]:
    """Builtin operator code -> name (``CONV_2D``), from the schema's ``BuiltinOperator`` enum."""
    enum = schema_module().BuiltinOperator
    return {value: name for name, value in vars(enum).items() if not name.startswith("_") and isinstance(value, int)}


@lru_cache(maxsize=1)
def builtin_codes() -> dict[str, int]:
    """Builtin operator name -> code."""
    return {name: code for code, name in builtin_names().items()}


@lru_cache(maxsize=1)
def tensor_type_names() -> dict[int, str]:
    """TensorType code -> numpy-style lower-case name (``int8``, ``float32``, ...)."""
    enum = schema_module().TensorType
    return {value: name.lower() for name, value in vars(enum).items() if not name.startswith("_")
            and isinstance(value, int)}
