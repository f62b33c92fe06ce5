"""Inspect a saved Keras model *before* anything deserializes it. No TensorFlow import.

tf_keras ignores ``safe_mode`` for ``.h5`` files and SavedModels, and even Keras 3's ``.keras``
loader has had repeated safe-mode bypasses, so edgekit reads the stored configuration itself —
``config.json`` inside a ``.keras`` zip, the ``model_config`` attribute of an ``.h5``, and the graph
and ``keras_metadata.pb`` of a SavedModel — and refuses anything that could run code or touch
files when loaded: ``Lambda`` layers (at any depth), serialized Python functions, objects from
modules outside Keras, ``TFSMLayer``, TensorFlow ops that read or write files.

Everything here uses only the standard library and h5py; the SavedModel protobufs are read with a
small wire-format walker so that scanning never has to import TensorFlow.
"""
from __future__ import annotations

import json
import os
import re
import zipfile
import zlib
from pathlib import Path
from typing import Any, Iterator

from .errors import ModelError

__all__ = ["scan_model_file", "detect_format", "read_keras_zip_member", "saved_model_ops", "module_is_safe",
           "KNOWN_MODEL_CLASSES", "MAX_CONFIG_BYTES", "MAX_MEMBER_BYTES"]

#: Model classes whose config describes a layer graph that can be rebuilt without user code.
KNOWN_MODEL_CLASSES = frozenset({"Functional", "Sequential", "Model"})

MAX_CONFIG_BYTES = 64 * 1024 * 1024          # config.json / model_config / keras_metadata.pb
MAX_METADATA_BYTES = 1024 * 1024             # metadata.json
MAX_MEMBER_BYTES = 8 * 1024 ** 3             # any member of a .keras zip (the weights)
MAX_TOTAL_BYTES = 16 * 1024 ** 3             # all members together
MAX_MEMBERS = 10_000
MAX_RATIO = 200                              # uncompressed / compressed, for members over 16 MiB
RATIO_MIN_BYTES = 16 * 1024 * 1024
MAX_SAVED_MODEL_PB = 2 * 1024 ** 3           # protobuf's own hard limit
MAX_CONFIG_DEPTH = 200

_TRUST_HINT = "re-save the model with built-in Keras layers only, or pass --trust-model if you trust this file"
_ZIP_MAGIC = b"PK\x03\x04"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"

# Keras sub-packages whose objects are plain layers, initializers, ... (module names are
# normalised: a "src" segment is dropped, tensorflow.keras / tensorflow.python.keras = keras).
_SAFE_KERAS_SUBMODULES = frozenset({
    "layers", "initializers", "regularizers", "constraints", "activations", "optimizers", "losses",
    "metrics", "models", "engine", "ops", "dtype_policies", "mixed_precision", "quantizers", "random",
})

# TFOpLambda / SlicingOpLambda name a TensorFlow API symbol that tf_keras resolves with getattr on
# the tf namespace and calls while rebuilding the model: refuse the ones that touch files, run
# Python, load libraries or models.
_UNSAFE_TF_SYMBOL = re.compile(
    r"^(io|gfile|raw_ops|py_function|numpy_function|py_func|print|debugging|summary|saved_model|data|"
    r"keras|train|lookup|load_op_library|load_library|autograph|experimental|distribute|config|"
    r"tpu|lite|estimator|feature_column|sysconfig|test|profiler|queue|audio|strings\.format|"
    r"io_ops|file_io|read_file|write_file|tensorboard)(\.|$)")

_LOOKUP_LAYERS = frozenset({"StringLookup", "IntegerLookup", "TextVectorization"})
# Keras 3 layers that wrap another framework's code (CVE-2025-49655 used TorchModuleWrapper).
_FOREIGN_CODE_LAYERS = {"TorchModuleWrapper": "a pickled PyTorch module", "JaxLayer": "a JAX function",
                        "FlaxLayer": "a Flax module"}

