"""Unit tests of the CI gate: baseline file parsing, tolerances, checks, JUnit / Markdown / annotations.

No TensorFlow and no interpreter: the checks are pure functions of numbers, the baseline is JSON.
End-to-end runs with real models live in ``test_check_cli.py``.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner
from junitparser import Error, Failure, JUnitXml, Skipped

from edgekit.baseline import (
    DEFAULT_TOLERANCES, Baseline, Tolerances, load_baseline, resolve_tolerances, save_baseline,
)
from edgekit.cli import main
from edgekit.errors import ConfigError
from edgekit.gate import (
    accuracy_check, arena_check, budget_checks, emulation_check, github_annotations, junit_xml, latency_check,
    markdown_summary, size_check, write_ci_outputs,
)

SHA = "a" * 64


def _baseline_doc(**over) -> dict:
    doc = {
        "schema_version": 1, "kind": "edgekit-baseline", "created": "2025-01-01T00:00:00Z",
        "model": {"path": "m.tflite", "sha256": SHA, "size_bytes": 1000, "gzip_bytes": 800, "quantization": "int8"},
        "data": {"spec": "d.npz", "split": "test", "fingerprint": "b" * 64, "samples": 100,
                 "task": "classification", "num_classes": 10},
        "metrics": {"accuracy": 0.9, "macro_f1": 0.88},
        "arena": {"bytes": 4096, "source": "tflite-micro"}, "latency": None, "target": None,
        "tolerances": dict(DEFAULT_TOLERANCES), "versions": {"edgekit": "0.1.0"},
    }
    doc.update(over)
    return doc


def _write(tmp_path: Path, content: str | bytes, name: str = "baseline.json") -> Path:
    p = tmp_path / name
    p.write_bytes(content.encode() if isinstance(content, str) else content)
    return p


# ------------------------------------------------------------------------------------ baseline file


def test_baseline_roundtrip_is_small_readable_json(tmp_path):
    b = Baseline.model_validate(_baseline_doc())
    path = save_baseline(tmp_path / "b.json", b)
    text = path.read_text()
    assert text.endswith("\n") and '\n  "schema_version": 1,' in text  # indented, one key per line
    assert len(text) < 2000
    assert load_baseline(path) == b
    assert not list(tmp_path.glob(".b.json.*"))  # atomic write left no temp file


@pytest.mark.parametrize("content, needle", [
    ("", "not valid JSON"),
    ("{not json", "not valid JSON"),
    (b"\xff\xfe\x00garbage", "not UTF-8"),
    ("[1, 2, 3]", "not an edgekit baseline"),
    ('{"name": "my-package", "version": "1.0.0"}', "not an edgekit baseline"),
    ('{"kind": "other-tool", "schema_version": 1}', "not an edgekit baseline"),
])
def test_load_baseline_corrupt_or_foreign_is_config_error(tmp_path, content, needle):
    with pytest.raises(ConfigError, match=needle) as info:
        load_baseline(_write(tmp_path, content))
    assert info.value.exit_code == 2
    assert "\n" not in str(info.value)


def test_load_baseline_missing_names_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="does not exist.*--update-baseline"):
        load_baseline(tmp_path / "nope.json")


def test_load_baseline_newer_schema_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="schema_version 2"):
        load_baseline(_write(tmp_path, json.dumps(_baseline_doc(schema_version=2))))


@pytest.mark.parametrize("mutate, needle", [
    (lambda d: d["metrics"].update(accuracy=float("nan")), "non-finite number NaN"),
    (lambda d: d["metrics"].update(accuracy=1e400), "non-finite number Infinity"),
    (lambda d: d["model"].update(size_bytes=-5), "model.size_bytes"),
    (lambda d: d["model"].update(sha256="xyz"), "model.sha256"),
    (lambda d: d["data"].update(samples=0), "data.samples"),
    (lambda d: d["tolerances"].update(max_size_growth=-0.1), "tolerances.max_size_growth"),
    (lambda d: d["tolerances"].update(max_acuracy_drop=0.1), "tolerances.max_acuracy_drop"),
    (lambda d: d.pop("metrics"), "field metrics"),
    (lambda d: d.update(metrics={}), "at least one metric"),
])
def test_load_baseline_bad_field_names_the_field(tmp_path, mutate, needle):
    doc = _baseline_doc()
    mutate(doc)
    text = json.dumps(doc)  # json.dumps writes NaN / Infinity tokens, which the loader must refuse
    with pytest.raises(ConfigError, match=needle):
        load_baseline(_write(tmp_path, text))


def test_load_baseline_oversized_file_is_refused(tmp_path):
    p = _write(tmp_path, "{" + " " * (1 << 20) + "}")
    with pytest.raises(ConfigError, match="expected a small JSON file"):
        load_baseline(p)


def test_resolve_tolerances_precedence_defaults_then_stored_then_flags():
    assert resolve_tolerances(task="classification").max_accuracy_drop == 0.01
    reg = resolve_tolerances(task="regression")
    assert reg.relative is True
    stored = Tolerances(max_accuracy_drop=0.03, max_size_growth=0.2)
    t = resolve_tolerances(task="classification", stored=stored, max_size_growth=0.5, relative=None)
    assert (t.max_accuracy_drop, t.max_size_growth, t.relative) == (0.03, 0.5, False)


@pytest.mark.parametrize("value", [-0.1, float("nan"), float("inf")])
def test_resolve_tolerances_rejects_bad_flag(value):
    with pytest.raises(ConfigError, match="--max-size-growth"):
        resolve_tolerances(task="classification", max_size_growth=value)


# ------------------------------------------------------------------------------------ checks


def test_accuracy_check_absolute_and_relative():
    tol = Tolerances(max_accuracy_drop=0.02)
    ok = accuracy_check("classification", {"accuracy": 0.90}, {"accuracy": 0.88}, tol)
    assert ok.status == "passed" and ok.limit == pytest.approx(0.88)  # exactly at the limit passes
    bad = accuracy_check("classification", {"accuracy": 0.90}, {"accuracy": 0.8799}, tol, hint="conv1 loses 20 dB")
    assert bad.status == "failed" and bad.value == pytest.approx(0.8799)
    assert "minimum 0.8800" in bad.message and "conv1 loses 20 dB" in bad.message
    rel = Tolerances(max_accuracy_drop=0.10, relative=True)
    assert accuracy_check("classification", {"accuracy": 0.5}, {"accuracy": 0.451}, rel).status == "passed"
    assert accuracy_check("classification", {"accuracy": 0.5}, {"accuracy": 0.449}, rel).status == "failed"


def test_accuracy_check_regression_gates_rmse_growth():
    tol = Tolerances(max_accuracy_drop=0.1, relative=True)
    assert accuracy_check("regression", {"rmse": 2.0}, {"rmse": 2.19}, tol).status == "passed"
    res = accuracy_check("regression", {"rmse": 2.0}, {"rmse": 2.21}, tol)
    assert res.status == "failed" and res.op == "<=" and res.limit == pytest.approx(2.2)


def test_size_and_arena_checks():
    tol = Tolerances(max_size_growth=0.05, max_arena_growth=0.0)
    assert size_check(1000, 1050, tol).status == "passed"
    big = size_check(1000, 4000, tol)
    assert big.status == "failed" and big.limit == 1050 and "+300.0%" in big.message
    assert arena_check(4096, 4097, tol).status == "failed"
    skipped = arena_check(4096, None, tol, reason="TFLM cannot load it")
    assert skipped.status == "skipped" and skipped.passed is None and "TFLM cannot load it" in skipped.message
    assert arena_check(None, 4096, tol).status == "skipped"


def test_latency_check_never_fails_on_noise_never_passes_missing():
    tol = Tolerances(max_latency_regression=0.10)
    missing = latency_check(None, tol)
    assert missing.status == "skipped" and "not measured" in missing.message and "--reference-model" in missing.message
    noisy = latency_check({"ratio": 1.5, "ci_low": 0.9, "ci_high": 2.1, "significant": False}, tol)
    assert noisy.status == "passed" and "no significant difference" in noisy.message
    wide = latency_check({"ratio": 1.2, "ci_low": 1.05, "ci_high": 1.4, "significant": True}, tol)
    assert wide.status == "passed" and "not failed on noise" in wide.message
    slow = latency_check({"ratio": 1.3, "ci_low": 1.2, "ci_high": 1.4, "significant": True, "p_value": 1e-6,
                          "candidate_p50_ms": 1.3, "reference_p50_ms": 1.0}, tol)
    assert slow.status == "failed" and slow.value == pytest.approx(1.3) and slow.limit == pytest.approx(1.1)
    assert "1.3 ms vs 1 ms" in slow.message
    faster = latency_check({"ratio": 0.7, "ci_low": 0.6, "ci_high": 0.8, "significant": True}, tol)
    assert faster.status == "passed"


def test_emulation_and_budget_checks():
    assert emulation_check({"verdict": "within_1_lsb", "max_diff": 1.0, "unit": "lsb"}).status == "passed"
    assert emulation_check({"verdict": "different", "max_diff": 7.0, "unit": "lsb"}).status == "failed"
    float_out = {"verdict": "different", "cpu": "cortex-a72", "samples": 8, "inputs_identical": True,
                 "outputs": [{"verdict": "different", "max_diff": 3.0, "unit": "ulp", "float_close": True}]}
    res = emulation_check(float_out)
    assert res.status == "passed" and "cortex-a72" in res.message and "within tolerance" in res.message
    float_out["outputs"][0]["float_close"] = False
    assert emulation_check(float_out).status == "failed"
    assert emulation_check(None).status == "skipped"

    class B:  # a target-like object: only the attributes budget_checks reads
        max_model_bytes, max_arena_bytes = 2000, 1000

    class T:
        name, budgets = "cortex-m4", B()

    res = {c.name: c for c in budget_checks(T(), 1500, 1200)}
    assert res["target_model_size"].status == "passed" and res["target_arena"].status == "failed"
    assert budget_checks(T(), 1500, None)[1].status == "skipped"


# ------------------------------------------------------------------------------------ CI outputs


def _report(tmp_path: Path) -> dict:
    tol = Tolerances()
    checks = [
        accuracy_check("classification", {"accuracy": 0.9}, {"accuracy": 0.6}, tol, hint="a|b <tag> & 'q'"),
        size_check(1000, 1010, tol),
        arena_check(4096, None, tol, reason="planner failed"),
        latency_check(None, tol),
    ]
    return {"model": {"path": "models/m,1.tflite", "sha256": SHA}, "baseline": {"path": "b.json"},
            "data": {"spec": "d.npz", "samples": 100}, "checks": [c.to_dict() for c in checks],
            "notes": ["data changed"], "versions": {"edgekit": "0.1.0"}, "seconds": 1.5, "passed": False,
            "layers": {"worst": [{"name": "seq/conv;x", "op": "CONV_2D", "sqnr_db": 12.5, "sqnr_drop_db": 20.1}]}}


def test_junit_xml_parses_with_junitparser_one_case_per_check(tmp_path):
    path = tmp_path / "out" / "junit.xml"
    write_ci_outputs(_report(tmp_path), junit=path)
    xml = JUnitXml.fromfile(str(path))
    suites = list(xml)
    assert len(suites) == 1
    suite = suites[0]
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (4, 1, 0, 2)
    cases = {c.name: c for c in suite}
    assert set(cases) == {"accuracy", "model_size", "arena", "latency"}
    fail = [r for r in cases["accuracy"].result if isinstance(r, Failure)][0]
    assert "0.6000 < minimum 0.8900" in fail.message and "a|b <tag> & 'q'" in fail.message
    assert "value: 0.6000" in fail.text and "limit: >= 0.8900" in fail.text
    assert cases["model_size"].is_passed
    assert any(isinstance(r, Skipped) for r in cases["latency"].result)
    assert {p.name: p.value for p in suite.properties()}["model.sha256"] == SHA
    # attributes the common (Jenkins/Ant) JUnit schema requires are present
    for attr in ("name", "tests", "failures", "errors", "time", "timestamp", "hostname"):
        assert suite._elem.get(attr) is not None, attr
    assert suite._elem.find("system-out") is not None and suite._elem.find("system-err") is not None


def test_junit_xml_error_case_for_bad_input(tmp_path):
    path = tmp_path / "j.xml"
    write_ci_outputs({"model": {"path": "m.tflite"}, "checks": []}, junit=path, error="baseline b.json is corrupt")
    suite = list(JUnitXml.fromfile(str(path)))[0]
    assert suite.errors == 1 and suite.tests == 1
    err = [r for c in suite for r in c.result if isinstance(r, Error)][0]
    assert err.message == "baseline b.json is corrupt"


def test_markdown_summary_appends_table_to_step_summary(tmp_path):
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    report = _report(tmp_path)
    write_ci_outputs(report, step_summary=summary)
    write_ci_outputs(report, step_summary=summary)
    text = summary.read_text()
    assert text.startswith("# earlier step\n")  # appended, never overwritten
    assert text.count("| check | status | value | limit | details |") == 2
    assert "❌ 1 of 4 checks failed" in text
    assert "| accuracy | ❌ failed | 0.6000 | >= 0.8900 |" in text
    assert "a\\|b" in text  # pipes in messages cannot break the table
    assert "⚪ not measured" in text and "`seq/conv`" in text


def test_github_annotations_escape_and_level():
    lines = github_annotations(_report(Path(".")))
    errors = [line for line in lines if line.startswith("::error ")]
    assert len(errors) == 1
    assert errors[0].startswith("::error file=models/m%2C1.tflite,title=edgekit check failed%3A accuracy::")
    assert sum(line.startswith("::notice ") for line in lines) == 2
    multi = github_annotations({"model": {"path": "m"}}, error="line1\nline2 100%")
    assert multi == ["::error file=m,title=edgekit check%3A bad input::line1%0Aline2 100%25"]


def test_markdown_summary_passing_report_says_passed():
    tol = Tolerances()
    report = {"model": {"path": "m.tflite"}, "checks": [size_check(10, 10, tol).to_dict(),
                                                        latency_check(None, tol).to_dict()]}
    assert "✅ passed (1 not measured)" in markdown_summary(report)
    assert junit_xml(report).count("<testcase ") == 2


# ------------------------------------------------------------------------------------ CLI, bad input


@pytest.mark.parametrize("content", ["{oops", '{"kind": "something-else"}', json.dumps(_baseline_doc(schema_version=7))])
def test_check_cli_bad_baseline_exits_2_with_junit_error(tmp_path, content):
    baseline = _write(tmp_path, content)
    model = _write(tmp_path, b"TFL3 not really a model", "m.tflite")
    junit = tmp_path / "junit.xml"
    summary = tmp_path / "summary.md"
    res = CliRunner().invoke(main, ["check", str(model), "--baseline", str(baseline), "--data", "builtin:digits",
                                    "--junit", str(junit)],
                             env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)})
    assert res.exit_code == 2, res.output
    assert "error: baseline" in res.output
    assert "::error file=" in res.output
    assert list(JUnitXml.fromfile(str(junit)))[0].errors == 1
    assert "❌ error" in summary.read_text()


def test_check_cli_missing_baseline_exits_2(tmp_path):
    model = _write(tmp_path, b"x", "m.tflite")
    res = CliRunner().invoke(main, ["check", str(model), "--baseline", str(tmp_path / "none.json"),
                                    "--data", "builtin:digits"], env={"GITHUB_ACTIONS": "false"})
    assert res.exit_code == 2
    assert "does not exist" in res.output and "--update-baseline" in res.output


def test_check_cli_latency_tolerance_without_measurement_is_usage_error(tmp_path):
    baseline = _write(tmp_path, json.dumps(_baseline_doc()))
    model = _write(tmp_path, b"x", "m.tflite")
    res = CliRunner().invoke(main, ["check", str(model), "--baseline", str(baseline), "--data", "builtin:digits",
                                    "--max-latency-regression", "0.1"])
    assert res.exit_code == 2 and "--reference-model" in res.output


def test_check_and_validate_have_help():
    for cmd in ("check", "validate"):
        res = CliRunner().invoke(main, [cmd, "--help"])
        assert res.exit_code == 0 and "--data" in res.output
    res = CliRunner().invoke(main, ["check", "--help"])
    for flag in ("--baseline", "--junit", "--update-baseline", "--allow-data-change", "--emulate", "--target",
                 "--max-accuracy-drop", "--relative", "--max-size-growth", "--max-arena-growth",
                 "--max-latency-regression", "--reference-model"):
        assert flag in res.output, flag


def test_math_isfinite_guard_on_tolerances():
    with pytest.raises(Exception):
        Tolerances(max_accuracy_drop=math.inf)


def test_example_workflow_runs_edgekit_check_on_pull_requests():
    import yaml

    root = Path(__file__).resolve().parents[1] / "examples" / "ci"
    doc = yaml.safe_load((root / "edgekit-check.yml").read_text())
    triggers = doc.get("on", doc.get(True))  # YAML 1.1 reads the key `on` as True
    assert "pull_request" in triggers
    steps = doc["jobs"]["check"]["steps"]
    gate = next(s for s in steps if "edgekit check" in s.get("run", ""))
    assert "--baseline" in gate["run"] and "--junit" in gate["run"] and "--data" in gate["run"]
    assert "edgekit check" in (root / "README.md").read_text()
