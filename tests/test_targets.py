"""Target profiles: built-ins, validation errors, user profiles, schema and packaged copy (no TensorFlow)."""
from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from edgekit.errors import ConfigError
from edgekit.targets import (DEFAULT_TARGET, TARGETS_PATH_ENV, list_targets, load_target, parse_size, schema_text,
                             target_from_dict, target_summary)

ROOT = Path(__file__).resolve().parents[1]
CONTRACT_NAMES = {"rpi-zero2w": "raspberry-pi", "rpi3": "raspberry-pi", "rpi4": "raspberry-pi", "rpi5": "raspberry-pi",
                  "android-mid": "mobile", "android-flagship": "mobile", "android-flagship-gpu": "mobile",
                  "cortex-m4": "iot", "cortex-m7": "iot", "esp32-s3": "iot"}


def _profile(name: str = "rpi4") -> dict:
    return yaml.safe_load((ROOT / "targets" / f"{name}.yaml").read_text())


def _write(dir_: Path, name: str, data: dict) -> Path:
    path = dir_ / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_targets_every_builtin_validates_with_contract_name_and_family(monkeypatch):
    monkeypatch.delenv(TARGETS_PATH_ENV, raising=False)
    targets = {t.name: t for t in list_targets()}
    assert set(CONTRACT_NAMES) <= set(targets)
    for name, family in CONTRACT_NAMES.items():
        t = targets[name]
        assert t.family == family
        assert t.description and t.hardware.ram_bytes > 0 and t.hardware.flash_bytes > 0
        assert 1 <= t.threads <= t.hardware.cores
        assert t.estimator.kernels and t.estimator.method
    assert DEFAULT_TARGET == "rpi4" and load_target(DEFAULT_TARGET).name == "rpi4"


def test_targets_raspberry_pi_qemu_cpus_and_thread_defaults():
    expected = {"rpi-zero2w": "cortex-a53", "rpi3": "cortex-a53", "rpi4": "cortex-a72", "rpi5": "cortex-a76"}
    for name, cpu in expected.items():
        t = load_target(name)
        assert t.qemu_cpu == cpu
        assert t.threads == 4  # all big cores
    assert load_target("cortex-m4").threads == 1
    assert load_target("android-mid").threads == load_target("android-mid").hardware.big_cores


@pytest.mark.parametrize("name,quantize,io_dtype,qat,prune", [
    ("cortex-m4", "int8", "int8", True, 0.5), ("cortex-m7", "int8", "int8", True, 0.5),
    ("esp32-s3", "int8", "int8", True, 0.5), ("rpi4", "int8", "float32", True, 0.5),
    ("rpi-zero2w", "int8", "float32", True, 0.5), ("android-mid", "int8", "float32", False, 0.0),
    ("android-flagship-gpu", "float16", "float32", False, 0.0),
])
def test_targets_default_recipes_per_family(name, quantize, io_dtype, qat, prune):
    recipe = load_target(name).default_recipe
    assert (recipe.quantize, recipe.io_dtype, recipe.qat, recipe.prune) == (quantize, io_dtype, qat, prune)
    assert set(recipe.model_dump()) == {"quantize", "io_dtype", "qat", "prune", "structured", "clusters", "epochs"}


def test_targets_mcu_profiles_require_int8_and_run_tflite_micro():
    for name in ("cortex-m4", "cortex-m7", "esp32-s3"):
        t = load_target(name)
        assert t.runtime.name == "tflite-micro" and t.runtime.required_quantization == "int8"
    assert "gpu" in load_target("android-flagship-gpu").runtime.delegates


def test_targets_unknown_name_suggests_the_closest():
    with pytest.raises(ConfigError) as err:
        load_target("rpi44")
    assert "unknown target 'rpi44'" in str(err.value) and "did you mean 'rpi4'" in str(err.value)
    with pytest.raises(ConfigError, match="did you mean 'cortex-m4'"):
        load_target("cortex_m4")


def test_targets_typo_field_names_file_and_field(tmp_path):
    data = _profile()
    data["hardware"]["ram_byts"] = data["hardware"].pop("ram_bytes")
    path = _write(tmp_path, "mypi", {**data, "name": "mypi"})
    with pytest.raises(ConfigError) as err:
        load_target(str(path))
    msg = str(err.value)
    assert str(path) in msg and "hardware.ram_byts" in msg and "did you mean 'ram_bytes'" in msg
    assert "\n" not in msg


def test_targets_top_level_typo_is_named(tmp_path):
    data = {**_profile(), "name": "x", "thread": 2}
    with pytest.raises(ConfigError, match=r"unknown field 'thread'.*did you mean 'threads'"):
        load_target(str(_write(tmp_path, "x", data)))


