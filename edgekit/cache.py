"""Content-addressed stage cache (DESIGN.md §3, §7).

Every finished stage output is stored under ``<cache>/stages/<key>/`` where the key is the sha256
of the input artifact's hash, the stage name and version, the stage config (canonical JSON), the
data fingerprint and the tool versions (TensorFlow, tf_keras, tfmot, LiteRT, edgekit). The cache
root is ``$EDGEKIT_CACHE_DIR`` or the user cache directory (``platformdirs``), independent of
``-o``, so the same work is reused whatever the output folder.

Writing is crash-safe: an entry is built in a temporary sibling directory, its ``manifest.json``
(with the sha256 of every file) is written last, and the directory is renamed into place in one
step. A run killed half-way leaves only a temporary directory, which is never read and is swept
later; a failing stage leaves nothing (failures are never cached). On read, an entry whose
manifest is missing, unreadable or whose files do not match their recorded hashes is ignored.

No TensorFlow here: the parent process can look entries up before starting any child.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

MANIFEST = "manifest.json"
CACHE_FORMAT = 1
_TMP_PREFIX = ".tmp-"

KEY_VERSIONS = ("tensorflow", "tf_keras", "tensorflow-model-optimization", "ai-edge-litert", "edgekit")
"""Tool versions that enter every cache key."""


def default_cache_dir() -> Path:
    """``$EDGEKIT_CACHE_DIR`` if set, else the platform user cache directory for ``edgekit``."""
    env = os.environ.get("EDGEKIT_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("edgekit", appauthor=False))


def key_versions() -> dict[str, str]:
    """The tool versions that enter cache keys (read from package metadata, no imports)."""
    from .versions import tool_versions

    versions = tool_versions()
    return {name: versions.get(name, "unknown") for name in KEY_VERSIONS}


def canonical_json(obj: Any) -> str:
    """Deterministic JSON (sorted keys, no spaces) used inside cache keys."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        return obj.model_dump()
    if is_dataclass(obj) and not isinstance(obj, type):
        return {"__dataclass__": type(obj).__qualname__, **asdict(obj)}
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot put {type(obj).__name__} into a cache key")


def stage_key(*, input_sha256: str, stage: str, stage_version: int | str, config: Mapping[str, Any] | Any,
              data_fingerprint: str | None, versions: Mapping[str, str] | None = None) -> str:
    """The cache key of one stage run (hex sha256).

    Args:
        input_sha256: hash of the stage's input artifact (model file or the previous stage's output).
        stage: stage name, e.g. ``"prune"``.
        stage_version: bumped whenever the stage's code changes what it produces.
        config: the stage's settings (JSON-able; pydantic models allowed).
        data_fingerprint: the dataset fingerprint, or None when the stage uses no data.
        versions: tool versions (default: :func:`key_versions`).
    """
    doc = {
        "format": CACHE_FORMAT,
        "input": input_sha256,
        "stage": stage,
        "stage_version": str(stage_version),
        "config": config,
        "data": data_fingerprint,
        "versions": dict(versions if versions is not None else key_versions()),
    }
    return hashlib.sha256(canonical_json(doc).encode("utf-8")).hexdigest()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    """A finished, verified cache entry."""

    key: str
    path: Path
    manifest: dict[str, Any]

    @property
    def stage(self) -> str:
        return str(self.manifest.get("stage"))

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.manifest.get("metrics") or {})

    @property
    def output(self) -> Path | None:
        """The entry's main artifact (``manifest["output"]``), if any."""
        name = self.manifest.get("output")
        return self.path / name if name else None

    @property
    def output_sha256(self) -> str | None:
        """The hash that keys the next stage (``manifest["output_sha256"]``)."""
        return self.manifest.get("output_sha256")

    @property
    def seconds(self) -> float | None:
        """How long the stage took when it ran (not the lookup time)."""
        return self.manifest.get("seconds")

    def file(self, name: str) -> Path:
        """Path of one stored file (KeyError if the entry has no such file)."""
        if name not in self.manifest.get("files", {}):
            raise KeyError(name)
        return self.path / name


@dataclass
class EntryWriter:
    """What a stage fills in while its cache entry is being built (see :meth:`StageCache.writer`)."""

    key: str
    dir: Path
    stage: str
    info: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    output: str | None = None
    output_sha256: str | None = None
    seconds: float | None = None

    def set_output(self, name: str, *, sha256: str | None = None) -> None:
        """Name the entry's main artifact (a file inside :attr:`dir`); its hash keys the next stage."""
        self.output = name
        self.output_sha256 = sha256


