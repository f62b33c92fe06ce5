"""``edgekit validate``: task metrics, parity with a reference model, per-layer quantization error.

The model runs in the real LiteRT interpreter (in a child process, see :mod:`edgekit.child`) over
the test split of the data, with quantized inputs and outputs converted through their scale and
zero point. Three kinds of result:

* **Task metrics** (:func:`classification_metrics`, :func:`regression_metrics`): accuracy, top-k
  accuracy, per-class precision / recall / F1 and the confusion matrix; or MAE / RMSE.
* **Parity** (:func:`parity_metrics`) with a reference model (a Keras model, run by
  :func:`edgekit.keras_backend.load_model` in a child, or a float ``.tflite``): top-1 agreement,
  max abs diff and SQNR per output, and the inputs where the two disagree the most.
* **Per-layer quantization error** (:func:`layer_errors`) for quantized models: every intermediate
  tensor of the quantized model is compared with the matching tensor of a float32 ``.tflite`` of the
  reference (both interpreters keep all tensors, no delegates), matched by tensor name and, where
  names differ (e.g. after QAT), by op order. Layers are ranked by how much SQNR they lose, so a
  failing gate points at a cause.

This module never imports TensorFlow itself; only the ``_*_child`` functions touch LiteRT or TF,
and they run in child processes.
"""
from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .child import run_in_child
from .errors import ConfigError, DataError, EdgekitError, ModelError
from .fsutil import gzip_size, sha256_bytes

SCHEMA_VERSION = 1
MAX_MODEL_BYTES = 2 * 2**30
EXACT_SQNR_DB = 100.0
EMULATE_SAMPLES = 256  # inputs compared under emulation  # SQNR above this is treated as "exact" when ranking layers
_PASSTHROUGH_OPS = {"QUANTIZE", "DEQUANTIZE"}
_KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")

__all__ = [
    "Evaluation", "classification_metrics", "evaluate", "format_validate_text", "layer_errors", "parity_metrics",
    "primary_metric", "read_model", "regression_metrics", "sqnr_db", "validate",
]


# ============================================================================================ metrics


def _r(x: float | None, nd: int = 6) -> float | None:
    """Round for JSON; ``None`` for missing or non-finite values."""
    if x is None or not math.isfinite(float(x)):
        return None
    return round(float(x), nd)


def primary_metric(task: str) -> tuple[str, bool]:
    """The gated metric of a task and whether higher is better: accuracy (↑) or RMSE (↓)."""
    return ("accuracy", True) if task == "classification" else ("rmse", False)


def _predicted_labels(scores: np.ndarray) -> np.ndarray:
    """Class indices from (n, classes) scores, or from a single sigmoid / logit unit (n, 1)."""
    s = scores.reshape(len(scores), -1)
    if s.shape[1] == 1:
        threshold = 0.5 if (s.min() >= 0.0 and s.max() <= 1.0) else 0.0
        return (s[:, 0] > threshold).astype(np.int64)
    return np.argmax(s, axis=1).astype(np.int64)