# TensorFlow ops that reach the file system, the network, or run Python.
_FILE_OPS = frozenset({
    "WriteFile", "ReadFile", "MatchingFiles", "ImmutableConst", "PrintV2", "DecodeProtoV2",
    "PyFunc", "PyFuncStateless", "EagerPyFunc", "LoadAndRemapMatrix", "InitializeTableFromTextFile",
    "InitializeTableFromTextFileV2", "CreateSummaryFileWriter", "CreateSummaryDbWriter",
    "FlushSummaryWriter", "CloseSummaryWriter", "ImportEvent", "WriteSummary",
    "ExperimentalDatasetToTFRecord", "DatasetToTFRecord", "Save", "SaveSlices", "SaveV2",
    "Restore", "RestoreSlice", "RestoreV2", "MergeV2Checkpoints", "ShardedFilename",
    "ShardedFilespec", "GenerateVocabRemapping", "LoadTPUEmbeddingParameters",
})
_FILE_OP_PATTERN = re.compile(r"(Dataset|Reader|Summary|DebugIdentity|Checkpoint|Tensorboard)")
# Checkpoint ops are normal inside the save/restore functions every SavedModel has.
_SAVER_OPS = frozenset({"SaveV2", "RestoreV2", "MergeV2Checkpoints", "ShardedFilename", "Save",
                        "SaveSlices", "Restore", "RestoreSlice", "ShardedFilespec"})
_SAVER_FUNCTION = re.compile(r"^__inference__traced_(save|restore)_\d+$")


# --------------------------------------------------------------------------------------------
# public entry point
# --------------------------------------------------------------------------------------------

def scan_model_file(path: str | os.PathLike[str], *, trust_model: bool = False) -> dict[str, Any]:
    """Identify a saved Keras model and refuse it if loading it could run code.

    Reads only the stored configuration (never the weights), with bounded sizes, and imports
    neither TensorFlow nor Keras.

    Args:
        path: a ``.keras`` file, a legacy ``.h5``/``.hdf5`` file, or a SavedModel directory.
        trust_model: report unsafe items in ``findings`` instead of refusing the model.

    Returns:
        A dict with ``path``, ``format`` (``"keras-v3-zip"`` | ``"h5"`` | ``"savedmodel"``),
        ``saved_by`` (``"keras3"`` | ``"tf_keras"``), ``keras_version`` (str or None),
        ``model_class``, ``model_name``, ``layers`` (top-level ``[{name, class_name}]``),
        ``nested_models`` (names of models used as layers), ``compiled_loss`` (str or None),
        ``from_logits`` (bool or None), ``findings`` (unsafe items, only non-empty when
        ``trust_model``), ``trusted`` and ``size_bytes``.

    Raises:
        ModelError: missing, corrupt, truncated, oversized or unsupported file; a subclassed
            model; or (unless ``trust_model``) a model with unsafe content. Exit code 2.
    """
    p = Path(path)
    fmt = detect_format(p)
    if fmt == "keras-v3-zip":
        info = _scan_keras_zip(p)
    elif fmt == "h5":
        info = _scan_h5(p)
    else:
        info = _scan_saved_model(p)
    info["path"] = str(p)
    info["trusted"] = bool(trust_model)
    findings = info["findings"]
    if findings and not trust_model:
        first = findings[0]
        more = f" ({len(findings) - 1} more unsafe item(s))" if len(findings) > 1 else ""
        raise ModelError(f"{p}: {first['message']}; edgekit refused to load the model{more}", hint=_TRUST_HINT)
    return info


