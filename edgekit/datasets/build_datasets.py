"""Regenerate the datasets stored in ``edgekit/datasets/`` from their original distributions.

This is a one-off provenance script, not part of edgekit's run time. It needs numpy, and
scikit-learn for the digits.

Sources (see README.md in this folder for licences):

* Fashion-MNIST: the IDX files of Debian's ``dataset-fashion-mnist`` package
  (``apt-get install -y dataset-fashion-mnist`` puts them in ``/usr/share/datasets/fashion-mnist``).
* digits: scikit-learn's ``load_digits()`` (the copy of the UCI data inside the scikit-learn wheel).
* BasicMotions: the UEA archive ``.ts`` files shipped inside the ``aeon`` wheel::

      pip download aeon==1.6.0 --no-deps -d /tmp/aeon
      cd /tmp/aeon && unzip -q aeon-1.6.0-py3-none-any.whl 'aeon/datasets/data/BasicMotions/*'

Usage::

    python -m edgekit.datasets.build_datasets \\
        --fashion-mnist-dir /usr/share/datasets/fashion-mnist \\
        --basic-motions-dir /tmp/aeon/aeon/datasets/data/BasicMotions

The written files are byte-for-byte reproducible (fixed zip timestamps, fixed seed), and
``edgekit.data`` checks the array fingerprints recorded in ``edgekit/data.py`` when it loads them.
"""
from __future__ import annotations

import argparse
import gzip
import struct
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                   "Bag", "Ankle boot"]
FASHION_TRAIN_PER_CLASS = 900
FASHION_TEST_PER_CLASS = 200
SEED = 0


def read_idx(path: Path) -> np.ndarray:
    """Read a (gzipped) IDX file of unsigned bytes, the format of the MNIST family."""
    raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (magic {raw[:4].hex()})")
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def stratified_subset(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``per_class`` random samples of every class, in their original order."""
    picks = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in np.unique(labels)]
    return np.sort(np.concatenate(picks))


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write a deflate-compressed ``.npz`` (what ``np.savez_compressed`` writes) with fixed timestamps."""
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.ascontiguousarray(array), allow_pickle=False)
    tmp.replace(path)


def build_fashion_mnist(src: Path, out: Path) -> dict[str, np.ndarray]:
    """Stratified subset: 900 train images per class from the 60k train set, 200 test per class from t10k."""
    rng = np.random.default_rng(SEED)
    x_tr, y_tr = read_idx(src / "train-images-idx3-ubyte.gz"), read_idx(src / "train-labels-idx1-ubyte.gz")
    x_te, y_te = read_idx(src / "t10k-images-idx3-ubyte.gz"), read_idx(src / "t10k-labels-idx1-ubyte.gz")
    tr = stratified_subset(y_tr, FASHION_TRAIN_PER_CLASS, rng)
    te = stratified_subset(y_te, FASHION_TEST_PER_CLASS, rng)
    arrays = {
        "x_train": x_tr[tr][..., None], "y_train": y_tr[tr],
        "x_test": x_te[te][..., None], "y_test": y_te[te],
        "class_names": np.array(FASHION_CLASSES),
    }
    write_npz(out, arrays)
    return arrays


def read_ts(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Parse an equal-length multivariate ``.ts`` file: returns x (n, steps, channels), labels, class list."""
    classes: list[str] = []
    rows: list[list[list[float]]] = []
    labels: list[str] = []
    in_data = False
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            lower = line.lower()
            if lower.startswith("@classlabel"):
                parts = line.split()
                classes = parts[2:] if parts[1].lower() == "true" else []
            elif lower.startswith("@data"):
                in_data = True
            continue
        *channels, label = line.split(":")
        rows.append([[float(v) for v in ch.split(",")] for ch in channels])
        labels.append(label)
    x = np.asarray(rows, dtype=np.float32).transpose(0, 2, 1)  # (n, channels, steps) -> (n, steps, channels)
    return x, np.asarray(labels), classes


def build_basic_motions(src: Path, out: Path) -> dict[str, np.ndarray]:
    """BasicMotions with the archive's own train/test split; class order as declared in the file header."""
    x_tr, l_tr, classes = read_ts(src / "BasicMotions_TRAIN.ts")
    x_te, l_te, classes_te = read_ts(src / "BasicMotions_TEST.ts")
    if classes != classes_te:
        raise ValueError(f"class lists differ between TRAIN and TEST: {classes} vs {classes_te}")
    index = {name: i for i, name in enumerate(classes)}
    arrays = {
        "x_train": x_tr, "y_train": np.array([index[v] for v in l_tr], dtype=np.uint8),
        "x_test": x_te, "y_test": np.array([index[v] for v in l_te], dtype=np.uint8),
        "class_names": np.array(classes),
    }
    write_npz(out, arrays)
    return arrays


def build_digits(out: Path) -> dict[str, np.ndarray]:
    """scikit-learn's digits scaled to [0, 1] (float32, values k/16), with a channel axis, split 80/20
    stratified by label with seed 0 -- the split edgekit applies to any ``.npz`` holding only ``x, y``."""
    from sklearn.datasets import load_digits  # build time only: edgekit never imports scikit-learn to load it

    from edgekit.data import split_train_test

    bunch = load_digits()
    x = (np.asarray(bunch.images, dtype=np.float32) / np.float32(16.0))[..., None]
    y = np.asarray(bunch.target, dtype=np.uint8)
    x_train, y_train, x_test, y_test = split_train_test(x, y)
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test,
              "class_names": np.array([str(n) for n in bunch.target_names])}
    write_npz(out, arrays)
    return arrays


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fashion-mnist-dir", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--basic-motions-dir", type=Path,
                        default=Path("/tmp/aeon/aeon/datasets/data/BasicMotions"))
    parser.add_argument("--out-dir", type=Path, default=HERE)
    args = parser.parse_args(argv)
    builds = (("fashion_mnist.npz", lambda out: build_fashion_mnist(args.fashion_mnist_dir, out)),
              ("basic_motions.npz", lambda out: build_basic_motions(args.basic_motions_dir, out)),
              ("digits.npz", build_digits))
    for name, build in builds:
        out = args.out_dir / name
        arrays = build(out)
        shapes = ", ".join(f"{k}{tuple(v.shape)}:{v.dtype}" for k, v in arrays.items())
        print(f"{out} ({out.stat().st_size} bytes): {shapes}")


if __name__ == "__main__":
    main()
