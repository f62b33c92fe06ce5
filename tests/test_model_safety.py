"""Model safety and bad model files (issue 2, item 3; RELIABILITY.md rows 3–7, 11).

The scanner runs before anything is deserialized and imports no TensorFlow, so most tests here
write small synthetic files and call :func:`scan_model_file` directly. The ``tf`` tests use real
models whose Lambda (or custom module) writes a marker file when its code runs: refused loads must
leave no marker, and the trusted loads — the positive control — must create it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

import fixtures_models as fm
from edgekit.errors import ModelError
from edgekit.model_scan import saved_model_ops, scan_model_file

TRUST_HINT = "--trust-model"


def _dense(name="dense", **extra):
    return fm.k3_layer("Dense", name, {"units": 2, **extra})


def _model(layers, cls="Sequential"):
    return {"module": "keras", "class_name": cls, "config": {"name": "m", "trainable": True, "layers": layers}}


def _refused(path, *needles):
    with pytest.raises(ModelError) as err:
        scan_model_file(path)
    text = str(err.value)
    assert err.value.exit_code == 2
    assert "\n" not in text and str(path) in text
    for needle in needles:
        assert needle in text, text
    return text


# ------------------------------------------------------------------------------------------------
# unsafe content in a config (synthetic .keras / .h5, no TensorFlow)
# ------------------------------------------------------------------------------------------------

def test_scan_model_file_refuses_lambda_nested_two_models_deep(tmp_path):
    lam = fm.k3_layer("Lambda", "sneaky", {"function": {"class_name": "__lambda__",
                                                        "config": {"code": "AAAA", "defaults": None,
                                                                   "closure": None}}})
    inner = fm.k3_sequential("inner", [_dense("d1"), fm.k3_sequential("deeper", [lam])])
    path = fm.write_keras_zip(tmp_path / "m.keras", _model([inner, _dense("d2")]))
    text = _refused(path, "'sneaky' (Lambda)", "config.json:$.config.layers[0].config.layers[2].config.layers[1]",
                    TRUST_HINT)
    assert "more unsafe" not in text  # one finding, not one per inner part of the layer


@pytest.mark.parametrize("activation,needle", [
    ({"class_name": "__lambda__", "config": {"code": "AAAA", "defaults": None, "closure": None}}, "serialized Python lambda"),
    ({"module": "builtins", "class_name": "function", "config": "my_act", "registered_name": "function"}, "'builtins'"),
    ({"module": "os", "class_name": "system", "config": {"command": "true"}}, "'os'"),
    ({"module": "keras.utils", "class_name": "get_file", "config": {"origin": "http://x"}}, "'keras.utils'"),
    ({"module": "keras.src.saving.serialization_lib", "class_name": "enable_unsafe_deserialization",
      "config": {}}, "serialization_lib"),
])
def test_scan_model_file_refuses_functions_and_foreign_modules(tmp_path, activation, needle):
    path = fm.write_keras_zip(tmp_path / "m.keras", _model([_dense("head", activation=activation)]))
    _refused(path, "layer 'head' (Dense)", needle, TRUST_HINT)


def test_scan_model_file_refuses_custom_registered_objects_and_tfsmlayer(tmp_path):
    custom = {"module": None, "class_name": "Doubler", "config": {"name": "dbl", "trainable": True},
              "registered_name": "evilpkg>Doubler"}
    _refused(fm.write_keras_zip(tmp_path / "c.keras", _model([custom])), "'dbl' (Doubler)", "custom object")
    tfsm = fm.k3_layer("TFSMLayer", "ext", {"filepath": "/somewhere/saved", "call_endpoint": "serve"})
    _refused(fm.write_keras_zip(tmp_path / "t.keras", _model([tfsm])), "'ext' (TFSMLayer)", "/somewhere/saved")


def test_scan_model_file_refuses_layers_wrapping_other_frameworks(tmp_path):
    torch = fm.k3_layer("TorchModuleWrapper", "torchy", {"module": "gASV..."}, module="keras.layers")
    _refused(fm.write_keras_zip(tmp_path / "t.keras", _model([torch])), "'torchy' (TorchModuleWrapper)",
             "PyTorch")


def test_scan_model_file_checks_tf_op_lambdas_by_symbol(tmp_path):
    write = {"class_name": "TFOpLambda", "name": "tf.io.write_file",
             "config": {"name": "tf.io.write_file", "trainable": True, "function": "io.write_file"}}
    _refused(fm.write_h5(tmp_path / "w.h5", _model([write], cls="Functional")), "tf.io.write_file")
    raw = dict(write, config={"name": "raw", "trainable": True, "function": "compat.v1.raw_ops.ReadFile"})
    _refused(fm.write_h5(tmp_path / "r.h5", _model([raw], cls="Functional")), "raw_ops.ReadFile")
    add = dict(write, config={"name": "tf.math.add", "trainable": True, "function": "math.add"})
    assert scan_model_file(fm.write_h5(tmp_path / "ok.h5", _model([add], cls="Functional")))["findings"] == []


def test_scan_model_file_refuses_legacy_lambda_and_vocabulary_files(tmp_path):
    legacy = {"class_name": "Lambda", "config": {"name": "lam", "trainable": True, "function": ["AAAA", None, None],
                                                 "function_type": "lambda"}}
    _refused(fm.write_h5(tmp_path / "l.h5", _model([legacy])), "'lam' (Lambda)", "model_config:$.config.layers[0]")
    renamed = {"class_name": "Dense", "config": {"name": "d", "trainable": True,
                                                 "wrapped": {"function_type": "lambda", "function": "AAAA"}}}
    _refused(fm.write_h5(tmp_path / "r.h5", _model([renamed])), "bytecode")
    lookup = fm.k3_layer("StringLookup", "vocab", {"vocabulary": "/etc/passwd"})
    _refused(fm.write_keras_zip(tmp_path / "v.keras", _model([lookup])), "/etc/passwd")


def test_scan_model_file_with_trust_returns_findings_instead(tmp_path):
    lam = fm.k3_layer("Lambda", "lam", {"function": {"class_name": "__lambda__", "config": {}}})
    info = scan_model_file(fm.write_keras_zip(tmp_path / "m.keras", _model([_dense(), lam])), trust_model=True)
    assert info["trusted"] is True
    assert [(f["kind"], f["layer"]) for f in info["findings"]] == [("lambda", "lam")]


def test_scan_model_file_accepts_plain_keras_objects(tmp_path):
    conv = fm.k3_layer("Conv2D", "conv", {"filters": 2, "kernel_size": [3, 3], "dtype": {
        "module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None},
        "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform", "config": {}}})
    info = scan_model_file(fm.write_keras_zip(tmp_path / "m.keras", _model([conv, _dense()])))
    assert (info["format"], info["saved_by"], info["model_class"]) == ("keras-v3-zip", "keras3", "Sequential")
    assert [l["name"] for l in info["layers"]] == ["conv", "dense"] and info["findings"] == []


def test_scan_model_file_refuses_subclassed_models_even_when_trusted(tmp_path):
    sub = {"module": None, "class_name": "MyNet", "config": {"trainable": True}, "registered_name": "MyNet"}
    with pytest.raises(ModelError, match="subclassed.*Functional or Sequential"):
        scan_model_file(fm.write_keras_zip(tmp_path / "s.keras", sub), trust_model=True)


def test_scan_model_file_bounds_config_depth(tmp_path):
    deep: dict = {"units": 1}
    for _ in range(300):
        deep = {"nested": deep}
    _refused(fm.write_keras_zip(tmp_path / "d.keras", _model([_dense(extra=deep)])), "nested deeper")


# ------------------------------------------------------------------------------------------------
# corrupt, truncated, oversized files (RELIABILITY row 3)
# ------------------------------------------------------------------------------------------------

def test_scan_model_file_refuses_missing_empty_and_unknown_files(tmp_path):
    _refused(tmp_path / "nope.keras", "not found")
    (tmp_path / "empty.keras").write_bytes(b"")
    _refused(tmp_path / "empty.keras", "empty")
    (tmp_path / "model.tflite").write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\x00" * 64)
    _refused(tmp_path / "model.tflite", "TFLite model")
    (tmp_path / "notes.txt").write_text("hello")
    _refused(tmp_path / "notes.txt", "unrecognised model format")


def test_scan_model_file_refuses_non_zip_and_truncated_keras(tmp_path):
    (tmp_path / "random.keras").write_bytes(os.urandom(4096))
    _refused(tmp_path / "random.keras", "not a valid .keras archive", "model.save")
    good = fm.write_keras_zip(tmp_path / "good.keras", _model([_dense()]), weights=os.urandom(20000))
    data = good.read_bytes()
    (tmp_path / "cut.keras").write_bytes(data[: len(data) // 2])
    _refused(tmp_path / "cut.keras", "not a valid .keras archive")


def test_scan_model_file_refuses_zip_without_config_or_weights(tmp_path):
    _refused(fm.write_keras_zip(tmp_path / "noconf.keras", None), "without config.json")
    path = tmp_path / "noweights.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("config.json", json.dumps(_model([_dense()])))
    _refused(path, "no model.weights.h5")
    bad_json = fm.write_keras_zip(tmp_path / "badjson.keras", None, extra={"config.json": b"{not json"})
    _refused(bad_json, "not valid JSON")


def test_scan_model_file_refuses_zip_bomb_by_ratio_in_bounded_time(tmp_path):
    path = tmp_path / "bomb.keras"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", json.dumps(_model([_dense()])))
        with zf.open("model.weights.h5", "w") as fh:
            chunk = bytes(1 << 20)
            for _ in range(64):
                fh.write(chunk)
    assert path.stat().st_size < 1 << 20
    start = time.perf_counter()
    _refused(path, "zip bomb", "model.weights.h5")
    assert time.perf_counter() - start < 2.0


def test_scan_model_file_refuses_forged_declared_size_before_reading(tmp_path):
    path = fm.write_keras_zip(tmp_path / "forged.keras", _model([_dense()]))
    data = bytearray(path.read_bytes())
    # patch the central-directory "uncompressed size" of config.json to 3 GiB
    cd = data.find(b"PK\x01\x02")
    while data[cd + 46: cd + 46 + 11] != b"config.json":
        cd = data.find(b"PK\x01\x02", cd + 4)
    data[cd + 24: cd + 28] = (3 * 1024 ** 3).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    start = time.perf_counter()
    _refused(path, "config.json")
    assert time.perf_counter() - start < 2.0


def test_scan_model_file_refuses_duplicate_members(tmp_path):
    path = tmp_path / "dup.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("config.json", json.dumps(_model([_dense()])))
        with pytest.warns(UserWarning):
            zf.writestr("config.json", json.dumps(_model([fm.k3_layer("Lambda", "l", {})])))
        zf.writestr("model.weights.h5", b"x")
    _refused(path, "duplicate members")


def test_scan_model_file_refuses_corrupt_truncated_and_weights_only_h5(tmp_path):
    (tmp_path / "random.h5").write_bytes(os.urandom(4096))
    _refused(tmp_path / "random.h5", "not a valid HDF5 file")
    good = fm.write_h5(tmp_path / "good.h5", _model([_dense()]))
    data = good.read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 3])
    _refused(tmp_path / "cut.h5", "cut.h5")
    _refused(fm.write_h5(tmp_path / "weights.h5", None), "only weights", "model.save")


def test_scan_model_file_refuses_directories_that_are_not_savedmodels(tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "model.bin").write_bytes(b"x")
    _refused(tmp_path / "dir", "not a SavedModel")
    (tmp_path / "txt").mkdir()
    (tmp_path / "txt" / "saved_model.pbtxt").write_text("meta_graphs {}")
    _refused(tmp_path / "txt", "saved_model.pbtxt")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "saved_model.pb").write_bytes(b"\xff" * 64)
    _refused(tmp_path / "junk", "saved_model.pb")


# ------------------------------------------------------------------------------------------------
# SavedModels: graph ops and keras_metadata.pb (synthetic protobufs, no TensorFlow)
# ------------------------------------------------------------------------------------------------

_ROOT = {"class_name": "Functional", "is_graph_network": True,
         "config": {"name": "m", "layers": [{"class_name": "Dense", "name": "d",
                                             "config": {"name": "d", "trainable": True, "units": 2}}]}}


def _saved_model(path: Path, functions, metadata=(("root", _ROOT),), graph=()) -> Path:
    path.mkdir()
    (path / "saved_model.pb").write_bytes(fm.saved_model_pb(functions, list(graph)))
    if metadata is not None:
        (path / "keras_metadata.pb").write_bytes(fm.keras_metadata_pb(list(metadata)))
    return path


def test_saved_model_ops_parses_functions_and_graph():
    pb = fm.saved_model_pb({"__inference_call_1": [("x", "MatMul"), ("y", "Relu")]}, [("v", "VarHandleOp")])
    ops = saved_model_ops(pb)
    assert [op for _, op, _ in ops["functions"]["__inference_call_1"]] == ["MatMul", "Relu"]
    assert [op for _, op, _ in ops["graph"]] == ["VarHandleOp"]


def test_scan_model_file_refuses_savedmodel_file_ops(tmp_path):
    sm = _saved_model(tmp_path / "w", {"__inference_call_7": [("out", "WriteFile")]})
    _refused(sm, "WriteFile", "__inference_call_7", TRUST_HINT)
    sm = _saved_model(tmp_path / "r", {"__inference_call_7": [("in", "ReadFile")]})
    _refused(sm, "ReadFile")
    sm = _saved_model(tmp_path / "s", {"__inference_serve_3": [("ckpt", "SaveV2")]})
    _refused(sm, "SaveV2", "__inference_serve_3")


def test_scan_model_file_allows_checkpoint_ops_only_in_saver_functions(tmp_path):
    sm = _saved_model(tmp_path / "ok", {"__inference__traced_save_9": [("s", "SaveV2"), ("m", "MergeV2Checkpoints")],
                                        "__inference__traced_restore_10": [("r", "RestoreV2")],
                                        "__inference_call_1": [("x", "MatMul")]})
    info = scan_model_file(sm)
    assert (info["format"], info["saved_by"], info["findings"]) == ("savedmodel", "tf_keras", [])


def test_scan_model_file_refuses_keras_metadata_with_lambda_and_subclass(tmp_path):
    lam_root = json.loads(json.dumps(_ROOT))
    lam_root["config"]["layers"].append({"class_name": "Lambda", "name": "l",
                                         "config": {"name": "l", "trainable": True, "function_type": "lambda"}})
    _refused(_saved_model(tmp_path / "lam", {"f": [("x", "MatMul")]}, metadata=[("root", lam_root)]), "'l' (Lambda)")
    node_only = [("root", _ROOT), ("root.layer-1", {"class_name": "Lambda", "name": "hidden", "config": {}})]
    _refused(_saved_model(tmp_path / "node", {"f": [("x", "MatMul")]}, metadata=node_only), "'hidden' (Lambda)")
    sub = [("root", {"class_name": "MyNet", "is_graph_network": False, "config": {}})]
    with pytest.raises(ModelError, match="subclassed"):
        scan_model_file(_saved_model(tmp_path / "sub", {"f": [("x", "MatMul")]}, metadata=sub), trust_model=True)


def test_scan_model_file_refuses_savedmodel_without_keras_metadata(tmp_path):
    _refused(_saved_model(tmp_path / "export", {"f": [("x", "MatMul")]}, metadata=None), "no Keras layers",
             ".keras file")


def test_scan_model_file_never_imports_tensorflow(tmp_path):
    h5 = fm.write_h5(tmp_path / "m.h5", _model([_dense()]))
    sm = _saved_model(tmp_path / "sm", {"f": [("x", "MatMul")]})
    code = ("import sys; from edgekit.model_scan import scan_model_file as s; "
            f"s({str(h5)!r}); s({str(sm)!r}); s({str(fm.THIRD_PARTY_H5)!r}); "
            "bad = [m for m in ('tensorflow', 'tf_keras', 'keras') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# ------------------------------------------------------------------------------------------------
# real hostile models (TensorFlow-made fixtures; loads run in a child process)
# ------------------------------------------------------------------------------------------------

@pytest.mark.tf
@pytest.mark.parametrize("key,needles", [
    ("k3_lambda.keras", ["(Lambda)", "config.json:$.config.layers[1]"]),
    ("k3_lambda_nested.keras", ["(Lambda)", "config.json:$.config.layers[1].config.layers[1]"]),
    ("tfk_lambda.h5", ["(Lambda)", "model_config:$.config.layers[1]"]),
    ("k3_custom.keras", ["(Doubler)", "'evilmod'"]),
    ("k3_tfsm.keras", ["(TFSMLayer)", "k3_export"]),
    ("tfk_writefile_savedmodel", ["WriteFile", "__inference_dump"]),
])
def test_load_model_refuses_unsafe_models_before_any_code_runs(models, loaded, key, needles):
    # the pre-scan alone (in this process, no TensorFlow) refuses it ...
    _refused(models[key], *needles, TRUST_HINT)
    # ... and so does load_model in the child, without running the model's code
    result = loaded[key]
    assert result["error"] == "ModelError" and result["exit_code"] == 2
    for needle in needles:
        assert needle in result["message"]
    if key != "k3_tfsm.keras":
        assert result["markers"], "this fixture has a marker"
    assert not any(result["markers"].values()), result["markers"]


@pytest.mark.tf
@pytest.mark.parametrize("key", ["k3_lambda.keras", "k3_lambda_nested.keras", "tfk_lambda.h5"])
def test_load_model_with_trust_runs_the_lambda(models, loaded, key):
    # positive control: the fixtures really run code when deserialized, so "no marker" above means something
    assert models["fired_while_building"][Path(next(iter(loaded[f"trusted:{key}"]["markers"]))).stem]
    result = loaded[f"trusted:{key}"]
    assert "ok" in result, result
    assert all(result["markers"].values())
    info = result["ok"]
    assert info["trusted"] is True and [f["kind"] for f in info["findings"]] == ["lambda"]
    if key.startswith("k3_"):
        assert info["ported"] and info["port_max_abs_diff"] <= 1e-5


@pytest.mark.tf
def test_cli_compress_refuses_lambda_model_with_exit_2(models, tmp_path):
    marker = Path(models["markers"]["k3_lambda_nested"])
    before = marker.stat().st_mtime_ns if marker.exists() else None  # a trusted load may have made it
    edgekit = str(Path(sys.executable).with_name("edgekit"))
    proc = subprocess.run([edgekit, "compress", models["k3_lambda_nested.keras"], "-o", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Lambda" in proc.stderr and TRUST_HINT in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "model.tflite").exists()
    assert (marker.stat().st_mtime_ns if marker.exists() else None) == before, "the Lambda ran"
