"""Move a Keras 3 model description onto tf_keras. Pure JSON and h5py: no TensorFlow import.

tfmot only works with tf_keras (Keras 2), and tf_keras cannot read Keras 3 files. The
architecture is rebuilt from a rewritten ``config.json`` and the weights are read straight out of
Keras 3's ``model.weights.h5`` (or a Keras-3-written legacy ``.h5``). The rewrite rules are the
ones measured in ``STACK_NOTES.md`` ("Keras 3 models into tfmot"): input layer shapes, dtype
policies, new initializer/Dense arguments, the new inbound-node format, null call kwargs, nested
model node numbering, and the weight file layout. :mod:`edgekit.keras_backend` builds the model
and checks that both versions compute the same outputs.
"""
from __future__ import annotations

import copy
import re
from typing import Any, Iterable

import numpy as np

from .errors import ModelError

__all__ = ["port_model_config", "read_keras3_weights", "read_legacy_h5_weights", "snake_case",
           "is_model_config", "LayerPath"]

LayerPath = tuple[str, ...]

_MODEL_CLASSES = ("Functional", "Sequential", "Model")
# keras.ops operations that Keras 3 records in a functional graph and their tf_keras layer.
_OPS_AS_LAYERS = {"Add": "Add", "Multiply": "Multiply", "Subtract": "Subtract",
                  "Maximum": "Maximum", "Minimum": "Minimum"}
_DROP_ALWAYS = ("module", "registered_name", "build_config", "compile_config", "shared_object_id")
_DROP_IF_EMPTY = ("quantization_config", "lora_rank", "lora_alpha", "input_axes", "output_axes")
_RENAMES = {"LeakyReLU": {"negative_slope": "alpha"}}


