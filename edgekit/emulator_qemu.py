"""QEMU user-mode details: finding ``qemu-aarch64``, CPU models, and the guest's view of the files.

Two traps, both measured with QEMU 7.2 (Debian bookworm's ``qemu-user-static``):

* QEMU's default ``max`` CPU exposes SME, and LiteRT's kernels then compute wrong outputs. edgekit
  always passes the target's real core (``cortex-a53`` Pi Zero 2 W / Pi 3, ``cortex-a72`` Pi 4,
  ``cortex-a76`` Pi 5).
* QEMU before 8.2 shows the guest the *host's* ``/proc/cpuinfo`` (an x86 one), and ai-edge-litert's
  CPU detection then crashes (SIGSEGV). QEMU looks every absolute path up under its ``-L`` prefix
  first, so each CPU gets a small *view* folder: symlinks to the shared root file system plus a
  ``proc/cpuinfo`` describing that core (implementer/part as on the real chip). Newer QEMU emulates
  ``/proc/cpuinfo`` itself, ahead of the prefix lookup, so the view is harmless there.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .errors import ConfigError
from .fsutil import atomic_write_text
from .emulator_rootfs import install_command

QEMU_NAMES = ("qemu-aarch64", "qemu-aarch64-static")
QEMU_PACKAGE = "qemu-user-static"
#: QEMU CPU model → (implementer, variant, part, revision, /proc/cpuinfo features) of the real core.
CPU_IDS: dict[str, tuple[int, int, int, int, str]] = {
    "cortex-a35": (0x41, 0x0, 0xD04, 2, "fp asimd evtstrm crc32 cpuid"),
    "cortex-a53": (0x41, 0x0, 0xD03, 4, "fp asimd evtstrm crc32 cpuid"),
    "cortex-a57": (0x41, 0x1, 0xD07, 1, "fp asimd evtstrm crc32 cpuid"),
    "cortex-a72": (0x41, 0x0, 0xD08, 3, "fp asimd evtstrm crc32 cpuid"),
    "cortex-a76": (0x41, 0x4, 0xD0B, 1, "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid "
                                        "asimdrdm lrcpc dcpop asimddp"),
    "neoverse-n1": (0x41, 0x3, 0xD0C, 1, "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid "
                                         "asimdrdm lrcpc dcpop asimddp ssbs"),
}
#: CPU models edgekit refuses to trust for parity: why.
UNSAFE_CPUS = {"max": "QEMU's `max` CPU exposes SME and LiteRT's kernels then return wrong outputs"}


@dataclass(frozen=True)
class Qemu:
    """A usable ``qemu-aarch64``: its path, version string and CPU models."""

    path: Path
    version: str
    cpus: tuple[str, ...]

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", self.version)[:3])

    @property
    def leaks_host_cpuinfo(self) -> bool:
        """QEMU < 8.2 passes the host's ``/proc/cpuinfo`` through to aarch64 guests."""
        return self.version_tuple < (8, 2)


def find_qemu_path() -> Path | None:
    """``$EDGEKIT_QEMU`` if set, else ``qemu-aarch64`` / ``qemu-aarch64-static`` on ``PATH``."""
    override = os.environ.get("EDGEKIT_QEMU")
    if override:
        return Path(override) if Path(override).is_file() and os.access(override, os.X_OK) else None
    for name in QEMU_NAMES:
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


@lru_cache(maxsize=8)
def _probe(path: str) -> Qemu:
    version_out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout
    m = re.search(r"version (\S+)", version_out)
    cpu_out = subprocess.run([path, "-cpu", "help"], capture_output=True, text=True, timeout=30).stdout
    cpus = tuple(line.split()[0] for line in cpu_out.splitlines()[1:] if line.strip())
    return Qemu(path=Path(path), version=m[1] if m else "unknown", cpus=cpus)


