"""Build the emulated aarch64 Python environment: Debian arm64 packages + aarch64 wheels in a folder.

Nothing here touches the host's package state. Debian arm64 packages are fetched with
``apt-get download`` under a private apt configuration (its own sources, lists, cache and an empty
dpkg status file, ``APT::Architecture "arm64"``) and unpacked with ``dpkg -x``: no chroot, no
binfmt registration, no Docker, no root needed. The runtime's aarch64 wheels come from
``pip download --only-binary=:all: --platform manylinux…_aarch64`` and are unzipped onto a
site-packages folder. The result is built in a temporary folder and renamed into place, so an
interrupted build never leaves a half-made environment behind.

The guest is always Debian bookworm's Python 3.11: it is what Raspberry Pi OS (bookworm) ships and
the Python the runtimes publish aarch64 wheels for.
"""
from __future__ import annotations

import compileall
import fcntl
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .errors import ConfigError, DeviceError
from .fsutil import atomic_write_text, sha256_file

GUEST_ARCH = "aarch64"
DEBIAN_ARCH = "arm64"
GUEST_SUITE = "bookworm"
GUEST_PYTHON = "3.11"
MANIFEST = "manifest.json"
MANIFEST_SCHEMA = 1
#: Where the runtime's wheels go inside the root file system.
SITE_REL = "opt/edgekit/site-packages"
#: Root packages; their shared-library dependencies are added recursively.
ROOT_PACKAGES = (f"python{GUEST_PYTHON}-minimal", f"libpython{GUEST_PYTHON}-stdlib", "libstdc++6", "libgcc-s1")
DEFAULT_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
DEFAULT_ARCHIVE = "http://deb.debian.org/debian"
DEFAULT_SECURITY = "http://deb.debian.org/debian-security"
#: Every manylinux tag an aarch64 bookworm guest (glibc 2.36) accepts; pip does not expand them itself.
MANYLINUX_TAGS = ("manylinux2014_aarch64", *(f"manylinux_2_{minor}_aarch64" for minor in range(17, 37)))
#: Runtime package → the module the harness imports.
RUNTIME_MODULES = {"ai-edge-litert": "ai_edge_litert", "tflite-runtime": "tflite_runtime"}


def install_command(*packages: str) -> str:
    """``apt-get install`` line for ``packages``, with ``sudo`` only when not running as root."""
    prefix = "" if os.geteuid() == 0 else "sudo "
    return f"{prefix}apt-get update && {prefix}apt-get install -y {' '.join(packages)}"


def emulator_root() -> Path:
    """Folder holding every emulated environment.

    ``$EDGEKIT_EMULATOR_DIR`` if set (lets tests isolate the stage cache but share this one), else
    ``$EDGEKIT_CACHE_DIR/emulator``, else ``emulator`` in the user cache directory (platformdirs).
    """
    if os.environ.get("EDGEKIT_EMULATOR_DIR"):
        return Path(os.environ["EDGEKIT_EMULATOR_DIR"]).expanduser()
    base = os.environ.get("EDGEKIT_CACHE_DIR")
    if not base:
        import platformdirs

        base = platformdirs.user_cache_dir("edgekit")
    return Path(base).expanduser() / "emulator"


@dataclass(frozen=True)
class RuntimeSpec:
    """Which runtime build goes into the guest.

    Attributes:
        package: PyPI name, ``ai-edge-litert`` or ``tflite-runtime``.
        version: version as asked for (``2.3``, ``2.14.0``) or ``latest``.
        requirements: pip requirement strings (runtime + numpy).
    """

    package: str
    version: str
    requirements: tuple[str, ...]

    @property
    def module(self) -> str:
        return RUNTIME_MODULES[self.package]

    @property
    def env_name(self) -> str:
        return f"{GUEST_ARCH}-{self.package}-{self.version}"


def _pin(version: str) -> str:
    if version == "latest":
        return ""
    if not re.fullmatch(r"\d+(\.\d+){0,2}", version):
        raise ConfigError(f"runtime version {version!r} is not a plain version like 2.3 or 2.14.0",
                          hint="fix runtime.version in the target profile, or pass --runtime NAME==X.Y.Z")
    return f"=={version}" if version.count(".") == 2 else f"=={version}.*"


