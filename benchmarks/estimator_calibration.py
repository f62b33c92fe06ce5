"""Print the latency estimator's error on every published calibration point.

Method:
  1. Build the reference graphs with random weights in tf_keras (no download): MobileNet v1 1.0 224
     (float32 and int8), MobileNet v2 1.0 224 (float32), MobileNet v1 0.25 96x96x1 (int8, the TFLM
     person-detection shape), and single-op int8 models matching the ESP-NN README kernel table.
     Conversion runs in a child process (TF 2.21 converter; int8 uses 8 random calibration images).
  2. Analyse each .tflite with edgekit (MACs, bytes, op types) and estimate latency with each
     profile's coefficients.
  3. Compare with the published figures stored in the profiles (``estimator.calibration``), the
     MACs/cycle ranges the issue quotes for Cortex-M4/M7, and the ESP-NN README kernel ticks.

``fitted: yes`` rows are the points the coefficients were fitted to (their error shows only the
rounding of the coefficients); the others are out-of-sample checks. ``--fit`` prints the
``macs_per_cycle`` values that would make each fitted point exact.

Usage: python benchmarks/estimator_calibration.py [--cache DIR] [--fit]
Models are cached (default ~/.cache/edgekit/calibration); the first run takes ~2-3 minutes.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgekit.analysis import analyze_tflite  # noqa: E402
from edgekit.analysis.estimator import estimate_latency, op_seconds  # noqa: E402
from edgekit.targets import load_target  # noqa: E402

MODELS = {
    "mobilenet_v1_1.0_224-float32": "v1 1.0 224 float32",
    "mobilenet_v1_1.0_224-int8": "v1 1.0 224 int8",
    "mobilenet_v2_1.0_224-float32": "v2 1.0 224 float32",
    "mobilenet_v1_0.25_96_gray-int8": "v1 0.25 96x96x1 int8",
}

# ESP-NN README, "Kernelwise performance on ESP32-S3 chip" (ticks at 240 MHz, optimized column)
ESPNN_KERNELS = [
    ("esp_conv_1x1_64", "conv 10x10x64, 64x1x1x64", 461398),
    ("esp_conv_1x1_16", "conv 8x8x16, 16x1x1x16", 43578),
    ("esp_conv_3x3_c3", "conv 10x10x3, 64x3x3x3", 643689),
    ("esp_dw_3x3_16", "depthwise 18x18x16, 3x3", 191931),
    ("esp_dw_5x5_m2", "depthwise 12x12x4 x2, 5x5 pad 1", 366102),
    ("esp_fc_265x3", "fully connected 265 -> 3", 4439),
    ("esp_maxpool", "max pool 16x16x16, 3x3", 76747),
    ("esp_avgpool", "avg pool 16x16x16, 3x3", 160580),
]

# the kernels the esp32-s3 coefficients were read from (int8 rate, depthwise efficiency, lane model)
ESPNN_USED_FOR_FIT = {"esp_conv_1x1_64", "esp_dw_3x3_16", "esp_conv_3x3_c3"}

# Ranges quoted in the issue (int8 MACs per cycle over whole models)
MCU_RANGES = {"cortex-m4": (0.3, 0.5, "CMSIS-NN-class kernels on Cortex-M4"),
              "cortex-m7": (0.5, 0.8, "Cortex-M7")}

_BUILD = r"""
import os, sys, numpy as np
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import tensorflow as tf, tf_keras as keras
out = sys.argv[1]
rng = np.random.default_rng(0)
keras.utils.set_random_seed(0)

def convert(model, path, int8):
    if os.path.exists(path):
        return
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        shape = [1] + list(model.inputs[0].shape[1:])
        def rep():
            for _ in range(8):
                yield [rng.uniform(-1, 1, shape).astype("float32")]
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    data = conv.convert()
    with open(path + ".tmp", "wb") as fh:
        fh.write(data)
    os.replace(path + ".tmp", path)
    print("built", os.path.basename(path), len(data), flush=True)

L = keras.layers
def single(inp, layer):
    x = L.Input(inp)
    return keras.Model(x, layer(x))

v1 = keras.applications.MobileNet(weights=None, input_shape=(224, 224, 3), alpha=1.0)
convert(v1, f"{out}/mobilenet_v1_1.0_224-float32.tflite", False)
convert(v1, f"{out}/mobilenet_v1_1.0_224-int8.tflite", True)
v2 = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3), alpha=1.0)
convert(v2, f"{out}/mobilenet_v2_1.0_224-float32.tflite", False)
pd = keras.applications.MobileNet(weights=None, input_shape=(96, 96, 1), alpha=0.25, classes=2)
convert(pd, f"{out}/mobilenet_v1_0.25_96_gray-int8.tflite", True)
kernels = {
    "esp_conv_1x1_64": single((10, 10, 64), L.Conv2D(64, 1)),
    "esp_conv_1x1_16": single((8, 8, 16), L.Conv2D(16, 1)),
    "esp_conv_3x3_c3": single((10, 10, 3), L.Conv2D(64, 3)),
    "esp_dw_3x3_16": single((18, 18, 16), L.DepthwiseConv2D(3)),
    "esp_dw_5x5_m2": single((12, 12, 4), lambda x: L.DepthwiseConv2D(5, depth_multiplier=2)(L.ZeroPadding2D(1)(x))),
    "esp_fc_265x3": single((265,), L.Dense(3)),
    "esp_maxpool": single((16, 16, 16), L.MaxPooling2D(3, strides=1)),
    "esp_avgpool": single((16, 16, 16), L.AveragePooling2D(3, strides=1)),
}
for name, model in kernels.items():
    convert(model, f"{out}/{name}.tflite", True)
