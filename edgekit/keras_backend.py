"""The only edgekit module that imports TensorFlow, tf_keras, Keras 3 or tfmot — always lazily.

:func:`scan_model_file` (re-exported from :mod:`edgekit.model_scan`) never imports TensorFlow and
is safe to call in the CLI process. :func:`load_model` deserializes the model and must only run in
a child process (:func:`edgekit.child.run_in_child`): TensorFlow can crash on hostile files and a
trusted model's own code runs there.

Loading paths (``info["format"]`` / ``info["saved_by"]``):

* ``.keras`` written by Keras 3 → rebuilt on tf_keras from a rewritten ``config.json`` plus the
  weights in ``model.weights.h5`` (:mod:`edgekit.keras3_port`), then checked against the Keras 3
  original on a probe batch (``port_max_abs_diff`` ≤ :data:`PORT_TOLERANCE`).
* legacy ``.h5`` written by Keras 3 → the same, from the ``model_config`` attribute and
  ``model_weights``.
* ``.keras`` / ``.h5`` / SavedModel written by tf_keras (or Keras 2) → ``tf_keras`` directly, after
  the scan has cleared the stored config (tf_keras ignores ``safe_mode`` for ``.h5``/SavedModel).
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelError
from .keras3_port import port_model_config, read_keras3_weights, read_legacy_h5_weights
from .model_scan import MAX_CONFIG_BYTES, MAX_MEMBER_BYTES, detect_format, read_keras_zip_member, scan_model_file

__all__ = ["LoadedModel", "load_model", "scan_model_file", "flatten_nested", "describe_model", "reserve_layer_names",
           "import_tf", "import_tfmot", "tf", "keras", "tfmot", "tfmot_internal", "PORT_TOLERANCE"]

#: Largest allowed difference between a Keras 3 model and its tf_keras copy (issue 2).
PORT_TOLERANCE = 1e-5
_PASSTHROUGH = frozenset({"Reshape", "Flatten", "Dropout", "SpatialDropout1D", "SpatialDropout2D",
                          "GaussianNoise", "GaussianDropout", "AlphaDropout", "Permute", "Identity"})


@dataclass
class LoadedModel:
    """A model rebuilt on tf_keras plus what edgekit learned about it.

    Attributes:
        model: a tf_keras ``Functional`` or ``Sequential`` model (not compiled).
        info: ``format``, ``saved_by``, ``keras_version``, ``ported``, ``port_max_abs_diff``,
            ``port_notes``, ``input_shape``, ``input_shapes``, ``input_dtype``, ``output_shape``,
            ``output_shapes``, ``output_activation``, ``compiled_loss``, ``from_logits``,
            ``num_params``, ``layers`` (``[{name, class_name}]``), ``nested_models``,
            ``trusted``, ``findings``, ``path``.
    """

    model: Any
    info: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# lazy imports
# --------------------------------------------------------------------------------------------

def import_tf() -> tuple[Any, Any]:
    """Import ``(tensorflow, tf_keras)`` with ``TF_USE_LEGACY_KERAS=1`` set first."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    import tf_keras

    return tf, tf_keras


def import_tfmot() -> Any:
    """Import ``tensorflow_model_optimization`` (after :func:`import_tf`)."""
    import_tf()
    import tensorflow_model_optimization as tfmot

    return tfmot


def _import_keras3() -> Any:
    import_tf()
    import keras  # the Keras 3 package, installed beside tf_keras

    if not str(getattr(keras, "__version__", "0")).startswith("3"):
        raise ModelError("the installed 'keras' package is not Keras 3, so a Keras 3 model cannot be "
                         "checked against its tf_keras copy", hint="pip install 'keras>=3'")
    return keras


# --------------------------------------------------------------------------------------------
# load
# --------------------------------------------------------------------------------------------

