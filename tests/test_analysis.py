"""Model analysis: flatbuffer reading, MACs, arena (TFLM vs greedy), op tables, compatibility, estimator.

Real models are converted by the real TF 2.21 converter in a subprocess (session fixture); hostile
models are written with the generated flatbuffer builders at test time. This process never imports
TensorFlow.
"""
from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edgekit.analysis import analyze_tflite, attach_arena, fit_target, greedy_plan
from edgekit.analysis.arena import SOURCE_GREEDY, SOURCE_TFLM, estimate_persistent, measure_tflm_arena
from edgekit.analysis.compat import CPU_FALLBACK, SUPPORTED, UNSUPPORTED, check_ops
from edgekit.analysis.estimator import estimate_latency
from edgekit.analysis.fbbuild import ModelSpec, OpSpec, TensorSpec, build_model
from edgekit.analysis.optables import (generate_litert_table, generate_tflm_table, load_table, tflm_runtime_path)
from edgekit.analysis.schema import builtin_codes
from edgekit.errors import ModelError
from edgekit.targets import load_target, target_from_dict

ROOT = Path(__file__).resolve().parents[1]
CODES = builtin_codes()

# Built once per session in a child interpreter (tf_keras + the real converter).
_BUILD = r"""
import sys, numpy as np, tensorflow as tf, tf_keras as keras
out = sys.argv[1]
keras.utils.set_random_seed(0)
L = keras.layers
m = keras.Sequential([L.Input((8, 8, 1)), L.Conv2D(8, 3, activation="relu"), L.DepthwiseConv2D(3, activation="relu6"),
                      L.MaxPooling2D(), L.Flatten(), L.Dense(64, activation="relu"), L.Dense(10), L.Softmax()])
rng = np.random.default_rng(0)
def rep():
    for _ in range(16):
        yield [rng.random((1, 8, 8, 1), dtype=np.float32)]
def save(name, conv):
    open(f"{out}/{name}.tflite", "wb").write(conv.convert())
for mode in ("float32", "int8", "float16", "dynamic"):
    c = tf.lite.TFLiteConverter.from_keras_model(m)
    if mode != "float32":
        c.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "int8":
        c.representative_dataset = rep
        c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        c.inference_input_type = tf.int8
        c.inference_output_type = tf.int8
    if mode == "float16":
        c.target_spec.supported_types = [tf.float16]
    save(mode, c)

def fn_model(name, fn, shape, **opts):
    f = tf.function(fn, input_signature=[tf.TensorSpec(shape, tf.float32)])
    c = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
    for k, v in opts.items():
        if k == "ops":
            c.target_spec.supported_ops = v
        else:
            setattr(c, k, v)
    save(name, c)
# a custom op (allow_custom_ops keeps the TF op as a CUSTOM operator named BesselI1e)
fn_model("custom", lambda x: tf.math.bessel_i1e(x) + 1.0, [1, 4], allow_custom_ops=True)
# a Select-TF (Flex) op
fn_model("flex", lambda x: tf.math.erf(x) + 1.0, [1, 4],
         ops=[tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS])
# a builtin that neither TFLite Micro nor the GPU delegate has
fn_model("topk", lambda x: tf.math.top_k(x, k=3).values, [1, 8])
"""
MODEL_NAMES = ("float32", "int8", "float16", "dynamic", "custom", "flex", "topk")
EXPECTED_MACS = 6 * 6 * 8 * 9 + 4 * 4 * 8 * 9 + 32 * 64 + 64 * 10  # conv + depthwise + dense + dense


def build_test_models(artifacts_dir: Path) -> dict[str, Path]:
    """Convert the small test models once per session (used by test_inspect_cli.py too)."""
    from conftest import run_python

    out = artifacts_dir / "analysis_models"
    paths = {name: out / f"{name}.tflite" for name in MODEL_NAMES}
    if not all(p.exists() for p in paths.values()):
        out.mkdir(parents=True, exist_ok=True)
        run_python(_BUILD, str(out), timeout=600)
    return paths


@pytest.fixture(scope="session")
def models(artifacts_dir) -> dict[str, Path]:
    return build_test_models(artifacts_dir)


def _bytes(models, name):
    return models[name].read_bytes()


def sine_model_path() -> Path:
    """The float sine model shipped inside the tflite-micro package (not produced by edgekit)."""
    so = tflm_runtime_path()
    assert so, "tflite-micro is a dependency"
    path = Path(so).parent / "sine_float.tflite"
    assert path.exists()
    return path