def classification_metrics(y_true: np.ndarray, scores: np.ndarray, *, num_classes: int | None = None,
                           class_names: Sequence[str] | None = None, top_k: Sequence[int] = (3, 5)) -> dict[str, Any]:
    """Accuracy, top-k accuracy, per-class precision/recall/F1 and the confusion matrix.

    Args:
        y_true: (n,) integer labels.
        scores: (n, classes) model outputs (probabilities or logits), or (n, 1) for a binary
            sigmoid / logit output.
        num_classes: number of classes (default: from the scores / labels).
        class_names: optional names, one per class.
        top_k: k values for top-k accuracy; those ``>= num_classes`` are left out.

    Returns:
        ``accuracy``, ``top{k}_accuracy``, ``macro_precision``, ``macro_recall``, ``macro_f1``,
        ``weighted_f1``, ``per_class`` (list of {class, name, precision, recall, f1, support}),
        ``confusion_matrix`` (rows = true class, columns = predicted), ``samples``.
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y = np.asarray(y_true).astype(np.int64).reshape(-1)
    s = np.asarray(scores, np.float64).reshape(len(y), -1)
    pred = _predicted_labels(s)
    n_cls = int(num_classes or max(s.shape[1] if s.shape[1] > 1 else 2, int(y.max()) + 1 if len(y) else 0))
    labels = list(range(n_cls))
    prec, rec, f1, support = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    out: dict[str, Any] = {"samples": int(len(y)), "accuracy": _r(float(np.mean(pred == y)) if len(y) else float("nan"))}
    if s.shape[1] > 1:
        order = np.argsort(-s, axis=1, kind="stable")
        for k in sorted(set(int(k) for k in top_k)):
            if 1 < k < s.shape[1]:
                out[f"top{k}_accuracy"] = _r(float(np.mean((order[:, :k] == y[:, None]).any(axis=1))))
    present = support > 0
    out["macro_precision"] = _r(float(prec[present].mean()) if present.any() else 0.0)
    out["macro_recall"] = _r(float(rec[present].mean()) if present.any() else 0.0)
    out["macro_f1"] = _r(float(f1[present].mean()) if present.any() else 0.0)
    out["weighted_f1"] = _r(float(np.average(f1, weights=support)) if support.sum() else 0.0)
    names = list(class_names) if class_names and len(class_names) >= n_cls else None
    out["per_class"] = [
        {"class": c, "name": names[c] if names else str(c), "precision": _r(prec[c]), "recall": _r(rec[c]),
         "f1": _r(f1[c]), "support": int(support[c])}
        for c in labels
    ]
    out["confusion_matrix"] = confusion_matrix(y, pred, labels=labels).astype(int).tolist()
    return out


def regression_metrics(y_true: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    """MAE, RMSE, max abs error and R² of predictions against float targets (shapes flattened per sample)."""
    y = np.asarray(y_true, np.float64).reshape(len(y_true), -1)
    p = np.asarray(pred, np.float64).reshape(len(pred), -1)
    if y.shape != p.shape:
        raise DataError(f"regression targets expected shape {p.shape} (the model output), got {y.shape}",
                        hint="give one target value per model output unit")
    err = p - y
    var = float(np.sum((y - y.mean(axis=0)) ** 2))
    return {
        "samples": int(len(y)),
        "mae": _r(float(np.mean(np.abs(err)))),
        "rmse": _r(float(np.sqrt(np.mean(err ** 2)))),
        "max_abs_error": _r(float(np.max(np.abs(err)))),
        "r2": _r(1.0 - float(np.sum(err ** 2)) / var) if var > 0 else None,
    }


def sqnr_db(reference: np.ndarray, test: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio in dB: ``10·log10(Σref² / Σ(ref − test)²)``.

    Returns ``inf`` when the two are identical and ``nan`` when the reference is all zeros but the
    test is not.
    """
    ref = np.asarray(reference, np.float64)
    noise = float(np.sum((ref - np.asarray(test, np.float64)) ** 2))
    signal = float(np.sum(ref ** 2))
    if noise == 0.0:
        return float("inf")
    if signal == 0.0:
        return float("nan")
    return 10.0 * math.log10(signal / noise)


def _pair_outputs(ref: list[np.ndarray], got: list[np.ndarray]) -> list[tuple[int, int]]:
    """Pair reference and model outputs: in order when shapes agree, else by unique shape."""
    if len(ref) == len(got) and all(r.shape == g.shape for r, g in zip(ref, got)):
        return [(i, i) for i in range(len(ref))]
    pairs, used = [], set()
    for i, r in enumerate(ref):
        same = [j for j, g in enumerate(got) if g.shape == r.shape and j not in used]
        if same:
            pairs.append((i, same[0]))
            used.add(same[0])
    return pairs


def parity_metrics(reference: Sequence[np.ndarray], model: Sequence[np.ndarray], *, task: str,
                   y_true: np.ndarray | None = None, output_names: Sequence[str] | None = None,
                   worst: int = 5) -> dict[str, Any]:
    """Agreement between reference outputs and the model's outputs on the same inputs.

    Args:
        reference, model: one (n, ...) float array per output; paired in order, or by shape.
        task: ``"classification"`` (adds top-1 agreement) or ``"regression"``.
        y_true: labels, reported next to the worst inputs.
        output_names: names of the model's outputs for the per-output list.
        worst: how many worst-disagreement inputs to list.

    Returns:
        ``top1_agreement`` (classification), ``max_abs_diff``, ``mean_abs_diff``, ``sqnr_db`` (first
        output; ``null`` when identical), ``per_output`` [{name, sqnr_db, max_abs_diff,
        mean_abs_diff}], ``worst_inputs`` [{index, label, reference, model, max_abs_diff}],
        ``disagreements``, ``samples``.
    """
    ref = [np.asarray(r, np.float32).reshape(len(r), -1) for r in reference]
    got = [np.asarray(g, np.float32).reshape(len(g), -1) for g in model]
    pairs = _pair_outputs(ref, got)
    if not pairs:
        raise ModelError(f"reference outputs {[r.shape for r in ref]} do not match the model outputs "
                         f"{[g.shape for g in got]}", hint="pass the Keras model this .tflite was converted from")
    n = len(ref[pairs[0][0]])
    per_output = []
    for i, j in pairs:
        r, g = ref[i], got[j]
        diff = np.abs(r - g)
        per_output.append({
            "name": output_names[j] if output_names and j < len(output_names) else f"output_{j}",
            "sqnr_db": _r(sqnr_db(r, g), 3), "max_abs_diff": _r(float(diff.max()) if diff.size else 0.0),
            "mean_abs_diff": _r(float(diff.mean()) if diff.size else 0.0),
        })
    r0, g0 = ref[pairs[0][0]], got[pairs[0][1]]
    row_diff = np.abs(r0 - g0).max(axis=1) if r0.size else np.zeros(n)
    out: dict[str, Any] = {"samples": int(n)}
    disagree = np.zeros(n, dtype=bool)
    if task == "classification":
        ref_lab, got_lab = _predicted_labels(r0), _predicted_labels(g0)
        disagree = ref_lab != got_lab
        out["top1_agreement"] = _r(float(np.mean(~disagree)) if n else float("nan"))
        out["disagreements"] = int(disagree.sum())
    out["max_abs_diff"] = max(p["max_abs_diff"] or 0.0 for p in per_output)
    out["mean_abs_diff"] = per_output[0]["mean_abs_diff"]
    out["sqnr_db"] = per_output[0]["sqnr_db"]
    out["per_output"] = per_output
    # worst inputs: disagreements first, then by the largest output difference
    order = np.lexsort((-row_diff, ~disagree))[:max(0, int(worst))]
    worst_rows = []
    for idx in order:
        row: dict[str, Any] = {"index": int(idx), "max_abs_diff": _r(float(row_diff[idx]))}
        if y_true is not None and task == "classification":
            row["label"] = int(np.asarray(y_true).reshape(-1)[idx])
        if task == "classification":
            row["reference"] = int(ref_lab[idx])
            row["model"] = int(got_lab[idx])
        worst_rows.append(row)
    out["worst_inputs"] = worst_rows
    return out


