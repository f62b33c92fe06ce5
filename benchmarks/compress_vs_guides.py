"""edgekit's default compression vs post-training quantization vs a plain tfmot-guide script.

For each case (a real model + real dataset) this runs, each in a fresh process:

* **(a) edgekit** — ``edgekit compress MODEL --target rpi4 --data DATA`` with the target's default
  recipe (prune 50 % → prune-preserving QAT → full int8, float I/O), then the same again fully
  cached, and once more with ``--prune 0.75``;
* **(b) PTQ** — ``edgekit compress ... --prune 0 --no-qat --quantize int8`` (post-training full
  int8 only);
* **(c) guide** — a plain script written the way the TensorFlow Model Optimization guides show
  (``prune_low_magnitude`` on the whole model with ``PolynomialDecay`` to 50 % over all steps,
  ``UpdatePruningStep``, ``strip_pruning``, then ``quantize_apply`` with the prune-preserving
  scheme, the same number of epochs per stage, the same int8 conversion), including the checks
  the guides make on the way (baseline accuracy, a float TFLite model to compare sizes with, the
  accuracy after each stage): the same facts edgekit's report gives.

Epochs per training stage are the same for (a) and (c): the rpi4 default of 2 on Fashion-MNIST,
12 on the much smaller digits set, so that both cases train about 500 steps per stage.

It reports test accuracy (LiteRT interpreter), raw and gzipped ``.tflite`` size, host latency at
one thread (edgekit's harness, ``measured-host``) and wall time; then, for (a) against (b) and (c),
how many test samples only one of the two gets right, with the exact McNemar p-value (one image
is 0.05 points of the 2,000 Fashion test images and 0.28 points of the 359 digits); then it checks
the issue's targets:
accuracy of (a) within 1.0 point of the float model and never below (b); raw size ≥ 3.6× and
gzipped size ≥ 5.5× smaller than the float32 ``.tflite``; wall time of (a) ≤ 1.15× (c); a fully
cached re-run of (a) ≤ 5 % of its first run.

Not part of the test suite. Run from the repository root (takes 10–20 minutes on 2 CPU cores)::

    .venv/bin/python benchmarks/compress_vs_guides.py [--cases fashion,digits] [--epochs N] [--repeat 2]
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EDGEKIT = str(Path(sys.executable).with_name("edgekit"))

# Epochs per training stage, per case: about 500 optimizer steps per stage in both (Fashion: 8,100 training
# images / 32 = 254 steps per epoch, x 2 = the rpi4 default; digits: 1,294 / 32 = 41 steps per epoch, x 12).
# (a) and (c) always get the same epochs. --epochs overrides both.
CASES = {
    "fashion": {"model": ROOT / "sample_models" / "fashion_mnist_cnn.keras", "data": "builtin:fashion-mnist",
                "title": "Fashion-MNIST CNN (sample model, 98.8k params)", "epochs": 2},
    "digits": {"model": None, "data": "builtin:digits",
               "title": "scikit-learn digits CNN (trained here, deterministic, 94.0k params)", "epochs": 12},
}

# A CNN on the 8x8 digits, trained deterministically in a child process (the second case). Sized like the
# sample model (~95k weights, most in the Dense layer) so that the int8 file's fixed overhead (tensor names,
# per-channel scales, flatbuffer tables: ~9 KB) does not decide the size ratio.
_TRAIN_DIGITS = """
import sys, numpy as np, tf_keras as keras, tensorflow as tf
tf.keras.utils.set_random_seed(0)
tf.config.experimental.enable_op_determinism()
from edgekit.data import load_dataset
ds = load_dataset("builtin:digits")
L = keras.layers
m = keras.Sequential([L.Input(ds.x_train.shape[1:]), L.Conv2D(32, 3, padding="same", activation="relu", name="conv1"),
                      L.Conv2D(64, 3, activation="relu", name="conv2"), L.MaxPooling2D(2, name="pool"),
                      L.Flatten(name="flatten"), L.Dropout(0.3, name="dropout1"),
                      L.Dense(128, activation="relu", name="hidden"), L.Dropout(0.3, name="dropout2"),
                      L.Dense(ds.num_classes, activation="softmax", name="probs")], name="digits_cnn")
m.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy",
          metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
