"""Model fixtures for the model-loading and model-safety tests (owner: model loading).

Two halves:

* :func:`build_all` runs as a script in a subprocess *without* ``TF_USE_LEGACY_KERAS`` (so
  ``import keras`` is genuine Keras 3 next to ``tf_keras``) and writes every TensorFlow-made
  fixture — good models from Keras 3 and tf_keras in each format, and hostile ones whose Lambda /
  custom module writes a marker file if its code ever runs — plus ``manifest.json``.
* TF-free helpers that write synthetic ``.keras`` / ``.h5`` / SavedModel files for the scanner's
  unit tests, and :func:`load_batch`, a child-process target that loads many models at once (one
  TensorFlow start-up for the whole test session).

Nothing here is committed as a binary fixture except the third-party model under
``tests/data/third_party/`` (see its README).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
THIRD_PARTY_H5 = HERE / "data" / "third_party" / "fer_mini_xception_emotion.hdf5"

_BUILT: dict[str, Any] = {}


# --------------------------------------------------------------------------------------------
# session helpers (pytest side, no TensorFlow)
# --------------------------------------------------------------------------------------------

def built_models(tmp_path_factory) -> dict[str, Any]:
    """Build the TensorFlow fixtures once per pytest process; returns the manifest (paths)."""
    if "manifest" not in _BUILT:
        out = tmp_path_factory.mktemp("model_fixtures")
        env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
        env["TF_CPP_MIN_LOG_LEVEL"] = "3"
        env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent), env.get("PYTHONPATH", "")])
        proc = subprocess.run([sys.executable, str(Path(__file__)), str(out)], capture_output=True, text=True,
                              env=env, timeout=600)
        if proc.returncode != 0:
            raise AssertionError(f"building model fixtures failed:\n{proc.stderr[-4000:]}")
        _BUILT["manifest"] = json.loads((out / "manifest.json").read_text())
    return _BUILT["manifest"]


def loaded_batch(tmp_path_factory, requests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Run :func:`load_batch` once per pytest process in a child (edgekit.child.run_in_child)."""
    if "loaded" not in _BUILT:
        from edgekit.child import run_in_child

        _BUILT["loaded"] = run_in_child(load_batch, requests, what="loading the model fixtures", timeout=900)
    return _BUILT["loaded"]


def standard_requests(m: dict[str, Any]) -> list[dict[str, Any]]:
    """The loads both test modules share: refusals first (markers must stay absent), then good
    models, then the trusted loads that do run the fixtures' code."""
    mk = m["markers"]
    refused = [("k3_lambda.keras", ["k3_lambda"]), ("k3_lambda_nested.keras", ["k3_lambda_nested"]),
               ("tfk_lambda.h5", ["tfk_lambda_h5"]), ("k3_custom.keras", ["k3_custom_module"]),
               ("k3_tfsm.keras", []), ("tfk_writefile_savedmodel", ["tfk_writefile"]),
               ("k3_subclassed.keras", []), ("k3_export", []), ("k3_mismatch.keras", [])]
    reqs = [{"key": key, "path": m[key], "markers": [mk[n] for n in names]} for key, names in refused]
    for key in ("k3_seq.keras", "k3_func.h5", "k3_seq1d.keras", "tfk_func.keras", "tfk_func.h5", "tfk_savedmodel"):
        reqs.append({"key": key, "path": m[key]})
    reqs.append({"key": "k3_func.keras", "path": m["k3_func.keras"], "tfmot": True})
    reqs.append({"key": "k3_nested.keras", "path": m["k3_nested.keras"], "flatten": True, "tfmot": True})
    reqs.append({"key": "third_party", "path": str(THIRD_PARTY_H5), "tflite_parity": True})
    for key, name in (("k3_lambda.keras", "k3_lambda"), ("k3_lambda_nested.keras", "k3_lambda_nested"),
                      ("tfk_lambda.h5", "tfk_lambda_h5")):
        reqs.append({"key": f"trusted:{key}", "path": m[key], "trust": True, "markers": [mk[name]]})
    return reqs


