"""Atomic writes leave either the old file or the new one, never a half-written file."""
import gzip
import os

import pytest

from edgekit.errors import ConfigError
from edgekit.fsutil import atomic_write_bytes, atomic_write_text, ensure_writable_dir, gzip_size, sha256_bytes, sha256_file


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    p = tmp_path / "a.txt"
    atomic_write_text(p, "old")
    atomic_write_text(p, "new")
    assert p.read_text() == "new"
    assert sorted(os.listdir(tmp_path)) == ["a.txt"]


def test_atomic_write_unwritable_dir_keeps_previous(tmp_path):
    if os.geteuid() == 0:
        # root ignores permission bits; a path under a regular file can never be created
        blocker = tmp_path / "file"
        blocker.write_text("x")
        with pytest.raises(ConfigError) as info:
            atomic_write_bytes(blocker / "sub" / "m.tflite", b"data")
        assert "cannot write" in str(info.value)
        return
    d = tmp_path / "ro"
    d.mkdir()
    atomic_write_text(d / "m.txt", "previous")
    d.chmod(0o500)
    try:
        with pytest.raises(ConfigError):
            atomic_write_text(d / "m.txt", "new")
        assert (d / "m.txt").read_text() == "previous"
        assert os.listdir(d) == ["m.txt"]
    finally:
        d.chmod(0o700)


def test_ensure_writable_dir_rejects_file(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(ConfigError) as info:
        ensure_writable_dir(f)
    assert "not a directory" in str(info.value)


def test_sha256_and_gzip_size(tmp_path):
    data = b"\0" * 10000
    p = tmp_path / "z"
    p.write_bytes(data)
    assert sha256_file(p) == sha256_bytes(data)
    assert gzip_size(data) == len(gzip.compress(data, 9, mtime=0)) < 100
