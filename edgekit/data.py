"""Datasets for compression, calibration and evaluation: ``.npz`` files and built-in real datasets.

A data *spec* is either a path to an ``.npz`` file or ``builtin:<name>``:

* ``.npz`` with ``x_train, y_train, x_test, y_test``, or with ``x, y`` only, in which case edgekit
  splits it deterministically (80 % train / 20 % test, seed 0, stratified by label for
  classification). An optional ``class_names`` string array names the classes. Files are read with
  ``allow_pickle=False``: object arrays are refused, so loading data never runs code.
* ``builtin:fashion-mnist``: 9,000 train + 2,000 test Fashion-MNIST images (28, 28, 1), 10 classes.
* ``builtin:digits``: scikit-learn's 8x8 digits (8, 8, 1), 10 classes, split as for ``x, y`` (stored as an ``.npz``).
* ``builtin:basic-motions``: UEA BasicMotions smartwatch accelerometer + gyroscope series
  (100, 6), 4 classes, the archive's own train/test split (40 + 40).

Conversions applied on load, always the same way:

* ``x`` becomes ``float32``. ``uint8`` data (images) is scaled to ``[0, 1]`` by dividing by 255
  (pass ``scale_uint8=False`` to keep 0..255); other integer and float types keep their values.
* Integer (or boolean, or one-hot) labels mean a classification task: ``y`` becomes ``int64``
  class indices and ``num_classes`` is ``max(label) + 1`` (or the length of ``class_names``).
  Float ``y`` means regression and stays ``float32``; ``task="classification"`` accepts float
  labels that hold whole numbers.

Every problem is a :class:`~edgekit.errors.DataError` (exit 2) whose one-line message names the
file, the array (key), what was expected, what was found, and the fix. This module never imports
TensorFlow.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import zipfile
import zlib
from pathlib import Path
from typing import Literal, Mapping, Sequence

import numpy as np

from .errors import ConfigError, DataError

__all__ = [
    "BUILTIN_DATASETS", "Dataset", "dataset_from_arrays", "fingerprint", "list_builtin_datasets", "load_dataset",
    "representative_samples", "split_train_test", "validate_for_model",
]

Task = Literal["classification", "regression"]

BUILTIN_PREFIX = "builtin:"
SPLIT_KEYS = ("x_train", "y_train", "x_test", "y_test")
PAIR_KEYS = ("x", "y")
TEST_FRACTION = 0.2
SPLIT_SEED = 0
#: Upper bound on the uncompressed size of an ``.npz`` (from its array headers), against zip bombs.
MAX_DATA_BYTES = int(os.environ.get("EDGEKIT_MAX_DATA_BYTES", str(8 * 2**30)))
_DATA_DIR = Path(__file__).resolve().parent / "datasets"
_FIX_KEYS = ("save it with np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...) "
             "or np.savez(path, x=..., y=...)")


@dataclasses.dataclass(frozen=True)
class BuiltinDataset:
    """A dataset shipped with edgekit (no download at run time)."""

    name: str
    description: str
    source: str
    license: str
    file: str  # stored .npz inside edgekit/datasets/
    file_sha256: str | None = None  # checked on load: a changed or corrupt packaged file is an error


BUILTIN_DATASETS: dict[str, BuiltinDataset] = {
    "fashion-mnist": BuiltinDataset(
        name="fashion-mnist",
        description="Fashion-MNIST subset: 9,000 train + 2,000 test 28x28 grey images (28, 28, 1), 10 classes",
        source="Zalando Research, github.com/zalandoresearch/fashion-mnist (via Debian dataset-fashion-mnist)",
        license="MIT",
        file="fashion_mnist.npz",
        file_sha256="be5684923cd9531c2bef279b259861fadf2ec8290485f2297d68a1b1669b5b37",
    ),
    "digits": BuiltinDataset(
        name="digits",
        description="scikit-learn digits: 1,797 8x8 images (8, 8, 1) scaled to [0, 1], 10 classes, 80/20 split",
        source="UCI Optical Recognition of Handwritten Digits, as shipped in scikit-learn (load_digits)",
        license="CC BY 4.0 (UCI); bundled with scikit-learn (BSD-3-Clause)",
        file="digits.npz",
        file_sha256="f717b0e6d3a4bfa0d31905b5fc0a7ddd23cc71b0f0874c4de0157190125bf295",
    ),
    "basic-motions": BuiltinDataset(
        name="basic-motions",
        description="UEA BasicMotions: smartwatch 3-axis accelerometer + gyroscope, 100 steps x 6 channels, "
                    "4 activities, 40 train + 40 test",
        source="UEA & UCR Time Series Classification archive (timeseriesclassification.com), via the aeon wheel",
        license="free for research use per the UEA/UCR archive; redistributed by aeon (BSD-3-Clause)",
        file="basic_motions.npz",
        file_sha256="ca88784857f1eb3f9fc1ae637c684f921620becebc85f8503fdea94991e091eb",
    ),
}


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded, checked dataset. Arrays are read-only views; use ``np.array(ds.x_train)`` for a copy.

    Attributes:
        spec: where it came from (the path or ``builtin:<name>``).
        x_train, x_test: ``float32`` samples, first axis is the sample index.
        y_train, y_test: ``int64`` class indices (classification) or ``float32`` targets (regression).
        task: ``"classification"`` or ``"regression"``.
        num_classes: number of classes (classification) or ``None``.
        fingerprint: hex sha256 over the names, dtypes, shapes and bytes of the four arrays.
        class_names: class names when known, else ``None``.
    """

    spec: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    task: Task
    num_classes: int | None
    fingerprint: str
    class_names: list[str] | None = None

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample (no batch dimension)."""
        return tuple(int(d) for d in self.x_train.shape[1:])

    def describe(self) -> dict:
        """Plain-data summary for reports and cache keys."""
        return {
            "spec": self.spec, "fingerprint": self.fingerprint, "task": self.task, "num_classes": self.num_classes,
            "n_train": int(len(self.x_train)), "n_test": int(len(self.x_test)), "sample_shape": list(self.sample_shape),
            "class_names": self.class_names,
        }


# --------------------------------------------------------------------------------------------- public API


def list_builtin_datasets() -> list[str]:
    """Specs of the built-in datasets, e.g. ``["builtin:basic-motions", ...]``."""
    return [BUILTIN_PREFIX + name for name in sorted(BUILTIN_DATASETS)]


def load_dataset(spec: str | os.PathLike[str], *, task: Task | None = None, scale_uint8: bool = True) -> Dataset:
    """Load and check a dataset from an ``.npz`` path or a ``builtin:<name>`` spec.

    Args:
        spec: path to an ``.npz`` file, or ``builtin:fashion-mnist|digits|basic-motions``.
        task: force ``"classification"`` or ``"regression"``; by default integer labels mean
            classification and float labels regression.
        scale_uint8: divide ``uint8`` samples by 255 so they lie in ``[0, 1]``.

    Returns:
        The checked :class:`Dataset`.

    Raises:
        DataError: missing or unreadable file, missing keys, empty / mismatched / non-numeric /
            non-finite arrays, invalid labels, unknown built-in name.
    """
    text = os.fspath(spec)
    if text.lower().startswith(BUILTIN_PREFIX):
        return _load_builtin(text, task=task, scale_uint8=scale_uint8)
    return _load_npz(Path(text).expanduser(), task=task, scale_uint8=scale_uint8)


def dataset_from_arrays(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    spec: str = "<arrays>",
    task: Task | None = None,
    class_names: Sequence[str] | None = None,
    scale_uint8: bool = True,
) -> Dataset:
    """Build a checked :class:`Dataset` from in-memory arrays (same rules as :func:`load_dataset`).

    Args:
        x_train, y_train, x_test, y_test: numpy arrays (or array-likes).
        spec: how to name this data in messages and reports.
        task: see :func:`load_dataset`.
        class_names: optional class names; labels must then be smaller than their count.
        scale_uint8: see :func:`load_dataset`.
    """
    where = f"data {spec}"
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    arrays = {k: _as_numeric(where, k, v) for k, v in arrays.items()}
    return _build(spec, arrays, task=task, class_names=class_names, scale_uint8=scale_uint8)


def split_train_test(
    x: np.ndarray, y: np.ndarray, *, test_fraction: float = TEST_FRACTION, seed: int = SPLIT_SEED,
    stratify: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic train/test split; stratified by label when ``stratify`` (classification).

    Each class contributes ``round(n_class * test_fraction)`` samples to the test split (none from a
    class with a single sample). Both splits keep the original sample order.

    Returns:
        ``(x_train, y_train, x_test, y_test)``.
    """
    n = len(x)
    if n < 2:
        raise DataError(f"x has {n} sample(s): expected at least 2 to split into train and test",
                        hint="provide x_train, y_train, x_test, y_test instead of x, y")
    rng = np.random.Generator(np.random.PCG64(seed))
    test_mask = np.zeros(n, dtype=bool)
    if stratify:
        labels = y.reshape(n, -1)[:, 0] if y.ndim > 1 else y
        for cls in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == cls))
            k = int(round(len(members) * test_fraction)) if len(members) > 1 else 0
            test_mask[members[:min(k, len(members) - 1)]] = True
    if not test_mask.any():  # regression, or every class a singleton
        k = min(max(1, int(round(n * test_fraction))), n - 1)
        test_mask[rng.permutation(n)[:k]] = True
    return x[~test_mask], y[~test_mask], x[test_mask], y[test_mask]


