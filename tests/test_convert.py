"""Every conversion mode with real TensorFlow and the real LiteRT interpreter.

One subprocess converts the tiny digits model to all five modes, verifies each, and measures parity
against the Keras model's own outputs; the tests assert on that measurement.
"""
import json

import pytest

from conftest import run_python

pytestmark = pytest.mark.tf

_SCRIPT = """
import json, sys, numpy as np, tf_keras as keras
from edgekit.stages.convert import MODES, convert_keras, verify_conversion
from edgekit.interp import predict_tflite
m = keras.models.load_model(sys.argv[1])
d = np.load(sys.argv[2])
x, y = d["x_test"], d["y_test"]
ref = m.predict(x, verbose=0)
out = {"keras_acc": float(np.mean(ref.argmax(1) == y))}
for mode, io in [(m_, "float32") for m_ in MODES] + [("int8", "int8")]:
    b = convert_keras(m, mode=mode, io_dtype=io, representative=d["x_train"][:100])
    info = verify_conversion(b, mode=mode, io_dtype=io)
    pred = predict_tflite(b, x)
    out[f"{mode}/{io}"] = {"bytes": len(b), "io": info["inputs"] + info["outputs"], "tensors": info["tensors"],
        "max_abs_diff": float(np.abs(pred - ref).max()), "acc": float(np.mean(pred.argmax(1) == y)),
        "agree": float(np.mean(pred.argmax(1) == ref.argmax(1)))}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def conversions(tiny_keras_model, digits_npz):
    proc = run_python(_SCRIPT, str(tiny_keras_model), str(digits_npz))
    return json.loads(proc.stdout.strip().splitlines()[-1])


# (mode/io, max abs diff vs Keras allowed, min top-1 agreement): float modes are near-exact,
# 8/16-bit modes are judged by agreement since their error is quantization noise by design.
CASES = [("float32/float32", 1e-5, 1.0), ("float16/float32", 5e-3, 0.99), ("dynamic/float32", 0.1, 0.97),
         ("int8/float32", 0.2, 0.95), ("int8/int8", 0.2, 0.95), ("int16x8/float32", 0.05, 0.99)]


@pytest.mark.parametrize("key,max_diff,min_agree", CASES)
def test_convert_mode_parity_with_keras(conversions, key, max_diff, min_agree):
    r = conversions[key]
    assert r["max_abs_diff"] <= max_diff, r
    assert r["agree"] >= min_agree, r
    assert r["acc"] >= conversions["keras_acc"] - 0.03


def test_convert_io_dtypes_are_what_was_asked(conversions):
    assert conversions["int8/int8"]["io"] == ["int8", "int8"]
    assert conversions["int8/float32"]["io"] == ["float32", "float32"]
    assert conversions["int8/int8"]["tensors"].get("int8", 0) > 5
    assert conversions["float16/float32"]["tensors"].get("float16", 0) > 0
    assert conversions["int16x8/float32"]["tensors"].get("int16", 0) > 0


def test_convert_sizes_shrink_with_quantization(conversions):
    f32 = conversions["float32/float32"]["bytes"]
    assert conversions["float16/float32"]["bytes"] < 0.6 * f32
    assert conversions["int8/int8"]["bytes"] < 0.4 * f32
    assert conversions["dynamic/float32"]["bytes"] < 0.4 * f32


_FALLBACK = """
import sys, numpy as np, tf_keras as keras
from edgekit.errors import ModelError
from edgekit.stages.convert import convert_keras, verify_conversion
m = keras.models.load_model(sys.argv[1])
b = convert_keras(m, mode="float32")
try:
    verify_conversion(b, mode="int8", io_dtype="int8")
except ModelError as e:
    print("REFUSED", e)
"""


def test_verify_conversion_catches_float_fallback(tiny_keras_model):
    proc = run_python(_FALLBACK, str(tiny_keras_model))
    assert "REFUSED" in proc.stdout
    assert "expected int8" in proc.stdout
