"""Test helpers for the benchmark tests: a real sshd, a device-like venv, and extra model files.

* :class:`Sshd`: Debian's ``openssh-server`` started on a free loopback port as the current user,
  with a throwaway host key and user key in a temporary folder (``UsePAM no``, ``StrictModes no``).
* :func:`device_venv`: a virtual environment with only ``numpy<2`` and ``tflite-runtime`` 2.14 (what
  a Raspberry Pi typically has), built once by ``scripts/make-device-venv.sh`` into
  ``$EDGEKIT_DEVICE_VENV`` (default ``~/.cache/edgekit-test/device-venv``) and reused.
* :func:`numpy_only_python`: a Python that has numpy but no LiteRT runtime at all.
* :func:`build_models`: a dynamic-range model (ops newer than tflite-runtime 2.14 knows) and a
  larger float32 CNN, converted by the real TFLite converter in a subprocess.

Everything is cached per process so that fixtures imported into several test modules build once.
"""
from __future__ import annotations

import functools
import getpass
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path) -> str:
    """Create an ed25519 key pair at ``path``; return the public key line."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgekit-test", "-f", str(path)],
                   check=True, capture_output=True)
    os.chmod(path, 0o600)
    return Path(str(path) + ".pub").read_text().strip()


class Sshd:
    """A real OpenSSH server on 127.0.0.1 for the current user; keys and config in ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.user = getpass.getuser()
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.host_key = self.root / "host_ed25519"
        self.user_key = self.root / "user_ed25519"
        self.other_key = self.root / "other_ed25519"  # a valid key the server does not accept
        self.known_hosts = self.root / "known_hosts"

    @property
    def spec(self) -> str:
        return f"{self.user}@127.0.0.1:{self.port}"

    def start(self) -> "Sshd":
        if not os.path.exists(SSHD):
            raise RuntimeError("sshd is not installed: apt-get install openssh-server (scripts/install-system-deps.sh)")
        host_pub = keygen(self.host_key)
        user_pub = keygen(self.user_key)
        keygen(self.other_key)
        (self.root / "authorized_keys").write_text(user_pub + "\n")
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {' '.join(host_pub.split()[:2])}\n")
        config = self.root / "sshd_config"
        config.write_text(textwrap.dedent(f"""\
            Port {self.port}
            ListenAddress 127.0.0.1
            HostKey {self.host_key}
            PidFile {self.root}/sshd.pid
            AuthorizedKeysFile {self.root}/authorized_keys
            AllowUsers {self.user}
            UsePAM no
            StrictModes no
            PubkeyAuthentication yes
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            PermitRootLogin prohibit-password
            PrintMotd no
            PrintLastLog no
            MaxStartups 64
            MaxSessions 64
            LogLevel ERROR
            """))
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation directory
        self.log = open(self.root / "sshd.log", "wb")
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=self.log, stderr=self.log,
                                     start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.root / 'sshd.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(64).startswith(b"SSH-"):
                        return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("sshd did not start within 20 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except OSError:
                self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


@functools.lru_cache(maxsize=None)
def device_venv() -> Path:
    """A venv with only numpy<2 + tflite-runtime 2.14 (built once, cached across sessions)."""
    target = Path(os.environ.get("EDGEKIT_DEVICE_VENV") or Path.home() / ".cache" / "edgekit-test" / "device-venv")
    # tflite-runtime 2.14 ships wheels for CPython 3.8-3.11 only
    base = next((p for p in (shutil.which(f"python3.{m}") for m in (11, 10, 9)) if p), sys.executable)
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "make-device-venv.sh"), str(target), base],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"make-device-venv.sh failed:\n{proc.stdout}\n{proc.stderr}")
    return target / "bin" / "python"


@functools.lru_cache(maxsize=None)
def numpy_only_python(root: Path) -> Path:
    """A bare venv whose only package is the device venv's numpy (no LiteRT runtime)."""
    dev = device_venv()
    venv = Path(root) / "numpy-only"
    if (venv / "bin" / "python").exists():
        return venv / "bin" / "python"
    subprocess.run([str(dev), "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
    src_site = Path(glob.glob(str(dev.parent.parent / "lib" / "python3*" / "site-packages"))[0])
    dst_site = Path(glob.glob(str(venv / "lib" / "python3*" / "site-packages"))[0])
    shelf = Path(root) / "numpy-shelf"
    shelf.mkdir(exist_ok=True)
    for name in ("numpy", "numpy.libs"):
        if (src_site / name).exists():
            (shelf / name).symlink_to(src_site / name)
    (dst_site / "numpy_only.pth").write_text(str(shelf) + "\n")
    return venv / "bin" / "python"


_MODELS = r"""
import os, sys, numpy as np
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import tensorflow as tf
import tf_keras as keras
out = sys.argv[1]
keras.utils.set_random_seed(0)
small = keras.Sequential([keras.layers.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, activation="relu"),
                          keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
big = keras.Sequential([keras.layers.Input((32, 32, 3)),
                        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
                        keras.layers.Conv2D(48, 3, padding="same", activation="relu"),
                        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])
c = tf.lite.TFLiteConverter.from_keras_model(small)
c.optimizations = [tf.lite.Optimize.DEFAULT]   # dynamic-range: FULLY_CONNECTED v12 with TF 2.21
open(os.path.join(out, "small_dynamic.tflite"), "wb").write(c.convert())
open(os.path.join(out, "big_f32.tflite"), "wb").write(tf.lite.TFLiteConverter.from_keras_model(big).convert())
"""


@functools.lru_cache(maxsize=None)
def build_models(root: Path) -> dict[str, Path]:
    """``small_dynamic`` (dynamic-range, newer op versions) and ``big_f32`` (~1 ms CNN)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", _MODELS, str(root)], capture_output=True, text=True,
                          timeout=600, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"building test models failed:\n{proc.stderr[-3000:]}")
    return {"small_dynamic": root / "small_dynamic.tflite", "big_f32": root / "big_f32.tflite"}


def children_of(pid: int) -> list[int]:
    """PIDs whose parent is ``pid`` (Linux /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read().decode("utf-8", "replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            out.append(int(entry))
    return out


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return [p.decode("utf-8", "replace") for p in fh.read().split(b"\0") if p]
    except OSError:
        return []


def find_processes(*needles: str) -> list[int]:
    """PIDs whose command line contains every needle."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            line = " ".join(cmdline(int(entry)))
            if line and all(n in line for n in needles):
                found.append(int(entry))
    return found


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.05):
    """Poll ``predicate()`` until it returns something truthy; return it (None on timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None