@pytest.mark.parametrize("value", [-1, "-4 GiB", 0])
def test_targets_negative_or_zero_ram_rejected(tmp_path, value):
    data = _profile()
    data["hardware"]["ram_bytes"] = value
    path = _write(tmp_path, "neg", {**data, "name": "neg"})
    with pytest.raises(ConfigError) as err:
        load_target(str(path))
    assert "hardware.ram_bytes" in str(err.value) and str(path) in str(err.value)


def test_targets_bad_yaml_and_non_mapping_are_config_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_target(str(bad))
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        load_target(str(lst))
    with pytest.raises(ConfigError, match="does not exist"):
        load_target(str(tmp_path / "missing.yaml"))


def test_targets_inconsistent_values_rejected():
    data = _profile()
    data["threads"] = 16
    with pytest.raises(ConfigError, match="threads"):
        target_from_dict(data, source="t.yaml")
    data = _profile("cortex-m4")
    data["threads"] = 2
    data["hardware"]["cores"] = 2
    with pytest.raises(ConfigError, match="tflite-micro runs on one thread"):
        target_from_dict(data, source="t.yaml")


def test_targets_size_strings_are_parsed():
    assert parse_size("512 KiB") == 512 * 1024
    assert parse_size("4GiB") == 4 * 1024**3
    assert parse_size("1.5 MB") == 1_500_000
    assert parse_size(1234) == 1234
    with pytest.raises(ValueError, match="not a size"):
        parse_size("lots")
    assert load_target("cortex-m4").hardware.ram_bytes == 640 * 1024


def test_targets_env_path_adds_and_shadows_profiles(tmp_path, monkeypatch):
    user = tmp_path / "profiles"
    user.mkdir()
    custom = {**_profile(), "name": "my-board", "description": "my board"}
    _write(user, "my-board", custom)
    _write(user, "rpi4", {**_profile(), "description": "shadowed rpi4"})
    monkeypatch.setenv(TARGETS_PATH_ENV, os.pathsep.join([str(user), str(tmp_path / "absent-but-empty-ok")]))
    (tmp_path / "absent-but-empty-ok").mkdir()
    names = [t.name for t in list_targets()]
    assert "my-board" in names and names.count("rpi4") == 1
    assert load_target("my-board").description == "my board"
    assert load_target("rpi4").description == "shadowed rpi4"
    assert target_summary(load_target("my-board"))["builtin"] is False
    monkeypatch.setenv(TARGETS_PATH_ENV, str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="not a directory"):
        list_targets()


def test_targets_file_name_must_match_profile_name(tmp_path, monkeypatch):
    _write(tmp_path, "board-a", {**_profile(), "name": "board-b"})
    monkeypatch.setenv(TARGETS_PATH_ENV, str(tmp_path))
    with pytest.raises(ConfigError, match="field 'name' is 'board-b'"):
        load_target("board-a")


def test_targets_schema_json_is_regenerated_and_identical():
    expected = schema_text()
    assert (ROOT / "targets" / "schema.json").read_text() == expected, \
        "targets/schema.json is stale: run `python -m edgekit.targets sync`"
    assert (ROOT / "edgekit" / "targets_data" / "schema.json").read_text() == expected
    assert '"ram_bytes"' in expected and '"additionalProperties": false' in expected


def test_targets_packaged_copy_matches_top_level_profiles():
    top = {p.name: p.read_bytes() for p in (ROOT / "targets").glob("*.yaml")}
    packaged = {p.name: p.read_bytes() for p in (ROOT / "edgekit" / "targets_data").glob("*.yaml")}
    assert top == packaged, "edgekit/targets_data/ differs from targets/: run `python -m edgekit.targets sync`"


def test_targets_package_data_globs_cover_the_data_files():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = cfg["tool"]["setuptools"]["package-data"]["edgekit"]
    pkg = ROOT / "edgekit"
    needed = [*pkg.glob("targets_data/*"), *pkg.glob("analysis/op_tables/*")]
    assert needed
    for path in needed:
        assert any(path.match(str(pkg / g)) for g in globs), f"{path} is not shipped in the wheel"


def test_targets_and_tables_work_from_a_non_editable_install(tmp_path):
    """Build a wheel, install it into a folder and load profiles / op tables from there."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        (src / name).write_bytes((ROOT / name).read_bytes())
    subprocess.run(["cp", "-r", str(ROOT / "edgekit"), str(src / "edgekit")], check=True)
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(src),
                    "-w", str(wheels)], check=True, capture_output=True, timeout=300)
    site = tmp_path / "site"
    wheel = next(wheels.glob("edgekit-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    code = ("import edgekit, edgekit.targets as t, edgekit.analysis.optables as o; "
            "assert edgekit.__file__.startswith(%r), edgekit.__file__; "
            "print(len(t.list_targets()), len(o.load_table('litert')['builtin']))" % str(site))
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(site)})
    assert out.returncode == 0, out.stderr[-2000:]
    n_targets, n_ops = map(int, out.stdout.split())
    assert n_targets >= 10 and n_ops > 100