# ============================================================================================ child side
# Everything below that touches LiteRT or TensorFlow runs in a child process (run_in_child).


def _quantization_label(interp: Any) -> str:
    """``int8`` | ``int16x8`` | ``float16`` | ``dynamic`` | ``float32``, from tensor dtypes."""
    details = interp.get_tensor_details()
    try:
        produced = {int(o) for op in interp._get_ops_details() for o in op["outputs"]}  # noqa: SLF001
    except Exception:  # noqa: BLE001 - private API; fall back to "every tensor"
        produced = {int(d["index"]) for d in details}
    quantized_acts = {np.dtype(d["dtype"]).name for d in details
                      if int(d["index"]) in produced and d.get("quantization", (0.0, 0))[0]}
    dtypes = {np.dtype(d["dtype"]).name for d in details}
    if "int16" in quantized_acts:
        return "int16x8"
    if quantized_acts & {"int8", "uint8"}:
        return "int8"
    if "float16" in dtypes:
        return "float16"
    if dtypes & {"int8", "uint8"}:
        return "dynamic"
    return "float32"


def _inspect_child(model_bytes: bytes) -> dict[str, Any]:
    """I/O details + quantization label of a model (child process)."""
    from .interp import io_details, make_interpreter

    io = io_details(model_bytes)
    return {**io, "quantization": _quantization_label(make_interpreter(model_bytes))}


def _predict_child(model_bytes: bytes, x: np.ndarray, threads: int = 1, batch_size: int = 256) -> dict[str, Any]:
    """All outputs of a model over ``x`` as float arrays, in output order (child process)."""
    from .interp import io_details, predict_tflite_all

    names = [d["name"] for d in io_details(model_bytes)["outputs"]]
    return {"outputs": predict_tflite_all(model_bytes, x, threads=threads, batch_size=batch_size), "names": names}


def _reference_child(path: str, x: np.ndarray, *, trust_model: bool, want_float_tflite: bool) -> dict[str, Any]:
    """Reference Keras predictions and, optionally, a float32 ``.tflite`` of it (child process)."""
    from .keras_backend import load_model

    loaded = load_model(path, trust_model=trust_model)
    model = loaded.model
    pred = model.predict(np.asarray(x, np.float32), batch_size=256, verbose=0)
    outputs = [np.asarray(p, np.float32) for p in (pred if isinstance(pred, (list, tuple)) else [pred])]
    float_bytes, note = None, None
    if want_float_tflite:
        try:
            from .stages.convert import convert_keras

            float_bytes = convert_keras(model, mode="float32")
        except EdgekitError as exc:
            note = f"float32 conversion of the reference failed: {exc}"
    info = dict(getattr(loaded, "info", {}) or {})
    return {"outputs": outputs, "names": list(getattr(model, "output_names", []) or []), "float_tflite": float_bytes,
            "note": note, "info": {k: v for k, v in info.items() if isinstance(v, (str, int, float, bool, type(None)))}}


def _debug_interpreter(model_bytes: bytes) -> Any:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    try:
        # no delegates: XNNPACK-delegated nodes do not write their intermediate tensors
        return Interpreter(model_content=bytes(model_bytes), experimental_preserve_all_tensors=True,
                           experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"LiteRT cannot load the model for per-layer analysis: {' '.join(str(exc).split())[:300]}",
                         hint="re-export the .tflite") from exc


def _ops(interp: Any) -> list[dict[str, Any]]:
    ops = []
    for op in interp._get_ops_details():  # noqa: SLF001 - the only way to read the execution plan
        if op.get("op_name") == "DELEGATE":
            continue
        ops.append({"index": int(op["index"]), "op": str(op["op_name"]),
                    "inputs": [int(i) for i in op["inputs"] if int(i) >= 0],
                    "outputs": [int(o) for o in op["outputs"]]})
    return ops