def runtime_spec(name: str, version: str | None) -> RuntimeSpec:
    """Map a target's ``runtime.name``/``runtime.version`` (or a ``--runtime`` spec) to wheels.

    ``litert`` 2.5–2.14 is the ``tflite-runtime`` package (its last release is 2.14, which needs
    numpy < 2); ``litert`` 1.x and 2.0–2.4 is ``ai-edge-litert``, its successor.

    Args:
        name: ``litert``, ``ai-edge-litert``, ``tflite-runtime`` or ``NAME==VERSION``.
        version: the version when not part of ``name``; ``None`` means the latest release.
    """
    if "==" in name:
        name, _, version = name.partition("==")
    key = name.strip().lower().replace("_", "-")
    version = (version or "latest").strip()
    if key == "tflite-micro":
        raise ConfigError("the target's runtime is tflite-micro (a microcontroller): QEMU user-mode emulation "
                          "only runs Linux aarch64 LiteRT",
                          hint="emulate a raspberry-pi target (rpi-zero2w, rpi3, rpi4, rpi5) instead")
    if key in ("litert", "tflite", "tensorflow-lite"):
        major_minor = re.match(r"(\d+)\.(\d+)", version)
        legacy = bool(major_minor) and (int(major_minor[1]), int(major_minor[2])) >= (2, 5)
        key = "tflite-runtime" if legacy else "ai-edge-litert"
    if key not in RUNTIME_MODULES:
        raise ConfigError(f"unknown runtime {name!r} for emulation",
                          hint="use litert, ai-edge-litert==X.Y.Z or tflite-runtime==2.14.0")
    numpy_req = "numpy<2" if key == "tflite-runtime" else "numpy"
    return RuntimeSpec(package=key, version=version, requirements=(f"{key}{_pin(version)}", numpy_req))


# ---------------------------------------------------------------------------------------------
# private apt configuration
# ---------------------------------------------------------------------------------------------
def _host_debian_sources() -> list[dict[str, str]]:
    """Debian archive URIs (and keyrings) the host already uses, so mirrors and proxies carry over."""
    found: list[dict[str, str]] = []
    etc = Path("/etc/apt")
    files = [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*.list")),
             *sorted((etc / "sources.list.d").glob("*.sources"))]
    for path in files:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields: dict[str, str] = {}
                for line in stanza.splitlines():
                    if line.startswith("#") or ":" not in line or line[:1].isspace():
                        continue
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.strip()
                if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
                    continue
                for uri in fields.get("uris", "").split():
                    found.append({"uri": uri, "signed_by": fields.get("signed-by", "")})
        else:
            for line in text.splitlines():
                m = re.match(r"\s*deb\s+(?:\[([^\]]*)\]\s+)?(\S+)", line)
                if m:
                    opts = dict(o.split("=", 1) for o in (m[1] or "").split() if "=" in o)
                    found.append({"uri": m[2], "signed_by": opts.get("signed-by", "")})
    out = []
    for src in found:
        uri = src["uri"].rstrip("/")
        if not re.search(r"/debian(-security)?(/\d{8}T\d{6}Z)?$", uri):
            continue  # not a Debian archive (Ubuntu, vendor repos): arm64 is not there
        keyring = src["signed_by"] if src["signed_by"].startswith("/") and Path(src["signed_by"]).exists() else ""
        out.append({"uri": uri, "signed_by": keyring,
                    "kind": "security" if re.search(r"debian-security(/\d{8}T\d{6}Z)?$", uri) else "main"})
    return out