m.fit(ds.x_train, ds.y_train, epochs=30, batch_size=32, verbose=0)
m.save(sys.argv[1])
"""

# (c): the tfmot guides, followed literally (whole-model pruning, PolynomialDecay 0 -> 50 % over all steps,
# UpdatePruningStep, strip_pruning, PQAT with quantize_apply, validation_split=0.1, int8 conversion), with the
# measurements the guides make along the way: baseline accuracy, a float TFLite model for the size comparison,
# the accuracy after pruning and after QAT, and the accuracy of the final TFLite model.
_GUIDE = """
import json, sys, time, numpy as np
t0 = time.perf_counter()
import tensorflow as tf, tf_keras as keras, tensorflow_model_optimization as tfmot
from edgekit.data import load_dataset, representative_samples
model_path, data_spec, epochs, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
ds = load_dataset(data_spec)
model = keras.models.load_model(model_path)
model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(),
              metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
_, baseline_accuracy = model.evaluate(ds.x_test, ds.y_test, verbose=0)
float_tflite = tf.lite.TFLiteConverter.from_keras_model(model).convert()
batch_size, validation_split = 32, 0.1
num_images = ds.x_train.shape[0] * (1 - validation_split)
end_step = np.ceil(num_images / batch_size).astype(np.int32) * epochs
pruning_params = {"pruning_schedule": tfmot.sparsity.keras.PolynomialDecay(
    initial_sparsity=0.0, final_sparsity=0.5, begin_step=0, end_step=end_step)}
pruned = tfmot.sparsity.keras.prune_low_magnitude(model, **pruning_params)
pruned.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(),
               metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
pruned.fit(ds.x_train, ds.y_train, batch_size=batch_size, epochs=epochs, validation_split=validation_split,
           callbacks=[tfmot.sparsity.keras.UpdatePruningStep()], verbose=0)
_, pruned_accuracy = pruned.evaluate(ds.x_test, ds.y_test, verbose=0)
stripped = tfmot.sparsity.keras.strip_pruning(pruned)
annotated = tfmot.quantization.keras.quantize_annotate_model(stripped)
pqat = tfmot.quantization.keras.quantize_apply(
    annotated, tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme())
pqat.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(),
             metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
pqat.fit(ds.x_train, ds.y_train, batch_size=batch_size, epochs=epochs, validation_split=validation_split, verbose=0)
_, pqat_accuracy = pqat.evaluate(ds.x_test, ds.y_test, verbose=0)
converter = tf.lite.TFLiteConverter.from_keras_model(pqat)
converter.optimizations = [tf.lite.Optimize.DEFAULT]
rep = representative_samples(ds, count=200)
converter.representative_dataset = lambda: ([s[None].astype(np.float32)] for s in rep)
converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
tflite = converter.convert()
open(out, "wb").write(tflite)
from edgekit.interp import predict_tflite
acc = float(np.mean(np.argmax(predict_tflite(tflite, ds.x_test), 1) == ds.y_test))
json.dump({"accuracy": acc, "seconds_inside": time.perf_counter() - t0, "baseline_accuracy": baseline_accuracy,
           "float_tflite_bytes": len(float_tflite), "pruned_accuracy": pruned_accuracy,
           "pqat_accuracy": pqat_accuracy}, open(out + ".json", "w"))