def detect_format(path: Path) -> str:
    """Return ``"keras-v3-zip"``, ``"h5"`` or ``"savedmodel"`` from the content (not the name).

    Raises:
        ModelError: the path is missing, empty, or not a Keras model format.
    """
    if not path.exists():
        raise ModelError(f"{path}: model file not found", hint="check the MODEL path")
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return "savedmodel"
        if (path / "saved_model.pbtxt").is_file():
            raise ModelError(f"{path}: text-format SavedModels (saved_model.pbtxt) are not supported",
                             hint="re-save the model with model.save('model.keras')")
        raise ModelError(f"{path}: directory is not a SavedModel (no saved_model.pb inside)",
                         hint="pass a .keras or .h5 file, or the folder written by model.save(dir, save_format='tf')")
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the model file: {exc.strerror or exc}",
                         hint="check the path and its permissions") from None
    suffix = path.suffix.lower()
    if size == 0:
        raise ModelError(f"{path}: model file is empty", hint="re-save or re-download the model")
    if head.startswith(_ZIP_MAGIC):
        return "keras-v3-zip"
    if head == _HDF5_MAGIC or _is_hdf5(path):
        return "h5"
    if suffix == ".keras":
        raise ModelError(f"{path}: not a valid .keras archive (not a zip file; truncated or corrupt?)",
                         hint="re-save the model with model.save('model.keras')")
    if suffix in (".h5", ".hdf5"):
        raise ModelError(f"{path}: not a valid HDF5 file (truncated or corrupt?)",
                         hint="re-save the model with model.save('model.h5') or, better, model.save('model.keras')")
    if suffix == ".tflite" or head[4:8] == b"TFL3":
        raise ModelError(f"{path}: this is a TFLite model; compress needs the Keras model it came from",
                         hint="pass the .keras/.h5 file, or use `edgekit inspect`/`benchmark` for .tflite files")
    raise ModelError(f"{path}: unrecognised model format",
                     hint="expected a .keras file, a legacy .h5 file or a SavedModel directory")


# --------------------------------------------------------------------------------------------
# .keras zip
# --------------------------------------------------------------------------------------------

def _open_keras_zip(path: Path) -> zipfile.ZipFile:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ModelError(f"{path}: not a valid .keras archive ({exc}; truncated or corrupt?)",
                         hint="re-save the model with model.save('model.keras')") from None
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        zf.close()
        raise ModelError(f"{path}: .keras archive has {len(infos)} members (limit {MAX_MEMBERS})",
                         hint="this is not a Keras model file")
    names = [i.filename for i in infos]
    dup = sorted({n for n in names if names.count(n) > 1}) if len(set(names)) != len(names) else []
    if dup:
        zf.close()
        raise ModelError(f"{path}: .keras archive holds duplicate members {dup}",
                         hint="the archive was tampered with; re-save the model")
    total = 0
    for info in infos:
        total += info.file_size
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > MAX_MEMBER_BYTES or total > MAX_TOTAL_BYTES:
            zf.close()
            raise ModelError(f"{path}: .keras member '{info.filename}' declares {info.file_size} bytes "
                             f"(limit {MAX_MEMBER_BYTES}); refusing a possible zip bomb",
                             hint="re-save the model; edgekit only accepts archives written by Keras")
        if info.file_size > RATIO_MIN_BYTES and ratio > MAX_RATIO:
            zf.close()
            raise ModelError(f"{path}: .keras member '{info.filename}' expands {ratio:.0f}x "
                             f"({info.compress_size} -> {info.file_size} bytes); refusing a possible zip bomb",
                             hint="re-save the model; edgekit only accepts archives written by Keras")
    return zf


def read_keras_zip_member(zf: zipfile.ZipFile, name: str, *, limit: int, path: Path) -> bytes:
    """Read one member of a ``.keras`` archive, at most ``limit`` bytes, as a ModelError on damage."""
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise ModelError(f"{path}: .keras archive has no {name} (not a Keras model file?)",
                         hint="re-save the model with model.save('model.keras')") from None
    if info.file_size > limit:
        raise ModelError(f"{path}: {name} is {info.file_size} bytes (limit {limit})",
                         hint="this is not a model edgekit can read")
    try:
        with zf.open(info) as fh:
            data = fh.read(limit + 1)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
        raise ModelError(f"{path}: cannot read {name} from the archive ({exc}; truncated or corrupt?)",
                         hint="re-save the model with model.save('model.keras')") from None
    if len(data) > limit:
        raise ModelError(f"{path}: {name} is larger than {limit} bytes", hint="this is not a model edgekit can read")
    return data


def _json(data: bytes | str, *, path: Path, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: {what} is not valid JSON ({str(exc)[:80]})",
                         hint="the file is corrupt; re-save the model") from None