class StageCache:
    """The stage cache rooted at ``root`` (default :func:`default_cache_dir`).

    Args:
        root: the cache root; ``stages/`` is created under it.
        enabled: False for ``--no-cache``: lookups miss and nothing is written.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None, *, enabled: bool = True) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.enabled = enabled
        self.stages_dir = self.root / "stages"

    def __repr__(self) -> str:
        return f"StageCache({str(self.root)!r}, enabled={self.enabled})"

    # -- reading -------------------------------------------------------------------------------
    def entry_path(self, key: str) -> Path:
        return self.stages_dir / key

    def lookup(self, key: str, *, verify: bool = True) -> CacheEntry | None:
        """Return the finished entry for ``key``, or None (disabled, absent, partial or corrupt)."""
        if not self.enabled:
            return None
        path = self.entry_path(key)
        manifest_path = path / MANIFEST
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(manifest, dict) or manifest.get("key") != key or manifest.get("complete") is not True:
            return None
        files = manifest.get("files")
        if not isinstance(files, dict):
            return None
        if verify:
            for name, digest in files.items():
                f = path / name
                try:
                    if f.stat().st_size != digest.get("bytes") or _sha256_file(f) != digest.get("sha256"):
                        return None
                except (OSError, AttributeError):
                    return None
        try:
            os.utime(manifest_path)  # last use, for a future size-bounded sweep
        except OSError:
            pass
        return CacheEntry(key=key, path=path, manifest=manifest)

    # -- writing -------------------------------------------------------------------------------
    @contextmanager
    def writer(self, key: str, *, stage: str, info: Mapping[str, Any] | None = None) -> Iterator[EntryWriter]:
        """Build an entry for ``key``: yields an :class:`EntryWriter` whose ``dir`` receives the files.

        On normal exit the entry is committed atomically (manifest last, then one rename). If the
        body raises, the temporary directory is removed and nothing is cached. When the cache is
        disabled the directory is a throw-away one and nothing is committed.
        """
        base = self.stages_dir if self.enabled else None
        if base is not None:
            base.mkdir(parents=True, exist_ok=True)
            self.sweep()
        import tempfile

        tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{key[:16]}-{os.getpid()}-", dir=base))
        w = EntryWriter(key=key, dir=tmp, stage=stage, info=dict(info or {}))
        started = time.perf_counter()
        try:
            yield w
            if self.enabled:
                if w.seconds is None:
                    w.seconds = round(time.perf_counter() - started, 3)
                self._commit(w)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def _commit(self, w: EntryWriter) -> None:
        files: dict[str, dict[str, Any]] = {}
        for f in sorted(p for p in w.dir.rglob("*") if p.is_file()):
            rel = f.relative_to(w.dir).as_posix()
            if rel == MANIFEST:
                continue
            files[rel] = {"sha256": _sha256_file(f), "bytes": f.stat().st_size}
        if w.output is not None and w.output not in files:
            raise FileNotFoundError(f"cache entry output {w.output!r} was not written")
        output_sha = w.output_sha256 or (files[w.output]["sha256"] if w.output else None)
        manifest = {
            "format": CACHE_FORMAT,
            "key": w.key,
            "stage": w.stage,
            "info": w.info,
            "metrics": w.metrics,
            "output": w.output,
            "output_sha256": output_sha,
            "seconds": w.seconds,
            "files": files,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "complete": True,
        }
        text = json.dumps(manifest, indent=1, sort_keys=True, default=_json_default)
        mpath = w.dir / MANIFEST
        with open(mpath, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        final = self.entry_path(w.key)
        try:
            os.rename(w.dir, final)
        except OSError:
            # Another run finished the same entry first (or a stale corrupt one is in the way).
            if self.lookup(w.key) is None and final.exists():
                trash = final.with_name(f"{_TMP_PREFIX}old-{uuid.uuid4().hex[:8]}")
                os.rename(final, trash)
                shutil.rmtree(trash, ignore_errors=True)
                os.rename(w.dir, final)
        _fsync_dir(self.stages_dir)

    def sweep(self, *, max_age_s: float = 6 * 3600) -> int:
        """Remove temporary directories left by killed runs (dead owner pid, or older than ``max_age_s``)."""
        removed = 0
        try:
            children = list(self.stages_dir.iterdir())
        except OSError:
            return 0
        now = time.time()
        for p in children:
            if not p.name.startswith(_TMP_PREFIX):
                continue
            pid = _pid_of(p.name)
            try:
                old = now - p.stat().st_mtime > max_age_s
            except OSError:
                continue
            if old or (pid is not None and not _alive(pid)):
                shutil.rmtree(p, ignore_errors=True)
                removed += 1
        return removed

    def clear(self) -> None:
        """Delete every entry."""
        shutil.rmtree(self.stages_dir, ignore_errors=True)


def _pid_of(name: str) -> int | None:
    parts = name[len(_TMP_PREFIX):].split("-")
    if len(parts) >= 2 and parts[1].isdigit():
        return int(parts[1])
    return None


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------------------------
# whole-job entries: a fully cached compress run starts no TensorFlow child at all
# ------------------------------------------------------------------------------------------------
JOB_STAGE = "compress-job"
JOB_VERSION = 1


def load_job(cache: StageCache, key: str) -> dict[str, Any] | None:
    """A finished compress job (``result_bytes`` + its JSON record) from the cache, or None.

    Every stage record of the returned job says ``cached: true``, with ``seconds`` of 0.
    """
    entry = cache.lookup(key)
    if entry is None:
        return None
    try:
        job = json.loads(entry.file("job.json").read_text(encoding="utf-8"))
        job["result_bytes"] = entry.file("model.tflite").read_bytes()
    except (OSError, KeyError, ValueError):
        return None
    for record in job.get("stages", []):
        record["original_seconds"] = record.get("seconds")
        record["seconds"] = 0.0
        record["cached"] = True
    return job


def store_job(cache: StageCache, key: str, job: Mapping[str, Any]) -> None:
    """Store a finished compress job (no-op when the cache is disabled)."""
    if not cache.enabled:
        return
    with cache.writer(key, stage=JOB_STAGE) as w:
        (w.dir / "model.tflite").write_bytes(job["result_bytes"])
        rest = {k: v for k, v in job.items() if k != "result_bytes"}
        (w.dir / "job.json").write_text(json.dumps(rest, default=_json_default), encoding="utf-8")
        w.set_output("model.tflite")


FACTS_STAGE = "device-facts"
FACTS_VERSION = 2  # 2: TFLite Micro arena only for TFLite Micro targets


def load_text_entry(cache: StageCache, key: str, name: str) -> str | None:
    """The text file ``name`` of a cache entry, or None (miss, partial or corrupt entry)."""
    entry = cache.lookup(key)
    if entry is None:
        return None
    try:
        return entry.file(name).read_text(encoding="utf-8")
    except (OSError, KeyError, ValueError):
        return None


def store_text_entry(cache: StageCache, key: str, text: str, *, stage: str, name: str) -> None:
    """Store one text file as a cache entry (no-op when the cache is disabled)."""
    if not cache.enabled:
        return
    with cache.writer(key, stage=stage) as w:
        (w.dir / name).write_text(text, encoding="utf-8")
        w.set_output(name)


def load_json_entry(cache: StageCache, key: str, name: str = "facts.json") -> Any | None:
    """A JSON document stored by :func:`store_json_entry`, or None (miss, partial or corrupt entry)."""
    text = load_text_entry(cache, key, name)
    try:
        return None if text is None else json.loads(text)
    except ValueError:
        return None


def store_json_entry(cache: StageCache, key: str, doc: Any, *, stage: str, name: str = "facts.json") -> None:
    """Store one JSON document as a cache entry (no-op when the cache is disabled)."""
    store_text_entry(cache, key, json.dumps(doc, default=_json_default), stage=stage, name=name)


CHART_STAGE = "chart"


def chart_key(fn: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str | None:
    """Cache key of one report chart: the drawing function, its module's source, its arguments and
    the tool versions (matplotlib included). None when an argument cannot be put into a key."""
    from .versions import package_version

    versions = {**key_versions(), "matplotlib": package_version("matplotlib") or "unknown"}
    try:
        source = Path(fn.__code__.co_filename).read_bytes()
        config = {"fn": f"{fn.__module__}.{fn.__qualname__}", "args": list(args), "kwargs": dict(kwargs)}
        return stage_key(input_sha256=hashlib.sha256(source).hexdigest(), stage=CHART_STAGE, stage_version=1,
                         config=config, data_fingerprint=None, versions=versions)
    except (AttributeError, OSError, TypeError, ValueError):
        return None