def load_model(path: str | os.PathLike[str], *, trust_model: bool = False,
               probe: np.ndarray | None = None) -> LoadedModel:
    """Load a Keras model onto tf_keras. Call only inside a child process.

    The file is first copied to a private folder (files only; a SavedModel folder is read in
    place) and scanned with :func:`scan_model_file`, so the bytes deserialized are the bytes that
    were checked.

    Args:
        path: ``.keras`` (Keras 3 or tf_keras), legacy ``.h5``, or a SavedModel directory.
        trust_model: allow Lambda layers, custom objects etc. (their code runs here).
        probe: optional input batch (e.g. real samples) for the Keras 3 → tf_keras parity check;
            by default a seeded uniform [0, 1) batch of 4.

    Returns:
        A :class:`LoadedModel`.

    Raises:
        ModelError: unsafe, corrupt or unsupported model, or a tf_keras copy whose outputs differ
            from the Keras 3 original by more than :data:`PORT_TOLERANCE` (exit 2).
    """
    original = Path(path)
    workdir = Path(tempfile.mkdtemp(prefix="edgekit-model-"))
    try:
        local = original
        if original.is_file():
            # Private copy, named by content so that the loaders pick the right reader.
            fmt = detect_format(original)
            local = workdir / ("model.keras" if fmt == "keras-v3-zip" else "model.h5")
            shutil.copyfile(original, local)
        try:
            scan = scan_model_file(local, trust_model=trust_model)
            loaded = _load_scanned(local, scan, trust_model=trust_model, probe=probe, workdir=workdir)
        except ModelError as exc:
            if local == original:
                raise
            raise ModelError(exc.message.replace(str(local), str(original)), hint=exc.hint) from None
        loaded.info["path"] = str(original)
        return loaded
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _load_scanned(path: Path, scan: dict[str, Any], *, trust_model: bool, probe: np.ndarray | None,
                  workdir: Path) -> LoadedModel:
    _, tfk = import_tf()
    fmt, saved_by = scan["format"], scan["saved_by"]
    port: dict[str, Any] = {"ported": False, "port_max_abs_diff": None, "port_notes": []}
    with _SafeMode(not trust_model):
        if saved_by == "keras3" and fmt in ("keras-v3-zip", "h5"):
            model, port = _port_keras3(path, fmt, trust_model=trust_model, probe=probe, workdir=workdir)
        else:
            model = _tf_keras_load(tfk, path, trust_model=trust_model)
    if not isinstance(model, tfk.Model) or not (isinstance(model, tfk.Sequential) or getattr(model, "_is_graph_network", False)):
        raise ModelError(f"{path}: tf_keras loaded a {type(model).__name__} without a layer graph "
                         "(a subclassed model or a bare SavedModel)",
                         hint="save the model as a Functional or Sequential Keras model with model.save('model.keras')")
    reserve_layer_names(model)
    info = {k: scan.get(k) for k in ("format", "saved_by", "keras_version", "compiled_loss", "from_logits",
                                     "trusted", "findings")}
    info.update(port)
    info.update(describe_model(model))
    return LoadedModel(model=model, info=info)


class _SafeMode:
    """tf_keras's SafeModeScope, as a context manager that tolerates its absence."""

    def __init__(self, safe: bool) -> None:
        self._scope = None
        try:
            from tf_keras.src.saving import serialization_lib

            self._scope = serialization_lib.SafeModeScope(safe)
        except (ImportError, AttributeError):  # pragma: no cover - older tf_keras
            self._scope = None

    def __enter__(self) -> None:
        if self._scope is not None:
            self._scope.__enter__()

    def __exit__(self, *exc: Any) -> None:
        if self._scope is not None:
            self._scope.__exit__(*exc)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"


def _tf_keras_load(tfk: Any, path: Path, *, trust_model: bool) -> Any:
    try:  # safe_mode only matters for .keras; the scan is what protects .h5 and SavedModels
        return tfk.models.load_model(str(path), compile=False, safe_mode=not trust_model)
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure of a foreign loader becomes a ModelError
        raise ModelError(f"{path}: tf_keras could not load the model ({_short(exc)})",
                         hint="re-save it with model.save('model.keras'); custom layers need --trust-model "
                              "and their code importable") from None