def _scan_keras_zip(path: Path) -> dict[str, Any]:
    with _open_keras_zip(path) as zf:
        names = set(zf.namelist())
        if "config.json" not in names:
            raise ModelError(f"{path}: zip archive without config.json is not a Keras .keras model",
                             hint="re-save the model with model.save('model.keras')")
        config = _json(read_keras_zip_member(zf, "config.json", limit=MAX_CONFIG_BYTES, path=path),
                       path=path, what="config.json")
        meta: dict[str, Any] = {}
        if "metadata.json" in names:
            raw = _json(read_keras_zip_member(zf, "metadata.json", limit=MAX_METADATA_BYTES, path=path),
                        path=path, what="metadata.json")
            meta = raw if isinstance(raw, dict) else {}
        if "model.weights.h5" not in names:
            other = sorted(n for n in names if n.startswith("model.weights"))
            detail = f" (found {other}: sharded/npz weights are not supported)" if other else ""
            raise ModelError(f"{path}: .keras archive has no model.weights.h5{detail}",
                             hint="re-save the model with model.save('model.keras')")
    if not isinstance(config, dict):
        raise ModelError(f"{path}: config.json is not a Keras model config", hint="re-save the model")
    version = meta.get("keras_version") if isinstance(meta.get("keras_version"), str) else None
    saved_by = _saved_by(version, config)
    info = _describe(config, path=path, where="config.json")
    info.update(format="keras-v3-zip", saved_by=saved_by, keras_version=version,
                size_bytes=path.stat().st_size)
    info.update(_loss_info((config.get("compile_config") or {}).get("loss")
                           if isinstance(config.get("compile_config"), dict) else None))
    return info


def _saved_by(version: str | None, config: dict[str, Any]) -> str:
    if version:
        return "keras3" if version.split(".")[0] not in ("0", "1", "2") else "tf_keras"
    module = str(config.get("module") or "")
    if module.startswith("tf_keras"):
        return "tf_keras"
    return "keras3" if '"DTypePolicy"' in json.dumps(config)[:200000] else "tf_keras"


# --------------------------------------------------------------------------------------------
# legacy .h5
# --------------------------------------------------------------------------------------------

def _is_hdf5(path: Path) -> bool:
    try:
        import h5py

        return bool(h5py.is_hdf5(str(path)))
    except Exception:  # noqa: BLE001 - any failure means "not HDF5"
        return False


def _attr_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _scan_h5(path: Path) -> dict[str, Any]:
    import h5py

    try:
        with h5py.File(str(path), "r") as fh:
            attrs = {k: fh.attrs[k] for k in ("model_config", "keras_version", "training_config") if k in fh.attrs}
            has_weights = "model_weights" in fh or "layer_names" in fh.attrs
    except Exception as exc:  # noqa: BLE001 - h5py raises OSError/KeyError/RuntimeError variants
        raise ModelError(f"{path}: cannot open the HDF5 file ({str(exc)[:120]}; truncated or corrupt?)",
                         hint="re-save the model with model.save('model.keras')") from None
    if "model_config" not in attrs:
        what = "holds only weights" if has_weights else "holds no Keras model"
        raise ModelError(f"{path}: HDF5 file {what} (no model_config attribute)",
                         hint="save the whole model with model.save('model.keras'), not save_weights()")
    text = _attr_text(attrs["model_config"])
    if len(text) > MAX_CONFIG_BYTES:
        raise ModelError(f"{path}: model_config is larger than {MAX_CONFIG_BYTES} bytes",
                         hint="this is not a model edgekit can read")
    config = _json(text, path=path, what="the model_config attribute")
    if not isinstance(config, dict):
        raise ModelError(f"{path}: model_config is not a Keras model config", hint="re-save the model")
    version = _attr_text(attrs["keras_version"]) if "keras_version" in attrs else None
    info = _describe(config, path=path, where="model_config")
    info.update(format="h5", saved_by=_saved_by(version, config), keras_version=version,
                size_bytes=path.stat().st_size)
    loss = None
    if "training_config" in attrs:
        training = _json(_attr_text(attrs["training_config"]), path=path, what="the training_config attribute")
        loss = training.get("loss") if isinstance(training, dict) else None
    info.update(_loss_info(loss))
    return info


# --------------------------------------------------------------------------------------------
# config walking (shared by all formats)
# --------------------------------------------------------------------------------------------

