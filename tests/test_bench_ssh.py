"""`edgekit benchmark --host` against a real OpenSSH server on loopback, running the harness in a
device-like venv (numpy<2 + tflite-runtime 2.14 only). No mocked SSH or interpreter."""
from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.bench.ssh import SshHost, parse_host
from edgekit.cli import main
from edgekit.errors import ChildCrash, ConfigError, DeviceError, ModelError
from sshd import Sshd, cmdline, find_processes, free_port, keygen, numpy_only_python, \
    wait_for

pytestmark = pytest.mark.skipif(not shutil.which("ssh") or not os.path.exists("/usr/sbin/sshd"),
                                reason="needs openssh-server + openssh-client (scripts/install-system-deps.sh)")


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    server = Sshd(tmp_path_factory.mktemp("sshd")).start()
    yield server
    server.stop()


@pytest.fixture()
def remote(sshd, device_python) -> dict:
    return dict(hosts=[sshd.spec], identity=sshd.user_key, known_hosts=sshd.known_hosts,
                remote_python=str(device_python), runs=20, warmup=2, min_time=0.0)


def remote_dirs() -> set[str]:
    return set(glob.glob("/tmp/edgekit.??????????"))


def _benchmark(**kw):
    from edgekit.api import benchmark

    return benchmark(**kw)


def test_ssh_benchmark_runs_in_device_venv_and_cleans_up(remote, tiny_tflite_int8, sshd):
    before = remote_dirs()
    doc = _benchmark(model=tiny_tflite_int8, **remote)
    assert doc["source"] == "measured-device" and doc["host"] == sshd.spec
    assert doc["runtime"] == "tflite_runtime" and doc["runtime_version"] == "2.14.0"
    assert doc["model"]["path"] == str(tiny_tflite_int8) and doc["runs"] == 20
    assert doc["latency_ms"]["p50"] > 0 and doc["device"]["cpu_model"]
    assert remote_dirs() == before  # the private folder on the device is gone
    assert not glob.glob("/tmp/edgekit-mux-*")  # no control socket folder left behind here


def test_ssh_hostile_file_names_are_never_interpreted(remote, tmp_path, tiny_tflite_int8, tiny_tflite_float32):
    tag = uuid.uuid4().hex[:8]
    markers = [f"ek_pwn_{tag}_{i}" for i in range(4)]
    hostile = (f"-rf $(cd ..; touch {markers[0]}) ;cd ..;touch {markers[1]}; `cd ..; touch {markers[2]}`"
               f" 'x\" $HOME & touch {markers[3]}")
    folder = tmp_path / "in"
    folder.mkdir()
    model = folder / f"{hostile}.tflite"
    other = folder / f"{hostile} other.tflite"
    inputs = folder / f"{hostile}.npz"
    shutil.copyfile(tiny_tflite_int8, model)
    shutil.copyfile(tiny_tflite_float32, other)
    np.savez(inputs, x=np.random.default_rng(0).random((2, 8, 8, 1), dtype=np.float32))
    doc = _benchmark(model=model, compare=other, inputs=inputs, **remote)
    assert doc["model"]["path"] == str(model) and doc["compare"]["model"]["path"] == str(other)
    assert doc["inputs"][0]["source"] == "file" and doc["compare"]["runs"] == doc["runs"]
    for place in (Path("/tmp"), Path.home(), folder, Path.cwd()):
        for marker in markers:
            assert not (place / marker).exists(), f"injected command ran: {place / marker}"


def test_ssh_dump_outputs_are_fetched_and_match_a_local_run(remote, tmp_path, tiny_tflite_int8, digits_npz,
                                                            device_python):
    np.savez(tmp_path / "x.npz", x=np.load(digits_npz)["x_test"][:5])
    via_ssh = tmp_path / "ssh.npz"
    doc = _benchmark(model=tiny_tflite_int8, inputs=tmp_path / "x.npz", dump_outputs=via_ssh, **remote)
    assert doc["dump"]["file"] == str(via_ssh)
    local = tmp_path / "local.npz"
    _benchmark(model=tiny_tflite_int8, inputs=tmp_path / "x.npz", dump_outputs=local, python=str(device_python),
               runs=5, warmup=0, min_time=0.0)
    with np.load(via_ssh) as a, np.load(local) as b:
        assert a["output_0"].shape == (5, 10)
        assert np.array_equal(a["output_0"], b["output_0"])  # same runtime, same inputs: identical