def fingerprint(arrays: Mapping[str, np.ndarray]) -> str:
    """Hex sha256 over the names, dtypes, shapes and contents of ``arrays`` (in the mapping's order)."""
    digest = hashlib.sha256()
    for name, array in arrays.items():
        array = np.ascontiguousarray(array)
        digest.update(f"{name}|{array.dtype.str}|{array.shape}\n".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def representative_samples(ds: Dataset, *, count: int = 100, seed: int = 0) -> np.ndarray:
    """A deterministic random subset of ``ds.x_train`` (e.g. for int8 calibration).

    Args:
        ds: the dataset.
        count: how many samples; all of ``x_train`` when it has fewer.
        seed: selection seed; the same seed always gives the same samples.

    Returns:
        A new, writable ``float32`` array of shape ``(min(count, n_train), *sample_shape)``, samples in
        their ``x_train`` order.
    """
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise ConfigError(f"representative sample count: expected a positive integer, got {count!r}",
                          hint="pass count >= 1")
    n = len(ds.x_train)
    if n == 0:
        raise DataError(f"data {ds.spec}: x_train expected at least 1 sample, got 0",
                        hint="use a dataset with training samples for calibration")
    k = min(int(count), n)
    rng = np.random.Generator(np.random.PCG64(seed))
    idx = np.sort(rng.choice(n, size=k, replace=False))
    return np.array(ds.x_train[idx], dtype=np.float32, copy=True)


def validate_for_model(
    ds: Dataset,
    *,
    input_shape: Sequence[int | None],
    output_units: int | None,
    source: str,
) -> None:
    """Check that ``ds`` can be fed to a model and scored against its outputs.

    Re-checks what :func:`load_dataset` guarantees (so hand-built datasets are covered too) and
    checks the data against the model: sample shape vs the model input (``None`` matches any size),
    labels vs the number of output units.

    Args:
        ds: the dataset.
        input_shape: the model's input shape without the batch dimension, ``None`` for free dims.
        output_units: size of the model's (last) output axis, or ``None`` to skip the label check.
            For classification, 1 unit means a sigmoid binary classifier (labels 0 and 1).
        source: names the model in messages, e.g. ``"model.keras"``.

    Raises:
        DataError: "expected … got …" for dtype, emptiness, NaN/inf (with the sample index), shape,
            or label range.
    """
    where = f"data {ds.spec}"
    for key in SPLIT_KEYS:
        array = getattr(ds, key)
        if not isinstance(array, np.ndarray):
            raise DataError(f"{where}: {key} expected a numpy array, got {type(array).__name__}",
                            hint="build datasets with edgekit.data.load_dataset or dataset_from_arrays")
        _check_not_empty(where, key, array)
    for key in ("x_train", "x_test"):
        array = getattr(ds, key)
        if array.dtype != np.float32:
            raise DataError(f"{where}: {key} dtype expected float32, got {array.dtype}",
                            hint="load data with edgekit.data.load_dataset, which converts samples to float32")
        _check_finite(where, key, array)
    if len(ds.x_train) != len(ds.y_train) or len(ds.x_test) != len(ds.y_test):
        raise DataError(f"{where}: x and y expected the same number of samples, got "
                        f"train {len(ds.x_train)} vs {len(ds.y_train)}, test {len(ds.x_test)} vs {len(ds.y_test)}",
                        hint="give every sample exactly one label")

    expected = tuple(None if d is None or (isinstance(d, (int, np.integer)) and d < 0) else int(d)
                     for d in input_shape)
    for key in ("x_train", "x_test"):
        got = tuple(int(d) for d in getattr(ds, key).shape[1:])
        if len(got) != len(expected) or any(e is not None and e != g for e, g in zip(expected, got)):
            raise DataError(f"{where}: {key} sample shape expected {_fmt_shape(expected)} (the input of {source}), "
                            f"got {_fmt_shape(got)}", hint=_shape_fix(expected, got))

    if ds.task == "classification":
        for key in ("y_train", "y_test"):
            labels = getattr(ds, key)
            if labels.dtype.kind not in "iu" or labels.ndim != 1:
                raise DataError(f"{where}: {key} expected int class labels of shape (n,), got "
                                f"{labels.dtype} {_fmt_shape(labels.shape)}",
                                hint="load data with edgekit.data.load_dataset, which converts labels")
            _check_labels_nonnegative(where, key, labels)
            if output_units is None:
                continue
            limit = 2 if output_units == 1 else int(output_units)
            bad = np.flatnonzero(labels >= limit)
            if bad.size:
                i = int(bad[0])
                units = "1 sigmoid output unit (labels 0 or 1)" if output_units == 1 else f"{output_units} output units"
                raise DataError(f"{where}: {key} label expected 0..{limit - 1} ({source} has {units}), "
                                f"got {int(labels[i])} at sample {i}",
                                hint="use labels that match the model's classes, or a model with enough outputs")
    else:
        for key in ("y_train", "y_test"):
            targets = getattr(ds, key)
            if targets.dtype.kind != "f":
                raise DataError(f"{where}: {key} expected float regression targets, got {targets.dtype}",
                                hint="load data with edgekit.data.load_dataset, which converts targets")
            _check_finite(where, key, targets)
            if output_units is not None:
                width = int(np.prod(targets.shape[1:], dtype=np.int64)) if targets.ndim > 1 else 1
                if width != int(output_units):
                    raise DataError(f"{where}: {key} targets per sample expected {output_units} "
                                    f"(outputs of {source}), got {width} (shape {_fmt_shape(targets.shape)})",
                                    hint="give one target per model output")


# --------------------------------------------------------------------------------------------- loading


def _load_builtin(spec: str, *, task: Task | None, scale_uint8: bool) -> Dataset:
    name = spec[len(BUILTIN_PREFIX):].strip().lower().replace("_", "-")
    entry = BUILTIN_DATASETS.get(name)
    if entry is None:
        raise DataError(f"data {spec}: unknown built-in dataset {name!r}; expected one of "
                        f"{', '.join(list_builtin_datasets())}", hint="or pass the path of an .npz file")
    canonical = BUILTIN_PREFIX + entry.name
    path = _DATA_DIR / entry.file
    if not path.is_file():
        raise DataError(f"data {canonical}: packaged file {path} is missing",
                        hint="reinstall edgekit (pip install --force-reinstall edgekit)")
    if entry.file_sha256:
        got = hashlib.sha256(path.read_bytes()).hexdigest()
        if got != entry.file_sha256:
            raise DataError(f"data {canonical}: packaged file {path} sha256 expected {entry.file_sha256[:16]}…, "
                            f"got {got[:16]}…", hint="the file is corrupt or modified; reinstall edgekit")
    ds = _load_npz(path, task=task, scale_uint8=scale_uint8)
    return dataclasses.replace(ds, spec=canonical)


def _load_npz(path: Path, *, task: Task | None, scale_uint8: bool) -> Dataset:
    where = f"data file {path}"
    fix_spec = (f"pass an existing .npz file or one of {', '.join(list_builtin_datasets())}")
    if not path.exists():
        raise DataError(f"{where}: not found", hint=fix_spec)
    if path.is_dir():
        raise DataError(f"{where}: expected an .npz file, got a directory", hint=fix_spec)
    try:
        with path.open("rb") as fh:
            head = fh.read(6)
        is_zip = zipfile.is_zipfile(path)
    except OSError as exc:
        raise DataError(f"{where}: cannot be read ({exc.strerror or exc})",
                        hint="check the path and its permissions") from exc
    if not is_zip:
        got = "a single .npy array" if head == b"\x93NUMPY" else ("an empty file" if not head else "not a zip archive")
        raise DataError(f"{where}: expected an .npz archive (numpy.savez), got {got}", hint=_FIX_KEYS)

    headers = _scan_npz_headers(where, path)
    keys = sorted(headers)
    if all(k in headers for k in SPLIT_KEYS):
        wanted: tuple[str, ...] = SPLIT_KEYS
    elif all(k in headers for k in PAIR_KEYS):
        wanted = PAIR_KEYS
    else:
        missing = [k for k in SPLIT_KEYS if k not in headers]
        if any(k in headers for k in PAIR_KEYS) and not any(k in headers for k in SPLIT_KEYS):
            missing = [k for k in PAIR_KEYS if k not in headers]
        raise DataError(f"{where}: missing keys {', '.join(missing)}; expected x_train, y_train, x_test, y_test "
                        f"or x, y, got keys [{', '.join(keys) or 'none'}]", hint=_FIX_KEYS)

    arrays: dict[str, np.ndarray] = {}
    try:
        with np.load(path, allow_pickle=False) as archive:
            for key in wanted:
                arrays[key] = _as_numeric(where, key, _read_member(where, archive, key))
            class_names = _read_class_names(where, archive) if "class_names" in headers else None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DataError(f"{where}: cannot be read as .npz ({type(exc).__name__}: {exc})",
                        hint="the file is truncated or corrupt; write it again with numpy.savez") from exc

    if wanted == PAIR_KEYS:
        _check_pair(where, "x", "y", arrays["x"], arrays["y"])
        x = _to_float32(where, "x", arrays["x"], scale_uint8=scale_uint8)
        y = arrays["y"]
        stratify = _detect_task(y, task) == "classification"
        y = _labels(where, "y", y, task=task) if stratify else _targets(where, "y", y)
        x_train, y_train, x_test, y_test = split_train_test(x, y, stratify=stratify)
        arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
        scale_uint8 = False  # already converted
    return _build(str(path), arrays, task=task, class_names=class_names, scale_uint8=scale_uint8, where=where)


def _scan_npz_headers(where: str, path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Read every member's ``.npy`` header (shape, dtype) without loading data; refuse object arrays and bombs."""
    headers: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    total = 0
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                key = info.filename[:-4]
                with zf.open(info) as fh:
                    version = np.lib.format.read_magic(fh)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
                    elif version == (2, 0):
                        shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
                    else:
                        raise DataError(f"{where}: {key} uses .npy format {version[0]}.{version[1]}; expected 1.0 "
                                        "or 2.0 (plain numeric arrays)", hint=_FIX_KEYS)
                if dtype.hasobject:
                    raise DataError(f"{where}: {key} expected a numeric array, got an object array (pickled Python "
                                    "objects, which edgekit never loads)",
                                    hint="convert it before saving, e.g. np.asarray(x, dtype=np.float32)")
                total += int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
                headers[key] = (tuple(shape), dtype)
    except DataError:
        raise
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise DataError(f"{where}: cannot be read as .npz ({type(exc).__name__}: {exc})",
                        hint="the file is truncated or corrupt; write it again with numpy.savez") from exc
    if total > MAX_DATA_BYTES:
        raise DataError(f"{where}: arrays expected at most {MAX_DATA_BYTES} bytes uncompressed, got {total}",
                        hint="use a smaller dataset, or raise EDGEKIT_MAX_DATA_BYTES")
    return headers


def _read_member(where: str, archive, key: str) -> np.ndarray:
    try:
        return archive[key]
    except ValueError as exc:  # object arrays, malformed headers
        raise DataError(f"{where}: {key} cannot be loaded without pickle ({exc})",
                        hint="save plain numeric arrays, e.g. np.asarray(x, dtype=np.float32)") from exc
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
        raise DataError(f"{where}: {key} cannot be read ({type(exc).__name__}: {exc})",
                        hint="the file is truncated or corrupt; write it again with numpy.savez") from exc


def _read_class_names(where: str, archive) -> list[str]:
    names = _read_member(where, archive, "class_names")
    if names.ndim != 1 or names.dtype.kind not in "US" or names.size == 0:
        raise DataError(f"{where}: class_names expected a non-empty 1-D string array, got {names.dtype} "
                        f"{_fmt_shape(names.shape)}", hint="save np.array(['cat', 'dog', ...]) as class_names")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names.tolist()]


# --------------------------------------------------------------------------------------------- checks


def _build(spec: str, arrays: dict[str, np.ndarray], *, task: Task | None, class_names: Sequence[str] | None,
           scale_uint8: bool, where: str | None = None) -> Dataset:
    where = where or f"data {spec}"
    if task not in (None, "classification", "regression"):
        raise ConfigError(f"task: expected 'classification' or 'regression', got {task!r}", hint="omit it to detect")
    for split in ("train", "test"):
        _check_pair(where, f"x_{split}", f"y_{split}", arrays[f"x_{split}"], arrays[f"y_{split}"])
    x_train = _to_float32(where, "x_train", arrays["x_train"], scale_uint8=scale_uint8)
    x_test = _to_float32(where, "x_test", arrays["x_test"], scale_uint8=scale_uint8)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(f"{where}: x_test sample shape expected {_fmt_shape(x_train.shape[1:])} (as x_train), "
                        f"got {_fmt_shape(x_test.shape[1:])}", hint="train and test samples must have one shape")

    detected = _detect_task(arrays["y_train"], task)
    if detected == "classification":
        y_train = _labels(where, "y_train", arrays["y_train"], task=task)
        y_test = _labels(where, "y_test", arrays["y_test"], task=task)
        num_classes = int(max(y_train.max(), y_test.max())) + 1
        names = list(class_names) if class_names is not None else None
        if names is not None:
            if num_classes > len(names):
                key, labels = ("y_train", y_train) if y_train.max() >= len(names) else ("y_test", y_test)
                i = int(np.flatnonzero(labels >= len(names))[0])
                raise DataError(f"{where}: {key} label expected 0..{len(names) - 1} ({len(names)} class_names), "
                                f"got {int(labels[i])} at sample {i}", hint="add the missing class names")
            num_classes = len(names)
    else:
        y_train = _targets(where, "y_train", arrays["y_train"])
        y_test = _targets(where, "y_test", arrays["y_test"])
        if y_train.shape[1:] != y_test.shape[1:]:
            raise DataError(f"{where}: y_test target shape expected {_fmt_shape(y_train.shape[1:])} (as y_train), "
                            f"got {_fmt_shape(y_test.shape[1:])}", hint="train and test targets must have one shape")
        num_classes, names = None, None

    final = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    final = {k: _readonly(v) for k, v in final.items()}
    return Dataset(spec=spec, task=detected, num_classes=num_classes, fingerprint=fingerprint(final),
                   class_names=names, **final)


def _as_numeric(where: str, key: str, value) -> np.ndarray:
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{where}: {key} expected a numeric array, got {type(value).__name__} ({exc})",
                        hint="pass numpy arrays with one shape per sample") from exc
    if array.dtype.kind not in "biuf":
        kind = {"O": "object", "U": "strings", "S": "bytes", "c": "complex numbers", "V": "structured records",
                "M": "datetimes", "m": "timedeltas"}.get(array.dtype.kind, str(array.dtype))
        raise DataError(f"{where}: {key} dtype expected a real number type (float/int/uint/bool), got {kind} "
                        f"({array.dtype})", hint="convert it, e.g. np.asarray(x, dtype=np.float32)")
    return array