def _match_ops(cand: list[dict[str, Any]], ref: list[dict[str, Any]], cand_t: dict[int, dict], ref_t: dict[int, dict]
               ) -> dict[int, int]:
    """Candidate output tensor index → reference output tensor index (by name, then by op order)."""
    c_ops = [o for o in cand if o["op"] not in _PASSTHROUGH_OPS]
    r_ops = [o for o in ref if o["op"] not in _PASSTHROUGH_OPS]
    by_name = {ref_t[t]["name"]: t for o in r_ops for t in o["outputs"]}
    pairs: dict[int, int] = {}
    used: set[int] = set()
    for o in c_ops:
        for t in o["outputs"]:
            r = by_name.get(cand_t[t]["name"])
            if r is not None and r not in used and list(cand_t[t]["shape"]) == list(ref_t[r]["shape"]):
                pairs[t] = r
                used.add(r)
    matcher = difflib.SequenceMatcher(a=[o["op"] for o in c_ops], b=[o["op"] for o in r_ops], autojunk=False)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            co, ro = c_ops[block.a + k], r_ops[block.b + k]
            for t, r in zip(co["outputs"], ro["outputs"]):
                if t in pairs or r in used or list(cand_t[t]["shape"]) != list(ref_t[r]["shape"]):
                    continue
                pairs[t] = r
                used.add(r)
    return pairs


def _dequant(value: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    params = detail.get("quantization_parameters") or {}
    scales = np.asarray(params.get("scales", []), np.float64)
    zps = np.asarray(params.get("zero_points", []), np.float64)
    if not np.issubdtype(value.dtype, np.integer) or scales.size == 0:
        return value.astype(np.float64)
    if scales.size == 1:
        return (value.astype(np.float64) - zps.reshape(-1)[0]) * scales[0]
    axis = int(params.get("quantized_dimension", 0))
    shape = [1] * value.ndim
    shape[axis] = scales.size
    return (value.astype(np.float64) - zps.reshape(shape)) * scales.reshape(shape)


def _layer_error_child(quant_bytes: bytes, float_bytes: bytes, x: np.ndarray, batch: int = 16) -> dict[str, Any]:
    """Per-layer error of a quantized model against a float model on the same inputs (child process)."""
    from .interp import resize_inputs, quantize_input

    cand, ref = _debug_interpreter(quant_bytes), _debug_interpreter(float_bytes)
    n = len(x)
    batch = max(1, min(batch, n))
    if not (resize_inputs(cand, batch) and resize_inputs(ref, batch)):
        batch = 1
        for it in (cand, ref):
            if not resize_inputs(it, 1):
                it.allocate_tensors()
    c_ops, r_ops = _ops(cand), _ops(ref)
    c_t = {int(d["index"]): d for d in cand.get_tensor_details()}
    r_t = {int(d["index"]): d for d in ref.get_tensor_details()}
    pairs = _match_ops(c_ops, r_ops, c_t, r_t)
    c_in = [int(d["index"]) for d in cand.get_input_details()]
    r_in = [int(d["index"]) for d in ref.get_input_details()]
    graph_inputs = dict(zip(c_in, r_in))
    # tensors whose reference is known: matched op outputs, graph inputs, and QUANTIZE/DEQUANTIZE chains
    ref_of: dict[int, int] = {**graph_inputs, **pairs}
    for o in c_ops:
        if o["op"] in _PASSTHROUGH_OPS and o["inputs"] and o["inputs"][0] in ref_of:
            for t in o["outputs"]:
                ref_of.setdefault(t, ref_of[o["inputs"][0]])
    stats = {t: [0.0, 0.0, 0.0, 0] for t in ref_of}  # Σref², Σerr², max|err|, elements
    done = 0
    for start in range(0, n, batch):
        chunk = np.asarray(x[start:start + batch], np.float32)
        if len(chunk) != batch:
            if not (resize_inputs(cand, len(chunk)) and resize_inputs(ref, len(chunk))):
                break
            batch = len(chunk)
        for it, idxs in ((cand, c_in), (ref, r_in)):
            d = next(dd for dd in it.get_input_details() if int(dd["index"]) == idxs[0])
            it.set_tensor(d["index"], quantize_input(chunk, d))
        cand.invoke()
        ref.invoke()
        for t, r in ref_of.items():
            try:
                cv = _dequant(cand.get_tensor(t), c_t[t])
                rv = ref.get_tensor(r).astype(np.float64)
            except ValueError:  # tensor not readable (e.g. freed); skip it
                continue
            if cv.shape != rv.shape:
                continue
            err = cv - rv
            s = stats[t]
            s[0] += float(np.sum(rv ** 2))
            s[1] += float(np.sum(err ** 2))
            s[2] = max(s[2], float(np.max(np.abs(err))) if err.size else 0.0)
            s[3] += int(err.size)
        done += len(chunk)

    def sq(t: int) -> float | None:
        s = stats.get(t)
        if not s or s[3] == 0:
            return None
        if s[1] == 0.0:
            return float("inf")
        return 10.0 * math.log10(s[0] / s[1]) if s[0] > 0 else float("-inf")

    layers = []
    for o in c_ops:
        if o["op"] in _PASSTHROUGH_OPS:
            continue
        for t in o["outputs"]:
            if t not in pairs or not stats[t][3]:
                continue
            s = stats[t]
            here = sq(t)
            ins = [sq(i) for i in o["inputs"] if i in ref_of and stats[i][3]]
            ins = [v for v in ins if v is not None]
            in_sqnr = min(ins) if ins else float("inf")
            cap = lambda v: min(v, EXACT_SQNR_DB) if v is not None else None  # noqa: E731
            detail = c_t[t]
            scale, zp = detail.get("quantization", (0.0, 0))
            layers.append({
                "index": o["index"], "op": o["op"], "name": detail["name"],
                "shape": [int(v) for v in detail["shape"][1:]], "dtype": np.dtype(detail["dtype"]).name,
                "scale": _r(scale, 9) if scale else None, "zero_point": int(zp) if scale else None,
                "rmse": _r(math.sqrt(s[1] / s[3])), "max_abs_diff": _r(s[2]),
                "sqnr_db": _r(here, 3), "input_sqnr_db": _r(in_sqnr, 3),
                "sqnr_drop_db": _r(max(0.0, cap(in_sqnr) - cap(here)) if here is not None else None, 3),
            })
    unmatched = sum(1 for o in c_ops if o["op"] not in _PASSTHROUGH_OPS for t in o["outputs"] if t not in pairs)
    return {"samples": int(done), "matched": len(layers), "unmatched": int(unmatched), "layers": layers}


# ============================================================================================ parent side


def read_model(path: str | os.PathLike[str], *, expect_sha256: str | None = None) -> tuple[bytes, str]:
    """Read a ``.tflite`` model and check it against any recorded sha256.

    The recorded hash comes from ``expect_sha256``, a ``MODEL.sha256`` file next to the model
    (``sha256sum`` format), or the ``report.json`` that ``edgekit compress`` wrote next to it. A model
    whose bytes changed after export (e.g. flipped weight bytes, which still load and run) is refused.

    Returns:
        ``(bytes, sha256 hex)``.

    Raises:
        ModelError: missing, unreadable, empty or oversized file, or a sha256 mismatch (exit 2).
    """
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"model {p} does not exist or is not a file", hint="pass the path of a .tflite model")
    try:
        size = p.stat().st_size
        if size > MAX_MODEL_BYTES:
            raise ModelError(f"model {p} is {size} bytes, larger than the 2 GiB a .tflite can hold",
                             hint="pass a .tflite flatbuffer")
        data = p.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read model {p}: {exc.strerror or exc}", hint="check the path and permissions") from exc
    if not data:
        raise ModelError(f"model {p} is empty (0 bytes)", hint="re-export the .tflite")
    digest = sha256_bytes(data)
    for source, recorded in _recorded_hashes(p, expect_sha256):
        if recorded.lower() != digest:
            raise ModelError(f"model {p} sha256 {digest[:16]}… does not match {recorded[:16]}… recorded in {source}: "
                             "the file changed after it was exported (corrupt or tampered)",
                             hint="re-export the model, or remove the stale record if the change was intended")
    return data, digest