def guest_sources() -> list[dict[str, str]]:
    """The arm64 bookworm sources: the host's Debian mirrors if any, else deb.debian.org."""
    host = _host_debian_sources()
    sources: list[dict[str, str]] = []
    seen = set()
    for src in host or [{"uri": DEFAULT_ARCHIVE, "signed_by": "", "kind": "main"},
                        {"uri": DEFAULT_SECURITY, "signed_by": "", "kind": "security"}]:
        key = (src["uri"], src["kind"])
        if key in seen:
            continue
        seen.add(key)
        suites = f"{GUEST_SUITE}-security" if src["kind"] == "security" else f"{GUEST_SUITE} {GUEST_SUITE}-updates"
        keyring = src["signed_by"] or DEFAULT_KEYRING
        sources.append({"uri": src["uri"], "suites": suites, "signed_by": keyring})
    if not any(s["uri"] and "security" not in s["suites"] for s in sources):
        sources.insert(0, {"uri": DEFAULT_ARCHIVE, "suites": f"{GUEST_SUITE} {GUEST_SUITE}-updates",
                           "signed_by": DEFAULT_KEYRING})
    for src in sources:
        if not Path(src["signed_by"]).exists():
            raise ConfigError(f"the Debian archive keyring {src['signed_by']} is missing; it is needed to verify the "
                              "arm64 packages of the emulated Python",
                              hint=f"install it: {install_command('debian-archive-keyring')}")
    return sources


def _is_shared_library(package: str) -> bool:
    """Debian's shared-library packages (``libfoo1``, ``zlib1g``); tools, data and perl are left out."""
    name = package.split(":")[0]
    return (name.startswith(("lib", "zlib")) and not name.startswith("libperl")
            and not name.endswith(("-common", "-bin", "-data", "-dev")))


class PrivateApt:
    """``apt-get``/``apt-cache`` under a private configuration rooted at ``base`` (host state untouched)."""

    def __init__(self, base: Path, sources: list[dict[str, str]]) -> None:
        self.base = base
        self.sources = sources
        for sub in ("lists/partial", "cache/archives/partial", "etc/sources.list.d", "etc/preferences.d",
                    "etc/trusted.gpg.d"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        (base / "status").write_text("")
        stanzas = [f"Types: deb\nURIs: {s['uri']}\nSuites: {s['suites']}\nComponents: main\n"
                   f"Architectures: {DEBIAN_ARCH}\nSigned-By: {s['signed_by']}\n" for s in sources]
        (base / "etc/sources.list.d/edgekit-guest.sources").write_text("\n".join(stanzas))
        options = {
            "APT::Architecture": DEBIAN_ARCH,
            "APT::Architectures": DEBIAN_ARCH,
            "Dir::State": str(base),
            "Dir::State::Lists": str(base / "lists"),
            "Dir::State::status": str(base / "status"),
            "Dir::Cache": str(base / "cache"),
            "Dir::Cache::archives": str(base / "cache/archives"),
            "Dir::Cache::pkgcache": str(base / "cache/pkgcache.bin"),
            "Dir::Cache::srcpkgcache": str(base / "cache/srcpkgcache.bin"),
            "Dir::Etc::SourceList": "/dev/null",
            "Dir::Etc::SourceParts": str(base / "etc/sources.list.d"),
            "Dir::Etc::Preferences": "/dev/null",
            "Dir::Etc::PreferencesParts": str(base / "etc/preferences.d"),
            "Dir::Etc::Trusted": str(base / "etc/trusted.gpg"),
            "Dir::Etc::TrustedParts": str(base / "etc/trusted.gpg.d"),
            "Acquire::Languages": "none",
            "APT::Get::List-Cleanup": "false",
            "Debug::NoLocking": "true",
        }
        if any("snapshot.debian.org" in s["uri"] for s in sources):
            options["Acquire::Check-Valid-Until"] = "false"  # snapshots keep their old Release dates
        if os.geteuid() == 0:  # apt's _apt sandbox user cannot enter a root-owned cache folder
            options["APT::Sandbox::User"] = "root"
        self.options = options
        (base / "apt.conf").write_text("".join(f'{k} "{v}";\n' for k, v in options.items()))

    def _argv(self, tool: str, *args: str) -> list[str]:
        argv = [tool]
        for key, value in self.options.items():
            argv += ["-o", f"{key}={value}"]
        return [*argv, *args]

    def run(self, tool: str, *args: str, cwd: Path | None = None, timeout: float = 900) -> str:
        argv = self._argv(tool, *args)
        env = {**os.environ, "APT_CONFIG": str(self.base / "apt.conf"), "LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive"}
        try:
            proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired as exc:
            raise DeviceError(f"{tool} {args[0]} for the arm64 packages timed out after {timeout:.0f} s",
                              hint="check the network connection to the Debian mirror") from exc
        if proc.returncode != 0:
            tail = " ".join((proc.stderr or proc.stdout).split())[-400:]
            raise DeviceError(f"{tool} {args[0]} for the arm64 packages failed: {tail}",
                              hint="check the network connection to the Debian mirror and run "
                                   "`edgekit emulator doctor`")
        return proc.stdout

    def update(self) -> None:
        """Fetch the arm64 package lists; DeviceError when none arrived (apt-get exits 0 on fetch errors)."""
        argv = self._argv("apt-get", "update", "-q")
        env = {**os.environ, "APT_CONFIG": str(self.base / "apt.conf"), "LC_ALL": "C"}
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=900, env=env)
        except subprocess.TimeoutExpired as exc:
            raise DeviceError("apt-get update for the arm64 packages timed out after 900 s",
                              hint="check the network connection to the Debian mirror") from exc
        lists = [p for p in (self.base / "lists").glob("*_Packages*")]
        lines = (proc.stdout + proc.stderr).splitlines()
        problems = ([ln.strip() for ln in lines if ln.startswith(("E:", "W:"))]
                    or [ln.strip() for ln in lines if ln.startswith("Err:")])[:1]
        if proc.returncode != 0 or not lists:
            uris = ", ".join(s["uri"] for s in self.sources)
            raise DeviceError(f"could not download the Debian arm64 package lists from {uris}: "
                              f"{' '.join(' '.join(problems).split())[:400] or 'no package lists arrived'}",
                              hint="setup needs network access to the Debian mirror and PyPI once; check the "
                                   "connection or proxy (apt's Acquire::http::Proxy / http_proxy)")

    def resolve(self, roots: tuple[str, ...]) -> list[str]:
        """Roots plus their recursive ``Depends``/``PreDepends`` that are shared libraries."""
        wanted: list[str] = []
        todo = list(roots)
        while todo:
            batch = [p for p in dict.fromkeys(todo) if p not in wanted]
            todo = []
            if not batch:
                break
            wanted += batch
            out = self.run("apt-cache", "depends", "--no-recommends", "--no-suggests", "--no-conflicts",
                           "--no-breaks", "--no-replaces", "--no-enhances", *batch)
            group: list[str] = []
            for line in out.splitlines():
                m = re.match(r"\s*(\|)?(?:Pre)?Depends: (\S+)", line)
                if not m:
                    continue
                group.append(m[2])
                if m[1]:
                    continue  # an alternative: the group goes on
                choice = next((p for p in group if not p.startswith("<")), None)
                group = []
                if choice and _is_shared_library(choice) and choice not in wanted:
                    todo.append(choice.split(":")[0])
        return sorted(wanted)

    def download(self, packages: list[str], dest: Path) -> list[Path]:
        dest.mkdir(parents=True, exist_ok=True)
        self.run("apt-get", "download", "-q", *packages, cwd=dest)
        debs = sorted(dest.glob("*.deb"))
        if len(debs) < len(packages):
            raise DeviceError(f"apt-get download fetched {len(debs)} of {len(packages)} arm64 packages",
                              hint="run `edgekit emulator setup --debug` and check the Debian mirror")
        return debs


