"""QEMU user-mode emulation of the Raspberry Pi's CPU + runtime: real QEMU, real aarch64 LiteRT.

The emulated environment (Debian arm64 Python 3.11 + the target's aarch64 wheels) is built once in
the user cache directory (about 30 s, needs network the first time) and reused by every later run;
``.ci/run`` installs ``qemu-user-static`` and runs ``edgekit emulator setup`` before the suite.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import edgekit.emulator as emulator
from edgekit.cli import main as cli_main
from edgekit.emulator_compare import compare_outputs, worst_verdict
from edgekit.emulator_qemu import cpu_view, fake_cpuinfo, find_qemu, require_qemu
from edgekit.emulator_rootfs import (ROOT_PACKAGES, PrivateApt, guest_sources, read_manifest, runtime_spec,
                                     unpack_wheels)
from edgekit.errors import ChildCrash, ConfigError, ModelError

PI_CPUS = {"rpi-zero2w": "cortex-a53", "rpi3": "cortex-a53", "rpi4": "cortex-a72", "rpi5": "cortex-a76"}


@pytest.fixture(scope="session")
def digits_x(digits_npz) -> np.ndarray:
    with np.load(digits_npz) as d:
        return d["x_test"][:200]


def _no_qemu_path(tmp_path: Path) -> str:
    """A PATH with apt/dpkg but without any qemu-aarch64 (simulates a machine without QEMU)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("apt-get", "apt-cache", "dpkg", "dpkg-deb"):
        found = shutil.which(tool)
        if found:
            (bindir / tool).symlink_to(found)
    return str(bindir)


# ---------------------------------------------------------------------------------------------
# pure logic: comparison verdicts, runtime mapping, target CPUs
# ---------------------------------------------------------------------------------------------
def test_compare_outputs_verdicts_for_quantized_outputs():
    host = np.array([[-100, 5, 7], [0, 0, 0], [10, 20, 30]], dtype=np.int8)
    details = {"name": "probs", "dtype": "int8", "scale": 0.5, "zero_point": -128}
    same = compare_outputs(host, host.copy(), output_details=details)
    assert same["verdict"] == "identical" and same["worst_inputs"] == [] and same["mismatched_samples"] == 0

    one = host.copy()
    one[2, 1] += 1
    r1 = compare_outputs(host, one, output_details=details)
    assert r1["verdict"] == "within_1_lsb" and r1["unit"] == "lsb"
    assert r1["max_diff"] == 1.0 and r1["max_abs_diff"] == 0.5
    assert r1["worst_inputs"] == [{"index": 2, "max_diff": 1.0, "max_abs_diff": 0.5}]

    far = host.copy()
    far[1, 0] -= 3
    far[2, 2] += 1
    r3 = compare_outputs(host, far, output_details={"name": "p", "dtype": "int8", "quantization": (0.5, -128)})
    assert r3["verdict"] == "different" and r3["max_diff"] == 3.0
    assert [w["index"] for w in r3["worst_inputs"]] == [1, 2]  # worst first
    assert r3["mismatched_samples"] == 2 and r3["argmax_agreement"] == pytest.approx(2 / 3)


def test_compare_outputs_float_outputs_use_a_relative_lsb():
    rng = np.random.default_rng(0)
    host = rng.random((50, 10)).astype(np.float32)
    few_ulp = host + np.spacing(host) * 3  # what Arm vs x86 float kernels typically differ by
    r = compare_outputs(host, few_ulp, output_details={"name": "y", "dtype": "float32", "scale": None})
    assert r["unit"] == "float_tol" and r["verdict"] == "within_1_lsb"
    assert r["max_ulp_diff"] == pytest.approx(3.0, abs=0.01) and r["mismatched_samples"] == 50
    off = host.copy()
    off[7, 3] += 0.01
    bad = compare_outputs(host, off, output_details={"name": "y", "dtype": "float32"})
    assert bad["verdict"] == "different" and bad["worst_inputs"][0]["index"] == 7
    nan = host.copy()
    nan[4, 0] = np.nan
    assert compare_outputs(host, nan, output_details={"dtype": "float32"})["verdict"] == "different"
    shape = compare_outputs(host, host[:, :5], output_details={"dtype": "float32"})
    assert shape["verdict"] == "different" and "shape" in shape["reason"]
    assert worst_verdict(["identical", "within_1_lsb"]) == "within_1_lsb"
    assert worst_verdict(["within_1_lsb", "different", "identical"]) == "different"


