"""Run the harness on a device over SSH (``measured-device``), with the system OpenSSH client.

Using ``ssh`` itself means the user's ``~/.ssh/config`` (aliases, ``ProxyJump``, ports), agent and
keys all work. What edgekit adds, on every connection:

* ``BatchMode=yes`` (never a password prompt) and ``StrictHostKeyChecking=yes``: an unknown or
  changed host key is an error, never accepted; ``--known-hosts FILE`` picks the file to trust.
* ``ConnectTimeout`` and ``ServerAliveInterval``/``CountMax``: a device that disappears mid-run is
  noticed within ~15 s; every step also has an overall time limit.
* A private directory from ``mktemp -d`` (mode 0700) on the device; the harness and the models are
  copied there under edgekit's own names (``harness.py``, ``model.tflite``, ...), never the user's
  file names, and every word of the remote command is ``shlex.quote``-d.
* The JSON the device returns is validated before it becomes a result; the directory is removed
  whatever happens.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..errors import ConfigError, DeviceError, EdgekitError
from ..fsutil import atomic_write_bytes
from . import result
from .local import HARNESS_FILE
from .options import HarnessOptions

CONNECT_TIMEOUT_S = 10
ALIVE_INTERVAL_S = 5
ALIVE_COUNT_MAX = 3
STATUS_MARK = "edgekit-harness-status="
MAX_FETCH_BYTES = 1024 * 1024 * 1024

_USER = r"[A-Za-z0-9_.][A-Za-z0-9_.-]*"
_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
_V6 = r"\[[0-9A-Fa-f:.]+(?:%[A-Za-z0-9_.-]+)?\]"
_HOST_RE = re.compile(rf"^(?:(?P<user>{_USER})@)?(?P<host>{_V6}|{_NAME})(?::(?P<port>[0-9]{{1,5}}))?$")
_REMOTE_DIR_RE = re.compile(r"^/[A-Za-z0-9_.+/-]*/edgekit\.[A-Za-z0-9]{10}$")


@dataclass(frozen=True)
class SshHost:
    """A device address: ``[user@]host[:port]`` (IPv6 as ``[addr]:port``)."""

    host: str
    user: str | None = None
    port: int | None = None

    @property
    def display(self) -> str:
        host = f"[{self.host}]" if ":" in self.host and self.port else self.host
        return f"{self.user + '@' if self.user else ''}{host}{':' + str(self.port) if self.port else ''}"

    @property
    def known_hosts_name(self) -> str:
        """How the host appears in a known_hosts file."""
        return f"[{self.host}]:{self.port}" if self.port and self.port != 22 else self.host


def parse_host(spec: str) -> SshHost:
    """Parse ``[user@]host[:port]``; reject anything that could be read as an ssh option."""
    text = (spec or "").strip()
    m = _HOST_RE.match(text)
    if not m or text.startswith("-"):
        raise ConfigError(f"--host {spec!r}: expected [USER@]HOST[:PORT] (IPv6 as [ADDR]:PORT)",
                          hint="e.g. --host pi@raspberrypi.local or --host pi@192.168.1.20:2222")
    host = m.group("host")
    if host.startswith("["):
        host = host[1:-1]
    port = int(m.group("port")) if m.group("port") else None
    if port is not None and not 1 <= port <= 65535:
        raise ConfigError(f"--host {spec!r}: port {port} is out of range 1-65535")
    return SshHost(host=host, user=m.group("user"), port=port)


def _config_path(path: Path) -> str:
    """A path as an ssh ``-o`` value: ``%`` escaped, quoted when it has spaces."""
    text = str(path).replace("%", "%%")
    if '"' in text:
        raise ConfigError(f"{path}: paths with double quotes cannot be passed to ssh", hint="rename the file")
    return f'"{text}"' if any(c.isspace() for c in text) else text


@dataclass(frozen=True)
class _Run:
    returncode: int
    stdout: bytes
    stderr: str


class SshSession:
    """One device: builds ``ssh`` command lines and runs remote steps with time limits."""

    def __init__(self, host: SshHost, *, identity: Path | None = None, known_hosts: Path | None = None,
                 connect_timeout: int = CONNECT_TIMEOUT_S) -> None:
        self.host = host
        self.identity = identity
        self.known_hosts = known_hosts
        self.connect_timeout = connect_timeout
        self.where = f"harness on {host.display}"
        self._control_dir: str | None = None

    def open(self) -> None:
        """Share one SSH connection between the steps (OpenSSH multiplexing, a private socket)."""
        if self._control_dir is None:
            directory = tempfile.mkdtemp(prefix="edgekit-mux-")
            if len(directory) + 44 < 100:  # the socket path (dir + %C) must fit sockaddr_un
                self._control_dir = directory
            else:
                shutil.rmtree(directory, ignore_errors=True)

    def close(self) -> None:
        """Stop the shared connection and remove its socket folder."""
        directory, self._control_dir = self._control_dir, None
        if directory is None:
            return
        ssh = shutil.which("ssh")
        if ssh and os.listdir(directory):
            subprocess.run([ssh, "-o", f"ControlPath={directory}/%C", "-O", "exit", *self._target_args()],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=15, check=False)
        shutil.rmtree(directory, ignore_errors=True)

    def _target_args(self) -> list[str]:
        args: list[str] = []
        if self.host.port:
            args += ["-p", str(self.host.port)]
        if self.host.user:
            args += ["-l", self.host.user]
        return args + ["--", self.host.host]

    def argv(self, script: str) -> list[str]:
        """``ssh`` + options + host + ``sh -c <script>`` (the script runs in a POSIX shell)."""
        ssh = shutil.which("ssh")
        if ssh is None:
            raise ConfigError("the OpenSSH client `ssh` is not installed",
                              hint="install it: sudo apt-get install openssh-client")
        argv = [ssh, "-T", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", f"ConnectTimeout={self.connect_timeout}", "-o", f"ServerAliveInterval={ALIVE_INTERVAL_S}",
                "-o", f"ServerAliveCountMax={ALIVE_COUNT_MAX}", "-o", "PasswordAuthentication=no",
                "-o", "KbdInteractiveAuthentication=no"]
        if self.known_hosts is not None:
            argv += ["-o", f"UserKnownHostsFile={_config_path(self.known_hosts)}"]
        if self.identity is not None:
            argv += ["-i", str(self.identity), "-o", "IdentitiesOnly=yes"]
        if self._control_dir is not None:
            argv += ["-o", "ControlMaster=auto", "-o", f"ControlPath={self._control_dir}/%C",
                     "-o", "ControlPersist=120"]
        return argv + self._target_args() + ["sh -c " + shlex.quote(script)]

    def run(self, script: str, *, timeout: float, stdin: Path | None = None, what: str,
            max_stdout: int = result.MAX_OUTPUT_BYTES) -> _Run:
        """Run ``script`` on the device; kill ssh when over ``timeout`` s or ``max_stdout`` bytes."""
        argv = self.argv(script)
        with tempfile.TemporaryDirectory(prefix="edgekit-ssh-") as tmp:
            out_path, err_path = Path(tmp) / "out", Path(tmp) / "err"
            with open(out_path, "wb") as out, open(err_path, "wb") as err, \
                    (open(stdin, "rb") if stdin else open(os.devnull, "rb")) as inp:
                try:
                    proc = subprocess.Popen(argv, stdin=inp, stdout=out, stderr=err, start_new_session=True)
                except OSError as exc:
                    raise DeviceError(f"cannot run ssh: {exc.strerror or exc}") from exc
                deadline = time.monotonic() + timeout
                try:
                    while True:
                        try:
                            proc.wait(0.2)
                            break
                        except subprocess.TimeoutExpired:
                            pass
                        if time.monotonic() > deadline:
                            self._kill(proc)
                            raise DeviceError(f"{self.host.display}: {what} timed out after {timeout:.0f} s; "
                                              "the connection was closed and nothing was recorded",
                                              hint="check the device (load, network), or lower --runs/--max-time")
                        if out_path.stat().st_size > max_stdout:
                            self._kill(proc)
                            raise DeviceError(f"{self.host.display}: {what}: the device sent more than "
                                              f"{max_stdout} bytes; nothing was recorded")
                except BaseException:
                    if proc.poll() is None:
                        self._kill(proc)
                    raise
            stdout = out_path.read_bytes()
            stderr = err_path.read_text("utf-8", errors="replace")
        return _Run(proc.returncode, stdout, stderr)

    @staticmethod
    def _kill(proc: subprocess.Popen) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            proc.kill()
        proc.wait(10)

    def connection_error(self, run: _Run, what: str, *, connected: bool = False) -> DeviceError:
        """Explain an ssh failure (exit 255) in one line with the fix.

        ``connected``: earlier steps reached the device, so a silent failure means a lost connection.
        """
        err = run.stderr
        flat = " ".join(err.split())
        kh = f" ({self.known_hosts})" if self.known_hosts else " (~/.ssh/known_hosts)"
        name = self.host.known_hosts_name
        port = f"-p {self.host.port} " if self.host.port else ""
        if "REMOTE HOST IDENTIFICATION HAS CHANGED" in err or "Host key for" in err and "has changed" in err:
            msg = (f"{self.host.display}: the device's host key has CHANGED since it was recorded{kh}; "
                   "refusing to connect (this can be a man-in-the-middle attack)")
            hint = (f"if the device was reinstalled, check its new fingerprint, then remove the old key with "
                    f"`ssh-keygen -R '{name}'" + (f" -f {self.known_hosts}" if self.known_hosts else "") + "` and add the new one")
        elif "Host key verification failed" in err or "host key is known" in err or "No matching host key" in err:
            msg = (f"{self.host.display}: the device's host key is not in known_hosts{kh}; "
                   "edgekit never accepts unknown host keys")
            hint = (f"check the fingerprint on the device, then add it: `ssh-keyscan {port}{self.host.host} >> "
                    f"{self.known_hosts or '~/.ssh/known_hosts'}`")
        elif "Permission denied" in err or "Too many authentication failures" in err:
            msg = f"{self.host.display}: authentication failed (the key was refused)"
            hint = ("pass --identity KEY with a key listed in the device's ~/.ssh/authorized_keys, or load one "
                    "into ssh-agent; password logins are off for batch runs")
        elif any(s in err for s in ("Could not resolve hostname", "Name or service not known",
                                    "Temporary failure in name resolution")):
            msg = f"{self.host.display}: unknown host name"
            hint = "check the spelling, or use the device's IP address"
        elif any(s in err for s in ("Connection refused", "No route to host", "Network is unreachable",
                                    "Connection timed out", "connect to host", "Operation timed out")):
            msg = f"{self.host.display}: cannot connect ({_last_line(err)})"
            hint = "check that the device is on, reachable from here, and runs an SSH server on that port"
        elif any(s in err for s in ("Timeout, server", "Connection closed", "Connection reset", "Broken pipe",
                                    "closed by remote host", "client_loop")) or (connected and not flat):
            msg = f"{self.host.display}: the connection was lost during {what}; nothing was recorded"
            hint = "check the device's power and network, then run again"
        else:
            msg = f"{self.host.display}: ssh failed during {what}: {flat[-200:] or 'no message'}"
            hint = "run the same `ssh` by hand to see what is wrong"
        exc = DeviceError(msg, hint=hint)
        exc.child_traceback = err  # type: ignore[attr-defined]
        return exc

    def checked(self, script: str, *, timeout: float, what: str, stdin: Path | None = None,
                max_stdout: int = result.MAX_OUTPUT_BYTES) -> _Run:
        """:meth:`run` that raises unless the remote command exited 0."""
        run = self.run(script, timeout=timeout, stdin=stdin, what=what, max_stdout=max_stdout)
        if run.returncode == 255:
            raise self.connection_error(run, what)
        if run.returncode != 0:
            raise DeviceError(f"{self.host.display}: {what} failed (exit {run.returncode}): "
                              f"{_last_line(run.stderr) or 'no message'}",
                              hint="check free space and permissions in the device's temporary folder")
        return run


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""


def _upload_timeout(path: Path) -> float:
    return 60.0 + path.stat().st_size / 200_000.0  # at least ~200 kB/s


class RemoteRun:
    """Copy, run, fetch, clean up: one benchmark on one device."""

    def __init__(self, session: SshSession, *, remote_python: str = "python3") -> None:
        if not remote_python or "\n" in remote_python or "\0" in remote_python:
            raise ConfigError(f"--remote-python {remote_python!r}: expected a path or command name")
        self.session = session
        self.remote_python = remote_python
        self.remote_dir: str | None = None

    def _make_dir_with_harness(self) -> str:
        script = ('umask 077 && d=$(mktemp -d "${TMPDIR:-/tmp}/edgekit.XXXXXXXXXX") && '
                  'cat > "$d/harness.py" && printf "%s\\n" "$d"')
        run = self.session.checked(script, timeout=_upload_timeout(HARNESS_FILE), stdin=HARNESS_FILE,
                                   what="creating a private folder (mktemp -d) and copying the harness",
                                   max_stdout=4096)
        text = run.stdout.decode("utf-8", errors="replace").strip()
        if not _REMOTE_DIR_RE.match(text):
            raise DeviceError(f"{self.session.host.display}: mktemp returned an unexpected folder {text[:120]!r}",
                              hint="set TMPDIR on the device to a plain path such as /tmp")
        return text

    def _remote(self, name: str) -> str:
        assert self.remote_dir is not None
        return f"{self.remote_dir}/{name}"

    def upload(self, local: Path, name: str) -> None:
        self.session.checked(f"cat > {shlex.quote(self._remote(name))}", timeout=_upload_timeout(local),
                             stdin=local, what=f"copying {name}")

    def cleanup(self) -> None:
        if self.remote_dir is None:
            return
        try:
            self.session.run(f"rm -rf -- {shlex.quote(self.remote_dir)}", timeout=30, what="cleaning up")
        except EdgekitError:
            pass  # best effort: the folder is private and in the device's temp dir
        self.remote_dir = None

    def benchmark(self, model: Path, options: HarnessOptions, *, compare: Path | None = None,
                  inputs: Path | None = None, dump_outputs: Path | None = None) -> list[dict[str, Any]]:
        """Run the harness on the device; return validated documents."""
        self.session.open()
        try:
            self.remote_dir = self._make_dir_with_harness()
            self.upload(model, "model.tflite")
            remote_compare = remote_inputs = remote_dump = None
            if compare is not None:
                self.upload(compare, "other.tflite")
                remote_compare = "other.tflite"
            if inputs is not None:
                remote_inputs = "inputs" + inputs.suffix.lower()
                self.upload(inputs, remote_inputs)
            if dump_outputs is not None:
                remote_dump = "outputs.npz"
            args = options.args(model="model.tflite", source="measured-device", compare=remote_compare,
                                inputs=remote_inputs, dump_outputs=remote_dump)
            command = " ".join(shlex.quote(a) for a in [self.remote_python, "harness.py", *args])
            script = (f"cd {shlex.quote(self.remote_dir)} || exit 97\n{command}\nrc=$?\n"
                      f'echo "{STATUS_MARK}$rc" >&2\nexit 0\n')
            run = self.session.run(script, timeout=options.time_limit(models=2 if compare else 1),
                                   what="the benchmark")
            rename = {"model.tflite": str(model)}
            if compare is not None:
                rename["other.tflite"] = str(compare)
            if inputs is not None and remote_inputs:
                rename[remote_inputs] = str(inputs)
            docs = self._interpret(run, model, compare is not None, rename)
            if dump_outputs is not None:
                fetched = self.session.checked(f"cat {shlex.quote(self._remote(remote_dump or ''))}", timeout=300,
                                               what="fetching the outputs", max_stdout=MAX_FETCH_BYTES)
                _check_npz(fetched.stdout, self.session.host.display)
                atomic_write_bytes(dump_outputs, fetched.stdout)
                for doc in docs:
                    if isinstance(doc.get("dump"), dict):
                        doc["dump"]["file"] = str(dump_outputs)
            return docs
        finally:
            try:
                self.cleanup()
            finally:
                self.session.close()

    def _interpret(self, run: _Run, model: Path, compare: bool, rename: dict[str, str]) -> list[dict[str, Any]]:
        where = self.session.where
        stderr = run.stderr
        marks = re.findall(rf"^{STATUS_MARK}(\d+)\s*$", stderr, flags=re.M)
        if run.returncode == 255 and not marks:
            raise self.session.connection_error(run, "the benchmark", connected=True)
        if run.returncode == 97:
            raise DeviceError(f"{self.session.host.display}: the private folder vanished before the run",
                              hint="something on the device cleans its temporary folder; set TMPDIR")
        if not marks:
            raise DeviceError(f"{where}: the remote shell ended without a status (exit {run.returncode}): "
                              f"{_last_line(stderr) or 'no message'}", hint="nothing was recorded")
        status = int(marks[-1])
        clean_err = re.sub(rf"^{STATUS_MARK}\d+\s*$", "", stderr, flags=re.M)
        stdout = run.stdout.decode("utf-8", errors="replace")
        if status == 127:
            raise DeviceError(f"{self.session.host.display}: the remote Python {self.remote_python!r} was not found "
                              f"({_last_line(clean_err)})",
                              hint="install Python 3 with numpy and a LiteRT runtime on the device: "
                                   "`sudo apt install python3 python3-venv`, then `python3 -m pip install "
                                   "ai-edge-litert` or `python3 -m pip install 'numpy<2' tflite-runtime`; "
                                   "or pass --remote-python PATH")
        if status == 126:
            raise DeviceError(f"{self.session.host.display}: the remote Python {self.remote_python!r} is not "
                              f"executable ({_last_line(clean_err)})", hint="pass --remote-python PATH of a Python 3")
        if status == 1 and "SyntaxError" in clean_err:
            raise DeviceError(f"{self.session.host.display}: the remote Python {self.remote_python!r} is too old "
                              "for the harness", hint="the harness needs Python >= 3.9; pass --remote-python PATH")
        if status != 0:
            raise result.failure(status, stdout, clean_err, where=where, model=str(model), rename=rename)
        return result.parse_docs(stdout, where=where, with_samples=True, compare=compare)


def _check_npz(data: bytes, display: str) -> None:
    """The fetched outputs must be a plain .npz (a zip of .npy files, no pickles)."""
    import io
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = zf.namelist()
    except zipfile.BadZipFile as exc:
        raise DeviceError(f"{display}: the outputs file from the device is not an .npz archive") from exc
    if not names or any(not re.fullmatch(r"(input|output)_[0-9]+\.npy", n) for n in names):
        raise DeviceError(f"{display}: the outputs file from the device holds unexpected members: {names[:5]}")


def check_ssh_files(*, identity: Path | None, known_hosts: Path | None) -> None:
    """Fail early (exit 2) on key files that do not exist."""
    if identity is not None and not identity.is_file():
        raise ConfigError(f"--identity {identity}: no such file", hint="pass the private key file, e.g. ~/.ssh/id_ed25519")
    if known_hosts is not None and not known_hosts.is_file():
        raise ConfigError(f"--known-hosts {known_hosts}: no such file",
                          hint="create it after checking the device's fingerprint: ssh-keyscan HOST > FILE")


def run_hosts(hosts: Sequence[SshHost], model: Path, options: HarnessOptions, *, identity: Path | None = None,
              known_hosts: Path | None = None, remote_python: str = "python3", compare: Path | None = None,
              inputs: Path | None = None, dump_outputs: Path | None = None,
              connect_timeout: int = CONNECT_TIMEOUT_S) -> list[tuple[SshHost, list[dict[str, Any]] | EdgekitError]]:
    """Benchmark on several devices in parallel; one (host, documents-or-error) pair per host, in order."""
    check_ssh_files(identity=identity, known_hosts=known_hosts)

    def one(host: SshHost) -> list[dict[str, Any]] | EdgekitError:
        session = SshSession(host, identity=identity, known_hosts=known_hosts, connect_timeout=connect_timeout)
        try:
            docs = RemoteRun(session, remote_python=remote_python).benchmark(
                model, options, compare=compare, inputs=inputs, dump_outputs=dump_outputs)
        except EdgekitError as exc:
            return exc
        for doc in docs:
            doc["host"] = host.display
        return docs

    if len(hosts) == 1:
        return [(hosts[0], one(hosts[0]))]
    with ThreadPoolExecutor(max_workers=min(len(hosts), 16)) as pool:
        outcomes = list(pool.map(one, hosts))
    return list(zip(hosts, outcomes))