def _spec_model(ops: list[OpSpec], n_tensors: int = 2, dtype: str = "float32", shape=(1, 4)) -> bytes:
    return build_model(ModelSpec(tensors=[TensorSpec(list(shape), dtype) for _ in range(n_tensors)], ops=ops,
                                 inputs=[0], outputs=[n_tensors - 1]))


# ------------------------------------------------------------------------------------------------
# reading
# ------------------------------------------------------------------------------------------------
@pytest.mark.tf
def test_analysis_reads_ops_versions_io_and_macs_of_int8_model(models):
    a = analyze_tflite(_bytes(models, "int8"))
    counts = {(r["name"]): r for r in a.op_counts()}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "SOFTMAX"} <= set(counts)
    assert counts["FULLY_CONNECTED"]["count"] == 2
    assert all(isinstance(r["version"], int) and r["version"] >= 1 for r in a.op_counts())
    assert a.macs == EXPECTED_MACS
    assert a.quantization == "int8"
    (inp,) = [t.io_dict() for t in a.inputs]
    assert inp["dtype"] == "int8" and inp["shape"][1:] == [8, 8, 1]
    assert isinstance(inp["scale"], float) and inp["scale"] > 0 and isinstance(inp["zero_point"], int)
    assert a.outputs[0].dtype == "int8" and a.outputs[0].shape[-1] == 10
    assert 0 < a.weights_bytes < a.size_bytes
    assert a.min_runtime_version and a.min_runtime_version[0].isdigit()


@pytest.mark.tf
@pytest.mark.parametrize("name,expected", [("float32", "float32"), ("int8", "int8"), ("float16", "float16"),
                                           ("dynamic", "dynamic")])
def test_analysis_detects_quantization_scheme(models, name, expected):
    a = analyze_tflite(_bytes(models, name))
    assert a.quantization == expected
    assert a.macs == EXPECTED_MACS
    if name == "float16":
        assert any(op.name == "DEQUANTIZE" and op.free for op in a.ops)
        assert any(t.dtype == "float16" and t.constant for t in a.main.tensors)
    if name == "dynamic":
        assert any(op.compute_dtype == "hybrid" for op in a.ops)


@pytest.mark.tf
def test_analysis_reports_custom_and_flex_ops_under_their_code(models):
    custom = analyze_tflite(_bytes(models, "custom"))
    assert custom.custom_ops == ["BesselI1e"]
    assert {r["name"] for r in custom.op_counts()} == {"BesselI1e", "ADD"}
    flex = analyze_tflite(_bytes(models, "flex"))
    assert flex.custom_ops == ["FlexErf"] and any(op.flex for op in flex.ops)


def test_analysis_reads_a_model_from_an_installed_package():
    """tflite-micro ships sine_float.tflite: 3 FULLY_CONNECTED layers 1->16->16->1."""
    a = analyze_tflite(sine_model_path().read_bytes())
    assert a.op_counts() == [{"name": "FULLY_CONNECTED", "version": 1, "count": 3}]
    assert a.macs == 16 + 16 * 16 + 16
    assert a.quantization == "float32" and a.inputs[0].dtype == "float32"


@pytest.mark.parametrize("data,match", [
    (b"", "only 0 bytes"),
    (b"\x00" * 7, "only 7 bytes"),
    (bytes(random.Random(1).randrange(256) for _ in range(4096)), "not a TFLite model"),
    (b"\x1c\x00\x00\x00ONNX" + b"\x00" * 64, "file identifier"),
])
def test_analysis_rejects_non_flatbuffers(data, match):
    with pytest.raises(ModelError, match=match):
        analyze_tflite(data, source="bad.tflite")