def _check_not_empty(where: str, key: str, array: np.ndarray) -> None:
    if array.ndim == 0:
        raise DataError(f"{where}: {key} expected an array of samples, got a scalar",
                        hint="the first axis must index samples")
    if len(array) == 0:
        raise DataError(f"{where}: {key} expected at least 1 sample, got 0 (shape {_fmt_shape(array.shape)})",
                        hint="use a dataset with samples in every split")
    if array.size == 0:
        raise DataError(f"{where}: {key} expected non-empty samples, got shape {_fmt_shape(array.shape)}",
                        hint="every sample needs at least one value")


def _check_pair(where: str, xkey: str, ykey: str, x: np.ndarray, y: np.ndarray) -> None:
    _check_not_empty(where, xkey, x)
    _check_not_empty(where, ykey, y)
    if x.ndim < 2:
        raise DataError(f"{where}: {xkey} expected shape (samples, ...features), got {_fmt_shape(x.shape)}",
                        hint=f"add a feature axis: {xkey}.reshape(-1, 1)")
    if len(x) != len(y):
        raise DataError(f"{where}: {ykey} expected {len(x)} labels (one per {xkey} sample), got {len(y)}",
                        hint=f"make {xkey} and {ykey} the same length")


def _check_finite(where: str, key: str, array: np.ndarray) -> None:
    if array.dtype.kind != "f":
        return
    finite = np.isfinite(array)
    if finite.all():
        return
    i = int(np.flatnonzero(~finite.reshape(len(array), -1).all(axis=1))[0])
    bad = array[i][~finite[i]].ravel()[0] if array.ndim > 1 else array[i]
    raise DataError(f"{where}: {key} expected finite values, got {bad} at sample {i}",
                    hint="remove or impute NaN/inf samples before using the data")