def snake_case(name: str) -> str:
    """Keras 3's ``naming.to_snake_case`` (used for keys of ``model.weights.h5``)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub("([a-z])([A-Z])", r"\1_\2", name)
    return name.lower()


def is_model_config(obj: Any) -> bool:
    """True for a serialized Functional/Sequential model (top level or used as a layer)."""
    return (isinstance(obj, dict) and obj.get("class_name") in _MODEL_CLASSES
            and isinstance(obj.get("config"), dict) and isinstance(obj["config"].get("layers"), list))


# --------------------------------------------------------------------------------------------
# config rewriting
# --------------------------------------------------------------------------------------------

def port_model_config(config: dict[str, Any], *, source: str = "model") -> tuple[dict[str, Any], list[str]]:
    """Rewrite a Keras 3 model config (``config.json`` / ``model_config``) for tf_keras.

    Args:
        config: the top-level serialized model, ``{"class_name": ..., "config": {...}}``.
        source: file name used in error messages.

    Returns:
        ``(tf_keras_config, notes)``: a legacy-style ``{"class_name", "config"}`` dict that
        ``tf_keras.Model.from_config``/``Sequential.from_config`` accept, and human-readable notes
        on every argument dropped or renamed.

    Raises:
        ModelError: a construct tf_keras has no equivalent for (quantized layers, LoRA, keras.ops
            calls other than element-wise merges, tensors passed as keyword arguments).
    """
    if not is_model_config(config):
        raise ModelError(f"{source}: not a Functional or Sequential model config",
                         hint="save the model as a Functional or Sequential Keras model")
    notes: list[str] = []
    ported = _port_object(copy.deepcopy(config), notes=notes, source=source, where="$")
    return ported, notes


def _port_object(obj: Any, *, notes: list[str], source: str, where: str) -> Any:
    """Recursively rewrite one serialized value."""
    if isinstance(obj, list):
        return [_port_object(v, notes=notes, source=source, where=f"{where}[{i}]") for i, v in enumerate(obj)]
    if not isinstance(obj, dict):
        return obj
    cls = obj.get("class_name")
    if isinstance(cls, str) and cls.endswith("DTypePolicy") and isinstance(obj.get("config"), dict):
        if cls != "DTypePolicy" and cls != "FloatDTypePolicy":
            raise ModelError(f"{source}: {where} uses the {cls} dtype policy (a quantized Keras 3 layer), "
                             "which tf_keras cannot rebuild", hint="save the float model before Keras 3 quantization")
        return obj["config"].get("name", "float32")
    if cls == "__lambda__" and isinstance(obj.get("config"), dict):
        # Only reached for models the user chose to trust (the scanner refuses lambdas otherwise).
        cfg = obj["config"]
        return [cfg.get("code"), cfg.get("defaults"), cfg.get("closure")]
    if isinstance(cls, str) and isinstance(obj.get("config"), dict):
        return _port_layer_like(obj, cls, notes=notes, source=source, where=where)
    return {k: _port_object(v, notes=notes, source=source, where=f"{where}.{k}") for k, v in obj.items()}


def _port_layer_like(obj: dict[str, Any], cls: str, *, notes: list[str], source: str, where: str) -> dict[str, Any]:
    module = obj.get("module") or ""
    if isinstance(module, str) and re.match(r"^keras(\.src)?\.ops\b", module):
        if cls not in _OPS_AS_LAYERS:
            raise ModelError(f"{source}: {where} is the Keras 3 operation keras.ops.{snake_case(cls)}, "
                             "which has no tf_keras layer",
                             hint="use a keras.layers layer (Add, Multiply, ...) instead of keras.ops in the model")
        notes.append(f"{where}: keras.ops {cls} rebuilt as tf_keras layers.{_OPS_AS_LAYERS[cls]}")
        cls = _OPS_AS_LAYERS[cls]
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if key in _DROP_ALWAYS:
            continue
        if key == "config":
            out[key] = _port_layer_config(cls, value, notes=notes, source=source, where=f"{where}.config")
        elif key == "inbound_nodes":
            out[key] = _port_inbound_nodes(value, source=source, where=f"{where}.inbound_nodes")
        else:
            out[key] = _port_object(value, notes=notes, source=source, where=f"{where}.{key}")
    out["class_name"] = cls
    return out


def _port_layer_config(cls: str, cfg: dict[str, Any], *, notes: list[str], source: str, where: str) -> dict[str, Any]:
    cfg = dict(cfg)
    for key in _DROP_IF_EMPTY:
        if key in cfg:
            value = cfg.pop(key)
            if value not in (None, 0, {}, []):
                raise ModelError(f"{source}: {where}.{key} = {value!r} has no tf_keras equivalent",
                                 hint="save the float model without quantization/LoRA (merge LoRA weights first)")
    if cls == "InputLayer":
        if "batch_shape" in cfg:
            cfg["batch_input_shape"] = cfg.pop("batch_shape")
        cfg.pop("optional", None)
        if cfg.get("input_tensor") is None:
            cfg.pop("input_tensor", None)
    if cls == "Lambda" and isinstance(cfg.get("function"), dict):
        # Only reached for trusted models: Keras 3's {"__lambda__": {code, defaults, closure}} →
        # tf_keras's (code, defaults, closure) triple with explicit function types.
        cfg["function_type"] = "lambda" if cfg["function"].get("class_name") == "__lambda__" else "function"
        cfg.setdefault("output_shape", None)
        cfg.setdefault("output_shape_type", "raw")
        if "mask" in cfg:
            cfg.setdefault("mask_type", "raw")
    for old, new in _RENAMES.get(cls, {}).items():
        if old in cfg:
            cfg[new] = cfg.pop(old)
            notes.append(f"{where}: {cls}.{old} renamed to {new}")
    out = {k: _port_object(v, notes=notes, source=source, where=f"{where}.{k}") for k, v in cfg.items()}
    if is_model_config({"class_name": cls, "config": out}):
        out = _port_model_body(cls, out)
    return out


def _port_model_body(cls: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """Nested-model node numbering + input/output layer lists of an (already ported) model config."""
    layers = cfg["layers"]
    # tf_keras counts the construction node of a nested model built on an InputLayer; Keras 3 does not.
    shift = {str(l.get("name") or (l.get("config") or {}).get("name")): 1
             for l in layers if isinstance(l, dict) and _has_own_node(l)}
    for layer in layers:
        if isinstance(layer, dict) and isinstance(layer.get("inbound_nodes"), list):
            layer["inbound_nodes"] = _shift_nodes(layer["inbound_nodes"], shift)
    if cls != "Sequential":
        for key in ("input_layers", "output_layers"):
            refs = cfg.get(key)
            if isinstance(refs, list) and refs and isinstance(refs[0], str):
                refs = [refs]  # Keras 3 writes a single flat triple
            if isinstance(refs, list):
                cfg[key] = [_shift_ref(list(r), shift) if key == "output_layers" else list(r) for r in refs]
    return cfg


def _has_own_node(layer: dict[str, Any]) -> bool:
    if not is_model_config(layer):
        return False
    if layer["class_name"] != "Sequential":
        return True
    inner = layer["config"]["layers"]
    return bool(inner) and isinstance(inner[0], dict) and inner[0].get("class_name") == "InputLayer"


def _keras_tensor_ref(value: Any) -> list[Any] | None:
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        history = (value.get("config") or {}).get("keras_history")
        if isinstance(history, list) and len(history) == 3:
            return list(history)
    return None


def _port_inbound_nodes(nodes: Any, *, source: str, where: str) -> Any:
    """Keras 3 ``{"args": [...], "kwargs": {...}}`` nodes → tf_keras ``[[name, node, tensor, kwargs], ...]``."""
    if not isinstance(nodes, list):
        return nodes
    out = []
    for i, node in enumerate(nodes):
        if not (isinstance(node, dict) and "args" in node):
            out.append(node)  # already the tf_keras form
            continue
        tensors: list[list[Any]] = []

        def collect(value: Any, path: str) -> None:
            ref = _keras_tensor_ref(value)
            if ref is not None:
                tensors.append(ref)
            elif isinstance(value, list):
                for j, item in enumerate(value):
                    collect(item, f"{path}[{j}]")
            elif isinstance(value, dict) and value.get("class_name") == "__tuple__":
                collect(value.get("items", []), path)
            else:
                raise ModelError(f"{source}: {where}[{i}]{path} passes the constant {str(value)[:40]!r} "
                                 "as a call argument, which the tf_keras port cannot rebuild",
                                 hint="wrap constants in a layer or save the model from tf_keras")

        collect(node.get("args") or [], ".args")
        kwargs = {}
        for key, value in (node.get("kwargs") or {}).items():
            if value is None:
                continue  # e.g. mask=None: passed through, tf_keras's reconstruction loops forever
            if _keras_tensor_ref(value) is not None or (isinstance(value, list) and any(
                    _keras_tensor_ref(v) is not None for v in value)):
                raise ModelError(f"{source}: {where}[{i}] passes a tensor as keyword argument '{key}', "
                                 "which the tf_keras port cannot rebuild",
                                 hint="pass tensors positionally or save the model from tf_keras")
            kwargs[key] = value
        if not tensors:
            raise ModelError(f"{source}: {where}[{i}] has no input tensors", hint="re-save the model")
        out.append([ref + [dict(kwargs)] for ref in tensors])
    return out


def _shift_ref(ref: list[Any], shift: dict[str, int]) -> list[Any]:
    if len(ref) >= 3 and isinstance(ref[0], str) and isinstance(ref[1], int):
        ref = list(ref)
        ref[1] += shift.get(ref[0], 0)
    return ref


def _shift_nodes(nodes: list[Any], shift: dict[str, int]) -> list[Any]:
    if not shift:
        return nodes
    return [[_shift_ref(ref, shift) if isinstance(ref, list) else ref for ref in node] if isinstance(node, list) else node
            for node in nodes]


# --------------------------------------------------------------------------------------------
# weights
# --------------------------------------------------------------------------------------------

def _numeric_keys(group: Any) -> list[str]:
    keys = list(group.keys())
    try:
        return sorted(keys, key=int)
    except ValueError:
        return sorted(keys)


def _collect_vars(group: Any) -> list[np.ndarray]:
    """A layer's own ``vars/0..n`` followed by those of its inner layers (e.g. an RNN cell)."""
    arrays: list[np.ndarray] = []
    if "vars" in group:
        arrays.extend(np.asarray(group["vars"][k]) for k in _numeric_keys(group["vars"]))
    # inner layers in the order tf_keras lists their weights (a Bidirectional: forward first)
    order = {"forward_layer": 0, "backward_layer": 1}
    for key in sorted((k for k in group.keys() if k != "vars"), key=lambda k: (order.get(k, 2), k)):
        sub = group[key]
        if hasattr(sub, "keys"):
            arrays.extend(_collect_vars(sub))
    return arrays