def find_qemu() -> Qemu | None:
    """The usable QEMU, or ``None`` when none is installed (or it does not run)."""
    path = find_qemu_path()
    if path is None:
        return None
    try:
        return _probe(str(path))
    except (OSError, subprocess.SubprocessError):
        return None


def require_qemu() -> Qemu:
    """Like :func:`find_qemu` but raises ``ConfigError`` with the install command when missing."""
    if os.uname().sysname != "Linux":
        raise ConfigError("QEMU user-mode emulation needs a Linux host",
                          hint="run `--emulate` on a Linux machine or CI runner, or benchmark on the Pi with --host")
    qemu = find_qemu()
    if qemu is None:
        where = f"EDGEKIT_QEMU={os.environ['EDGEKIT_QEMU']} is not an executable file; " if os.environ.get("EDGEKIT_QEMU") else ""
        raise ConfigError(f"{where}qemu-aarch64 was not found on PATH (needed to emulate the Raspberry Pi's CPU)",
                          hint=f"install it: {install_command(QEMU_PACKAGE)}")
    return qemu


def check_cpu(qemu: Qemu, cpu: str) -> None:
    """ConfigError unless ``cpu`` is a QEMU CPU model this QEMU knows."""
    if cpu not in qemu.cpus:
        raise ConfigError(f"{qemu.path} ({qemu.version}) has no CPU model {cpu!r}; it knows {', '.join(qemu.cpus)}",
                          hint=f"fix qemu_cpu in the target profile, or install a newer QEMU: "
                               f"{install_command(QEMU_PACKAGE)}")


def host_cpu_count() -> int:
    """Number of CPUs the host kernel reports as possible (what the guest's sysfs shows)."""
    try:
        text = Path("/sys/devices/system/cpu/possible").read_text().strip()
        last = max(int(part.split("-")[-1]) for part in text.split(","))
        return last + 1
    except (OSError, ValueError):
        return os.cpu_count() or 1


def fake_cpuinfo(cpu: str, *, count: int | None = None) -> str:
    """An aarch64 ``/proc/cpuinfo`` for ``count`` cores of the real ``cpu``."""
    implementer, variant, part, revision, features = CPU_IDS.get(cpu, (0x41, 0x0, 0xD08, 3, "fp asimd cpuid"))
    blocks = [f"processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: {features}\nCPU implementer\t: 0x{implementer:02x}\n"
              f"CPU architecture: 8\nCPU variant\t: 0x{variant:x}\nCPU part\t: 0x{part:03x}\nCPU revision\t: {revision}\n"
              for i in range(count or host_cpu_count())]
    return "\n".join(blocks) + f"\nModel\t\t: edgekit QEMU user-mode guest ({cpu})\n"


def cpu_view(env_dir: Path, rootfs: Path, cpu: str) -> Path:
    """The ``-L`` prefix for ``cpu``: symlinks to ``rootfs``'s top level plus a matching ``proc/cpuinfo``.

    Created once per CPU (atomically); the cpuinfo text is refreshed when the host's CPU count changed.
    """
    if not re.fullmatch(r"[A-Za-z0-9._-]+", cpu):
        raise ConfigError(f"invalid QEMU CPU name {cpu!r}", hint="use a name from `qemu-aarch64 -cpu help`")
    views = env_dir / "views"
    view = views / cpu
    if not view.is_dir():
        views.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{cpu}-", dir=views))
        rel = os.path.relpath(rootfs, view)
        for entry in sorted(rootfs.iterdir()):
            if entry.name != "proc":
                (tmp / entry.name).symlink_to(os.path.join(rel, entry.name))
        (tmp / "proc").mkdir()
        try:
            os.rename(tmp, view)
        except OSError:  # another process made it first
            shutil.rmtree(tmp, ignore_errors=True)
    text = fake_cpuinfo(cpu)
    info = view / "proc" / "cpuinfo"
    try:
        current = info.read_text()
    except OSError:
        current = None
    if current != text:
        atomic_write_text(info, text)
    return view
