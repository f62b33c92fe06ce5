"""Stage cache: content-addressed keys, atomic commits, no partial or failed entries (no TensorFlow)."""
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from edgekit.cache import StageCache, default_cache_dir, key_versions, load_job, stage_key, store_job

BASE = dict(input_sha256="a" * 64, stage="prune", stage_version=1, config={"sparsity": 0.5, "epochs": 2},
            data_fingerprint="d" * 64, versions={"tensorflow": "2.21.0", "edgekit": "0.1.0"})


def test_cache_key_covers_every_component():
    k = stage_key(**BASE)
    assert len(k) == 64
    assert stage_key(**{**BASE, "config": {"epochs": 2, "sparsity": 0.5}}) == k  # canonical JSON
    changes = [{"input_sha256": "b" * 64}, {"stage": "qat"}, {"stage_version": 2}, {"config": {"sparsity": 0.6,
               "epochs": 2}}, {"data_fingerprint": "e" * 64}, {"versions": {"tensorflow": "2.22.0", "edgekit": "0.1.0"}}]
    keys = {stage_key(**{**BASE, **c}) for c in changes}
    assert len(keys) == len(changes) and k not in keys


def test_cache_key_versions_name_the_stack():
    v = key_versions()
    assert set(v) == {"tensorflow", "tf_keras", "tensorflow-model-optimization", "ai-edge-litert", "edgekit"}


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKIT_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    assert StageCache().root == tmp_path / "c"
    monkeypatch.delenv("EDGEKIT_CACHE_DIR")
    assert "edgekit" in str(default_cache_dir())


def test_cache_commit_then_lookup(tmp_path):
    cache = StageCache(tmp_path)
    key = stage_key(**BASE)
    assert cache.lookup(key) is None
    with cache.writer(key, stage="prune", info={"input_sha256": BASE["input_sha256"]}) as w:
        (w.dir / "model.keras").write_bytes(b"weights")
        w.metrics = {"sparsity": 0.5}
        w.set_output("model.keras")
    entry = cache.lookup(key)
    assert entry is not None and entry.stage == "prune" and entry.metrics == {"sparsity": 0.5}
    assert entry.output.read_bytes() == b"weights" and len(entry.output_sha256) == 64
    assert entry.seconds is not None
    assert [p.name for p in (tmp_path / "stages").iterdir()] == [key]  # no temp leftovers


def test_cache_failures_are_never_cached(tmp_path):
    cache = StageCache(tmp_path)
    key = stage_key(**BASE)
    with pytest.raises(RuntimeError):
        with cache.writer(key, stage="prune") as w:
            (w.dir / "model.keras").write_bytes(b"half")
            raise RuntimeError("training diverged")
    assert cache.lookup(key) is None
    assert list((tmp_path / "stages").iterdir()) == []


def test_cache_partial_or_corrupt_entries_are_ignored(tmp_path):
    cache = StageCache(tmp_path)
    key = stage_key(**BASE)
    with cache.writer(key, stage="prune") as w:
        (w.dir / "model.keras").write_bytes(b"good")
        w.set_output("model.keras")
    entry_dir = tmp_path / "stages" / key
    (entry_dir / "model.keras").write_bytes(b"bad!")  # same size, different content
    assert cache.lookup(key) is None
    (entry_dir / "model.keras").write_bytes(b"good")
    assert cache.lookup(key) is not None
    manifest = json.loads((entry_dir / "manifest.json").read_text())
    manifest["complete"] = False
    (entry_dir / "manifest.json").write_text(json.dumps(manifest))
    assert cache.lookup(key) is None
    (entry_dir / "manifest.json").write_text("{trunc")
    assert cache.lookup(key) is None


def test_cache_killed_writer_leaves_no_entry(tmp_path):
    """SIGKILL in the middle of writing: the key stays a miss and the temp dir is swept later."""
    key = stage_key(**BASE)
    code = textwrap.dedent(f"""
        import os, signal
        from edgekit.cache import StageCache
        cache = StageCache({str(tmp_path)!r})
        with cache.writer({key!r}, stage="prune") as w:
            (w.dir / "model.keras").write_bytes(b"x" * 100000)
            w.set_output("model.keras")
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    cache = StageCache(tmp_path)
    assert cache.lookup(key) is None
    leftovers = [p for p in (tmp_path / "stages").iterdir()]
    assert leftovers and all(p.name.startswith(".tmp-") for p in leftovers)
    assert cache.sweep() == len(leftovers)
    assert list((tmp_path / "stages").iterdir()) == []


def test_cache_disabled_reads_and_writes_nothing(tmp_path):
    on, off = StageCache(tmp_path), StageCache(tmp_path, enabled=False)
    key = stage_key(**BASE)
    with on.writer(key, stage="prune") as w:
        (w.dir / "a").write_bytes(b"1")
    assert on.lookup(key) is not None and off.lookup(key) is None
    key2 = stage_key(**{**BASE, "stage": "qat"})
    with off.writer(key2, stage="qat") as w:
        (w.dir / "a").write_bytes(b"1")
        tmp_dir = w.dir
    assert not tmp_dir.exists() and on.lookup(key2) is None


def test_cache_job_roundtrip_marks_stages_cached(tmp_path):
    cache = StageCache(tmp_path)
    key = stage_key(**{**BASE, "stage": "compress-job"})
    job = {"result_bytes": b"TFL3model", "stages": [{"name": "prune", "seconds": 12.5, "cached": False,
                                                     "metrics": {"sparsity": 0.5}}], "parity": {"sqnr_db": 30.0}}
    store_job(cache, key, job)
    again = load_job(cache, key)
    assert again["result_bytes"] == b"TFL3model" and again["parity"] == {"sqnr_db": 30.0}
    assert again["stages"][0]["cached"] is True and again["stages"][0]["original_seconds"] == 12.5
    assert load_job(StageCache(tmp_path, enabled=False), key) is None
    assert os.listdir(tmp_path / "stages") == [key]