def _weight_owners(model_cfg: dict[str, Any]) -> Iterable[dict[str, Any]]:
    """Layers in the order Keras 3 saves them (``model.layers``; a Sequential drops its InputLayer)."""
    for layer in model_cfg["config"]["layers"]:
        if not isinstance(layer, dict):
            continue
        if model_cfg["class_name"] == "Sequential" and layer.get("class_name") == "InputLayer":
            continue
        if re.match(r"^keras(\.src)?\.ops\b", str(layer.get("module") or "")):
            continue  # operations are not layers and own no state
        yield layer


def _layer_name(layer: dict[str, Any]) -> str:
    return str(layer.get("name") or (layer.get("config") or {}).get("name"))


def read_keras3_weights(h5: Any, config: dict[str, Any], *, source: str = "model.weights.h5") -> dict[LayerPath, list[np.ndarray]]:
    """Read Keras 3's ``model.weights.h5`` into ``{(model, ..., layer name): [arrays]}``.

    Keys are ``layers/<snake_case(ClassName)>[_N]`` in ``model.layers`` order; recent Keras
    versions also store the layer name as the ``name`` attribute of each ``vars`` group, which is
    preferred when present. Nested models are walked recursively.

    Args:
        h5: an open ``h5py.File`` (or group) of the weights file.
        config: the *original* Keras 3 model config (not the ported one).
        source: name used in error messages.
    """
    out: dict[LayerPath, list[np.ndarray]] = {}
    _read_container(h5, config, (), out, source)
    return out