def _recorded_hashes(p: Path, expect: str | None) -> list[tuple[str, str]]:
    import json
    import re

    found: list[tuple[str, str]] = []
    if expect:
        if not re.fullmatch(r"[0-9a-fA-F]{64}", expect.strip()):
            raise ConfigError(f"--expect-sha256 expected 64 hex digits, got {expect!r}", hint="pass `sha256sum MODEL`'s hash")
        found.append(("--expect-sha256", expect.strip()))
    side = p.with_name(p.name + ".sha256")
    if side.is_file():
        try:
            text = side.read_text(encoding="utf-8", errors="replace")[:4096]
        except OSError:
            text = ""
        m = re.match(r"\s*([0-9a-fA-F]{64})\b", text)
        if m:
            found.append((str(side), m.group(1)))
    report = p.parent / "report.json"
    if report.is_file() and report.stat().st_size < (8 << 20):
        try:
            doc = json.loads(report.read_text(encoding="utf-8"))
            res = doc.get("result") if isinstance(doc, dict) else None
            if isinstance(res, dict) and isinstance(res.get("sha256"), str) and res.get("path"):
                if Path(str(res["path"])).name == p.name and re.fullmatch(r"[0-9a-fA-F]{64}", res["sha256"]):
                    found.append((str(report), res["sha256"]))
        except (OSError, ValueError):
            pass
    return found


@dataclass
class Evaluation:
    """A model evaluated on the test split of a dataset (shared by ``validate`` and ``check``)."""

    model_path: str
    model_bytes: bytes
    sha256: str
    io: dict[str, Any]
    quantization: str
    data_spec: str
    task: str
    num_classes: int | None
    class_names: list[str] | None
    x: np.ndarray
    y: np.ndarray
    outputs: list[np.ndarray]
    output_names: list[str]
    metrics: dict[str, Any]
    fingerprint: str
    threads: int = 1
    notes: list[str] = field(default_factory=list)

    @property
    def samples(self) -> int:
        return int(len(self.y))

    @property
    def size_bytes(self) -> int:
        return len(self.model_bytes)

    def scalar_metrics(self) -> dict[str, float]:
        """The numeric top-level metrics (what a baseline stores)."""
        return {k: float(v) for k, v in self.metrics.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "samples" and v is not None}