def test_analysis_rejects_truncated_files_at_every_length():
    data = sine_model_path().read_bytes()
    for n in range(0, len(data) - 1, max(1, len(data) // 97)):
        with pytest.raises(ModelError):
            analyze_tflite(data[:n], source="trunc.tflite")


def test_analysis_rejects_unknown_builtin_op():
    data = _spec_model([OpSpec(code=250, inputs=[0], outputs=[1])])
    with pytest.raises(ModelError, match="builtin op number 250"):
        analyze_tflite(data, source="future.tflite")


def test_analysis_fuzzed_bytes_raise_model_error_or_parse():
    data = sine_model_path().read_bytes()
    rng = random.Random(0)
    parsed = rejected = 0
    for _ in range(400):
        b = bytearray(data)
        for _ in range(rng.randint(1, 12)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        try:
            a = analyze_tflite(bytes(b))
        except ModelError as exc:
            assert "\n" not in str(exc)
            rejected += 1
            continue
        parsed += 1
        fit_target(a, load_target("cortex-m4"))  # whatever parses must also analyse without crashing
    assert rejected > 0 and parsed > 0


def test_analysis_import_does_not_pull_tensorflow():
    code = ("import sys, edgekit.analysis, edgekit.targets; from edgekit.analysis import analyze_tflite; "
            f"analyze_tflite(open({str(sine_model_path())!r}, 'rb').read()); "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras')]; "
            "assert not bad, bad")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-1500:]


# ------------------------------------------------------------------------------------------------
# arena: TFLite Micro vs greedy planner
# ------------------------------------------------------------------------------------------------
@pytest.mark.tf
@pytest.mark.parametrize("name", ["int8", "float32"])
def test_arena_greedy_plan_matches_tflm_planner(models, name):
    data = _bytes(models, name)
    a = analyze_tflite(data)
    attach_arena(a, data)
    assert a.arena_source == SOURCE_TFLM
    d = a.arena_detail
    assert d["tflm_total_bytes"] == d["tflm_planned_bytes"] + d["tflm_persistent_bytes"] == a.arena_bytes
    # edgekit's greedy planner uses TFLM's strategy: same activation memory on these graphs
    assert d["greedy_planned_bytes"] == d["tflm_planned_bytes"]
    estimate = d["greedy_planned_bytes"] + d["estimated_persistent_bytes"]
    assert abs(estimate - a.arena_bytes) <= 0.25 * a.arena_bytes
    assert d["greedy_planned_bytes"] < d["unplanned_bytes"]


def test_arena_greedy_matches_tflm_on_installed_sine_model():
    data = sine_model_path().read_bytes()
    a = analyze_tflite(data)
    attach_arena(a, data)
    assert a.arena_source == SOURCE_TFLM
    assert a.arena_detail["greedy_planned_bytes"] == a.arena_detail["tflm_planned_bytes"]


@pytest.mark.tf
@pytest.mark.parametrize("name,reason", [("float16", "DEQUANTIZE|dequantize"), ("topk", "TOPK_V2"),
                                         ("custom", "CUSTOM")])
def test_arena_falls_back_to_greedy_when_tflm_rejects(models, name, reason):
    data = _bytes(models, name)
    a = analyze_tflite(data)
    attach_arena(a, data)
    assert a.arena_source == SOURCE_GREEDY
    assert a.arena_bytes == greedy_plan(a)["planned_bytes"] + estimate_persistent(a)
    assert __import__("re").search(reason, a.arena_detail["tflm_error"])


def test_arena_survives_tflm_crash():
    """A WHILE without its subgraph options makes TFLM segfault; that stays in the child."""
    data = _spec_model([OpSpec(code=CODES["WHILE"], inputs=[0], outputs=[1])])
    result = measure_tflm_arena(data, timeout=60)
    assert result["ok"] is False and "crashed" in result["reason"] and "SIGSEGV" in result["reason"]
    a = analyze_tflite(data)
    attach_arena(a, data)
    assert a.arena_source == SOURCE_GREEDY and "crashed" in a.arena_detail["tflm_error"]


def test_arena_greedy_reuses_memory_of_dead_tensors():
    # chain of 4 RELUs over [1, 1000] float32: only two buffers are ever live at once
    ops = [OpSpec(code=CODES["RELU"], inputs=[i], outputs=[i + 1]) for i in range(4)]
    a = analyze_tflite(_spec_model(ops, n_tensors=5, shape=(1, 1000)))
    plan = greedy_plan(a)
    assert plan["planned_bytes"] == 2 * 4000
    assert plan["unplanned_bytes"] == 5 * 4000


# ------------------------------------------------------------------------------------------------
# op tables
# ------------------------------------------------------------------------------------------------
def test_optables_litert_table_matches_the_installed_runtime():
    stored = load_table("litert")
    fresh = generate_litert_table()
    assert stored["runtime_version"] == fresh["runtime_version"], "regenerate: python -m edgekit.analysis.optables generate"
    assert stored["builtin"] == fresh["builtin"]
    assert stored["custom"] == fresh["custom"]
    assert stored["builtin"]["CONV_2D"][0] == 1 and "source" in stored


def test_optables_tflm_table_matches_the_installed_package():
    stored = load_table("tflite-micro")
    fresh = generate_tflm_table()
    assert stored["builtin"] == fresh["builtin"] and stored["custom"] == fresh["custom"]
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "SOFTMAX"} <= set(stored["builtin"])
    assert "TOPK_V2" not in stored["builtin"]


def test_optables_gpu_table_names_real_builtins():
    gpu = load_table("gpu")
    assert set(gpu["builtin"]) <= set(CODES) and "gpu_compatibility.cc" in gpu["source"]
    # every GPU op also has a CPU kernel (the fallback), except StableHLO clamp which only the delegate has
    assert set(gpu["builtin"]) - set(load_table("litert")["builtin"]) == {"STABLEHLO_CLAMP"}


@pytest.mark.tf
def test_optables_litert_accepts_every_op_the_converter_wrote(models):
    table = load_table("litert")["builtin"]
    for name in ("float32", "int8", "float16", "dynamic", "topk"):
        for op in analyze_tflite(_bytes(models, name)).ops:
            low, high = table[op.name]
            assert low <= op.version <= high, (name, op.name, op.version)


# ------------------------------------------------------------------------------------------------
# compatibility per target
# ------------------------------------------------------------------------------------------------
def test_compat_op_version_newer_than_runtime_is_unsupported():
    high = load_table("litert")["builtin"]["CONV_2D"][1]
    data = build_model(ModelSpec(tensors=[TensorSpec([1, 4, 4, 1]), TensorSpec([1, 3, 3, 1]), TensorSpec([1, 2, 2, 1])],
                                 ops=[OpSpec(code=CODES["CONV_2D"], version=high + 1, inputs=[0, 1], outputs=[2])],
                                 inputs=[0], outputs=[2]))
    fit = fit_target(analyze_tflite(data), load_target("rpi4"))
    assert fit["compatible"] is False and fit["unsupported_ops"] == ["CONV_2D"]
    assert f"version {high + 1}" in fit["ops"][0]["reason"]


@pytest.mark.tf
def test_compat_profile_op_max_versions_models_an_older_runtime(models):
    a = analyze_tflite(_bytes(models, "dynamic"))
    fc_version = max(op.version for op in a.ops if op.name == "FULLY_CONNECTED")
    data = yaml.safe_load((ROOT / "targets" / "rpi4.yaml").read_text())
    data["name"] = "rpi4-old"
    data["runtime"]["op_max_versions"] = {"FULLY_CONNECTED": fc_version - 1}
    old = target_from_dict(data, source="rpi4-old.yaml")
    assert fit_target(a, load_target("rpi4"))["compatible"] is True
    fit = fit_target(a, old)
    assert fit["compatible"] is False and "FULLY_CONNECTED" in fit["unsupported_ops"]


@pytest.mark.tf
@pytest.mark.parametrize("name,reason", [("float32", "requires int8"), ("dynamic", "hybrid"),
                                         ("float16", "float16 weights")])
def test_compat_mcu_rejects_non_int8_models_with_reason(models, name, reason):
    fit = fit_target(analyze_tflite(_bytes(models, name)), load_target("cortex-m4"))
    assert fit["compatible"] is False and fit["unsupported_ops"]
    assert any(reason in (r["reason"] or "") for r in fit["ops"] if r["status"] == UNSUPPORTED)
    assert fit_target(analyze_tflite(_bytes(models, "int8")), load_target("cortex-m4"))["compatible"] is True


@pytest.mark.tf
def test_compat_gpu_target_places_ops_and_falls_back_to_cpu(models):
    gpu = load_target("android-flagship-gpu")
    fit = fit_target(analyze_tflite(_bytes(models, "float16")), gpu)
    assert fit["compatible"] is True and not fit["cpu_fallback_ops"]
    assert {r["placement"] for r in fit["ops"]} == {"gpu"}
    topk = fit_target(analyze_tflite(_bytes(models, "topk")), gpu)
    assert topk["compatible"] is True and topk["cpu_fallback_ops"] == ["TOPK_V2"]
    assert "GPU delegate" in topk["ops"][0]["reason"] and topk["ops"][0]["status"] == CPU_FALLBACK
    micro = fit_target(analyze_tflite(_bytes(models, "topk")), load_target("cortex-m7"))
    assert "TOPK_V2" in micro["unsupported_ops"]


def test_compat_gpu_rules_reject_softmax_beta_and_keep_plain_softmax():
    from edgekit.analysis import gpu_rules

    a = analyze_tflite(_spec_model([OpSpec(code=CODES["SOFTMAX"], inputs=[0], outputs=[1])]))
    op = a.ops[0]
    assert gpu_rules.check(op, a.main.tensors) is None
    op.options["beta"] = 0.5
    assert "beta" in gpu_rules.check(op, a.main.tensors)


@pytest.mark.tf
def test_compat_custom_and_flex_ops_flagged_per_runtime(models):
    custom = analyze_tflite(_bytes(models, "custom"))
    for name in ("rpi4", "android-mid", "cortex-m4"):
        fit = fit_target(custom, load_target(name))
        assert "BesselI1e" in fit["unsupported_ops"] and fit["compatible"] is False
    flex = analyze_tflite(_bytes(models, "flex"))
    fit = fit_target(flex, load_target("rpi4"))
    assert fit["unsupported_ops"] == ["FlexErf"] and "Flex delegate" in fit["ops"][0]["reason"]
    data = yaml.safe_load((ROOT / "targets" / "rpi4.yaml").read_text())
    data["runtime"]["flex"] = True
    assert fit_target(flex, target_from_dict({**data, "name": "rpi4-flex"}))["compatible"] is True


def test_compat_registered_custom_op_is_supported_on_litert():
    data = _spec_model([OpSpec(code=32, custom_name="TFLite_Detection_PostProcess", inputs=[0], outputs=[1])])
    rows, _ = check_ops(analyze_tflite(data), load_target("rpi4"))
    assert rows[0]["status"] == SUPPORTED


# ------------------------------------------------------------------------------------------------
# latency estimate + fit
# ------------------------------------------------------------------------------------------------
@pytest.mark.tf
def test_estimator_is_labelled_and_scales_with_threads_and_dtype(models):
    rpi4 = load_target("rpi4")
    f32 = analyze_tflite(_bytes(models, "float32"))
    one = estimate_latency(f32, rpi4, threads=1)
    four = estimate_latency(f32, rpi4, threads=4)
    assert one["source"] == four["source"] == "estimated"
    assert four["latency_ms"] < one["latency_ms"] and four["threads"] == 4
    assert estimate_latency(f32, rpi4, threads=64)["threads"] == 4  # clipped to the cores
    assert estimate_latency(f32, load_target("cortex-m4"), threads=8)["threads"] == 1
    i8 = analyze_tflite(_bytes(models, "int8"))
    assert estimate_latency(i8, rpi4)["latency_ms"] < estimate_latency(f32, rpi4)["latency_ms"]
    assert estimate_latency(i8, load_target("cortex-m4"))["latency_ms"] > \
        estimate_latency(i8, load_target("cortex-m7"))["latency_ms"] > estimate_latency(i8, rpi4)["latency_ms"]
    assert fit_target(f32, rpi4)["latency_ms"] == four["latency_ms"]  # default: the profile's threads


@pytest.mark.tf
def test_fit_target_keys_and_memory_limits(models):
    a = analyze_tflite(_bytes(models, "int8"))
    fit = fit_target(a, load_target("cortex-m4"))
    assert {"compatible", "unsupported_ops", "latency_ms", "latency_source", "fits"} <= set(fit)
    assert fit["fits"] == {"flash": True, "ram": True} and fit["latency_source"] == "estimated"
    assert fit["arena_source"] == SOURCE_GREEDY  # no TFLM measurement attached
    data = yaml.safe_load((ROOT / "targets" / "cortex-m4.yaml").read_text())
    data["hardware"]["ram_bytes"] = "8 KiB"
    data["runtime"]["ram_overhead_bytes"] = 0
    data["budgets"]["max_arena_bytes"] = None
    data["budgets"]["max_model_bytes"] = 1000
    tiny = target_from_dict({**data, "name": "tiny-mcu"})
    fit = fit_target(a, tiny)
    assert fit["fits"] == {"flash": False, "ram": True}  # model > max_model_bytes, arena < 8 KiB
    data["hardware"]["ram_bytes"] = 1024
    assert fit_target(a, target_from_dict({**data, "name": "tinier"}))["fits"]["ram"] is False