def _normalise_module(module: str) -> list[str]:
    parts = [p for p in module.split(".") if p]
    if parts[:2] == ["tensorflow", "keras"]:
        parts = ["keras"] + parts[2:]
    elif parts[:3] == ["tensorflow", "python", "keras"]:
        parts = ["keras"] + parts[3:]
    return [p for p in parts if p != "src"]


def module_is_safe(module: Any) -> bool:
    """True for Keras / tf_keras modules that only hold layers, initializers and the like."""
    if not isinstance(module, str) or not module:
        return False
    parts = _normalise_module(module)
    if not parts or parts[0] not in ("keras", "tf_keras"):
        return False
    return len(parts) == 1 or parts[1] in _SAFE_KERAS_SUBMODULES


def _layer_label(node: dict[str, Any]) -> str | None:
    name = node.get("name")
    if not isinstance(name, str) and isinstance(node.get("config"), dict):
        name = node["config"].get("name")
    return name if isinstance(name, str) else None


def _is_layer_entry(node: dict[str, Any]) -> bool:
    cfg = node.get("config")
    return "inbound_nodes" in node or (isinstance(cfg, dict) and "name" in cfg and "trainable" in cfg)


def _findings(config: Any, where: str, file: Path) -> list[dict[str, Any]]:
    """Walk a model config and return every item that could run code or touch files on load."""
    out: list[dict[str, Any]] = []

    def add(kind: str, layer: tuple[str | None, str | None], path: str, reason: str) -> None:
        lname, lcls = layer
        subject = f"layer '{lname}' ({lcls})" if lname else f"object {lcls}"
        out.append({"kind": kind, "layer": lname, "class_name": lcls, "path": f"{where}:{path}",
                    "message": f"{subject} at {where}:{path} {reason}"})

    def walk(node: Any, path: str, layer: tuple[str | None, str | None], depth: int) -> None:
        if depth > MAX_CONFIG_DEPTH:
            shown = path if len(path) <= 120 else path[:100] + "..."
            raise ModelError(f"{file}: model config nested deeper than {MAX_CONFIG_DEPTH} levels at {where}:{shown}",
                             hint="this is not a model edgekit can read")
        if isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{path}[{i}]", layer, depth + 1)
            return
        if not isinstance(node, dict):
            return
        cls = node.get("class_name")
        if isinstance(cls, str) and "config" in node and cls not in ("__keras_tensor__", "__tuple__"):
            if _is_layer_entry(node) or layer[0] is None:
                layer = (_layer_label(node), cls)
            if _check_object(node, cls, path, layer, add):
                return  # refused as a whole: its inner parts would only repeat the finding
        elif node.get("function_type") in ("lambda", "raw"):
            add("lambda", layer, path, "holds serialized Python bytecode (function_type "
                f"'{node.get('function_type')}') that runs when the model is loaded")
        for key, value in node.items():
            if key in ("compile_config", "training_config", "build_config", "optimizer_config"):
                continue
            if isinstance(value, (dict, list)):
                walk(value, f"{path}.{key}", layer, depth + 1)

    walk(config, "$", (None, None), 0)
    return out


def _check_object(node: dict[str, Any], cls: str, path: str, layer: tuple[str | None, str | None], add) -> bool:
    """Record a finding for one serialized object; True when it was refused as a whole."""
    cfg = node.get("config") if isinstance(node.get("config"), dict) else {}
    if cls == "Lambda":
        add("lambda", layer, path, "is a Lambda layer: its Python code runs when the model is loaded")
        return True
    if cls == "__lambda__":
        add("lambda", layer, path, "holds a serialized Python lambda that runs when the model is loaded")
        return True
    if cls in _FOREIGN_CODE_LAYERS:
        add("foreign-code", layer, path, f"is a {cls}: it wraps {_FOREIGN_CODE_LAYERS[cls]} that runs when the model is loaded")
        return True
    if cls == "TFSMLayer":
        add("tfsmlayer", layer, path, f"is a TFSMLayer: it loads and runs the external SavedModel "
            f"'{cfg.get('filepath')}'")
        return True
    if cls in ("TFOpLambda", "SlicingOpLambda"):
        symbol = str(cfg.get("function", ""))
        bare = re.sub(r"^compat\.v[12]\.", "", symbol)
        if _UNSAFE_TF_SYMBOL.match(bare):
            add("tf-op", layer, path, f"calls tf.{symbol}, which can touch files or run code when the model is loaded")
            return True
    if "module" in node and not module_is_safe(node.get("module")) and cls not in ("__keras_tensor__",):
        module = node.get("module")
        origin = (f"from module {module!r}" if module else
                  f"defined outside Keras (registered as {node.get('registered_name')!r})")
        add("custom-object", layer, path, f"is a custom object '{cls}' {origin}, whose code would be imported "
            "and run (only built-in Keras objects load without --trust-model)")
        return True
    registered = node.get("registered_name")
    if "module" not in node and isinstance(registered, str) and ">" in registered and not registered.startswith("Custom>"):
        add("custom-object", layer, path, f"is a custom object registered as '{registered}'")
        return True
    if "module" not in node and ">" in cls and not cls.startswith("Custom>"):
        add("custom-object", layer, path, f"is a custom object registered as '{cls}'")
        return True
    if cls in _LOOKUP_LAYERS and isinstance(cfg.get("vocabulary"), str):
        add("file-read", layer, path, f"reads its vocabulary from the file '{cfg['vocabulary']}' when loaded")
        return True
    return False