# ---------------------------------------------------------------------------------------------
# assembling the root file system
# ---------------------------------------------------------------------------------------------
def _deb_info(deb: Path) -> dict[str, str]:
    out = subprocess.run(["dpkg-deb", "--show", "--showformat=${Package}\t${Version}\t${Architecture}", str(deb)],
                         capture_output=True, text=True, check=True).stdout
    name, version, arch = out.split("\t")
    return {"name": name, "version": version, "arch": arch, "file": deb.name, "sha256": sha256_file(deb)}


def unpack_debs(debs: list[Path], rootfs: Path) -> list[dict[str, str]]:
    """``dpkg -x`` every package into ``rootfs``; returns name/version/sha256 per package."""
    rootfs.mkdir(parents=True, exist_ok=True)
    infos = []
    for deb in debs:
        proc = subprocess.run(["dpkg", "-x", str(deb), str(rootfs)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise DeviceError(f"dpkg -x {deb.name} failed: {' '.join(proc.stderr.split())[-300:]}")
        infos.append(_deb_info(deb))
    # An empty loader cache: the guest's ld.so must not read the host's x86 /etc/ld.so.cache.
    (rootfs / "etc").mkdir(exist_ok=True)
    (rootfs / "etc/ld.so.cache").write_bytes(b"")
    return infos


def download_wheels(spec: RuntimeSpec, dest: Path, *, timeout: float = 900) -> list[Path]:
    """``pip download`` the aarch64 cp311 wheels of the runtime and numpy (with dependencies)."""
    argv = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--no-input",
            "--disable-pip-version-check", "--dest", str(dest), "--python-version", GUEST_PYTHON,
            "--implementation", "cp", "--abi", f"cp{GUEST_PYTHON.replace('.', '')}", "--abi", "abi3", "--abi", "none"]
    for tag in MANYLINUX_TAGS:
        argv += ["--platform", tag]
    argv += list(spec.requirements)
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise DeviceError(f"pip download of {', '.join(spec.requirements)} timed out after {timeout:.0f} s",
                          hint="check the network connection to PyPI") from exc
    if proc.returncode != 0:
        err = proc.stderr or proc.stdout
        if "No module named pip" in err:
            raise ConfigError(f"{sys.executable} has no pip; it is needed to fetch the aarch64 wheels",
                              hint=f"run `{sys.executable} -m ensurepip --upgrade`")
        lines = [ln for ln in err.splitlines() if ln.startswith("ERROR")] or err.splitlines()[-3:]
        raise DeviceError(f"pip could not fetch aarch64 wheels for {' '.join(spec.requirements)}: "
                          f"{' '.join(' '.join(lines).split())[:400]}",
                          hint="check the runtime name/version in the target profile (aarch64 cp311 wheels must "
                               "exist on PyPI) and the network connection")
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise DeviceError("pip download produced no wheels", hint="run `edgekit emulator setup --debug`")
    return wheels


def unpack_wheels(wheels: list[Path], site: Path) -> list[dict[str, str]]:
    """Unzip wheels onto ``site`` (what pip would install, minus scripts); name/version/sha256 per wheel."""
    site.mkdir(parents=True, exist_ok=True)
    infos = []
    for whl in wheels:
        with zipfile.ZipFile(whl) as zf:
            for member in zf.infolist():
                parts = Path(member.filename).parts
                if not parts or member.filename.startswith("/") or ".." in parts:
                    raise DeviceError(f"wheel {whl.name} has an unsafe member {member.filename!r}")
                if len(parts) > 2 and parts[0].endswith(".data"):
                    if parts[1] not in ("purelib", "platlib"):
                        continue  # scripts, headers, data: not needed to import the package
                    target = site.joinpath(*parts[2:])
                else:
                    target = site.joinpath(*parts)
                if member.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                mode = (member.external_attr >> 16) & 0o777
                if mode:
                    os.chmod(target, mode | 0o600)
        name, version = whl.name.split("-")[:2]
        infos.append({"name": name.lower().replace("_", "-"), "version": version, "file": whl.name,
                      "sha256": sha256_file(whl)})
    return infos


def _guest_magic(rootfs: Path) -> bytes | None:
    """The bytecode magic number of the guest Python, read from its ``importlib/_bootstrap_external.py``."""
    path = rootfs / f"usr/lib/python{GUEST_PYTHON}/importlib/_bootstrap_external.py"
    try:
        m = re.search(r"MAGIC_NUMBER = \((\d+)\)\.to_bytes\(2, 'little'\) \+ b'\\r\\n'", path.read_text())
    except OSError:
        return None
    return int(m[1]).to_bytes(2, "little") + b"\r\n" if m else None


def precompile(rootfs: Path, final_rootfs: Path) -> bool:
    """Byte-compile the guest's stdlib and site-packages with the host Python when magics agree.

    Debian generates ``.pyc`` files in its maintainer scripts, which ``dpkg -x`` does not run;
    without them every emulated import would compile from source (seconds under QEMU).
    Returns whether bytecode was written.
    """
    if _guest_magic(rootfs) != importlib.util.MAGIC_NUMBER:
        return False
    for sub in (f"usr/lib/python{GUEST_PYTHON}", SITE_REL):
        compileall.compile_dir(str(rootfs / sub), quiet=2, workers=0, stripdir=str(rootfs),
                               prependdir=str(final_rootfs), rx=re.compile(r"[/\\](tests?|idlelib|lib2to3)[/\\]"))
    return True


@contextmanager
def build_lock(root: Path, name: str) -> Iterator[None]:
    """Exclusive lock so two processes never build the same environment at once."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def read_manifest(env_dir: Path) -> dict[str, Any] | None:
    """The manifest of a finished environment, or ``None`` when missing or unreadable."""
    try:
        doc = json.loads((env_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("schema_version") != MANIFEST_SCHEMA:
        return None
    if not (env_dir / "rootfs" / doc.get("python", {}).get("path", "missing")).exists():
        return None
    return doc


def build_env(spec: RuntimeSpec, env_dir: Path, *, verify: Any, progress: Any = None) -> dict[str, Any]:
    """Build the environment for ``spec`` at ``env_dir`` (atomically) and return its manifest.

    Args:
        spec: the runtime to install.
        env_dir: final location; must not exist yet.
        verify: ``verify(rootfs, site, spec) -> dict`` runs the guest Python under QEMU and returns the
            versions it sees (python, numpy, runtime); raising aborts the build.
        progress: optional ``progress(message)`` callback.
    """
    say = progress or (lambda _msg: None)
    started = time.monotonic()
    root = env_dir.parent
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{env_dir.name}-", dir=root))
    steps: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.monotonic()
        steps[name] = round(now - since, 1)
        return now

    try:
        rootfs = tmp / "rootfs"
        final_rootfs = env_dir / "rootfs"
        mark = time.monotonic()
        say("fetching Debian arm64 packages (private apt configuration)")
        apt = PrivateApt(tmp / "apt", guest_sources())
        apt.update()
        packages = apt.resolve(ROOT_PACKAGES)
        debs = apt.download(packages, tmp / "debs")
        deb_infos = unpack_debs(debs, rootfs)
        mark = lap("debian_packages", mark)
        say(f"fetching aarch64 wheels: {' '.join(spec.requirements)}")
        wheels = download_wheels(spec, tmp / "wheels")
        wheel_infos = unpack_wheels(wheels, rootfs / SITE_REL)
        mark = lap("wheels", mark)
        precompiled = precompile(rootfs, final_rootfs)
        mark = lap("bytecode", mark)
        python_rel = f"usr/bin/python{GUEST_PYTHON}"
        if not (rootfs / python_rel).exists():
            raise DeviceError(f"the arm64 packages did not provide {python_rel}",
                              hint="the Debian mirror may lack bookworm; run `edgekit emulator doctor`")
        say("checking the emulated Python under QEMU")
        seen = verify(rootfs, rootfs / SITE_REL, spec)
        lap("verify", mark)
        for sub in ("apt", "debs", "wheels"):
            shutil.rmtree(tmp / sub, ignore_errors=True)
        manifest = {
            "schema_version": MANIFEST_SCHEMA,
            "name": env_dir.name,
            "arch": GUEST_ARCH,
            "guest": f"debian-{GUEST_SUITE}-{DEBIAN_ARCH}",
            "python": {"path": python_rel, "version": seen.get("python")},
            "site_packages": SITE_REL,
            "runtime": {"package": spec.package, "module": spec.module, "requested": spec.version,
                        "version": seen.get("runtime")},
            "numpy": seen.get("numpy"),
            "requirements": list(spec.requirements),
            "debs": deb_infos,
            "wheels": wheel_infos,
            "sources": apt.sources,
            "precompiled": precompiled,
            "build_seconds": round(time.monotonic() - started, 1),
            "build_steps_seconds": steps,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        atomic_write_text(tmp / MANIFEST, json.dumps(manifest, indent=2) + "\n")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp made it private; the cache is as shareable as any other
        os.rename(tmp, env_dir)
        return manifest
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def remove_stale_builds(root: Path, name: str) -> None:
    """Delete leftovers of interrupted builds of ``name`` (call while holding its build lock)."""
    for stale in root.glob(f".tmp-{name}-*"):
        shutil.rmtree(stale, ignore_errors=True)


def env_size_bytes(env_dir: Path) -> int:
    """Disk use of an environment (regular files only)."""
    return sum(p.stat().st_size for p in env_dir.rglob("*") if p.is_file() and not p.is_symlink())
