"""``edgekit report`` and the HTML of real ``edgekit compress`` runs (tiny digits CNN, real converter)."""
from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from _report_helpers import assert_self_contained, compress_run, load, svg_count, tiny_budget_target
from edgekit.cli import main
from edgekit.errors import DataError
from edgekit.report.facts import error_document


@pytest.fixture(scope="session")
def passing_run(tmp_path_factory, tiny_keras_model, digits_npz):
    """A real compress run that passes the rpi4 profile (accuracy-drop budget only)."""
    return compress_run(tmp_path_factory, "report-pass", tiny_keras_model, digits_npz, "rpi4", expect_rc=0)


@pytest.fixture(scope="session")
def failing_run(tmp_path_factory, tiny_keras_model, digits_npz):
    """A real compress run against a profile whose 4 KiB model-size budget no model meets (exit 1)."""
    target = tiny_budget_target(tmp_path_factory.mktemp("targets"))
    return compress_run(tmp_path_factory, "report-fail", tiny_keras_model, digits_npz, str(target), expect_rc=1,
                        quantize="float32")


def _text(root) -> str:
    body = next(el for el in root.iter() if el.tag == "body")
    return " ".join("".join(body.itertext()).split())


@pytest.mark.tf
def test_compress_report_html_of_a_real_run_is_complete(passing_run):
    report = load(passing_run / "report.json")
    html = (passing_run / "report.html").read_text(encoding="utf-8")
    root = assert_self_contained(html)
    assert root.find(".//section[@id='render-error']") is None
    assert svg_count(root) >= 2  # size/accuracy waterfall + accuracy-drop budget
    text = _text(root)
    assert "PASSED" in text and "rpi4" in text
    res = report["result"]
    assert f"{100 * res['accuracy']:.2f} %" in text and report["input"]["sha256"] in text and res["sha256"] in text
    assert "Per-layer sparsity: not measured — no pruning stage ran" in text  # --prune 0


@pytest.mark.tf
def test_compress_report_of_a_failed_run_says_why(failing_run):
    report = load(failing_run / "report.json")
    assert report["passed"] is False
    failed = [c for c in report["checks"] if not c["passed"]]
    assert "model_size" in [c["name"] for c in failed]
    root = assert_self_contained((failing_run / "report.html").read_text(encoding="utf-8"))
    why = "".join(next(el for el in root.iter() if el.get("class") == "why").itertext())
    assert "Why the verdict is FAILED" in why and "model_size" in why and "over the limit of 4.0 KiB" in why


@pytest.mark.tf
def test_report_cli_rerenders_html_and_markdown_from_json(passing_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(passing_run, run)
    before = (run / "report.json").read_bytes()
    original_html = (run / "report.html").read_text(encoding="utf-8")
    (run / "report.html").unlink()
    (run / "report.md").write_text("stale", encoding="utf-8")
    result = CliRunner().invoke(main, ["report", str(run)])
    assert result.exit_code == 0, result.output
    assert result.output.split() == [str(run / "report.html"), str(run / "report.md")]
    assert (run / "report.json").read_bytes() == before  # the source of truth is never rewritten
    assert (run / "report.html").read_text(encoding="utf-8") == original_html  # rendering is deterministic
    assert (run / "report.md").read_text(encoding="utf-8").startswith("# edgekit compress: PASSED")


@pytest.mark.tf
def test_report_cli_compares_several_runs_with_pareto_front(passing_run, failing_run, tmp_path):
    out = tmp_path / "compare.html"
    result = CliRunner().invoke(main, ["report", str(passing_run), str(failing_run), "--compare", str(out),
                                       "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.output == ""
    root = assert_self_contained(out.read_text(encoding="utf-8"))
    text = _text(root)
    assert "Compare compress runs" in text and "report-pass" in text and "report-fail" in text
    assert svg_count(root) >= 1 and "Pareto front" in text  # accuracy vs size (and vs latency when known)
    assert "int8" in text and "float32" in text


def test_report_cli_renders_other_documents_and_failed_runs(tmp_path):
    doc = error_document(DataError("calibration sample 3 of x.npz contains NaN or inf", hint="clean the data"),
                         kind="compress", stage="convert", partial={"target": "rpi4"})
    (tmp_path / "report.json").write_text(json.dumps(doc), encoding="utf-8")
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps([{"schema_version": 1, "runtime": "ai_edge_litert", "threads": t, "source":
                                  "measured-host", "latency_ms": {"min": 1, "p50": 2 / t, "p90": 3, "p99": 4}}
                                 for t in (1, 2)]), encoding="utf-8")
    result = CliRunner().invoke(main, ["report", str(tmp_path), str(bench)])
    assert result.exit_code == 0, result.output
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "Why this run failed" in html and "calibration sample 3 of x.npz contains NaN or inf" in html
    assert "stage convert" in (tmp_path / "report.md").read_text(encoding="utf-8")
    assert svg_count(assert_self_contained((tmp_path / "bench.html").read_text(encoding="utf-8"))) == 2


@pytest.mark.parametrize("content, message", [
    (None, "has no report.json"),
    ("{ not json", "is not valid JSON (line 1, column 3"),
    ("[1, 2]", "expected a report object or a list of benchmark results"),
    ('"text"', "expected a JSON object, got str"),
    ('{"schema_version": 99, "kind": "compress"}', "schema_version 99 was written by a newer edgekit"),
])
def test_report_cli_bad_input_exits_2_with_one_line(tmp_path, content, message):
    if content is not None:
        (tmp_path / "report.json").write_text(content, encoding="utf-8")
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert not (tmp_path / "report.html").exists()


def test_report_cli_missing_dir_and_help(tmp_path):
    result = CliRunner().invoke(main, ["report", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "does not exist" in result.output
    result = CliRunner().invoke(main, ["report", "--help"])
    assert result.exit_code == 0 and "Re-render report.html" in result.output