def _describe(config: dict[str, Any], *, path: Path, where: str) -> dict[str, Any]:
    """Model class, top-level layers, nested models and unsafe findings of a model config."""
    cls = config.get("class_name")
    inner = config.get("config")
    layers = inner.get("layers") if isinstance(inner, dict) else None
    if not isinstance(cls, str):
        raise ModelError(f"{path}: {where} has no class_name (not a Keras model config)", hint="re-save the model")
    if cls not in KNOWN_MODEL_CLASSES or not isinstance(layers, list):
        module = config.get("module")
        origin = f" from module {module!r}" if module else ""
        raise ModelError(f"{path}: '{cls}'{origin} is a subclassed model; its architecture is Python "
                         "code that cannot be rebuilt from the saved file",
                         hint="rebuild it as a Functional or Sequential model (keras.Model(inputs, outputs)), "
                              "copy the weights over and save that with model.save('model.keras')")
    top: list[dict[str, str]] = []
    nested: list[str] = []
    for entry in layers:
        if not isinstance(entry, dict):
            continue
        name = _layer_label(entry) or "?"
        lcls = str(entry.get("class_name"))
        top.append({"name": name, "class_name": lcls})
        ecfg = entry.get("config")
        if lcls in KNOWN_MODEL_CLASSES and isinstance(ecfg, dict) and isinstance(ecfg.get("layers"), list):
            nested.append(name)
    return {"model_class": cls, "model_name": inner.get("name") if isinstance(inner, dict) else None,
            "layers": top, "nested_models": nested, "findings": _findings(config, where, path)}


def _loss_info(loss: Any) -> dict[str, Any]:
    """``compiled_loss`` as a short string and ``from_logits`` when the loss says."""
    if loss is None:
        return {"compiled_loss": None, "from_logits": None}
    if isinstance(loss, str):
        return {"compiled_loss": loss, "from_logits": None}
    if isinstance(loss, dict) and isinstance(loss.get("class_name"), str):
        cfg = loss.get("config") if isinstance(loss.get("config"), dict) else {}
        logits = cfg.get("from_logits")
        return {"compiled_loss": loss["class_name"], "from_logits": bool(logits) if logits is not None else None}
    return {"compiled_loss": json.dumps(loss, sort_keys=True)[:200], "from_logits": None}


# --------------------------------------------------------------------------------------------
# SavedModel: protobuf wire format, no TensorFlow
# --------------------------------------------------------------------------------------------

class _WireError(ValueError):
    pass