# --------------------------------------------------------------------------------------------
# Keras 3 → tf_keras
# --------------------------------------------------------------------------------------------

def _port_keras3(path: Path, fmt: str, *, trust_model: bool, probe: np.ndarray | None,
                 workdir: Path) -> tuple[Any, dict[str, Any]]:
    import h5py

    _, tfk = import_tf()
    if fmt == "keras-v3-zip":
        with zipfile.ZipFile(path) as zf:
            config = json.loads(read_keras_zip_member(zf, "config.json", limit=MAX_CONFIG_BYTES, path=path))
            weights_path = workdir / "model.weights.h5"
            _extract(zf, "model.weights.h5", weights_path, path=path)
    else:
        with h5py.File(str(path), "r") as fh:
            raw = fh.attrs["model_config"]
            config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        weights_path = path
    ported, notes = port_model_config(config, source=f"{path}")
    _drop_unknown_kwargs(tfk, ported, notes)
    model = _build(tfk, ported, path=path)
    try:
        with h5py.File(str(weights_path), "r") as fh:
            if fmt == "keras-v3-zip":
                weights = read_keras3_weights(fh, config, source=f"{path}:model.weights.h5")
                _assign_paths(model, weights, path=path)
            else:
                _assign_top_level(model, read_legacy_h5_weights(fh, source=str(path)), path=path)
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - corrupt HDF5 surfaces as OSError/KeyError/...
        raise ModelError(f"{path}: cannot read the weights ({_short(exc)})",
                         hint="the file is truncated or corrupt; re-save the model") from None
    diff = _parity_with_keras3(model, path, trust_model=trust_model, probe=probe)
    if not diff <= PORT_TOLERANCE:
        raise ModelError(f"{path}: the tf_keras copy of this Keras 3 model disagrees with the original "
                         f"(max abs diff {diff:.3g} > {PORT_TOLERANCE:g})",
                         hint="save the model from tf_keras, or report the layer types to edgekit")
    return model, {"ported": True, "port_max_abs_diff": float(diff), "port_notes": notes}


def _extract(zf: zipfile.ZipFile, name: str, dest: Path, *, path: Path) -> None:
    try:
        info = zf.getinfo(name)
        if info.file_size > MAX_MEMBER_BYTES:
            raise ModelError(f"{path}: {name} is {info.file_size} bytes (limit {MAX_MEMBER_BYTES})",
                             hint="this is not a model edgekit can read")
        written = 0
        with zf.open(info) as src, open(dest, "wb") as out:
            while chunk := src.read(1 << 20):
                written += len(chunk)
                if written > info.file_size:
                    raise ModelError(f"{path}: {name} is longer than declared", hint="the archive is corrupt")
                out.write(chunk)
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - zlib/BadZipFile/CRC errors
        raise ModelError(f"{path}: cannot extract {name} ({_short(exc)})",
                         hint="the .keras file is truncated or corrupt; re-save the model") from None


# Keyword arguments tf_keras's base Layer accepts besides its named parameters.
_LAYER_BASE_KWARGS = frozenset({"input_dim", "input_shape", "batch_input_shape", "batch_size", "weights",
                                "activity_regularizer", "autocast", "implementation", "dtype", "name",
                                "trainable", "dynamic"})


def _accepted_kwargs(cls: type, base: type) -> set[str] | None:
    """Names a tf_keras layer class accepts in ``__init__`` (None: anything)."""
    import inspect

    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            params = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            return None
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if klass is base or not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return names | _LAYER_BASE_KWARGS