def test_runtime_spec_maps_target_runtimes_to_wheels():
    litert = runtime_spec("litert", "2.3")
    assert litert.package == "ai-edge-litert" and litert.requirements == ("ai-edge-litert==2.3.*", "numpy")
    assert litert.env_name == "aarch64-ai-edge-litert-2.3"
    legacy = runtime_spec("litert", "2.14")
    assert legacy.package == "tflite-runtime" and legacy.requirements == ("tflite-runtime==2.14.*", "numpy<2")
    pinned = runtime_spec("tflite-runtime==2.14.0", None)
    assert pinned.requirements[0] == "tflite-runtime==2.14.0" and pinned.module == "tflite_runtime"
    with pytest.raises(ConfigError, match="tflite-micro"):
        runtime_spec("tflite-micro", "1.0")
    with pytest.raises(ConfigError, match="unknown runtime"):
        runtime_spec("onnxruntime", "1.0")
    with pytest.raises(ConfigError, match="plain version"):
        runtime_spec("litert", "2.3; rm -rf /")


def test_target_cpu_is_the_real_pi_core_never_max(tmp_path):
    for name, cpu in PI_CPUS.items():
        assert emulator.target_cpu(name) == cpu
    with pytest.raises(ConfigError, match="cannot be emulated"):
        emulator.target_cpu("cortex-m4")
    with pytest.raises(ConfigError, match="qemu_cpu"):
        emulator.target_cpu("android-mid")
    import yaml

    profile = yaml.safe_load(Path(emulator.__file__).with_name("targets_data").joinpath("rpi4.yaml").read_text())
    profile.update(name="pi-max", qemu_cpu="max")
    path = tmp_path / "pi-max.yaml"
    path.write_text(yaml.safe_dump(profile))
    with pytest.raises(ConfigError, match="SME"):
        emulator.target_cpu(str(path))


def test_fake_cpuinfo_view_names_the_target_core(tmp_path):
    rootfs = tmp_path / "env" / "rootfs"
    (rootfs / "usr" / "bin").mkdir(parents=True)
    (rootfs / "lib").mkdir()
    view = cpu_view(tmp_path / "env", rootfs, "cortex-a53")
    text = (view / "proc" / "cpuinfo").read_text()
    assert "CPU part\t: 0xd03" in text and "CPU implementer\t: 0x41" in text
    assert os.readlink(view / "usr") == "../../rootfs/usr"  # relative: the cache can move
    assert (view / "usr" / "bin").is_dir()
    assert "0xd0b" in fake_cpuinfo("cortex-a76", count=1) and fake_cpuinfo("cortex-a72", count=3).count("processor") == 3
    with pytest.raises(ConfigError):
        cpu_view(tmp_path / "env", rootfs, "../../etc")


def test_broken_or_half_built_environment_is_not_trusted(tmp_path):
    env_dir = tmp_path / "aarch64-ai-edge-litert-2.3"
    (env_dir / "rootfs" / "usr" / "bin").mkdir(parents=True)
    assert read_manifest(env_dir) is None  # no manifest: an interrupted build
    (env_dir / "manifest.json").write_text("{not json")
    assert read_manifest(env_dir) is None
    (env_dir / "manifest.json").write_text(json.dumps({"schema_version": 1, "python": {"path": "usr/bin/python3.11"}}))
    assert read_manifest(env_dir) is None  # manifest but the interpreter is missing
    (env_dir / "rootfs" / "usr" / "bin" / "python3.11").write_bytes(b"\x7fELF")
    assert read_manifest(env_dir)["schema_version"] == 1


def test_unpack_wheels_refuses_path_traversal(tmp_path):
    import zipfile

    evil = tmp_path / "evil-1.0-py3-none-any.whl"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../../outside.py", "print('x')")
    with pytest.raises(Exception, match="unsafe member"):
        unpack_wheels([evil], tmp_path / "site")
    assert not (tmp_path / "outside.py").exists()


# ---------------------------------------------------------------------------------------------
# missing QEMU: clear error with the install command
# ---------------------------------------------------------------------------------------------
def test_missing_qemu_raises_config_error_with_install_command(tmp_path, monkeypatch):
    monkeypatch.delenv("EDGEKIT_QEMU", raising=False)
    monkeypatch.setenv("PATH", _no_qemu_path(tmp_path))
    assert find_qemu() is None
    with pytest.raises(ConfigError, match=r"apt-get install -y qemu-user-static") as info:
        emulator.run_harness(["model.tflite"], target="rpi4")
    assert info.value.exit_code == 2 and "qemu-aarch64 was not found" in str(info.value)
    monkeypatch.setenv("EDGEKIT_QEMU", str(tmp_path / "no-such-qemu"))
    with pytest.raises(ConfigError, match="EDGEKIT_QEMU"):
        require_qemu()