def _fields(buf: memoryview) -> Iterator[tuple[int, int, Any]]:
    """Yield ``(field_number, wire_type, value)``; length-delimited values are memoryviews."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = bytes(buf[pos:pos + 8]), pos + 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > end:
                raise _WireError("length past the end of the message")
            value, pos = buf[pos:pos + size], pos + size
        elif wire == 5:
            value, pos = bytes(buf[pos:pos + 4]), pos + 4
        else:
            raise _WireError(f"unsupported wire type {wire}")
        if pos > end or field == 0:
            raise _WireError("truncated message")
        yield field, wire, value


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise _WireError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _sub(fields: Iterator[tuple[int, int, Any]], number: int) -> Iterator[memoryview]:
    for field, wire, value in fields:
        if field == number and wire == 2:
            yield value


def _text(value: memoryview) -> str:
    return bytes(value).decode("utf-8", errors="replace")


def _node_ops(node: memoryview) -> tuple[str, str, set[str]]:
    """NodeDef → (name, op, names of functions referenced from its attrs)."""
    name = op = ""
    funcs: set[str] = set()
    for field, wire, value in _fields(node):
        if wire != 2:
            continue
        if field == 1:
            name = _text(value)
        elif field == 2:
            op = _text(value)
        elif field == 5:  # map<string, AttrValue> entry
            for attr_value in _sub(_fields(value), 2):
                for f2, w2, v2 in _fields(attr_value):
                    if w2 == 2 and f2 == 10:  # AttrValue.func (NameAttrList)
                        funcs.update(_text(n) for n in _sub(_fields(v2), 1))
                    elif w2 == 2 and f2 == 1:  # AttrValue.list → ListValue.func
                        for fn in _sub(_fields(v2), 9):
                            funcs.update(_text(n) for n in _sub(_fields(fn), 1))
    return name, op, funcs


def saved_model_ops(pb: bytes) -> dict[str, Any]:
    """Op names of a ``saved_model.pb``: ``{"graph": [(node, op, funcs)], "functions": {name: [...]}}``."""
    graph: list[tuple[str, str, set[str]]] = []
    functions: dict[str, list[tuple[str, str, set[str]]]] = {}
    for meta_graph in _sub(_fields(memoryview(pb)), 2):           # SavedModel.meta_graphs
        for graph_def in _sub(_fields(meta_graph), 2):             # MetaGraphDef.graph_def
            for field, wire, value in _fields(graph_def):
                if wire != 2:
                    continue
                if field == 1:                                     # GraphDef.node
                    graph.append(_node_ops(value))
                elif field == 2:                                   # GraphDef.library
                    for fdef in _sub(_fields(value), 1):           # FunctionDefLibrary.function
                        fname, nodes = "", []
                        for f2, w2, v2 in _fields(fdef):
                            if w2 != 2:
                                continue
                            if f2 == 1:                            # FunctionDef.signature (OpDef.name = 1)
                                fname = next((_text(n) for n in _sub(_fields(v2), 1)), "")
                            elif f2 == 3:                          # FunctionDef.node_def
                                nodes.append(_node_ops(v2))
                        functions[fname] = nodes
    return {"graph": graph, "functions": functions}


def _unsafe_ops(ops: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, op) pairs of file-I/O ops outside the standard checkpoint save/restore functions."""
    called_from_functions: set[str] = set()
    for nodes in ops["functions"].values():
        for _, _, funcs in nodes:
            called_from_functions |= funcs
    bad: list[tuple[str, str]] = []

    def risky(op: str) -> bool:
        return op in _FILE_OPS or bool(_FILE_OP_PATTERN.search(op))

    for fname, nodes in ops["functions"].items():
        saver = bool(_SAVER_FUNCTION.match(fname)) and fname not in called_from_functions
        for node_name, op, _ in nodes:
            if risky(op) and not (saver and op in _SAVER_OPS):
                bad.append((f"function {fname}, node {node_name}", op))
    for node_name, op, _ in ops["graph"]:
        saver = op in _SAVER_OPS and re.match(r"^save(_\d+)?/", node_name)
        if risky(op) and not saver:
            bad.append((f"graph node {node_name}", op))
    return bad


def _keras_metadata(raw: bytes) -> list[tuple[str, str, Any]]:
    """keras_metadata.pb → [(node_path, identifier, metadata JSON)]."""
    nodes = []
    for obj in _sub(_fields(memoryview(raw)), 1):                  # SavedMetadata.nodes
        node_path = identifier = metadata = ""
        for field, wire, value in _fields(obj):
            if wire != 2:
                continue
            if field == 3:
                node_path = _text(value)
            elif field == 4:
                identifier = _text(value)
            elif field == 5:
                metadata = _text(value)
        nodes.append((node_path, identifier, metadata))
    return nodes