"""


def build(cache: Path) -> None:
    names = [f"{m}.tflite" for m in MODELS] + [f"{k[0]}.tflite" for k in ESPNN_KERNELS]
    if all((cache / n).exists() for n in names):
        return
    cache.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    print(f"building reference graphs in {cache} (child process, ~2-3 min) ...", flush=True)
    subprocess.run([sys.executable, "-c", textwrap.dedent(_BUILD), str(cache)], check=True, env=env)


def _err(est: float, ref: float) -> str:
    return f"{(est - ref) / ref * 100:+.1f}%"


def _fit_scale(analysis, target, threads, want_ms, dtype):
    """macs_per_cycle[dtype] that makes the estimate equal want_ms (bisection on a multiplier)."""
    base = getattr(target.estimator.macs_per_cycle, dtype)
    lo, hi = 0.05, 20.0
    for _ in range(60):
        mid = (lo * hi) ** 0.5
        mpc = target.estimator.macs_per_cycle.model_copy(update={dtype: base * mid})
        est = target.estimator.model_copy(update={"macs_per_cycle": mpc})
        t = target.model_copy(update={"estimator": est})
        ms = estimate_latency(analysis, t, threads=threads)["latency_ms"]
        lo, hi = (mid, hi) if ms > want_ms else (lo, mid)
    return base * (lo * hi) ** 0.5


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_cache = Path(os.environ.get("EDGEKIT_CACHE_DIR", Path.home() / ".cache" / "edgekit")) / "calibration"
    ap.add_argument("--cache", type=Path, default=default_cache)
    ap.add_argument("--fit", action="store_true", help="print macs_per_cycle that zero the fitted points' error")
    args = ap.parse_args()
    build(args.cache)
    analyses = {m: analyze_tflite((args.cache / f"{m}.tflite").read_bytes()) for m in MODELS}

    rows = []
    fits = []
    for name in ("rpi4", "rpi3", "android-mid"):
        target = load_target(name)
        for point in target.estimator.calibration:
            key = f"{point.model}-{point.dtype}"
            a = analyses[key]
            ms = estimate_latency(a, target, threads=point.threads)["latency_ms"]
            rows.append((name, f"MobileNet {MODELS[key]}, {point.threads} thr", f"{point.latency_ms:g} ms",
                         f"{ms:.1f} ms", _err(ms, point.latency_ms), "yes" if point.fitted else "no",
                         point.source))
            if point.fitted:
                fits.append((name, point.dtype, _fit_scale(a, target, point.threads, point.latency_ms, point.dtype)))

    pd = analyses["mobilenet_v1_0.25_96_gray-int8"]
    for name, (lo, hi, label) in MCU_RANGES.items():
        target = load_target(name)
        ms = estimate_latency(pd, target)["latency_ms"]
        eff = pd.macs / (ms / 1000 * target.hardware.clock_mhz * 1e6)
        mid = (lo + hi) / 2
        outside = 0.0 if lo <= eff <= hi else (eff - (lo if eff < lo else hi)) / (lo if eff < lo else hi)
        rows.append((name, f"MobileNet {MODELS['mobilenet_v1_0.25_96_gray-int8']} ({pd.macs / 1e6:.1f} M MACs): "
                           f"{ms:.1f} ms", f"{lo}-{hi} MAC/cyc", f"{eff:.2f} MAC/cyc",
                     f"{(eff - mid) / mid * 100:+.0f}% vs mid, {outside * 100:+.0f}% outside",
                     "no", f"issue: published range, {label}"))

    esp = load_target("esp32-s3")
    clock = esp.hardware.clock_mhz * 1e6
    for key, label, ticks in ESPNN_KERNELS:
        a = analyze_tflite((args.cache / f"{key}.tflite").read_bytes())
        main_ops = [op for op in a.main.ops if op.name not in ("QUANTIZE", "DEQUANTIZE", "PAD", "RESHAPE")]
        est_ticks = sum(op_seconds(op, a.main.tensors, esp.estimator, esp.hardware, 1) for op in main_ops) * clock
        rows.append(("esp32-s3", f"ESP-NN kernel: {label}", f"{ticks} ticks", f"{est_ticks:.0f} ticks",
                     _err(est_ticks, ticks), "yes" if key in ESPNN_USED_FOR_FIT else "no",
                     "ESP-NN README, ESP32-S3 @ 240 MHz"))

    headers = ("target", "point", "published", "estimate", "error", "fitted", "source")
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    print()
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    print(f"\nMobileNet v1 1.0 224: {analyses['mobilenet_v1_1.0_224-float32'].macs / 1e6:.0f} M MACs; "
          f"v2: {analyses['mobilenet_v2_1.0_224-float32'].macs / 1e6:.0f} M MACs")
    if args.fit:
        print("\nmacs_per_cycle that make each fitted point exact:")
        for name, dtype, value in fits:
            print(f"  {name:12s} {dtype:8s} {value:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