def _to_float32(where: str, key: str, x: np.ndarray, *, scale_uint8: bool) -> np.ndarray:
    _check_finite(where, key, x)
    if x.dtype == np.uint8 and scale_uint8:
        out = x.astype(np.float32) / np.float32(255.0)
    else:
        with np.errstate(over="ignore"):
            out = x.astype(np.float32, copy=True)
        if x.dtype.kind == "f" and x.dtype.itemsize > 4:
            too_big = ~np.isfinite(out)
            if too_big.any():
                i = int(np.flatnonzero(too_big.reshape(len(out), -1).any(axis=1))[0])
                raise DataError(f"{where}: {key} expected values within float32 range (±3.4e38), got "
                                f"{x[i].ravel()[too_big[i].ravel()][0]} at sample {i}",
                                hint="rescale the data before saving")
    return out


def _detect_task(y: np.ndarray, task: Task | None) -> Task:
    if task is not None:
        return task
    if y.dtype.kind in "biu" or _is_one_hot(y):
        return "classification"
    return "regression"


def _is_one_hot(y: np.ndarray) -> bool:
    if y.ndim != 2 or y.shape[1] < 2 or y.dtype.kind not in "biuf":
        return False
    return bool(np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all())


def _labels(where: str, key: str, y: np.ndarray, *, task: Task | None) -> np.ndarray:
    """Class indices as int64 (n,), from int/bool labels, whole-number floats or one-hot rows."""
    if _is_one_hot(y):
        return np.argmax(y, axis=1).astype(np.int64)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{where}: {key} expected class labels of shape ({len(y)},) or one-hot ({len(y)}, classes), "
                        f"got {_fmt_shape(y.shape)}", hint="pass one integer class index per sample")
    if y.dtype.kind == "f":
        _check_finite(where, key, y)
        fractional = np.flatnonzero(y != np.round(y))
        if fractional.size:
            i = int(fractional[0])
            raise DataError(f"{where}: {key} expected whole-number class labels for classification, got {y[i]} at "
                            f"sample {i}", hint="store class indices as integers, or use task='regression'")
    labels = y.astype(np.int64)
    _check_labels_nonnegative(where, key, labels)
    return labels