def eval_fingerprint(x: np.ndarray, y: np.ndarray) -> str:
    """sha256 over what was evaluated: the test split's samples and labels (dtypes, shapes, bytes)."""
    from .data import fingerprint

    return fingerprint({"x_test": x, "y_test": y})


def evaluate(model: str | os.PathLike[str], data: str, *, threads: int = 1, expect_sha256: str | None = None,
             timeout: float | None = 3600.0) -> Evaluation:
    """Run ``model`` over the test split of ``data`` in a child process and compute task metrics.

    Raises:
        ModelError: unreadable / corrupt model, sha256 mismatch, non-finite outputs (exit 2).
        DataError: data that does not fit the model (exit 2).
        ChildCrash: the interpreter crashed or timed out (exit 3).
    """
    from .data import load_dataset, validate_for_model

    model_bytes, digest = read_model(model, expect_sha256=expect_sha256)
    name = Path(model).name
    info = run_in_child(_inspect_child, model_bytes, what=f"loading {name}", timeout=300)
    ds = load_dataset(data)
    inp, out = info["inputs"][0], info["outputs"][0]
    units = int(out["shape"][-1]) if len(out["shape"]) > 1 else None
    validate_for_model(ds, input_shape=tuple(inp["shape"][1:]),
                       output_units=units if ds.task == "classification" else None, source=name)
    x, y = np.asarray(ds.x_test), np.asarray(ds.y_test)
    res = run_in_child(_predict_child, model_bytes, x, threads, what=f"running {name} on {ds.spec}", timeout=timeout)
    outputs = res["outputs"]
    _check_finite_outputs(name, outputs)
    if ds.task == "classification":
        metrics = classification_metrics(y, outputs[0], num_classes=ds.num_classes if units != 1 else 2,
                                         class_names=ds.class_names)
    else:
        metrics = regression_metrics(y, outputs[0])
    return Evaluation(model_path=str(model), model_bytes=model_bytes, sha256=digest, io=info,
                      quantization=info["quantization"], data_spec=ds.spec, task=ds.task,
                      num_classes=ds.num_classes, class_names=ds.class_names, x=x, y=y, outputs=outputs,
                      output_names=res["names"], metrics=metrics, fingerprint=eval_fingerprint(x, y), threads=threads)


def _check_finite_outputs(name: str, outputs: list[np.ndarray]) -> None:
    for k, o in enumerate(outputs):
        bad = ~np.isfinite(o.reshape(len(o), -1)).all(axis=1)
        if bad.any():
            raise ModelError(f"model {name} output {k} is NaN/inf for {int(bad.sum())} of {len(o)} test samples "
                             f"(first at sample {int(np.flatnonzero(bad)[0])}); metrics would be meaningless",
                             hint="check the conversion (calibration data) and the model's numerics")


def reference_outputs(reference: str, x: np.ndarray, *, trust_model: bool = False, want_float_tflite: bool = False,
                      timeout: float | None = 3600.0) -> dict[str, Any]:
    """Outputs of a reference model on ``x``: a Keras model (child, via keras_backend) or a ``.tflite``.

    Returns:
        {outputs, names, float_tflite (bytes or None), note, kind ("keras"|"tflite")}.
    """
    p = Path(reference)
    if not p.exists():
        raise ModelError(f"reference model {p} does not exist", hint="pass the Keras model the .tflite came from")
    if p.suffix.lower() == ".tflite":
        data, _ = read_model(p)
        res = run_in_child(_predict_child, data, x, 1, what=f"running reference {p.name}", timeout=timeout)
        return {**res, "float_tflite": data, "note": None, "kind": "tflite"}
    try:  # refuse unsafe models before anything is deserialized
        from .keras_backend import scan_model_file

        scan_model_file(str(p), trust_model=trust_model)
    except ImportError:  # pragma: no cover - keras_backend always ships; load_model scans too
        pass
    res = run_in_child(_reference_child, str(p), x, trust_model=trust_model, want_float_tflite=want_float_tflite,
                       what=f"running reference {p.name}", timeout=timeout)
    _check_finite_outputs(f"reference {p.name}", res["outputs"])
    return {**res, "kind": "keras"}


def layer_errors(quant_bytes: bytes, float_bytes: bytes, x: np.ndarray, *, samples: int = 64, top: int = 5,
                 timeout: float | None = 1800.0) -> dict[str, Any]:
    """Per-layer quantization error of ``quant_bytes`` against the float model ``float_bytes``.

    Both models run (no delegates, all tensors preserved) over the first ``samples`` inputs in a
    child process. Each quantized op output is dequantized and compared with the float model's
    matching tensor.

    Returns:
        ``samples``, ``matched``, ``unmatched``, ``layers`` (execution order: op, name, shape, dtype,
        scale, zero_point, rmse, max_abs_diff, sqnr_db, input_sqnr_db, sqnr_drop_db) and ``worst``
        (the ``top`` layers losing the most SQNR: {name, op, sqnr_drop_db, sqnr_db}).
    """
    xs = np.asarray(x[:max(1, int(samples))], np.float32)
    res = run_in_child(_layer_error_child, quant_bytes, float_bytes, xs, what="per-layer quantization analysis",
                       timeout=timeout)
    return rank_layer_errors(res, top=top)