def _drop_unknown_kwargs(tfk: Any, node: Any, notes: list[str], where: str = "$") -> None:
    """Remove Keras-3-only arguments the tf_keras layer class does not take (recorded in notes).

    Safe because the ported model is compared with the original afterwards: an argument that
    changed the computation shows up in ``port_max_abs_diff``.
    """
    if isinstance(node, list):
        for i, item in enumerate(node):
            _drop_unknown_kwargs(tfk, item, notes, f"{where}[{i}]")
        return
    if not isinstance(node, dict):
        return
    cls_name, cfg = node.get("class_name"), node.get("config")
    layer_cls = getattr(tfk.layers, cls_name, None) if isinstance(cls_name, str) else None
    if (isinstance(cfg, dict) and isinstance(layer_cls, type) and issubclass(layer_cls, tfk.layers.Layer)
            and not issubclass(layer_cls, tfk.Model) and cls_name not in ("InputLayer", "Lambda")):
        # (Lambda.from_config consumes function_type/module keys that are not __init__ arguments)
        accepted = _accepted_kwargs(layer_cls, tfk.layers.Layer)
        if accepted is not None:
            for key in [k for k in cfg if k not in accepted]:
                value = cfg.pop(key)
                notes.append(f"{where}: dropped {cls_name}.{key}={value!r} (not a tf_keras argument)")
    for key, value in node.items():
        if isinstance(value, (dict, list)):
            _drop_unknown_kwargs(tfk, value, notes, f"{where}.{key}")


def _build(tfk: Any, ported: dict[str, Any], *, path: Path) -> Any:
    try:
        if ported["class_name"] == "Sequential":
            return tfk.Sequential.from_config(ported["config"])
        return tfk.Model.from_config(ported["config"])
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"{path}: cannot rebuild this Keras 3 model on tf_keras ({_short(exc)})",
                         hint="use built-in layers that exist in tf_keras, or save the model from tf_keras") from None


def _set_weights(layer: Any, arrays: list[np.ndarray], *, where: str, path: Path) -> None:
    expected = [tuple(w.shape) for w in layer.weights]
    got = [tuple(a.shape) for a in arrays]
    if expected != got:
        raise ModelError(f"{path}: weights of layer '{where}' do not fit its tf_keras copy "
                         f"(expected shapes {expected}, file has {got})",
                         hint="the file does not match its config, or the layer is not supported by the port")
    layer.set_weights(arrays)


def _assign_paths(model: Any, weights: dict[tuple[str, ...], list[np.ndarray]], *, path: Path) -> None:
    assigned: set[int] = set()
    for names, arrays in weights.items():
        layer = model
        try:
            for name in names:
                layer = layer.get_layer(name)
        except ValueError:
            raise ModelError(f"{path}: weights for layer '{'/'.join(names)}' but no such layer in the rebuilt model",
                             hint="the file does not match its config; re-save the model") from None
        _set_weights(layer, arrays, where="/".join(names), path=path)
        assigned.add(id(layer))
    _check_all_assigned(model, assigned, path=path)


def _assign_top_level(model: Any, weights: dict[str, list[np.ndarray]], *, path: Path) -> None:
    assigned: set[int] = set()
    for name, arrays in weights.items():
        try:
            layer = model.get_layer(name)
        except ValueError:
            raise ModelError(f"{path}: weights for layer '{name}' but no such layer in the rebuilt model",
                             hint="the file does not match its config; re-save the model") from None
        _set_weights(layer, arrays, where=name, path=path)
        assigned.add(id(layer))
        for sub in _all_layers(layer):
            assigned.add(id(sub))
    _check_all_assigned(model, assigned, path=path)


def _all_layers(model: Any) -> list[Any]:
    out = []
    for layer in getattr(model, "layers", []):
        out.append(layer)
        if hasattr(layer, "layers"):
            out.extend(_all_layers(layer))
    return out


def _check_all_assigned(model: Any, assigned: set[int], *, path: Path) -> None:
    for layer in _all_layers(model):
        if layer.weights and id(layer) not in assigned and not hasattr(layer, "layers"):
            raise ModelError(f"{path}: layer '{layer.name}' has weights in the model but none in the file",
                             hint="the file does not match its config; re-save the model")