def test_ssh_unknown_host_key_is_refused_not_added(remote, tmp_path, tiny_tflite_int8):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(DeviceError) as info:
        _benchmark(model=tiny_tflite_int8, **{**remote, "known_hosts": empty})
    assert info.value.exit_code == 3
    assert "not in known_hosts" in str(info.value) and "never accepts unknown host keys" in str(info.value)
    assert "ssh-keyscan" in str(info.value)
    assert empty.read_text() == ""  # never auto-accepted


def test_ssh_changed_host_key_is_refused(remote, tmp_path, tiny_tflite_int8, sshd):
    impostor = keygen(tmp_path / "impostor")
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {' '.join(impostor.split()[:2])}\n")
    with pytest.raises(DeviceError) as info:
        _benchmark(model=tiny_tflite_int8, **{**remote, "known_hosts": known})
    assert "CHANGED" in str(info.value) and "ssh-keygen -R" in str(info.value)


def test_ssh_wrong_key_is_an_authentication_error(remote, tiny_tflite_int8, sshd):
    with pytest.raises(DeviceError, match="authentication failed") as info:
        _benchmark(model=tiny_tflite_int8, **{**remote, "identity": sshd.other_key})
    assert "--identity" in str(info.value)


def test_ssh_unreachable_host_fails_fast(remote, tiny_tflite_int8):
    start = time.monotonic()
    with pytest.raises(DeviceError, match="cannot connect") as info:
        _benchmark(model=tiny_tflite_int8, **{**remote, "hosts": [f"127.0.0.1:{free_port()}"]})
    assert info.value.exit_code == 3 and time.monotonic() - start < 30


def test_ssh_missing_remote_python_says_what_to_install(remote, tiny_tflite_int8):
    with pytest.raises(DeviceError) as info:
        _benchmark(model=tiny_tflite_int8, **{**remote, "remote_python": "/nonexistent/bin/python3"})
    text = str(info.value)
    assert "was not found" in text and "pip install" in text and "--remote-python" in text


def test_ssh_missing_runtime_on_device_says_what_to_install(remote, tmp_path_factory, tiny_tflite_int8):
    py = numpy_only_python(tmp_path_factory.getbasetemp())
    with pytest.raises(DeviceError) as info:
        _benchmark(model=tiny_tflite_int8, **{**remote, "remote_python": str(py)})
    text = str(info.value)
    assert info.value.exit_code == 3 and "no usable LiteRT runtime" in text and "pip install ai-edge-litert" in text


def test_ssh_op_missing_on_device_runtime_names_op_and_user_file(remote, bench_models):
    with pytest.raises(ModelError) as info:
        _benchmark(model=bench_models["small_dynamic"], **remote)
    text = str(info.value)
    assert info.value.exit_code == 2 and "FULLY_CONNECTED version 12" in text
    assert str(bench_models["small_dynamic"]) in text  # the user's file, not edgekit's remote name


@pytest.mark.parametrize("payload,words", [
    ("echo '<html>proxy error</html>'", "not valid JSON"),
    ("""echo '{"schema_version": 1, "runtime": "tflite_runtime", "runtime_version": "2", "machine": "x", """
     """"source": "measured-device", "threads": 1, "runs": 3, "init_ms": 1, "peak_rss_mb": 5, """
     """"latency_ms": {"min": 1, "p50": "fast", "p90": 1, "p99": 1, "mean": 1, "std": 0}}'""", "latency_ms.p50"),
])
def test_ssh_malicious_device_output_is_an_error(remote, tmp_path, tiny_tflite_int8, payload, words):
    fake = tmp_path / "fake-python"
    fake.write_text(f"#!/bin/sh\n{payload}\n")
    fake.chmod(0o755)
    with pytest.raises(DeviceError) as info:
        _benchmark(model=tiny_tflite_int8, **{**remote, "remote_python": str(fake)})
    assert words in str(info.value) and info.value.exit_code == 3


def test_ssh_fleet_runs_hosts_in_parallel(remote, tiny_tflite_int8, sshd):
    second = f"127.0.0.1:{sshd.port}"
    docs = _benchmark(model=tiny_tflite_int8, threads="1,2", **{**remote, "hosts": [sshd.spec, second]})
    assert [(d["host"], d["threads"]) for d in docs] == [(sshd.spec, 1), (sshd.spec, 2), (second, 1), (second, 2)]
    assert all(d["source"] == "measured-device" for d in docs)