def layer_errors_here(quant_bytes: bytes, float_bytes: bytes, x: np.ndarray, *, samples: int = 64,
                      top: int = 5) -> dict[str, Any]:
    """:func:`layer_errors` in this process: only for code already running in a child process."""
    xs = np.asarray(x[:max(1, int(samples))], np.float32)
    return rank_layer_errors(_layer_error_child(quant_bytes, float_bytes, xs), top=top)


def rank_layer_errors(res: dict[str, Any], *, top: int = 5) -> dict[str, Any]:
    """Add the ``top`` layers losing the most SQNR (``worst``) and the method to a per-layer result."""
    ranked = sorted(res["layers"], key=lambda l: (-(l["sqnr_drop_db"] or 0.0),
                                                  l["sqnr_db"] if l["sqnr_db"] is not None else EXACT_SQNR_DB))
    res["worst"] = [{"name": l["name"], "op": l["op"], "sqnr_drop_db": l["sqnr_drop_db"], "sqnr_db": l["sqnr_db"]}
                    for l in ranked[:top]]
    res["method"] = ("int8/int16 intermediate tensors dequantized and compared with the float32 model's matching "
                     "tensors (matched by name, then op order); no delegates, all tensors preserved")
    return res


def describe_worst_layer(layers: dict[str, Any] | None) -> str | None:
    """One line naming the layer that loses the most SQNR against the reference, for failure messages."""
    if not layers or not layers.get("worst"):
        return None
    w = layers["worst"][0]
    sq = f"{w['sqnr_db']:.1f} dB" if w.get("sqnr_db") is not None else "exact"
    return (f"largest error vs the reference at {w['op']} '{_short(w['name'])}' "
            f"(SQNR {sq}, loses {w['sqnr_drop_db'] or 0:.1f} dB)")


def _short(name: str, limit: int = 60) -> str:
    first = name.split(";")[0]
    return first if len(first) <= limit else "…" + first[-limit:]


def _resolve_target(target: str | None) -> Any:
    if target is None:
        return None
    from .targets import load_target

    return load_target(target)


def validate(*, model: str, data: str, reference: str | None = None, target: str | None = None, emulate: bool = False,
             threads: int | None = None, trust_model: bool = False, layer_samples: int = 64, worst: int = 5,
             expect_sha256: str | None = None) -> dict[str, Any]:
    """Validate a ``.tflite`` model on the test split of ``data`` (``edgekit validate``).

    Args:
        model: path of the ``.tflite`` model.
        data: data spec (``.npz`` path or ``builtin:<name>``); the test split is used.
        reference: a Keras model (``.keras``/``.h5``/SavedModel) or a float ``.tflite`` to compare
            against: adds ``parity`` and, for quantized models, ``layers`` (per-layer error).
        target: a target profile; sets the thread count and, with ``reference``, checks the
            target's ``max_accuracy_drop`` budget.
        emulate: also run the model under QEMU emulation of the target's CPU and compare outputs.
        threads: interpreter threads (default: the target's, else 1).
        trust_model: allow Lambda layers / custom objects in the reference (runs its code).
        layer_samples: inputs used for the per-layer analysis.
        worst: how many worst-disagreement inputs / worst layers to list.
        expect_sha256: refuse the model unless its sha256 equals this.

    Returns:
        The ``validate`` JSON document (``schema_version`` 1): ``model``, ``data``, ``metrics``,
        ``parity`` (or null), ``layers`` (or null), ``emulation`` (or null), ``checks``, ``passed``,
        ``notes``, ``versions``.
    """
    from .versions import tool_versions

    tgt = _resolve_target(target)
    n_threads = int(threads or (getattr(tgt, "threads", None) if tgt is not None else None) or 1)
    ev = evaluate(model, data, threads=n_threads, expect_sha256=expect_sha256)
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "model": {"path": ev.model_path, "sha256": ev.sha256, "size_bytes": ev.size_bytes,
                  "gzip_bytes": gzip_size(ev.model_bytes), "quantization": ev.quantization,
                  "inputs": ev.io["inputs"], "outputs": ev.io["outputs"]},
        "data": {"spec": ev.data_spec, "split": "test", "samples": ev.samples, "task": ev.task,
                 "num_classes": ev.num_classes, "fingerprint": ev.fingerprint},
        "target": getattr(tgt, "name", None), "threads": n_threads,
        "metrics": ev.metrics, "reference_metrics": None, "parity": None, "layers": None, "emulation": None,
        "checks": [], "passed": True, "notes": list(ev.notes),
    }
    if reference:
        add_reference(doc, ev, reference, trust_model=trust_model, layer_samples=layer_samples, worst=worst)
        drop_budget = getattr(getattr(tgt, "budgets", None), "max_accuracy_drop", None)
        if drop_budget is not None and ev.task == "classification" and doc["reference_metrics"]:
            drop = float(doc["reference_metrics"]["accuracy"]) - float(ev.metrics["accuracy"])
            doc["checks"].append({"name": "accuracy_drop", "value": _r(drop), "limit": float(drop_budget),
                                  "passed": drop <= float(drop_budget),
                                  "message": f"accuracy {ev.metrics['accuracy']:.4f} vs reference "
                                             f"{doc['reference_metrics']['accuracy']:.4f} (target {tgt.name})"})
    if emulate:
        doc["emulation"] = run_emulation(ev, tgt)
    doc["passed"] = all(c["passed"] for c in doc["checks"])
    doc["versions"] = tool_versions()
    return doc


