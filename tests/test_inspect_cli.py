"""``edgekit targets list|show`` and ``edgekit inspect``: JSON contract, readable output, bad input -> exit 2."""
from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from edgekit.analysis.fbbuild import ModelSpec, OpSpec, TensorSpec, build_model
from edgekit.analysis.schema import builtin_codes
from edgekit.cli import main
from edgekit.targets import TARGETS_PATH_ENV

from test_analysis import build_test_models, sine_model_path

ROOT = Path(__file__).resolve().parents[1]
EDGEKIT = str(Path(sys.executable).with_name("edgekit"))
BUILTINS = {"rpi-zero2w", "rpi3", "rpi4", "rpi5", "android-mid", "android-flagship", "android-flagship-gpu",
            "cortex-m4", "cortex-m7", "esp32-s3"}
TARGET_KEYS = {"compatible", "unsupported_ops", "latency_ms", "latency_source", "fits"}


@pytest.fixture(scope="session")
def models(artifacts_dir) -> dict[str, Path]:
    return build_test_models(artifacts_dir)


def run(*args: str, env: dict | None = None):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _assert_exit_2(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    err = result.stderr
    assert err.startswith("error: ") and "Traceback" not in result.output
    assert len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err


# ------------------------------------------------------------------------------------------------
# targets
# ------------------------------------------------------------------------------------------------
def test_targets_list_json_has_builtins_with_family_and_description(monkeypatch):
    monkeypatch.delenv(TARGETS_PATH_ENV, raising=False)
    doc = _json(run("targets", "list", "--json"))
    by_name = {d["name"]: d for d in doc}
    assert BUILTINS <= set(by_name)
    for d in doc:
        assert d["family"] in ("mobile", "iot", "raspberry-pi") and d["description"]
    assert all(by_name[n]["builtin"] for n in BUILTINS)


def test_targets_list_table_and_show_yaml_are_readable():
    out = run("targets", "list")
    assert out.exit_code == 0 and "cortex-m4" in out.stdout and "raspberry-pi" in out.stdout
    show = run("targets", "show", "rpi4")
    assert show.exit_code == 0 and "cortex-a72" in show.stdout and "macs_per_cycle" in show.stdout


def test_targets_show_json_is_the_whole_profile():
    doc = _json(run("targets", "show", "rpi5", "--json"))
    assert doc["schema_version"] == 1 and doc["name"] == "rpi5" and doc["qemu_cpu"] == "cortex-a76"
    assert doc["hardware"]["cores"] == 4 and doc["default_recipe"]["quantize"] == "int8"
    assert doc["source"].endswith("rpi5.yaml")


def test_targets_show_unknown_suggests_closest():
    _assert_exit_2(run("targets", "show", "esp32s3"), "unknown target 'esp32s3'", "did you mean 'esp32-s3'")


def test_targets_show_accepts_a_profile_path_and_names_typos(tmp_path):
    data = yaml.safe_load((ROOT / "targets" / "cortex-m7.yaml").read_text())
    data["name"] = "board"
    good = tmp_path / "board.yaml"
    good.write_text(yaml.safe_dump(data))
    assert _json(run("targets", "show", str(good), "--json"))["name"] == "board"
    data["budgets"]["max_arena_byte"] = data["budgets"].pop("max_arena_bytes")
    bad = tmp_path / "typo.yaml"
    bad.write_text(yaml.safe_dump(data))
    _assert_exit_2(run("targets", "show", str(bad)), str(bad), "budgets.max_arena_byte", "max_arena_bytes")


def test_targets_commands_have_help():
    for args in (["targets", "--help"], ["targets", "list", "--help"], ["targets", "show", "--help"],
                 ["inspect", "--help"]):
        result = run(*args)
        assert result.exit_code == 0 and "Usage" in result.stdout


# ------------------------------------------------------------------------------------------------
# inspect
# ------------------------------------------------------------------------------------------------
@pytest.mark.tf
def test_inspect_json_contract_on_int8_model(models):
    doc = _json(run("inspect", str(models["int8"]), "--target", "rpi4", "--target", "cortex-m4", "--json"))
    assert doc["schema_version"] == 1
    for key in ("size_bytes", "ops", "macs", "arena_bytes", "arena_source", "inputs", "outputs", "targets"):
        assert key in doc
    assert doc["size_bytes"] == models["int8"].stat().st_size and doc["macs"] > 0
    assert all(set(op) >= {"name", "version", "count"} for op in doc["ops"])
    assert doc["arena_source"] == "tflite-micro" and doc["arena_bytes"] > 0
    (inp,) = doc["inputs"]
    assert set(inp) >= {"name", "shape", "dtype", "scale", "zero_point"} and inp["dtype"] == "int8"
    assert set(doc["targets"]) == {"rpi4", "cortex-m4"}
    for t in doc["targets"].values():
        assert TARGET_KEYS <= set(t) and t["latency_source"] == "estimated"
        assert t["compatible"] is True and set(t["fits"]) == {"flash", "ram"}
    m4 = doc["targets"]["cortex-m4"]
    assert m4["arena_bytes"] == doc["arena_bytes"] and m4["arena_source"] == "tflite-micro"


@pytest.mark.tf
def test_inspect_threads_option_changes_the_estimate(models):
    one = _json(run("inspect", str(models["float32"]), "--target", "rpi4", "--threads", "1", "--json"))
    four = _json(run("inspect", str(models["float32"]), "--target", "rpi4", "--json"))
    assert one["targets"]["rpi4"]["threads"] == 1 and four["targets"]["rpi4"]["threads"] == 4
    assert one["targets"]["rpi4"]["latency_ms"] > four["targets"]["rpi4"]["latency_ms"]
    assert run("inspect", str(models["float32"]), "--threads", "0").exit_code == 2


@pytest.mark.tf
def test_inspect_custom_op_model_reports_per_target(models):
    doc = _json(run("inspect", str(models["custom"]), "--json"))
    assert BUILTINS <= set(doc["targets"])  # default: every target
    assert doc["custom_ops"] == ["BesselI1e"]
    assert all("BesselI1e" in t["unsupported_ops"] for t in doc["targets"].values())
    assert doc["arena_source"] == "greedy-estimate" and "CUSTOM" in doc["arena_detail"]["tflm_error"]


@pytest.mark.tf
def test_inspect_readable_table(models):
    result = run("inspect", str(models["topk"]), "--target", "android-flagship-gpu", "--target", "cortex-m4")
    assert result.exit_code == 0, result.output
    text = result.stdout
    for needle in ("TOPK_V2", "android-flagship-gpu", "cortex-m4", "cpu-fallback", "unsupported", "estimate"):
        assert needle in text, needle


def test_inspect_model_from_installed_package():
    doc = _json(run("inspect", str(sine_model_path()), "--target", "cortex-m4", "--target", "rpi3", "--json"))
    assert doc["macs"] == 288 and doc["arena_source"] == "tflite-micro"
    assert doc["arena_detail"]["greedy_planned_bytes"] == doc["arena_detail"]["tflm_planned_bytes"]
    assert doc["targets"]["rpi3"]["compatible"] is True
    assert doc["targets"]["cortex-m4"]["compatible"] is False  # float model on an int8-only MCU


@pytest.mark.tf
def test_inspect_model_produced_by_edgekit(tiny_tflite_int8):
    doc = _json(run("inspect", str(tiny_tflite_int8), "--target", "cortex-m4", "--target", "rpi4", "--json"))
    assert doc["quantization"] == "int8" and doc["targets"]["cortex-m4"]["compatible"] is True
    assert doc["targets"]["cortex-m4"]["fits"] == {"flash": True, "ram": True}
    assert doc["arena_detail"]["greedy_planned_bytes"] == doc["arena_detail"]["tflm_planned_bytes"]


def test_inspect_survives_a_model_that_crashes_tflite_micro(tmp_path):
    path = tmp_path / "while.tflite"
    path.write_bytes(build_model(ModelSpec(tensors=[TensorSpec([1, 4]), TensorSpec([1, 4])],
                                           ops=[OpSpec(code=builtin_codes()["WHILE"], inputs=[0], outputs=[1])])))  # no options
    doc = _json(run("inspect", str(path), "--target", "cortex-m4", "--json"))
    assert doc["arena_source"] == "greedy-estimate" and "SIGSEGV" in doc["arena_detail"]["tflm_error"]


# ------------------------------------------------------------------------------------------------
# bad input: exit 2, one line, never a crash
# ------------------------------------------------------------------------------------------------
def _bad_models(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    sine = sine_model_path().read_bytes()
    cases = {
        "random": (bytes(random.Random(3).randrange(256) for _ in range(2048)), "not a TFLite model"),
        "empty": (b"", "only 0 bytes"),
        "truncated": (sine[: len(sine) // 2], "sine"),
        "wrong_identifier": (sine[:4] + b"XXXX" + sine[8:], "file identifier"),
        "unknown_op": (build_model(ModelSpec(tensors=[TensorSpec([1, 4]), TensorSpec([1, 4])],
                                             ops=[OpSpec(code=250, inputs=[0], outputs=[1])])), "builtin op number 250"),
    }
    out = {}
    for name, (data, needle) in cases.items():
        path = tmp_path / f"{'sine' if name == 'truncated' else name}.tflite"
        path.write_bytes(data)
        out[name] = (path, needle)
    return out


@pytest.mark.parametrize("case", ["random", "empty", "truncated", "wrong_identifier", "unknown_op"])
def test_inspect_bad_model_exits_2(tmp_path, case):
    path, needle = _bad_models(tmp_path)[case]
    _assert_exit_2(run("inspect", str(path), "--target", "rpi4"), str(path), needle)


def test_inspect_missing_file_directory_and_unknown_target_exit_2(tmp_path):
    _assert_exit_2(run("inspect", str(tmp_path / "nope.tflite")), "does not exist")
    _assert_exit_2(run("inspect", str(tmp_path)), "is a directory")
    _assert_exit_2(run("inspect", str(sine_model_path()), "--target", "rpi-zero"),
                   "unknown target 'rpi-zero'", "did you mean 'rpi-zero2w'")


@pytest.mark.parametrize("edit,needle", [
    (lambda d: d["hardware"].update(ram_bytes=-512), "hardware.ram_bytes"),
    (lambda d: d.update(familly="iot"), "unknown field 'familly'"),
])
def test_inspect_bad_profile_file_exits_2(tmp_path, edit, needle):
    data = yaml.safe_load((ROOT / "targets" / "cortex-m4.yaml").read_text())
    data["name"] = "board"
    edit(data)
    profile = tmp_path / "board.yaml"
    profile.write_text(yaml.safe_dump(data))
    _assert_exit_2(run("inspect", str(sine_model_path()), "--target", str(profile)), str(profile), needle)


def test_inspect_console_script_exit_codes(tmp_path):
    """The installed ``edgekit`` script: garbage -> exit 2 with one line; a good model -> 0."""
    bad = tmp_path / "garbage.tflite"
    bad.write_bytes(b"\x00\x01" * 500)
    proc = subprocess.run([EDGEKIT, "inspect", str(bad)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    proc = subprocess.run([EDGEKIT, "inspect", str(sine_model_path()), "--target", "rpi4", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["targets"]["rpi4"]["latency_source"] == "estimated"