def load_batch(requests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Child-process target: ``load_model`` each request, optionally flatten, convert and run it.

    Each request: ``{"key", "path", "trust": bool, "flatten": bool, "tflite_parity": bool,
    "markers": [paths]}``. Returns ``{key: {"ok": info} | {"error": class name, "message": str,
    "exit_code": int}}``, each with ``"markers": {path: exists}`` taken right after that request;
    with ``tflite_parity`` the info also holds ``tflite_max_abs_diff`` (float32 conversion vs
    tf_keras on a seeded probe batch, run with the real LiteRT interpreter). ``"__env__"`` says
    which Keras ``import keras`` gave in this child (with ``TF_USE_LEGACY_KERAS=1``).
    """
    from edgekit.errors import EdgekitError
    from edgekit.keras_backend import flatten_nested, load_model

    results: dict[str, dict[str, Any]] = {}
    for req in requests:
        results[req["key"]] = _load_one(req, load_model, flatten_nested, EdgekitError)
        results[req["key"]]["markers"] = {m: os.path.exists(m) for m in req.get("markers", [])}
    import keras  # noqa: E402 - only to report which Keras the child sees

    results["__env__"] = {"keras_version": keras.__version__,
                          "TF_USE_LEGACY_KERAS": os.environ.get("TF_USE_LEGACY_KERAS")}
    return results


def _load_one(req: dict[str, Any], load_model: Any, flatten_nested: Any, error_cls: type) -> dict[str, Any]:
    try:
        loaded = load_model(req["path"], trust_model=req.get("trust", False))
        info = dict(loaded.info)
        if req.get("flatten"):
            flat = flatten_nested(loaded.model)
            info["flat_layers"] = [type(l).__name__ for l in flat.layers]
            x = np.random.default_rng(1).random([3] + info["input_shape"], dtype=np.float64).astype("float32")
            info["flatten_max_abs_diff"] = float(np.max(np.abs(
                np.asarray(flat(x, training=False)) - np.asarray(loaded.model(x, training=False)))))
        if req.get("tfmot"):
            # the loaded (and flattened) model must be something tfmot accepts as it is
            from edgekit.keras_backend import tfmot

            model = flatten_nested(loaded.model)
            quantized = tfmot().quantization.keras.quantize_model(model)
            pruned = tfmot().sparsity.keras.prune_low_magnitude(model)
            info["tfmot"] = {"quantized_layers": [type(l).__name__ for l in quantized.layers],
                             "pruned_layers": [type(l).__name__ for l in pruned.layers]}
        if req.get("tflite_parity"):
            info["tflite_max_abs_diff"] = _tflite_parity(loaded.model, info["input_shape"])
        return {"ok": _plain(info)}
    except error_cls as exc:
        return {"error": type(exc).__name__, "message": str(exc), "exit_code": exc.exit_code}
    except Exception as exc:  # noqa: BLE001 - one broken case must not hide the others' results
        return {"error": f"unexpected {type(exc).__name__}", "message": str(exc)[:2000], "exit_code": None}


def _tflite_parity(model: Any, input_shape: list[int]) -> float:
    """float32 conversion → LiteRT, compared with tf_keras on 8 seeded samples."""
    try:
        from edgekit.stages.convert import convert_keras

        blob = convert_keras(model, mode="float32")
    except ImportError:  # the conversion stage is not there: use the converter directly
        from edgekit.keras_backend import import_tf

        tf, _ = import_tf()
        blob = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    from ai_edge_litert.interpreter import Interpreter

    x = np.random.default_rng(0).random([8] + list(input_shape), dtype=np.float64).astype("float32")
    interp = Interpreter(model_content=bytes(blob), num_threads=1)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    got = []
    for row in x:
        interp.set_tensor(inp["index"], row[None, ...])
        interp.invoke()
        got.append(interp.get_tensor(out["index"])[0])
    ref = np.asarray(model(x, training=False))
    return float(np.max(np.abs(np.asarray(got, np.float64) - ref.astype(np.float64))))


def _plain(value: Any) -> Any:
    """JSON-friendly copy (tuples → lists, numpy scalars → Python)."""
    return json.loads(json.dumps(value, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


# --------------------------------------------------------------------------------------------
# synthetic, TF-free fixtures for the scanner
# --------------------------------------------------------------------------------------------

def k3_layer(class_name: str, name: str, config: dict[str, Any] | None = None, *,
             module: str | None = "keras.layers", inbound: list | None = None) -> dict[str, Any]:
    """A Keras-3-style serialized layer entry."""
    cfg = {"name": name, "trainable": True, **(config or {})}
    entry: dict[str, Any] = {"module": module, "class_name": class_name, "config": cfg, "registered_name": None,
                             "name": name}
    if inbound is not None:
        entry["inbound_nodes"] = inbound
    return entry


def k3_sequential(name: str, layers: list[dict[str, Any]]) -> dict[str, Any]:
    inp = {"module": "keras.layers", "class_name": "InputLayer",
           "config": {"batch_shape": [None, 4], "dtype": "float32", "name": f"{name}_in"}, "registered_name": None}
    return {"module": "keras", "class_name": "Sequential", "config": {"name": name, "trainable": True,
            "layers": [inp] + layers}, "registered_name": None}


def write_keras_zip(path: Path, config: dict[str, Any] | None, *, metadata: dict[str, Any] | None = None,
                    weights: bytes = b"\x89HDF\r\n\x1a\n", extra: dict[str, bytes] | None = None) -> Path:
    """A ``.keras``-shaped zip (config.json, metadata.json, model.weights.h5 placeholder)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("metadata.json", json.dumps(metadata or {"keras_version": "3.15.1"}))
        if config is not None:
            zf.writestr("config.json", json.dumps(config))
        zf.writestr("model.weights.h5", weights)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return path


def write_h5(path: Path, config: dict[str, Any] | None, *, keras_version: str = "2.21.0") -> Path:
    """A legacy ``.h5`` whose ``model_config`` attribute holds ``config`` (None: weights only)."""
    import h5py

    with h5py.File(path, "w") as fh:
        fh.attrs["keras_version"] = keras_version
        fh.attrs["backend"] = "tensorflow"
        if config is not None:
            fh.attrs["model_config"] = json.dumps(config)
        group = fh.create_group("model_weights")
        group.attrs["layer_names"] = np.array([b"dense"], dtype=object)
    return path


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _ld(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def saved_model_pb(functions: dict[str, list[tuple[str, str]]], graph: list[tuple[str, str]] = ()) -> bytes:
    """Encode a minimal ``saved_model.pb``: ``functions`` maps name → [(node name, op)]."""
    def node(name: str, op: str) -> bytes:
        return _ld(1, name.encode()) + _ld(2, op.encode())

    library = b"".join(
        _ld(1, _ld(1, _ld(1, fname.encode())) + b"".join(_ld(3, node(n, o)) for n, o in nodes))
        for fname, nodes in functions.items())
    graph_def = b"".join(_ld(1, node(n, o)) for n, o in graph) + _ld(2, library)
    meta_graph = _ld(2, graph_def)
    return _varint(1 << 3 | 0) + _varint(1) + _ld(2, meta_graph)


def keras_metadata_pb(nodes: list[tuple[str, dict[str, Any]]]) -> bytes:
    """Encode ``keras_metadata.pb``: [(node_path, metadata dict)]."""
    return b"".join(_ld(1, _ld(3, p.encode()) + _ld(4, b"_tf_keras_layer") + _ld(5, json.dumps(m).encode()))
                    for p, m in nodes)


# --------------------------------------------------------------------------------------------
# the TensorFlow-made fixtures (run as a script)
# --------------------------------------------------------------------------------------------

_EVIL_MODULE = '''
import pathlib, keras
pathlib.Path({marker!r}).write_text("imported")

@keras.saving.register_keras_serializable(package="evilpkg")
class Doubler(keras.layers.Layer):
    def call(self, x):
        return x * 2
'''


def marker_lambda(marker: str) -> Any:
    """A lambda that writes ``marker`` whenever it runs; the path is a constant of its bytecode
    (Keras 3 cannot reload lambdas with default arguments)."""
    return eval(f"lambda t: (__import__('pathlib').Path({marker!r}).write_text('ran'), t)[1]")  # noqa: S307


def build_all(out: Path) -> dict[str, Any]:  # pragma: no cover - runs in a subprocess
    """Write every TensorFlow-made fixture into ``out`` and return the manifest."""
    assert "TF_USE_LEGACY_KERAS" not in os.environ, "Keras 3 fixtures must be built without TF_USE_LEGACY_KERAS"
    import keras
    import tensorflow as tf
    import tf_keras

    assert keras.__version__.startswith("3"), keras.__version__
    keras.utils.set_random_seed(0)
    tf_keras.utils.set_random_seed(0)
    m: dict[str, Any] = {"keras_version": keras.__version__, "tf_keras_version": tf_keras.__version__,
                         "markers": {}}
    markers = out / "markers"
    markers.mkdir()

    def marker(name: str) -> str:
        path = str(markers / f"{name}.ran")
        m["markers"][name] = path
        return path

    def p(name: str) -> str:
        m[name] = str(out / name)
        return m[name]

    # ---- Keras 3: good models --------------------------------------------------------------
    k = keras.layers
    seq = keras.Sequential([keras.Input((6,)), k.Dense(5, activation="relu"), k.Dense(3, activation="softmax")],
                           name="k3_seq")
    seq.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    seq.save(p("k3_seq.keras"))

    inp = keras.Input((8, 8, 1))
    x = k.Conv2D(4, 3, padding="same")(inp)
    x = k.BatchNormalization()(x)
    x = k.ReLU()(x)
    y = k.SeparableConv2D(4, 3, padding="same")(x)
    x = k.Add()([x, y])
    x = k.MaxPooling2D()(x)
    x = k.Flatten()(x)
    out_ = k.Dense(3, activation="sigmoid")(x)
    func = keras.Model(inp, out_, name="k3_func")
    # non-trivial BatchNorm statistics so that a mis-assigned weight shows in the outputs
    bn = [l for l in func.layers if isinstance(l, k.BatchNormalization)][0]
    bn.set_weights([np.linspace(0.5, 1.5, 4), np.linspace(-0.2, 0.2, 4), np.linspace(-1, 1, 4), np.linspace(0.5, 2, 4)])
    func.compile(loss=keras.losses.BinaryCrossentropy(from_logits=False), optimizer="adam")
    func.save(p("k3_func.keras"))
    func.save(p("k3_func.h5"))

    # a sensor-style model: recurrent layers whose weights sit in sub-groups of the weights file
    si = keras.Input((12, 3))
    sx = k.Conv1D(4, 3, padding="same", activation="relu")(si)
    sx = k.LayerNormalization()(sx)
    sx = k.Bidirectional(k.GRU(3, return_sequences=True))(sx)
    sx = k.LSTM(4)(sx)
    keras.Model(si, k.Dense(2, activation="softmax")(sx), name="k3_seq1d").save(p("k3_seq1d.keras"))

    inner_seq = keras.Sequential([keras.Input((6,)), k.Dense(5, activation="relu")], name="inner_seq")
    i2 = keras.Input((5,))
    inner_func = keras.Model(i2, k.Dense(4, activation="tanh")(i2), name="inner_func")
    top_in = keras.Input((6,))
    h = inner_func(inner_seq(top_in))
    nested = keras.Model(top_in, k.Dense(2, activation="softmax")(h), name="k3_nested")
    nested.save(p("k3_nested.keras"))

    # ---- Keras 3: hostile / unsupported ------------------------------------------------------
    mk = marker("k3_lambda")
    lam = keras.Sequential([keras.Input((6,)),
                            k.Lambda(marker_lambda(mk)),
                            k.Dense(2)], name="k3_lambda")
    lam.save(p("k3_lambda.keras"))

    mk = marker("k3_lambda_nested")
    inner = keras.Sequential([keras.Input((6,)),
                              k.Lambda(marker_lambda(mk)),
                              k.Dense(3)], name="inner_with_lambda")
    i3 = keras.Input((6,))
    keras.Model(i3, k.Dense(2)(inner(i3)), name="k3_lambda_nested").save(p("k3_lambda_nested.keras"))

    mod_dir = out / "evilmods"
    mod_dir.mkdir()
    (mod_dir / "evilmod.py").write_text(_EVIL_MODULE.format(marker=marker("k3_custom_module")))
    sys.path.insert(0, str(mod_dir))
    import evilmod  # noqa: E402 - writes the marker now: delete it so tests see only later imports

    Path(m["markers"]["k3_custom_module"]).unlink()
    i4 = keras.Input((4,))
    keras.Model(i4, evilmod.Doubler()(i4), name="k3_custom").save(p("k3_custom.keras"))

    exported = keras.Sequential([keras.Input((4,)), k.Dense(2)], name="k3_exported")
    exported.export(p("k3_export"), verbose=False)
    i5 = keras.Input((4,))
    keras.Model(i5, k.TFSMLayer(m["k3_export"], call_endpoint="serve")(i5), name="k3_tfsm").save(p("k3_tfsm.keras"))

    class Subclassed(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = k.Dense(2)

        def call(self, t):
            return self.dense(t)

    sub = Subclassed()
    sub(np.zeros((1, 4), "float32"))
    sub.save(p("k3_subclassed.keras"))

    # weights that do not fit the config: Dense(5) declared as Dense(4)
    with zipfile.ZipFile(m["k3_seq.keras"]) as src, zipfile.ZipFile(p("k3_mismatch.keras"), "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "config.json":
                cfg = json.loads(data)
                cfg["config"]["layers"][1]["config"]["units"] = 4
                data = json.dumps(cfg).encode()
            dst.writestr(item, data)

    # ---- tf_keras ------------------------------------------------------------------------------
    t = tf_keras.layers
    ti = tf_keras.Input((8, 8, 1))
    tx = t.Conv2D(4, 3, activation="relu")(ti)
    tx = t.Flatten()(tx)
    tmodel = tf_keras.Model(ti, t.Dense(3, activation="softmax")(tx), name="tfk_func")
    tmodel.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    tmodel.save(p("tfk_func.keras"))
    tmodel.save(p("tfk_func.h5"))
    tmodel.save(p("tfk_savedmodel"), save_format="tf")

    mk = marker("tfk_lambda_h5")
    tlam = tf_keras.Sequential([tf_keras.Input((6,)),
                                t.Lambda(marker_lambda(mk)),
                                t.Dense(2)], name="tfk_lambda")
    tlam.save(p("tfk_lambda.h5"))

    mk = marker("tfk_writefile")
    wmodel = tf_keras.Sequential([tf_keras.Input((4,)), t.Dense(2)], name="tfk_writefile")

    @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
    def dump(text):
        tf.io.write_file(mk, text)
        return text

    wmodel.dump = dump
    wmodel.save(p("tfk_writefile_savedmodel"), save_format="tf")
    # Building ran the Lambdas once (symbolic call): proof that their code does write the marker.
    # Remove the markers so that the tests start from none.
    m["fired_while_building"] = {}
    for key, name in m["markers"].items():
        m["fired_while_building"][key] = Path(name).exists()
        Path(name).unlink(missing_ok=True)
    (out / "manifest.json").write_text(json.dumps(m, indent=1))
    return m


if __name__ == "__main__":  # pragma: no cover
    build_all(Path(sys.argv[1]))