def test_cli_fleet_with_one_dead_device_reports_the_others_and_exits_3(remote, tiny_tflite_int8, sshd):
    dead = f"root@127.0.0.1:{free_port()}"
    res = CliRunner().invoke(main, [
        "benchmark", str(tiny_tflite_int8), "--host", sshd.spec, "--host", dead, "--identity", str(sshd.user_key),
        "--known-hosts", str(sshd.known_hosts), "--remote-python", remote["remote_python"], "--runs", "20",
        "--warmup", "2", "--min-time", "0", "--json"])
    assert res.exit_code == 3
    docs = json.loads(res.stdout)
    assert [d["host"] for d in docs] == [sshd.spec]
    assert "1 of 2 devices failed" in res.stderr and dead in res.stderr


def test_cli_ssh_json_and_table(remote, tiny_tflite_int8, sshd):
    common = ["benchmark", str(tiny_tflite_int8), "--host", sshd.spec, "--identity", str(sshd.user_key),
              "--known-hosts", str(sshd.known_hosts), "--remote-python", remote["remote_python"], "--runs", "20",
              "--warmup", "2", "--min-time", "0"]
    res = CliRunner().invoke(main, [*common, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["source"] == "measured-device"
    table = CliRunner().invoke(main, common)
    assert table.exit_code == 0 and sshd.spec in table.output and "measured-device" in table.output


def _long_remote_run(remote, model):
    """Start a long benchmark in a thread; return (thread, outcome dict)."""
    import threading

    outcome: dict = {}

    def target():
        try:
            outcome["doc"] = _benchmark(model=model, **{**remote, "runs": 20000, "min_time": 60.0,
                                                         "max_time": 60.0})
        except Exception as exc:  # noqa: BLE001 - inspected by the test
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


def _remote_harness_pid() -> int | None:
    pids = [p for p in find_processes("harness.py", "model.tflite", "measured-device")
            if "sh" not in os.path.basename((cmdline(p) or [""])[0])]
    return pids[0] if pids else None


def test_ssh_harness_killed_on_device_is_exit_3(remote, bench_models):
    before = remote_dirs()
    thread, outcome = _long_remote_run(remote, bench_models["big_f32"])
    pid = wait_for(lambda: _remote_harness_pid() or not thread.is_alive(), timeout=60)
    assert pid and pid is not True, f"the remote harness never started: {outcome}"
    time.sleep(0.3)
    os.kill(pid, signal.SIGKILL)  # what the out-of-memory killer does on a small board
    thread.join(60)
    err = outcome.get("error")
    assert isinstance(err, ChildCrash) and "SIGKILL" in str(err) and "no result was recorded" in str(err)
    assert remote_dirs() == before


def test_ssh_connection_lost_mid_run_is_exit_3(remote, bench_models):
    before = remote_dirs()
    thread, outcome = _long_remote_run(remote, bench_models["big_f32"])
    pid = wait_for(lambda: _remote_harness_pid() or not thread.is_alive(), timeout=60)
    assert pid and pid is not True, f"the remote harness never started: {outcome}"
    shell = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
    session = int(open(f"/proc/{shell}/stat").read().rsplit(")", 1)[1].split()[1])
    assert "sshd" in " ".join(cmdline(session))
    try:
        os.kill(session, signal.SIGKILL)  # the device's side of the connection disappears
        thread.join(90)
    finally:
        for p in (pid, shell):
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
    err = outcome.get("error")
    assert isinstance(err, DeviceError) and err.exit_code == 3, outcome
    assert "connection was lost" in str(err)
    assert "doc" not in outcome
    assert wait_for(lambda: remote_dirs() == before, timeout=10)


@pytest.mark.parametrize("spec,expected", [
    ("pi@raspberrypi.local", SshHost("raspberrypi.local", "pi", None)),
    ("192.168.1.20:2222", SshHost("192.168.1.20", None, 2222)),
    ("pi@[fe80::1]:22", SshHost("fe80::1", "pi", 22)),
    ("my-alias", SshHost("my-alias", None, None)),
])
def test_ssh_host_spec_parses(spec, expected):
    assert parse_host(spec) == expected


@pytest.mark.parametrize("spec", ["-oProxyCommand=x", "pi@-host", "a b", "h;rm", "h:70000", "h:", "@h", "$(x)", ""])
def test_ssh_host_spec_rejects_option_and_shell_lookalikes(spec):
    with pytest.raises(ConfigError):
        parse_host(spec)


def test_ssh_missing_key_files_are_config_errors(remote, tmp_path, tiny_tflite_int8):
    with pytest.raises(ConfigError, match="--identity"):
        _benchmark(model=tiny_tflite_int8, **{**remote, "identity": tmp_path / "nokey"})
    with pytest.raises(ConfigError, match="--known-hosts"):
        _benchmark(model=tiny_tflite_int8, **{**remote, "known_hosts": tmp_path / "nofile"})