def _scan_saved_model(path: Path) -> dict[str, Any]:
    pb_path = path / "saved_model.pb"
    size = pb_path.stat().st_size
    if size > MAX_SAVED_MODEL_PB:
        raise ModelError(f"{pb_path}: {size} bytes is over protobuf's 2 GiB limit", hint="this is not a valid SavedModel")
    pb = pb_path.read_bytes()
    try:
        ops = saved_model_ops(pb)
    except (_WireError, IndexError) as exc:
        raise ModelError(f"{pb_path}: corrupt SavedModel protobuf ({exc})", hint="re-save the model") from None
    if not ops["graph"] and not ops["functions"]:
        raise ModelError(f"{pb_path}: SavedModel holds no graph (empty or corrupt saved_model.pb)",
                         hint="re-save the model")
    findings = [{"kind": "file-op", "layer": None, "class_name": op, "path": f"saved_model.pb:{where}",
                 "message": f"TensorFlow op {op} ({where}) in saved_model.pb reads or writes files"}
                for where, op in _unsafe_ops(ops)]
    meta_path = path / "keras_metadata.pb"
    if not meta_path.is_file():
        if findings:  # the dangerous op is the more important message
            raise ModelError(f"{path}: {findings[0]['message']}; edgekit refused the model, which also has "
                             "no Keras layers (no keras_metadata.pb)",
                             hint="pass the .keras file the model was exported from")
        raise ModelError(f"{path}: SavedModel has no Keras layers (no keras_metadata.pb: written by Keras 3 "
                         "model.export() or tf.saved_model.save), so it cannot be pruned or quantized",
                         hint="pass the .keras file the model was exported from")
    if meta_path.stat().st_size > MAX_CONFIG_BYTES:
        raise ModelError(f"{meta_path}: larger than {MAX_CONFIG_BYTES} bytes", hint="this is not a model edgekit can read")
    try:
        nodes = _keras_metadata(meta_path.read_bytes())
    except (_WireError, IndexError) as exc:
        raise ModelError(f"{meta_path}: corrupt keras_metadata.pb ({exc})", hint="re-save the model") from None
    root = next((m for p, _, m in nodes if p == "root"), None)
    if root is None:
        raise ModelError(f"{meta_path}: no root object in keras_metadata.pb", hint="re-save the model")
    root_meta = _json(root, path=meta_path, what="the root metadata")
    if not isinstance(root_meta, dict):
        raise ModelError(f"{meta_path}: root metadata is not an object", hint="re-save the model")
    cls = root_meta.get("class_name")
    if root_meta.get("is_graph_network") is False or cls not in KNOWN_MODEL_CLASSES:
        raise ModelError(f"{path}: '{cls}' is a subclassed model; its architecture is Python code "
                         "that cannot be rebuilt from the saved file",
                         hint="rebuild it as a Functional or Sequential model, copy the weights over and "
                              "save that with model.save('model.keras')")
    config = {"class_name": cls, "config": root_meta.get("config")}
    info = _describe(config, path=path, where="keras_metadata.pb root")
    # Every node carries its own class_name and config: catch layers the root config hides.
    seen = {(f["class_name"], f["layer"]) for f in info["findings"]}
    for node_path, _, raw in nodes:
        if node_path == "root" or not raw:
            continue
        meta = _json(raw, path=meta_path, what=f"metadata of {node_path}")
        if isinstance(meta, dict) and isinstance(meta.get("class_name"), str):
            for f in _findings({"class_name": meta["class_name"], "name": meta.get("name"),
                                "config": meta.get("config") or {}}, f"keras_metadata.pb {node_path}", path):
                if (f["class_name"], f["layer"]) not in seen:
                    seen.add((f["class_name"], f["layer"]))
                    info["findings"].append(f)
    info["findings"] = findings + info["findings"]
    version = root_meta.get("keras_version")
    info.update(format="savedmodel", saved_by="tf_keras", keras_version=version if isinstance(version, str) else None,
                size_bytes=size)
    training = root_meta.get("training_config")
    info.update(_loss_info(training.get("loss") if isinstance(training, dict) else None))
    return info
