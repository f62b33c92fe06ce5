"""Tests of edgekit.data: every loader path, the built-in datasets, and every bad input.

No TensorFlow here: data loading must work without it.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import edgekit.data as data
from edgekit.data import (
    Dataset, dataset_from_arrays, fingerprint, load_dataset, representative_samples, split_train_test,
    validate_for_model,
)
from edgekit.errors import ConfigError, DataError

# Array fingerprints of the built-in datasets; a change means the shipped data (or its loading) changed.
BUILTIN_EXPECTED = {
    "builtin:fashion-mnist": dict(train=9000, test=2000, shape=(28, 28, 1), classes=10,
                                  fingerprint="8cf1a6f58dac0355624fc1a10e19e979c226e50ec817a4b5c02057717eba0e10"),
    "builtin:basic-motions": dict(train=40, test=40, shape=(100, 6), classes=4,
                                  fingerprint="42edf0c3d8893660481d696afa5ed81ebcfc51c7fca60b412f59eeb6727502c7"),
    "builtin:digits": dict(train=1438, test=359, shape=(8, 8, 1), classes=10,
                           fingerprint="7b2160b3326dc7bb417fe505d070938a13113bb3fc32e3ed5a4046b48b149721"),
}


def _npz(tmp_path: Path, name: str = "d.npz", **arrays) -> Path:
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def _split_arrays(n_train: int = 40, n_test: int = 12, shape=(4, 4, 1), classes: int = 3, seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.random((n_train, *shape), dtype=np.float32),
        "y_train": np.arange(n_train) % classes,
        "x_test": rng.random((n_test, *shape), dtype=np.float32),
        "y_test": np.arange(n_test) % classes,
    }


def _error(spec, **kw) -> str:
    with pytest.raises(DataError) as info:
        load_dataset(spec, **kw)
    message = str(info.value)
    assert "\n" not in message
    assert info.value.exit_code == 2
    return message


# ------------------------------------------------------------------------------------------ loader paths


def test_load_dataset_split_npz_converts_types(tmp_path):
    arrays = _split_arrays()
    arrays["x_train"] = (arrays["x_train"] * 255).astype(np.uint8)
    arrays["x_test"] = (arrays["x_test"] * 255).astype(np.uint8)
    arrays["y_train"] = arrays["y_train"].astype(np.uint8)
    path = _npz(tmp_path, **arrays)
    ds = load_dataset(path)
    assert isinstance(ds, Dataset) and ds.spec == str(path)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64 and ds.y_test.dtype == np.int64
    np.testing.assert_allclose(ds.x_train, arrays["x_train"] / 255.0, rtol=1e-6)
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    assert ds.task == "classification" and ds.num_classes == 3 and ds.class_names is None
    assert ds.sample_shape == (4, 4, 1)
    assert not ds.x_train.flags.writeable  # the fingerprint cannot go stale
    assert ds.describe()["n_train"] == 40 and ds.describe()["fingerprint"] == ds.fingerprint


def test_load_dataset_uint8_unscaled_when_asked(tmp_path):
    arrays = _split_arrays()
    arrays["x_train"] = np.full((40, 4, 4, 1), 200, np.uint8)
    path = _npz(tmp_path, **arrays)
    assert load_dataset(path, scale_uint8=False).x_train.max() == 200.0


def test_load_dataset_xy_pair_is_split_stratified_and_deterministic(tmp_path):
    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(4), [50, 30, 15, 5])
    x = rng.random((len(y), 6), dtype=np.float32)
    x[:, 0] = np.arange(len(y))  # remember each sample's original index
    path = _npz(tmp_path, x=x, y=y)
    ds = load_dataset(path)
    assert len(ds.x_train) + len(ds.x_test) == len(y)
    assert np.bincount(ds.y_test).tolist() == [10, 6, 3, 1]  # 20 % of every class
    together = np.sort(np.concatenate([ds.x_train[:, 0], ds.x_test[:, 0]]))
    np.testing.assert_array_equal(together, np.arange(len(y)))  # a partition, nothing lost or duplicated
    np.testing.assert_array_equal(y[ds.x_test[:, 0].astype(int)], ds.y_test)  # labels follow their samples
    again = load_dataset(path)
    assert again.fingerprint == ds.fingerprint
    np.testing.assert_array_equal(again.x_test, ds.x_test)


def test_split_train_test_regression_and_singletons():
    x = np.arange(10, dtype=np.float32).reshape(10, 1)
    x_tr, y_tr, x_te, y_te = split_train_test(x, x[:, 0], stratify=False)
    assert len(x_te) == 2 and len(x_tr) == 8
    # every class a singleton: stratification cannot work, fall back to a plain split
    x_tr, y_tr, x_te, y_te = split_train_test(x, np.arange(10), stratify=True)
    assert len(x_te) == 2 and set(y_tr) | set(y_te) == set(range(10))
    with pytest.raises(DataError, match="at least 2"):
        split_train_test(x[:1], np.zeros(1))


def test_load_dataset_float_labels_mean_regression(tmp_path):
    arrays = _split_arrays()
    arrays["y_train"] = np.linspace(0, 1, 40, dtype=np.float64)
    arrays["y_test"] = np.linspace(0, 1, 12, dtype=np.float64)
    ds = load_dataset(_npz(tmp_path, **arrays))
    assert ds.task == "regression" and ds.num_classes is None and ds.y_train.dtype == np.float32
    validate_for_model(ds, input_shape=(4, 4, 1), output_units=1, source="m.keras")
    with pytest.raises(DataError, match=r"targets per sample expected 3 .*got 1"):
        validate_for_model(ds, input_shape=(4, 4, 1), output_units=3, source="m.keras")


def test_load_dataset_task_override_accepts_whole_float_labels(tmp_path):
    arrays = _split_arrays()
    arrays["y_train"] = arrays["y_train"].astype(np.float32)
    arrays["y_test"] = arrays["y_test"].astype(np.float32)
    path = _npz(tmp_path, **arrays)
    assert load_dataset(path).task == "regression"
    ds = load_dataset(path, task="classification")
    assert ds.task == "classification" and ds.y_train.dtype == np.int64 and ds.num_classes == 3
    with pytest.raises(ConfigError):
        load_dataset(path, task="clustering")


def test_load_dataset_one_hot_labels_become_indices(tmp_path):
    arrays = _split_arrays()
    arrays["y_train"] = np.eye(3, dtype=np.float32)[arrays["y_train"]]
    arrays["y_test"] = np.eye(3, dtype=np.float32)[arrays["y_test"]]
    ds = load_dataset(_npz(tmp_path, **arrays))
    assert ds.task == "classification" and ds.y_train.tolist() == (np.arange(40) % 3).tolist()


def test_load_dataset_class_names_key(tmp_path):
    arrays = _split_arrays()
    ds = load_dataset(_npz(tmp_path, **arrays, class_names=np.array(["a", "b", "c", "d"])))
    assert ds.class_names == ["a", "b", "c", "d"] and ds.num_classes == 4
    message = _error(_npz(tmp_path, "few.npz", **arrays, class_names=np.array(["a", "b"])))
    assert "label expected 0..1 (2 class_names), got 2 at sample 2" in message


def test_dataset_from_arrays_copies_user_arrays():
    arrays = _split_arrays()
    ds = dataset_from_arrays(**arrays, spec="mine")
    before = ds.fingerprint
    arrays["x_train"][0] = 7.0
    assert ds.x_train[0].max() < 1.0 and fingerprint(
        {k: getattr(ds, k) for k in ("x_train", "y_train", "x_test", "y_test")}) == before
    assert arrays["x_train"].flags.writeable  # the caller's array is untouched


def test_fingerprint_sensitive_to_values_names_and_dtype():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    base = fingerprint({"x": a})
    b = a.copy()
    b[1, 2] += 1e-3
    assert fingerprint({"x": a}) == base
    assert fingerprint({"x": b}) != base
    assert fingerprint({"z": a}) != base
    assert fingerprint({"x": a.astype(np.float64)}) != base
    assert fingerprint({"x": a.reshape(3, 2)}) != base
    assert len(base) == 64


def test_representative_samples_deterministic_subset():
    ds = dataset_from_arrays(**_split_arrays(n_train=300))
    first = representative_samples(ds, count=50, seed=0)
    assert first.shape == (50, 4, 4, 1) and first.dtype == np.float32 and first.flags.writeable
    np.testing.assert_array_equal(first, representative_samples(ds, count=50, seed=0))
    assert not np.array_equal(first, representative_samples(ds, count=50, seed=1))
    rows = {r.tobytes() for r in ds.x_train}
    assert all(r.tobytes() in rows for r in first)
    assert len({r.tobytes() for r in first}) == 50  # no repeats
    assert representative_samples(ds, count=10_000).shape[0] == 300
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ConfigError):
            representative_samples(ds, count=bad)


# ------------------------------------------------------------------------------------------ built-ins


@pytest.mark.parametrize("spec", sorted(BUILTIN_EXPECTED))
def test_load_dataset_builtin_shapes_and_fingerprint(spec):
    want = BUILTIN_EXPECTED[spec]
    ds = load_dataset(spec)
    assert ds.spec == spec
    assert ds.x_train.shape == (want["train"], *want["shape"]) and ds.x_test.shape == (want["test"], *want["shape"])
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.task == "classification" and ds.num_classes == want["classes"] == len(ds.class_names)
    assert sorted(set(ds.y_train.tolist())) == list(range(want["classes"]))  # every class present
    assert sorted(set(ds.y_test.tolist())) == list(range(want["classes"]))
    assert np.isfinite(ds.x_train).all()
    assert ds.fingerprint == want["fingerprint"]
    validate_for_model(ds, input_shape=(None,) + want["shape"][1:], output_units=want["classes"], source="m")


def test_load_dataset_builtin_value_ranges_and_names():
    fashion = load_dataset("builtin:fashion-mnist")
    assert fashion.x_train.min() == 0.0 and fashion.x_train.max() == 1.0
    assert fashion.class_names[0] == "T-shirt/top" and fashion.class_names[9] == "Ankle boot"
    assert np.bincount(fashion.y_train).tolist() == [900] * 10
    motions = load_dataset("BUILTIN:Basic_Motions")  # spelling is forgiving
    assert motions.spec == "builtin:basic-motions"
    assert motions.class_names == ["Standing", "Running", "Walking", "Badminton"]
    assert np.bincount(motions.y_test).tolist() == [10] * 4
    assert motions.x_train.min() < -1 and motions.x_train.max() > 1  # raw sensor units, not rescaled


def test_load_dataset_builtin_unknown_name_lists_choices():
    message = _error("builtin:mnist")
    assert "'mnist'" in message and "builtin:fashion-mnist" in message and "builtin:basic-motions" in message


def test_load_dataset_builtin_tampered_file_refused(tmp_path, monkeypatch):
    shutil.copy(data._DATA_DIR / "basic_motions.npz", tmp_path / "basic_motions.npz")
    with open(tmp_path / "basic_motions.npz", "r+b") as fh:
        fh.seek(2000)
        byte = fh.read(1)
        fh.seek(2000)
        fh.write(bytes([byte[0] ^ 0xFF]))
    monkeypatch.setattr(data, "_DATA_DIR", tmp_path)
    message = _error("builtin:basic-motions")
    assert "sha256 expected" in message and "reinstall" in message


def test_build_datasets_reproduces_stored_files(tmp_path):
    """The provenance script regenerates the stored files byte for byte (fashion / motions: where installed)."""
    from edgekit.datasets import build_datasets

    motions = Path(os.environ.get("EDGEKIT_BASIC_MOTIONS_DIR", "/tmp/aeon/aeon/datasets/data/BasicMotions"))
    sources = {
        "fashion_mnist.npz": (build_datasets.build_fashion_mnist, Path("/usr/share/datasets/fashion-mnist"),
                              "train-labels-idx1-ubyte.gz"),
        "basic_motions.npz": (build_datasets.build_basic_motions, motions, "BasicMotions_TRAIN.ts"),
    }
    build_datasets.build_digits(tmp_path / "digits.npz")  # scikit-learn is installed wherever edgekit is
    assert (tmp_path / "digits.npz").read_bytes() == (data._DATA_DIR / "digits.npz").read_bytes()
    for name, (build, src, probe) in sources.items():
        if (src / probe).is_file():  # the originals of these two are system packages / a wheel: checked when present
            build(src, tmp_path / name)
            assert (tmp_path / name).read_bytes() == (data._DATA_DIR / name).read_bytes(), name


def test_import_edgekit_data_does_not_import_tensorflow():
    code = ("import sys, edgekit.data as d; d.load_dataset('builtin:digits'); "
            "d.load_dataset('builtin:basic-motions'); "
            "assert 'tensorflow' not in sys.modules and 'tf_keras' not in sys.modules, 'tensorflow imported'; "
            "assert 'sklearn' not in sys.modules and 'scipy' not in sys.modules, 'scikit-learn imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


# ------------------------------------------------------------------------------------------ bad files


def test_load_dataset_missing_file(tmp_path):
    message = _error(tmp_path / "nope.npz")
    assert "nope.npz" in message and "not found" in message and "builtin:digits" in message


def test_load_dataset_directory(tmp_path):
    assert "got a directory" in _error(tmp_path)


@pytest.mark.parametrize("content, expected", [
    (b"", "got an empty file"),
    (b"x,y\n1,2\n", "got not a zip archive"),
    (os.urandom(4096), "got not a zip archive"),
])
def test_load_dataset_not_an_npz(tmp_path, content, expected):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    message = _error(path)
    assert str(path) in message and "expected an .npz archive" in message and expected in message


def test_load_dataset_npy_instead_of_npz(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((3, 2)))
    assert "got a single .npy array" in _error(path)


def test_load_dataset_truncated_npz(tmp_path):
    good = _npz(tmp_path, **_split_arrays(n_train=400))
    bad = tmp_path / "truncated.npz"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    message = _error(bad)
    assert "truncated.npz" in message and ("not a zip" in message or "corrupt" in message)


def test_load_dataset_corrupt_member_reported(tmp_path):
    path = tmp_path / "c.npz"
    np.savez_compressed(path, **_split_arrays(n_train=400))
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("x_train.npy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 200
    for i in range(start, start + 64):
        raw[i] ^= 0x5A
    path.write_bytes(bytes(raw))
    message = _error(path)
    assert "c.npz" in message and ("corrupt" in message or "cannot be read" in message)


def test_load_dataset_missing_keys_lists_what_exists(tmp_path):
    message = _error(_npz(tmp_path, images=np.zeros((3, 2)), labels=np.zeros(3)))
    assert "missing keys x_train, y_train, x_test, y_test" in message
    assert "got keys [images, labels]" in message and "np.savez(" in message
    partial = _split_arrays()
    del partial["x_test"], partial["y_test"]
    message = _error(_npz(tmp_path, "partial.npz", **partial))
    assert "missing keys x_test, y_test" in message and "partial.npz" in message
    assert "missing keys y;" in _error(_npz(tmp_path, "onlyx.npz", x=np.zeros((3, 2))))


def test_load_dataset_refuses_object_arrays_without_running_code(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    x = np.empty(3, dtype=object)
    x[:] = [Evil(), Evil(), Evil()]
    path = tmp_path / "evil.npz"
    np.savez(path, x=x, y=np.zeros(3, np.int64))
    message = _error(path)
    assert "x expected a numeric array, got an object array" in message and "evil.npz" in message
    assert not marker.exists()


def test_load_dataset_refuses_header_claiming_huge_array(tmp_path):
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w") as zf:
        for key in ("x", "y"):
            with zf.open(f"{key}.npy", "w") as fh:
                np.lib.format.write_array_header_1_0(fh, {"descr": "<f4", "fortran_order": False,
                                                          "shape": (10**12,)})
                fh.write(b"\0" * 16)
    message = _error(path)
    assert "bytes uncompressed" in message and "EDGEKIT_MAX_DATA_BYTES" in message


# ------------------------------------------------------------------------------------------ bad arrays


def _bad(tmp_path, **changes) -> str:
    arrays = _split_arrays()
    arrays.update(changes)
    return _error(_npz(tmp_path, **arrays))


def test_load_dataset_empty_split(tmp_path):
    message = _bad(tmp_path, x_test=np.zeros((0, 4, 4, 1), np.float32), y_test=np.zeros(0, np.int64))
    assert "x_test expected at least 1 sample, got 0" in message
    assert "expected non-empty samples" in _bad(tmp_path, x_train=np.zeros((40, 0), np.float32))
    assert "y_train expected an array of samples, got a scalar" in _bad(tmp_path, y_train=np.int64(3))


def test_load_dataset_length_mismatch(tmp_path):
    message = _bad(tmp_path, y_train=np.zeros(39, np.int64))
    assert "y_train expected 40 labels (one per x_train sample), got 39" in message


def test_load_dataset_one_dimensional_x(tmp_path):
    message = _bad(tmp_path, x_train=np.zeros(40, np.float32))
    assert "x_train expected shape (samples, ...features), got (40,)" in message and "reshape(-1, 1)" in message


def test_load_dataset_train_test_shape_differ(tmp_path):
    message = _bad(tmp_path, x_test=np.zeros((12, 5, 5, 1), np.float32))
    assert "x_test sample shape expected (4, 4, 1) (as x_train), got (5, 5, 1)" in message


@pytest.mark.parametrize("bad, kind", [
    (np.array(["a"] * 40), "strings"),
    (np.ones((40, 4), np.complex64), "complex numbers"),
    (np.array(["2020-01-01"] * 40, dtype="datetime64[D]"), "datetimes"),
])
def test_load_dataset_non_numeric_dtype(tmp_path, bad, kind):
    message = _bad(tmp_path, x_train=bad)
    assert f"x_train dtype expected a real number type (float/int/uint/bool), got {kind}" in message


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_load_dataset_non_finite_reports_sample(tmp_path, value):
    x = _split_arrays()["x_train"]
    x[17, 2, 1, 0] = value
    message = _bad(tmp_path, x_train=x)
    assert f"x_train expected finite values, got {value} at sample 17" in message and "d.npz" in message


def test_load_dataset_non_finite_in_xy_reports_original_index(tmp_path):
    x = np.ones((30, 3), np.float64)
    x[23, 1] = np.nan
    message = _error(_npz(tmp_path, x=x, y=np.arange(30) % 2))
    assert "x expected finite values, got nan at sample 23" in message


def test_load_dataset_float64_beyond_float32_range(tmp_path):
    x = np.ones((40, 4, 4, 1), np.float64)
    x[5, 0, 0, 0] = 1e300
    message = _bad(tmp_path, x_train=x)
    assert "within float32 range" in message and "at sample 5" in message


def test_load_dataset_nan_regression_target(tmp_path):
    y = np.linspace(0, 1, 12)
    y[4] = np.nan
    message = _bad(tmp_path, y_train=np.linspace(0, 1, 40), y_test=y)
    assert "y_test expected finite values, got nan at sample 4" in message


def test_load_dataset_negative_label(tmp_path):
    y = np.arange(40) % 3
    y[9] = -1
    assert "y_train expected class labels >= 0, got -1 at sample 9" in _bad(tmp_path, y_train=y)


def test_load_dataset_fractional_label_for_classification(tmp_path):
    arrays = _split_arrays()
    y = arrays["y_train"].astype(np.float32)
    y[11] = 1.5
    arrays["y_train"] = y
    arrays["y_test"] = arrays["y_test"].astype(np.float32)
    message = _error(_npz(tmp_path, **arrays), task="classification")
    assert "expected whole-number class labels for classification, got 1.5 at sample 11" in message


def test_load_dataset_label_shape(tmp_path):
    message = _bad(tmp_path, y_train=np.zeros((40, 2, 2), np.int64))
    assert "y_train expected class labels of shape (40,) or one-hot (40, classes), got (40, 2, 2)" in message


# ------------------------------------------------------------------------------------------ vs the model


def test_validate_for_model_accepts_matching_data_and_none_dims():
    ds = dataset_from_arrays(**_split_arrays())
    validate_for_model(ds, input_shape=(4, 4, 1), output_units=3, source="m.keras")
    validate_for_model(ds, input_shape=[None, None, 1], output_units=5, source="m.keras")
    validate_for_model(ds, input_shape=(4, 4, 1), output_units=None, source="m.keras")


def test_validate_for_model_shape_mismatch_names_both_and_fix():
    ds = dataset_from_arrays(**_split_arrays(shape=(8, 8)), spec="d.npz")
    with pytest.raises(DataError) as info:
        validate_for_model(ds, input_shape=(8, 8, 1), output_units=3, source="model.keras")
    message = str(info.value)
    assert "data d.npz: x_train sample shape expected (8, 8, 1) (the input of model.keras), got (8, 8)" in message
    assert "x[..., None]" in message
    with pytest.raises(DataError, match=r"expected \(28, 28, 1\).*got \(8, 8\).*use data prepared"):
        validate_for_model(ds, input_shape=(28, 28, 1), output_units=3, source="model.keras")
    with pytest.raises(DataError, match=r"reshape the samples: x = x.reshape\(len\(x\), 64\)"):
        validate_for_model(ds, input_shape=(64,), output_units=3, source="model.keras")


def test_validate_for_model_labels_outside_output_range():
    ds = dataset_from_arrays(**_split_arrays(classes=5), spec="d.npz")
    with pytest.raises(DataError) as info:
        validate_for_model(ds, input_shape=(4, 4, 1), output_units=4, source="model.keras")
    assert "y_train label expected 0..3 (model.keras has 4 output units), got 4 at sample 4" in str(info.value)
    binary = dataset_from_arrays(**_split_arrays(classes=3), spec="b.npz")
    with pytest.raises(DataError, match=r"1 sigmoid output unit \(labels 0 or 1\)\), got 2 at sample 2"):
        validate_for_model(binary, input_shape=(4, 4, 1), output_units=1, source="model.keras")
    validate_for_model(dataset_from_arrays(**_split_arrays(classes=2)), input_shape=(4, 4, 1), output_units=1,
                       source="model.keras")


def test_validate_for_model_rechecks_hand_built_datasets():
    good = dataset_from_arrays(**_split_arrays())
    x = np.array(good.x_test)
    x[3, 0, 0, 0] = np.nan
    nan_ds = Dataset(spec="hand", x_train=good.x_train, y_train=good.y_train, x_test=x, y_test=good.y_test,
                     task="classification", num_classes=3, fingerprint="-")
    with pytest.raises(DataError, match="x_test expected finite values, got nan at sample 3"):
        validate_for_model(nan_ds, input_shape=(4, 4, 1), output_units=3, source="m")
    f64 = Dataset(spec="hand", x_train=good.x_train.astype(np.float64), y_train=good.y_train, x_test=good.x_test,
                  y_test=good.y_test, task="classification", num_classes=3, fingerprint="-")
    with pytest.raises(DataError, match="x_train dtype expected float32, got float64"):
        validate_for_model(f64, input_shape=(4, 4, 1), output_units=3, source="m")
    empty = Dataset(spec="hand", x_train=good.x_train[:0], y_train=good.y_train[:0], x_test=good.x_test,
                    y_test=good.y_test, task="classification", num_classes=3, fingerprint="-")
    with pytest.raises(DataError, match="x_train expected at least 1 sample, got 0"):
        validate_for_model(empty, input_shape=(4, 4, 1), output_units=3, source="m")
    negative = Dataset(spec="hand", x_train=good.x_train, y_train=good.y_train - 1, x_test=good.x_test,
                       y_test=good.y_test, task="classification", num_classes=3, fingerprint="-")
    with pytest.raises(DataError, match="y_train expected class labels >= 0, got -1 at sample 0"):
        validate_for_model(negative, input_shape=(4, 4, 1), output_units=3, source="m")