def _read_container(group: Any, model_cfg: dict[str, Any], prefix: LayerPath,
                    out: dict[LayerPath, list[np.ndarray]], source: str) -> None:
    owners = list(_weight_owners(model_cfg))
    by_name = {_layer_name(l): l for l in owners}
    by_key: dict[str, dict[str, Any]] = {}
    used: dict[str, int] = {}
    for layer in owners:
        base = snake_case(str(layer.get("class_name")))
        if base in used:
            used[base] += 1
            by_key[f"{base}_{used[base]}"] = layer
        else:
            used[base] = 0
            by_key[base] = layer
    layers_group = group.get("layers") if hasattr(group, "get") else None
    if layers_group is None:
        return
    for key in layers_group.keys():
        sub = layers_group[key]
        stored = sub["vars"].attrs.get("name") if "vars" in sub else None
        if isinstance(stored, bytes):
            stored = stored.decode()
        layer = by_name.get(stored) if stored else None
        if layer is None:
            layer = by_key.get(key)
        if layer is None:
            raise ModelError(f"{source}: weights group layers/{key} matches no layer of "
                             f"{'/'.join(prefix) or 'the model'}", hint="the file does not match its config.json; re-save the model")
        name = _layer_name(layer)
        if is_model_config(layer):
            _read_container(sub, layer, prefix + (name,), out, source)
        else:
            arrays = _collect_vars(sub)
            if arrays:
                out[prefix + (name,)] = arrays


def read_legacy_h5_weights(h5: Any, *, source: str = "model.h5") -> dict[str, list[np.ndarray]]:
    """Read a legacy full-model ``.h5`` (``model_weights/<layer>/<weight_names>``) by layer name."""
    group = h5["model_weights"] if "model_weights" in h5 else h5
    if "layer_names" not in group.attrs:
        raise ModelError(f"{source}: no layer_names attribute in the weights", hint="re-save the model")
    out: dict[str, list[np.ndarray]] = {}
    for raw in group.attrs["layer_names"]:
        name = raw.decode() if isinstance(raw, bytes) else str(raw)
        layer_group = group[name]
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in layer_group.attrs.get("weight_names", [])]
        if names:
            out[name] = [np.asarray(layer_group[n]) for n in names]
    return out