def _check_labels_nonnegative(where: str, key: str, labels: np.ndarray) -> None:
    negative = np.flatnonzero(labels < 0)
    if negative.size:
        i = int(negative[0])
        raise DataError(f"{where}: {key} expected class labels >= 0, got {int(labels[i])} at sample {i}",
                        hint="map classes to indices 0..num_classes-1")


def _targets(where: str, key: str, y: np.ndarray) -> np.ndarray:
    _check_finite(where, key, y)
    out = y.astype(np.float32, copy=True)
    _check_finite(where, key, out)
    return out


def _readonly(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.setflags(write=False)
    return view


def _fmt_shape(shape: Sequence[int | None]) -> str:
    dims = ["None" if d is None else str(int(d)) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def _shape_fix(expected: tuple[int | None, ...], got: tuple[int, ...]) -> str:
    if len(expected) == len(got) + 1 and expected[-1] == 1 and all(e is None or e == g for e, g in zip(expected, got)):
        return "add a channel axis: x = x[..., None]"
    if len(got) == len(expected) + 1 and got[-1] == 1 and all(e is None or e == g for e, g in zip(expected, got)):
        return "drop the trailing axis: x = x[..., 0]"
    if None not in expected and int(np.prod(expected)) == int(np.prod(got)):
        return f"reshape the samples: x = x.reshape(len(x), {', '.join(str(e) for e in expected)})"
    return "use data prepared for this model's input"