"""


def _run(cmd: list[str], *, env: dict[str, str], timeout: float = 3600) -> tuple[subprocess.CompletedProcess, float]:
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env}, timeout=timeout)
    return proc, time.perf_counter() - t


def _edgekit(model: Path, data: str, out: Path, cache: Path, *extra: str) -> dict:
    proc, wall = _run([EDGEKIT, "compress", str(model), "--target", "rpi4", "--data", data, "-o", str(out),
                       "--json", *extra], env={"EDGEKIT_CACHE_DIR": str(cache), "TF_CPP_MIN_LOG_LEVEL": "3"})
    if proc.returncode not in (0, 1):
        raise SystemExit(f"edgekit compress failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    doc = json.loads(proc.stdout)
    return {"wall_s": wall, "accuracy": doc["result"]["accuracy"], "raw": doc["result"]["tflite_bytes"],
            "gzip": doc["result"]["tflite_gzip_bytes"], "path": doc["result"]["path"],
            "float_bytes": doc["baseline"]["tflite_float32_bytes"], "float_accuracy": doc["baseline"]["accuracy"],
            "sparsity": doc["result"].get("sparsity"),
            "cached": all(s.get("cached") for s in doc["stages"])}


def _guide(model: Path, data: str, out: Path, epochs: int) -> dict:
    path = out / "guide.tflite"
    out.mkdir(parents=True, exist_ok=True)
    proc, wall = _run([sys.executable, "-c", _GUIDE, str(model), data, str(epochs), str(path)],
                      env={"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"})
    if proc.returncode != 0:
        raise SystemExit(f"guide script failed:\n{proc.stderr[-3000:]}")
    info = json.loads(Path(str(path) + ".json").read_text())
    data_bytes = path.read_bytes()
    return {"wall_s": wall, "accuracy": info["accuracy"], "raw": len(data_bytes),
            "gzip": len(gzip.compress(data_bytes, 9, mtime=0)), "path": str(path)}


def _latency(path: str) -> float | None:
    from edgekit.api import benchmark

    try:
        doc = benchmark(model=path, threads=1, runs=200, warmup=20, min_time=1.0, max_time=20.0)
    except Exception as exc:  # noqa: BLE001 - a benchmark failure is reported, not fatal
        print(f"  latency of {path} failed: {exc}", file=sys.stderr)
        return None
    doc = doc[0] if isinstance(doc, list) else doc
    return float(doc["latency_ms"]["p50"])


def _paired(data: str, a_path: str, others: dict[str, str]) -> dict[str, dict]:
    """Per-sample comparison of (a) with each other model on the test split: where only one of the two
    is right, and the exact McNemar p-value (how likely a split this uneven is if both were equally
    accurate). The data is loaded and (a) is run once for all comparisons."""
    from scipy.stats import binomtest

    from edgekit.data import load_dataset
    from edgekit.interp import predict_tflite

    ds = load_dataset(data)

    def right(path: str) -> np.ndarray:
        return np.argmax(predict_tflite(Path(path).read_bytes(), ds.x_test), axis=1) == ds.y_test

    a_right, out = right(a_path), {}
    for key, path in others.items():
        other_right = right(path)
        only_a, only_other = int(np.sum(a_right & ~other_right)), int(np.sum(~a_right & other_right))
        p_value = binomtest(only_a, only_a + only_other).pvalue if only_a + only_other else 1.0
        out[key] = {"n": int(len(ds.y_test)), "only_a": only_a, "only_other": only_other, "p_value": float(p_value)}
    return out


def run_case(name: str, *, epochs: int, work: Path, repeat: int = 1) -> dict:
    case = CASES[name]
    cache = work / f"cache-{name}"
    model = case["model"]
    if model is None:
        model = work / f"{name}.keras"
        proc, _ = _run([sys.executable, "-c", _TRAIN_DIGITS, str(model)], env={"TF_USE_LEGACY_KERAS": "1",
                                                                            "TF_CPP_MIN_LOG_LEVEL": "3"})
        if proc.returncode != 0:
            raise SystemExit(f"training the {name} model failed:\n{proc.stderr[-3000:]}")
    print(f"[{name}] (b) post-training int8 ...", file=sys.stderr, flush=True)
    ptq = _edgekit(model, case["data"], work / f"{name}-ptq", work / f"cache-{name}-ptq", "--prune", "0", "--no-qat",
                   "--quantize", "int8", "--epochs", str(epochs))
    guide = ek = None
    for r in range(repeat):  # alternate (c) and (a); keep the fastest wall time of each (shared machines)
        print(f"[{name}] (c) tfmot guide script ({r + 1}/{repeat}) ...", file=sys.stderr, flush=True)
        g = _guide(model, case["data"], work / f"{name}-guide", epochs)
        guide = g if guide is None or g["wall_s"] < guide["wall_s"] else guide
        print(f"[{name}] (a) edgekit rpi4 default recipe ({r + 1}/{repeat}) ...", file=sys.stderr, flush=True)
        shutil.rmtree(cache, ignore_errors=True)
        e = _edgekit(model, case["data"], work / f"{name}-a", cache, "--epochs", str(epochs))
        ek = e if ek is None or e["wall_s"] < ek["wall_s"] else ek
    print(f"[{name}] (a) again, fully cached ...", file=sys.stderr, flush=True)
    ek_cached = _edgekit(model, case["data"], work / f"{name}-a2", cache, "--epochs", str(epochs))
    print(f"[{name}] (a) with --prune 0.75 ...", file=sys.stderr, flush=True)
    ek75 = _edgekit(model, case["data"], work / f"{name}-a75", cache, "--epochs", str(epochs), "--prune", "0.75")
    for row in (ptq, guide, ek, ek75):
        row["latency_ms"] = _latency(row["path"])
    ek.update(_paired(case["data"], ek["path"], {"paired_vs_ptq": ptq["path"], "paired_vs_guide": guide["path"]}))
    return {"name": name, "title": case["title"], "epochs": epochs, "float": {
        "accuracy": ek["float_accuracy"], "raw": ek["float_bytes"]}, "ptq": ptq, "guide": guide, "edgekit": ek,
        "edgekit_cached": ek_cached, "edgekit75": ek75}


def _fmt_kib(n: int) -> str:
    return f"{n / 1024:.1f} KiB"


def print_case(res: dict) -> list[tuple[str, float, str, bool]]:
    fl = res["float"]
    print(f"\n### {res['title']} — {res['epochs']} epoch(s) per training stage\n")
    print("| variant | accuracy | raw .tflite | gzipped | float32/raw | float32/gzip | latency p50 (1 thread) | wall |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| float32 (Keras / .tflite) | {fl['accuracy']:.2%} | {_fmt_kib(fl['raw'])} | – | 1.00× | – | – | – |")
    rows = [("(a) edgekit rpi4 default (prune 50 % + PQAT)", res["edgekit"]),
            ("(a) edgekit, fully cached re-run", res["edgekit_cached"]),
            ("(a) edgekit --prune 0.75", res["edgekit75"]),
            ("(b) post-training int8 only", res["ptq"]),
            ("(c) tfmot guide script (prune 50 % + PQAT)", res["guide"])]
    for label, r in rows:
        lat = r.get("latency_ms")
        print(f"| {label} | {r['accuracy']:.2%} | {_fmt_kib(r['raw'])} | {_fmt_kib(r['gzip'])} | "
              f"{fl['raw'] / r['raw']:.2f}× | {fl['raw'] / r['gzip']:.2f}× | "
              f"{'–' if lat is None else f'{lat:.3f} ms'} | {r['wall_s']:.1f} s |")
    a, b, c, a2, a75 = res["edgekit"], res["ptq"], res["guide"], res["edgekit_cached"], res["edgekit75"]
    checks = [
        ("accuracy (a) ≥ float − 1.0 pt", (a["accuracy"] - fl["accuracy"]) * 100, "pt", a["accuracy"] >= fl["accuracy"] - 0.01),
        ("accuracy (a) ≥ (b)", (a["accuracy"] - b["accuracy"]) * 100, "pt", a["accuracy"] >= b["accuracy"]),
        ("raw: float32 / (a) ≥ 3.6×", fl["raw"] / a["raw"], "×", fl["raw"] / a["raw"] >= 3.6),
        ("gzip at 50 %: float32 / (a) ≥ 5.5×", fl["raw"] / a["gzip"], "×", fl["raw"] / a["gzip"] >= 5.5),
        ("gzip at 75 %: float32 / (a 75 %) (report)", fl["raw"] / a75["gzip"], "×", True),
        ("wall (a) / (c) ≤ 1.15", a["wall_s"] / c["wall_s"], "×", a["wall_s"] / c["wall_s"] <= 1.15),
        ("wall cached (a) / first (a) ≤ 5 %", a2["wall_s"] / a["wall_s"] * 100, "%",
         a2["wall_s"] / a["wall_s"] <= 0.05 and a2["cached"]),
    ]
    print("\n| (a) against | test samples | only (a) right | only the other right | McNemar exact p |")
    print("|---|---:|---:|---:|---:|")
    for label, key in (("(b) post-training int8", "paired_vs_ptq"), ("(c) tfmot guide script", "paired_vs_guide")):
        pr = a[key]
        print(f"| {label} | {pr['n']} | {pr['only_a']} | {pr['only_other']} | {pr['p_value']:.2f} |")
    print("\n| target | value | met |\n|---|---:|:---:|")
    for label, value, unit, ok in checks:
        print(f"| {label} | {value:+.2f} {unit} | {'yes' if ok else 'NO'} |" if unit == "pt" else
              f"| {label} | {value:.2f}{unit} | {'yes' if ok else 'NO'} |")
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="fashion,digits", help="comma-separated: " + ", ".join(CASES))
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs per training stage for every case (default: each case's own, see CASES)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of (a) and (c), alternated; fastest counts")
    parser.add_argument("--work", default=None, help="keep outputs here (default: a temporary directory)")
    parser.add_argument("--json", default=None, help="also write the raw results to this file")
    args = parser.parse_args(argv)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="edgekit-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results, all_ok = [], True
    try:
        for name in [c.strip() for c in args.cases.split(",") if c.strip()]:
            res = run_case(name, epochs=args.epochs or CASES[name]["epochs"], work=work, repeat=args.repeat)
            results.append(res)
            all_ok = all(ok for *_, ok in print_case(res)) and all_ok
    finally:
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1, default=str))
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\nall targets met: {'yes' if all_ok else 'NO'}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