def _probe_inputs(model: Any, probe: np.ndarray | None, *, batch: int = 4, seed: int = 0) -> list[np.ndarray]:
    if probe is not None:
        return [np.asarray(probe)] if len(model.inputs) == 1 else [np.asarray(p) for p in probe]
    rng = np.random.default_rng(seed)
    arrays = []
    for tensor in model.inputs:
        shape = [batch] + [d if d is not None else 8 for d in tensor.shape[1:]]
        dtype = tensor.dtype.as_numpy_dtype if hasattr(tensor.dtype, "as_numpy_dtype") else np.float32
        if np.issubdtype(dtype, np.integer):
            arrays.append(rng.integers(0, 2, size=shape).astype(dtype))
        else:
            arrays.append(rng.random(shape, dtype=np.float64).astype(dtype))
    return arrays


def _as_list(outputs: Any) -> list[np.ndarray]:
    if isinstance(outputs, dict):
        outputs = [outputs[k] for k in sorted(outputs)]
    if not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    return [np.asarray(o, dtype=np.float64) for o in outputs]


def _parity_with_keras3(model: Any, path: Path, *, trust_model: bool, probe: np.ndarray | None) -> float:
    keras = _import_keras3()
    try:
        original = keras.saving.load_model(str(path), compile=False, safe_mode=not trust_model)
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"{path}: Keras 3 could not load the original to check the tf_keras copy ({_short(exc)})",
                         hint="re-save the model with Keras 3's model.save('model.keras')") from None
    inputs = _probe_inputs(model, probe)
    feed = inputs[0] if len(inputs) == 1 else inputs
    try:
        ours = _as_list(model(feed, training=False))
        theirs = _as_list(original(feed, training=False))
    except Exception as exc:  # noqa: BLE001 - e.g. a probe batch of the wrong shape
        raise ModelError(f"{path}: running the probe batch for the Keras 3 → tf_keras check failed ({_short(exc)})",
                         hint="pass probe samples shaped like the model input") from None
    if len(ours) != len(theirs) or any(a.shape != b.shape for a, b in zip(ours, theirs)):
        raise ModelError(f"{path}: the tf_keras copy has outputs {[a.shape for a in ours]}, the original "
                         f"{[b.shape for b in theirs]}", hint="report the model's layer types to edgekit")
    diff = max(float(np.max(np.abs(a - b))) if a.size else 0.0 for a, b in zip(ours, theirs))
    return diff if math.isfinite(diff) else float("inf")


def reserve_layer_names(model: Any) -> None:
    """Advance tf_keras's automatic layer-name counters past the names the model already uses.

    A model read from a file keeps its stored names ("conv2d", "dense_2") without touching the
    counters, so the next auto-named layer (e.g. the Conv2D that tfmot's QAT splits a
    SeparableConv2D into) could be called "conv2d" too — and tfmot then copies weights between the
    two by name ("Cannot assign value to variable 'conv2d/kernel:0': Shape mismatch").
    """
    import re

    import_tf()
    try:
        from tf_keras.src import backend as tfk_backend

        uid_map = tfk_backend.get_default_graph_uid_map()
    except (ImportError, AttributeError):  # pragma: no cover - other tf_keras layouts
        return
    for layer in [model] + _all_layers(model):
        match = re.fullmatch(r"(.+?)(?:_(\d+))?", layer.name)
        if match is None:
            continue
        prefix, number = match.group(1), int(match.group(2) or 0)
        key = ("", prefix)  # (namespace, name) as tf_keras's unique_object_name keys it
        uid_map[key] = max(uid_map[key], number + 1)


# --------------------------------------------------------------------------------------------
# description
# --------------------------------------------------------------------------------------------

def _shape(tensor: Any) -> list[int | None]:
    return [None if d is None else int(d) for d in list(tensor.shape)[1:]]