def add_reference(doc: dict[str, Any], ev: Evaluation, reference: str, *, trust_model: bool, layer_samples: int,
                  worst: int) -> None:
    """Fill ``reference_metrics``, ``parity`` and (quantized models) ``layers`` of ``doc``."""
    quantized = ev.quantization != "float32"
    ref = reference_outputs(reference, ev.x, trust_model=trust_model, want_float_tflite=quantized)
    if ev.task == "classification":
        r = classification_metrics(ev.y, ref["outputs"][0], num_classes=ev.num_classes)
        doc["reference_metrics"] = {k: r[k] for k in r if k not in ("per_class", "confusion_matrix")}
    else:
        doc["reference_metrics"] = regression_metrics(ev.y, ref["outputs"][0])
    doc["parity"] = parity_metrics(ref["outputs"], ev.outputs, task=ev.task, y_true=ev.y,
                                   output_names=ev.output_names, worst=worst)
    doc["parity"]["reference"] = {"path": str(reference), "kind": ref["kind"]}
    if ref.get("note"):
        doc["notes"].append(ref["note"])
    if quantized and ref.get("float_tflite"):
        try:
            doc["layers"] = layer_errors(ev.model_bytes, ref["float_tflite"], ev.x, samples=layer_samples, top=worst)
        except EdgekitError as exc:
            doc["notes"].append(f"per-layer analysis failed: {exc}")
    elif not quantized:
        doc["notes"].append("per-layer quantization error skipped: the model is float32")


def run_emulation(ev: Evaluation, tgt: Any) -> dict[str, Any]:
    """Outputs under QEMU emulation of the target CPU vs the host (``--emulate``)."""
    if tgt is None:
        raise ConfigError("--emulate needs --target (the CPU to emulate, e.g. --target rpi4)",
                          hint="add --target rpi3|rpi4|rpi5|rpi-zero2w")
    from .emulator import emulated_parity

    x = ev.x[:EMULATE_SAMPLES]  # QEMU is 5-20x slower; parity needs inputs, not the whole set
    return emulated_parity(ev.model_path, x, target=tgt.name, threads=ev.threads)


def format_validate_text(doc: dict[str, Any]) -> str:
    """A short human-readable summary of a ``validate`` document."""
    m = doc["metrics"]
    lines = [f"model  {doc['model']['path']}  ({doc['model']['quantization']}, {doc['model']['size_bytes']:,} B)",
             f"data   {doc['data']['spec']} test split, {doc['data']['samples']} samples"]
    if doc["data"]["task"] == "classification":
        extra = "  ".join(f"{k.replace('_accuracy', '')} {v:.4f}" for k, v in m.items()
                          if k.startswith("top") and v is not None)
        lines.append(f"accuracy {m['accuracy']:.4f}  {extra}  macro-F1 {m['macro_f1']:.4f}".rstrip())
        weakest = sorted(m["per_class"], key=lambda c: c["f1"] if c["f1"] is not None else 0)[:3]
        lines.append("weakest classes (F1): " + ", ".join(f"{c['name']} {c['f1']:.3f}" for c in weakest))
    else:
        lines.append(f"MAE {m['mae']:.6g}  RMSE {m['rmse']:.6g}")
    if doc.get("reference_metrics"):
        key = "accuracy" if doc["data"]["task"] == "classification" else "rmse"
        lines.append(f"reference {key} {doc['reference_metrics'][key]:.4f}")
    p = doc.get("parity")
    if p:
        sq = f"{p['sqnr_db']:.1f} dB" if p.get("sqnr_db") is not None else "exact"
        agree = f"top-1 agreement {p['top1_agreement']:.4f}  " if "top1_agreement" in p else ""
        lines.append(f"parity   {agree}max |diff| {p['max_abs_diff']:.4g}  SQNR {sq}")
    worst_layer = describe_worst_layer(doc.get("layers"))
    if worst_layer:
        lines.append(worst_layer)
    if doc.get("emulation"):
        lines.append(f"emulation {doc['emulation'].get('verdict', doc['emulation'])}")
    for c in doc.get("checks", []):
        lines.append(f"check {c['name']}: {'passed' if c['passed'] else 'FAILED'} ({c['message']})")
    lines.extend(f"note: {n}" for n in doc.get("notes", []))
    return "\n".join(lines)
