"""Recipes: precedence (target < recipe file < flags), validation, "did you mean" (no TensorFlow)."""
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgekit.cli import main
from edgekit.errors import ConfigError
from edgekit.preflight import check_target
from edgekit.recipe import Recipe, describe, load_recipe, resolve_recipe
from edgekit.targets import load_target

RPI4 = {"quantize": "int8", "io_dtype": "float32", "qat": True, "prune": 0.5, "epochs": 2}


def _write(tmp_path, text, name="recipe.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_recipe_precedence_target_then_file_then_flags(tmp_path):
    path = _write(tmp_path, "prune: {sparsity: 0.6, schedule: constant}\ntrain: {epochs: 3, batch_size: 16}\n")
    r = resolve_recipe(target_name="rpi4", target_defaults=RPI4, recipe_path=path, flags={"epochs": 5})
    rec = r.recipe
    assert rec.stages == ["prune", "qat"]  # from the target
    assert rec.prune.sparsity == 0.6 and rec.prune.schedule == "constant"  # file beats target
    assert rec.train.epochs == 5 and rec.train.batch_size == 16  # flag beats file; file keeps the rest
    assert r.sources["train.epochs"] == "flags"
    assert r.sources["prune.sparsity"] == f"recipe {path}"
    assert r.sources["convert.quantize"] == "target rpi4"


def test_recipe_file_stages_replace_target_stages_and_flags_toggle(tmp_path):
    path = _write(tmp_path, "stages: [qat]\n")
    rec = resolve_recipe(target_defaults=RPI4, recipe_path=path).recipe
    assert rec.stages == ["qat"]
    rec = resolve_recipe(target_defaults=RPI4, recipe_path=path, flags={"clusters": 8, "qat": False}).recipe
    assert rec.stages == ["cluster"] and rec.cluster.clusters == 8


def test_recipe_prune_zero_disables_stage():
    rec = resolve_recipe(target_defaults=RPI4, flags={"prune": 0.0}).recipe
    assert rec.stages == ["qat"]
    assert "prune" not in describe(rec)[0]


def test_recipe_unknown_key_suggests_the_right_one(tmp_path):
    path = _write(tmp_path, "prune:\n  sparsty: 0.5\n")
    with pytest.raises(ConfigError) as exc:
        resolve_recipe(recipe_path=path)
    msg = str(exc.value)
    assert str(path) in msg and "unknown key 'prune.sparsty'" in msg and "did you mean 'prune.sparsity'" in msg
    with pytest.raises(ConfigError, match="did you mean 'train'"):
        load_recipe(_write(tmp_path, "trian: {epochs: 1}\n", "b.yaml"))


def test_recipe_unknown_stage_rejected(tmp_path):
    path = _write(tmp_path, "stages: [prune, qatt]\n")
    with pytest.raises(ConfigError) as exc:
        resolve_recipe(recipe_path=path)
    assert "unknown stage 'qatt'" in str(exc.value) and "did you mean 'qat'" in str(exc.value)
    assert exc.value.exit_code == 2


@pytest.mark.parametrize("bad", [1.0, 1.5, -0.1])
def test_recipe_sparsity_outside_unit_interval_rejected(bad, tmp_path):
    with pytest.raises(ConfigError, match="--prune"):
        resolve_recipe(flags={"prune": bad})
    with pytest.raises(ConfigError, match="prune.sparsity"):
        resolve_recipe(recipe_path=_write(tmp_path, f"stages: [prune]\nprune: {{sparsity: {bad}}}\n"))


@pytest.mark.parametrize("bad", ["2-4", "4:4", "0:4", "5:4", "a:b", "1:128"])
def test_recipe_structured_format_validated(bad):
    with pytest.raises(ConfigError, match="--structured"):
        resolve_recipe(flags={"structured": bad})


def test_recipe_structured_sets_sparsity_and_enables_prune():
    rec = resolve_recipe(flags={"structured": "3:4"}).recipe
    assert rec.stages == ["prune"] and rec.prune.m_by_n == (3, 4) and rec.prune.effective_sparsity == 0.75


def test_recipe_epochs_must_be_positive_when_training():
    with pytest.raises(ConfigError, match="at least 1 epoch"):
        resolve_recipe(flags={"prune": 0.5, "epochs": 0})
    assert resolve_recipe(flags={"prune": 0, "epochs": 0}).recipe.stages == []  # nothing trains: fine


def test_recipe_stage_order_and_duplicates(tmp_path):
    with pytest.raises(ConfigError, match="out of order"):
        load_recipe(_write(tmp_path, "stages: [qat, prune]\n"))
    with pytest.raises(ConfigError, match="twice"):
        load_recipe(_write(tmp_path, "stages: [prune, prune]\n", "b.yaml"))


def test_recipe_qat_requires_int8_but_gives_way_to_an_explicit_flag(tmp_path):
    with pytest.raises(ConfigError, match="qat trains for int8"):
        resolve_recipe(flags={"qat": True, "quantize": "float16"})
    r = resolve_recipe(target_name="rpi4", target_defaults=RPI4, flags={"quantize": "float16"})
    assert r.recipe.stages == ["prune"] and r.notes and "dropped" in r.notes[0]


def test_recipe_file_errors_are_one_line(tmp_path):
    for text, pattern in (("stages: [prune\n", "not valid YAML"), ("- prune\n", "must be a mapping")):
        with pytest.raises(ConfigError, match=pattern):
            resolve_recipe(recipe_path=_write(tmp_path, text))
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_recipe(recipe_path=tmp_path / "missing.yaml")


def test_recipe_stage_config_is_stable_and_json_able():
    a = Recipe.model_validate({"stages": ["prune", "qat"]})
    b = Recipe.model_validate({"stages": ["prune", "qat"], "prune": {"sparsity": 0.5}})
    assert a.stage_config("qat") == b.stage_config("qat")
    assert a.stage_config("qat")["after"] == ["prune"]


def test_check_target_refuses_unreachable_quantization():
    rec = resolve_recipe(flags={"quantize": "float16"}).recipe
    mcu = load_target("cortex-m4")
    with pytest.raises(ConfigError, match="cortex-m4"):
        check_target(rec, mcu)
    assert check_target(resolve_recipe(flags={"quantize": "int8"}).recipe, mcu) is not None


def test_recipe_cli_bad_inputs_exit_2_before_any_work(tmp_path):
    tf_loaded_before = "tensorflow" in sys.modules  # another test in this session may have imported it
    model = tmp_path / "m.keras"
    model.write_bytes(b"not read")
    recipe = _write(tmp_path, "stages: [prune, quantize]\n")
    runner = CliRunner()
    for args, text in (([f"--recipe={recipe}"], "unknown stage"), (["--prune", "1.0"], "--prune"),
                       (["--structured", "4:2"], "--structured")):
        res = runner.invoke(main, ["compress", str(model), *args, "-o", str(tmp_path / "out")])
        assert res.exit_code == 2, res.output
        assert text in res.output and "Traceback" not in res.output
    assert not (tmp_path / "out").exists()
    assert tf_loaded_before or "tensorflow" not in sys.modules  # these errors never start TensorFlow


def test_recipe_readme_example_is_valid(tmp_path):
    """The recipe shown in README.md is accepted as written."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    start = readme.index("# recipe.yaml")
    block = readme[start:readme.index("```", start)]
    path = tmp_path / "recipe.yaml"
    path.write_text(block)
    rec = resolve_recipe(target_name="rpi4", target_defaults=None, recipe_path=str(path), flags={}).recipe
    assert rec.stages == ["prune", "qat"] and rec.prune.sparsity == 0.5 and rec.prune.exclude == ["*_head*"]