def _activation_name(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return str(value.get("class_name") or value.get("config"))
    return getattr(value, "__name__", None) or type(value).__name__


def _output_activation(model: Any, index: int = 0) -> str:
    try:
        name = model.output_names[index]
        layer = model.get_layer(name)
    except (IndexError, ValueError, AttributeError):
        layer = model.layers[-1] if model.layers else None
    seen = 0
    while layer is not None and seen < 50:
        seen += 1
        cls = type(layer).__name__
        if hasattr(layer, "layers") and layer.layers:  # nested model: its own output layer
            return _output_activation(layer)
        if cls == "Softmax":
            return "softmax"
        cfg = layer.get_config() if hasattr(layer, "get_config") else {}
        act = _activation_name(cfg.get("activation"))
        if act and act != "linear":
            return act
        if cls in _PASSTHROUGH or (cls == "Activation" and act == "linear"):
            inbound = getattr(layer, "_inbound_nodes", [])
            parents = inbound[-1].inbound_layers if inbound else None
            layer = parents if not isinstance(parents, (list, tuple)) else (parents[0] if len(parents) == 1 else None)
            continue
        return "linear"
    return "linear"


def describe_model(model: Any) -> dict[str, Any]:
    """Shapes (without the batch dimension), output activation, parameter count and layers."""
    inputs, outputs = list(model.inputs), list(model.outputs)
    dtype = inputs[0].dtype if inputs else None
    return {
        "input_shape": _shape(inputs[0]) if inputs else None,
        "input_shapes": [_shape(t) for t in inputs],
        "input_dtype": getattr(dtype, "name", str(dtype)) if dtype is not None else None,
        "output_shape": _shape(outputs[0]) if outputs else None,
        "output_shapes": [_shape(t) for t in outputs],
        "output_activation": _output_activation(model),
        "num_params": int(model.count_params()),
        "layers": [{"name": l.name, "class_name": type(l).__name__} for l in model.layers],
        "nested_models": [l.name for l in model.layers if hasattr(l, "layers") and l.layers],
    }


# --------------------------------------------------------------------------------------------
# nested models
# --------------------------------------------------------------------------------------------

def flatten_nested(model: Any, *, tolerance: float = 1e-6) -> Any:
    """Return a Functional model with every nested Sequential/Functional model inlined.

    tfmot cannot quantize a model used as a layer inside another model. The inlined model reuses
    the same layer objects (so the same weights); layers whose names collide are cloned under a
    prefixed name. The result is checked against the original on a probe batch.

    Raises:
        ModelError: a layer shared between several calls inside a nested model, or outputs that
            differ by more than ``tolerance``.
    """
    _, tfk = import_tf()
    if not any(isinstance(l, tfk.Model) for l in model.layers):
        return model
    used: set[str] = set()
    inputs = [tfk.Input(batch_shape=t.shape, dtype=t.dtype, name=t.name.split(":")[0].replace("/", "_"))
              for t in model.inputs]
    outputs = _inline(tfk, model, inputs, used)
    flat = tfk.Model(inputs, outputs if len(outputs) > 1 else outputs[0], name=model.name)
    reserve_layer_names(flat)
    probe = _probe_inputs(model, None)
    feed = probe[0] if len(probe) == 1 else probe
    a, b = _as_list(model(feed, training=False)), _as_list(flat(feed, training=False))
    diff = max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))
    if not diff <= tolerance:
        raise ModelError(f"flattening the nested model '{model.name}' changed its outputs (max abs diff {diff:.3g})",
                         hint="save the model without nesting (one Functional model)")
    return flat