def test_doctor_cli_without_qemu_exits_1_and_prints_the_fix(tmp_path):
    env = {**os.environ, "PATH": _no_qemu_path(tmp_path)}
    env.pop("EDGEKIT_QEMU", None)
    proc = subprocess.run([str(Path(sys.executable).with_name("edgekit")), "emulator", "doctor", "--json"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ready"] is False
    qemu = next(c for c in doc["checks"] if c["name"] == "qemu-aarch64")
    assert qemu["ok"] is False and qemu["required"] and "apt-get install -y qemu-user-static" in qemu["fix"]


# ---------------------------------------------------------------------------------------------
# building the environment (once per cache) and the private apt configuration
# ---------------------------------------------------------------------------------------------
def _host_apt_state() -> str:
    h = hashlib.sha256()
    for path in (Path("/var/lib/dpkg/status"), Path("/etc/apt/sources.list")):
        if path.exists():
            h.update(path.read_bytes())
    for folder in (Path("/var/lib/apt/lists"), Path("/etc/apt/sources.list.d")):
        if folder.is_dir():
            h.update("\n".join(sorted(p.name for p in folder.iterdir())).encode())
    return h.hexdigest()


def test_private_apt_resolves_arm64_packages_without_touching_host_state(tmp_path):
    before = _host_apt_state()
    apt = PrivateApt(tmp_path / "apt", guest_sources())
    apt.update()
    packages = apt.resolve(ROOT_PACKAGES)
    assert {"python3.11-minimal", "libc6", "zlib1g", "libssl3", "libstdc++6"} <= set(packages)
    assert not any(p.startswith(("perl", "libperl", "dpkg", "tzdata")) for p in packages)
    lists = [p.name for p in (tmp_path / "apt" / "lists").iterdir()]
    assert any("binary-arm64" in name for name in lists) and not any("amd64" in name for name in lists)
    assert _host_apt_state() == before


def test_setup_builds_once_and_is_reused(emu_env):
    assert emu_env.runtime == "ai-edge-litert" and emu_env.runtime_version.startswith("2.3")
    assert emu_env.python_version.startswith("3.11.")
    with open(emu_env.python, "rb") as fh:
        header = fh.read(20)
    assert header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == 183  # EM_AARCH64
    manifest = emu_env.manifest
    assert manifest["guest"] == "debian-bookworm-arm64" and manifest["precompiled"] in (True, False)
    assert all(len(d["sha256"]) == 64 and d["arch"] in ("arm64", "all") for d in manifest["debs"])
    assert {w["name"] for w in manifest["wheels"]} >= {"ai-edge-litert", "numpy"}
    started = time.monotonic()
    again = emulator.setup(target="rpi5")  # same runtime + version as rpi4: the same environment
    assert again.built is False and again.root == emu_env.root
    assert time.monotonic() - started < 5
    assert not list(emu_env.root.parent.glob(f".tmp-{emu_env.name}-*"))  # no half-built leftovers


def test_cli_setup_and_doctor_report_the_cached_environment(emu_env):
    runner = CliRunner()
    res = runner.invoke(cli_main, ["emulator", "setup", "--target", "rpi4", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["built"] is False and doc["path"] == str(emu_env.root) and doc["runtime_version"] == emu_env.runtime_version
    res = runner.invoke(cli_main, ["emulator", "setup", "--target", "cortex-m4"])
    assert res.exit_code == 2 and "cannot be emulated" in res.output
    res = runner.invoke(cli_main, ["emulator", "doctor", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["ready"] is True
    by_name = {c["name"]: c for c in doc["checks"]}
    assert by_name["qemu-aarch64"]["ok"] and by_name["qemu cpu models"]["ok"]
    assert by_name["target rpi4"]["ok"] and emu_env.name in by_name["target rpi4"]["detail"]
    assert all(c["fix"] is None for c in doc["checks"] if c["ok"])
    text = runner.invoke(cli_main, ["emulator", "doctor"]).output
    assert "emulation ready" in text and "[     ok] qemu-aarch64" in text


# ---------------------------------------------------------------------------------------------
# real emulated runs
# ---------------------------------------------------------------------------------------------
@pytest.mark.tf
def test_run_harness_labels_results_emulated(emu_env, tiny_tflite_int8):
    doc = emulator.run_harness([str(tiny_tflite_int8), "--runs", "5", "--warmup", "0", "--min-time", "0"],
                               target="rpi4")
    assert doc["source"] == "emulated" and doc["machine"] == "aarch64"
    assert doc["runtime"] == "ai_edge_litert" and doc["runtime_version"] == emu_env.runtime_version
    assert doc["device"]["cpu_model"] == "ARM Cortex-A72"  # the guest saw the fake cpuinfo, not the host's
    assert doc["emulation"]["cpu"] == "cortex-a72" and doc["emulation"]["cpu_override"] is False
    assert any("NOT device timings" in note for note in doc["notes"])
    assert doc["runs"] >= 5 and doc["latency_ms"]["p50"] > 0


@pytest.mark.tf
@pytest.mark.parametrize("target", ["rpi3", "rpi4", "rpi5"])
def test_emulated_parity_matches_host_on_pi_cpus(emu_env, tiny_tflite_int8, digits_x, target):
    result = emulator.emulated_parity(tiny_tflite_int8, digits_x, target=target)
    assert result["cpu"] == PI_CPUS[target] and result["emulated"]["machine"] == "aarch64"
    assert result["samples"] == len(digits_x) and result["inputs_identical"] is True
    assert result["verdict"] in ("identical", "within_1_lsb"), result["outputs"]
    assert result["passed"] is True and result["source"] == "emulated"
    out = result["outputs"][0]
    assert out["unit"] == "lsb" and out["dtype"] == "int8" and out["argmax_agreement"] >= 0.99


@pytest.mark.tf
def test_emulated_parity_float_model_within_tolerance(emu_env, tiny_tflite_float32, digits_x):
    result = emulator.emulated_parity(tiny_tflite_float32, digits_x[:50], target="rpi4")
    out = result["outputs"][0]
    assert out["unit"] == "float_tol" and result["verdict"] in ("identical", "within_1_lsb"), out
    assert out["max_abs_diff"] < 1e-5


@pytest.mark.tf
def test_emulated_parity_detects_a_mismatched_cpu(emu_env, tiny_tflite_int8, digits_x):
    # QEMU's `max` CPU exposes SME; LiteRT's int8 kernels then compute wrong outputs. The comparison
    # must flag it instead of trusting it.
    result = emulator.emulated_parity(tiny_tflite_int8, digits_x, target="rpi4", cpu="max")
    assert result["verdict"] == "different" and result["passed"] is False
    assert result["emulated"]["cpu_override"] is True
    assert any("not representative" in note for note in result["notes"])
    assert result["worst_inputs"] and result["worst_inputs"][0]["max_diff"] > 1


def test_host_cpuinfo_leak_crashes_litert_and_is_reported(emu_env, tmp_path):
    """Without edgekit's per-CPU view, QEMU < 8.2 shows the guest the host's cpuinfo and LiteRT crashes."""
    qemu = require_qemu()
    if not qemu.leaks_host_cpuinfo or os.uname().machine not in ("x86_64", "amd64"):
        pytest.skip(f"QEMU {qemu.version} on {os.uname().machine} does not leak an x86 /proc/cpuinfo")
    code = ("from ai_edge_litert.interpreter import Interpreter\n"
            "import sys; Interpreter(model_content=open(sys.argv[1], 'rb').read()).allocate_tensors()\n")
    model = _tiny_tflite_bytes()
    path = tmp_path / "m.tflite"
    path.write_bytes(model)
    argv = [str(qemu.path), "-cpu", "cortex-a72", "-L", str(emu_env.rootfs), str(emu_env.python), "-c", code, str(path)]
    with pytest.raises(ChildCrash, match="SIG"):
        emulator._run_guest(argv, env=emulator._guest_environ(emu_env.site), timeout=120, what="leaky guest")
    view = cpu_view(emu_env.root, emu_env.rootfs, "cortex-a72")
    argv[4] = str(view)
    ok = emulator._run_guest(argv, env=emulator._guest_environ(emu_env.site), timeout=120, what="fixed guest")
    assert ok.returncode == 0, ok.stderr


def _tiny_tflite_bytes() -> bytes:
    """A real model without TensorFlow: the float32 sine model shipped inside the tflite-micro wheel."""
    import tflite_micro

    path = Path(tflite_micro.__file__).parent / "python" / "tflite_micro" / "sine_float.tflite"
    if not path.exists():
        found = list(Path(tflite_micro.__file__).parent.rglob("*.tflite"))
        if not found:
            pytest.skip("no .tflite shipped with tflite-micro")
        path = found[0]
    return path.read_bytes()


def test_emulated_run_of_a_corrupt_model_is_a_model_error(emu_env, tmp_path):
    model = _tiny_tflite_bytes()
    bad = tmp_path / "truncated.tflite"
    bad.write_bytes(model[: len(model) // 2])
    with pytest.raises(ModelError) as info:
        emulator.run_harness([str(bad), "--runs", "1", "--warmup", "0", "--min-time", "0"], target="rpi4")
    assert info.value.exit_code == 2 and "emulated rpi4 run" in str(info.value)


def test_emulated_run_timeout_is_a_child_crash(emu_env, tmp_path):
    path = tmp_path / "sine.tflite"
    path.write_bytes(_tiny_tflite_bytes())
    with pytest.raises(ChildCrash, match="timed out"):
        emulator.run_harness([str(path), "--runs", "1000000", "--max-runs", "1000000", "--min-time", "60",
                              "--max-time", "60"], target="rpi4", timeout=3)