def _call_layer(tfk: Any, layer: Any, x: Any, kwargs: dict[str, Any], used: set[str]) -> Any:
    if isinstance(layer, tfk.Model):
        result = _inline(tfk, layer, x if isinstance(x, list) else [x], used)
        return result if len(result) > 1 else result[0]
    if layer.name in used:
        cfg = layer.get_config()
        cfg["name"] = f"{layer.name}_{len(used)}"
        clone = type(layer).from_config(cfg)
        out = clone(x, **kwargs)
        clone.set_weights(layer.get_weights())
        used.add(clone.name)
        return out
    used.add(layer.name)
    return layer(x, **kwargs)


def _inline(tfk: Any, model: Any, inputs: list[Any], used: set[str]) -> list[Any]:
    if isinstance(model, tfk.Sequential):
        x = inputs[0]
        for layer in model.layers:
            x = _call_layer(tfk, layer, x, {}, used)
        return [x]
    config = model.get_config()
    tensors: dict[tuple[str, int, int], Any] = {}
    for ref, tensor in zip(config["input_layers"], inputs):
        tensors[(ref[0], ref[1], ref[2])] = tensor
    pending = [l for l in config["layers"] if l["class_name"] != "InputLayer"]
    for entry in pending:
        if len(entry.get("inbound_nodes") or []) > 1:
            raise ModelError(f"cannot flatten '{model.name}': layer '{entry['name']}' is shared by several calls",
                             hint="save the model without nesting (one Functional model)")
    while pending:
        progressed = False
        for entry in list(pending):
            node = (entry.get("inbound_nodes") or [[]])[0]
            refs = [(r[0], r[1], r[2]) for r in node]
            if not all(r in tensors for r in refs):
                continue
            kwargs = dict(node[0][3]) if node and len(node[0]) > 3 and node[0][3] else {}
            args = [tensors[r] for r in refs]
            layer = model.get_layer(entry["name"])
            out = _call_layer(tfk, layer, args[0] if len(args) == 1 else args, kwargs, used)
            skip = 1 if isinstance(layer, tfk.Model) and getattr(layer, "_is_graph_network", False) else 0
            for i, t in enumerate(out if isinstance(out, (list, tuple)) else [out]):
                tensors[(entry["name"], skip, i)] = t
                tensors[(entry["name"], 0, i)] = t
            pending.remove(entry)
            progressed = True
        if not progressed:
            raise ModelError(f"cannot flatten '{model.name}': its layer graph could not be walked",
                             hint="save the model without nesting (one Functional model)")
    return [tensors[(r[0], r[1], r[2])] for r in config["output_layers"]]


# --------------------------------------------------------------------------------------------
# accessors for the stages (convert, prune, cluster, qat): each returns a lazily imported module
# --------------------------------------------------------------------------------------------

def tf() -> Any:
    """The ``tensorflow`` module (imported with ``TF_USE_LEGACY_KERAS=1``)."""
    return import_tf()[0]


def keras() -> Any:
    """The ``tf_keras`` module (Keras 2, the one tfmot works with)."""
    return import_tf()[1]


def tfmot() -> Any:
    """The ``tensorflow_model_optimization`` module."""
    return import_tfmot()


_TFMOT_INTERNAL = {
    "prune_registry": "tensorflow_model_optimization.python.core.sparsity.keras.prune_registry",
    "clustering_registry": "tensorflow_model_optimization.python.core.clustering.keras.clustering_registry",
    "quantize_registry":
        "tensorflow_model_optimization.python.core.quantization.keras.default_8bit.default_8bit_quantize_registry",
    "quantize_aware_activation":
        "tensorflow_model_optimization.python.core.quantization.keras.quantize_aware_activation",
    "prune_preserve_quantize_registry":
        "tensorflow_model_optimization.python.core.quantization.keras.collab_opts.prune_preserve."
        "prune_preserve_quantize_registry",
}


def tfmot_internal(name: str) -> Any:
    """A tfmot module outside its public API (layer registries), by short name (see ``_TFMOT_INTERNAL``)."""
    import importlib

    import_tfmot()
    return importlib.import_module(_TFMOT_INTERNAL.get(name, name))  # or a full dotted module path
