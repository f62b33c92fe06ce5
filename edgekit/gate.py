"""``edgekit check``: the CI regression gate, its tolerances and its CI outputs.

A candidate ``.tflite`` is evaluated on the same data as the committed baseline
(:mod:`edgekit.baseline`) and compared check by check:

========================  =================================================================
check                     fails when
========================  =================================================================
``accuracy`` / ``rmse``   the primary metric got worse by more than ``max_accuracy_drop``
                          (absolute, or a fraction of the baseline with ``relative``)
``model_size``            the ``.tflite`` grew by more than ``max_size_growth``
``arena``                 the tensor arena grew by more than ``max_arena_growth``
``latency``               an *interleaved* A/B run against the baseline model shows a
                          statistically significant slow-down beyond ``max_latency_regression``;
                          without one it is *skipped* ("not measured"), never passed
``arm_parity``            (``--emulate``) emulated device outputs differ from the host's
``target_*``              (``--target``) the model or arena exceeds the target's budget
========================  =================================================================

Bad input fails closed with exit 2 before any check runs: a missing, corrupt or foreign baseline, a
NaN metric, fewer samples than the baseline, data whose fingerprint differs from the baseline's
(unless ``allow_data_change``), a model whose bytes do not match a recorded sha256.

CI outputs: :func:`junit_xml` (one testcase per check; failures carry value, limit and message),
:func:`markdown_summary` (appended to ``$GITHUB_STEP_SUMMARY``) and :func:`github_annotations`
(``::error::`` workflow commands when ``GITHUB_ACTIONS=true``).
"""
from __future__ import annotations

import math
import os
import socket
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

from .baseline import (
    SCHEMA_VERSION, ArenaInfo, Baseline, DataInfo, LatencyInfo, ModelInfo, Tolerances, load_baseline,
    resolve_tolerances, save_baseline, utc_now,
)
from .errors import ConfigError, DataError, DeviceError, EdgekitError, ModelError
from .fsutil import atomic_write_text, gzip_size, sha256_file
from .validate import Evaluation, add_reference, describe_worst_layer, evaluate, primary_metric, run_emulation

Status = Literal["passed", "failed", "skipped"]
EPS = 1e-12  # float slack so that "exactly at the limit" passes

__all__ = [
    "CheckResult", "accuracy_check", "arena_check", "check", "github_annotations", "junit_xml", "latency_check",
    "markdown_summary", "size_check", "write_ci_outputs",
]


# ============================================================================================ checks


@dataclass(frozen=True)
class CheckResult:
    """One gate check.

    Attributes:
        name: short id (``accuracy``, ``model_size``, ``arena``, ``latency``, ...): the JUnit testcase.
        status: ``passed``, ``failed`` or ``skipped`` (not measured: never counted as a pass).
        value: the candidate's value (``None`` when not measured).
        limit: the threshold it is compared with (``None`` when not measured).
        op: how value must relate to limit: ``">="`` or ``"<="``.
        unit: ``""``, ``"B"``, ``"ms"``, ``"x"`` ...
        message: one readable sentence with the reason.
        details: extra numbers (baseline value, tolerance, CI bounds, ...).
    """

    name: str
    status: Status
    value: float | None
    limit: float | None
    op: str
    unit: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool | None:
        """True / False, or None when skipped."""
        return None if self.status == "skipped" else self.status == "passed"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["passed"] = self.passed
        return d


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if unit == "B":
        return f"{int(round(value)):,} B"
    if unit == "ms":
        return f"{value:.4g} ms"
    if unit == "x":
        return f"{value:.3f}x"
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:.6g}"


def accuracy_check(task: str, baseline_metrics: Mapping[str, float], metrics: Mapping[str, Any],
                   tol: Tolerances, *, hint: str | None = None) -> CheckResult:
    """Primary metric vs the baseline: accuracy may drop / RMSE may grow by ``max_accuracy_drop``."""
    name, higher_better = primary_metric(task)
    base = baseline_metrics.get(name)
    cur = metrics.get(name)
    if base is None or cur is None:
        raise ConfigError(f"metric {name} is missing from the {'baseline' if base is None else 'evaluation'}",
                          hint="re-create the baseline with --update-baseline")
    allowed = tol.max_accuracy_drop * abs(base) if tol.relative else tol.max_accuracy_drop
    limit = base - allowed if higher_better else base + allowed
    ok = cur >= limit - EPS if higher_better else cur <= limit + EPS
    kind = f"{tol.max_accuracy_drop:.2%} relative" if tol.relative else f"{tol.max_accuracy_drop:g} absolute"
    change = cur - base
    if ok:
        msg = f"{name} {_fmt(cur)} (baseline {_fmt(base)}, change {change:+.4f}, allowed {kind})"
    else:
        cmp = "<" if higher_better else ">"
        msg = (f"{name} {_fmt(cur)} {cmp} {'minimum' if higher_better else 'maximum'} {_fmt(limit)}: "
               f"baseline {_fmt(base)}, change {change:+.4f}, allowed {kind}")
        if hint:
            msg += f"; {hint}"
    return CheckResult(name, "passed" if ok else "failed", float(cur), float(limit), ">=" if higher_better else "<=",
                       "", msg, {"baseline": float(base), "tolerance": tol.max_accuracy_drop, "relative": tol.relative})


def _growth_check(name: str, what: str, base: int | None, cur: int | None, growth: float, *,
                  not_measured: str) -> CheckResult:
    if cur is None:
        return CheckResult(name, "skipped", None, None, "<=", "B", f"not measured: {what} unknown ({not_measured})")
    if base is None:
        return CheckResult(name, "skipped", float(cur), None, "<=", "B",
                           f"not measured: the baseline records no {what} (re-create it with --update-baseline)")
    limit = math.floor(base * (1.0 + growth))
    ok = cur <= limit
    pct = (cur - base) / base if base else 0.0
    msg = (f"{what} {_fmt(cur, 'B')} {'<=' if ok else '>'} limit {_fmt(limit, 'B')} "
           f"(baseline {_fmt(base, 'B')}, change {pct:+.1%}, allowed +{growth:.0%})")
    return CheckResult(name, "passed" if ok else "failed", float(cur), float(limit), "<=", "B", msg,
                       {"baseline": int(base), "tolerance": growth})


def size_check(base_bytes: int, cur_bytes: int, tol: Tolerances) -> CheckResult:
    """``.tflite`` size may grow by ``max_size_growth``."""
    return _growth_check("model_size", "model size", base_bytes, cur_bytes, tol.max_size_growth, not_measured="")


def arena_check(base_bytes: int | None, cur_bytes: int | None, tol: Tolerances, *, reason: str = "",
                base_source: str | None = None, cur_source: str | None = None) -> CheckResult:
    """Tensor arena may grow by ``max_arena_growth``; skipped when either side is unknown."""
    res = _growth_check("arena", "tensor arena", base_bytes, cur_bytes, tol.max_arena_growth,
                        not_measured=reason or "the arena could not be planned for this model")
    if res.status != "skipped" and base_source and cur_source and base_source != cur_source:
        res = CheckResult(res.name, res.status, res.value, res.limit, res.op, res.unit,
                          f"{res.message}; measured by {cur_source}, the baseline by {base_source}",
                          {**res.details, "source": cur_source, "baseline_source": base_source})
    return res


def latency_check(comparison: Mapping[str, Any] | None, tol: Tolerances, *, reason: str | None = None) -> CheckResult:
    """Median-latency ratio candidate / baseline model from an interleaved, significance-tested run.

    Fails only when the slow-down is statistically significant *and* exceeds the tolerance (using
    the lower confidence bound of the ratio when one is given), so noise never fails a build. With
    no comparison the check is skipped ("not measured"): it never passes on missing data.

    Args:
        comparison: ``{ratio, ci_low, ci_high, significant, p_value, candidate_p50_ms,
            reference_p50_ms, confidence}`` (candidate / reference); ``None`` when not measured.
    """
    limit = 1.0 + tol.max_latency_regression
    if comparison is None:
        return CheckResult("latency", "skipped", None, limit, "<=", "x",
                           "not measured: " + (reason or "pass --reference-model BASELINE.tflite for an interleaved "
                                                         "A/B latency comparison"))
    ratio = float(comparison["ratio"])
    lo = comparison.get("ci_low")
    hi = comparison.get("ci_high")
    significant = bool(comparison.get("significant"))
    ci = f", {int(round(100 * float(comparison.get('confidence') or 0.95)))}% CI {lo:.3f}–{hi:.3f}" \
        if lo is not None and hi is not None else ""
    p = comparison.get("p_value")
    ptxt = f", p={p:.3g}" if isinstance(p, (int, float)) and math.isfinite(p) else ""
    times = ""
    if comparison.get("candidate_p50_ms") is not None and comparison.get("reference_p50_ms") is not None:
        times = (f" (median {_fmt(comparison['candidate_p50_ms'], 'ms')} vs "
                 f"{_fmt(comparison['reference_p50_ms'], 'ms')})")
    bound = float(lo) if lo is not None else ratio
    failed = significant and ratio > 1.0 and bound > limit + EPS
    if failed:
        msg = (f"latency {ratio:.3f}x the baseline model{times}{ci}{ptxt}: significantly slower than the "
               f"allowed {limit:.2f}x")
    elif significant and ratio > limit:
        msg = (f"latency {ratio:.3f}x the baseline model{times}{ci}{ptxt}: slower, but the confidence interval "
               f"reaches below the allowed {limit:.2f}x, so not failed on noise")
    elif significant:
        msg = f"latency {ratio:.3f}x the baseline model{times}{ci}{ptxt}: within the allowed {limit:.2f}x"
    else:
        msg = f"latency {ratio:.3f}x the baseline model{times}{ci}{ptxt}: no significant difference"
    details = {k: comparison.get(k) for k in ("ci_low", "ci_high", "significant", "p_value", "candidate_p50_ms",
                                              "reference_p50_ms", "confidence", "runs", "threads", "source", "method")
               if comparison.get(k) is not None}
    return CheckResult("latency", "failed" if failed else "passed", ratio, limit, "<=", "x", msg, details)


def emulation_check(result: Mapping[str, Any] | None) -> CheckResult:
    """ARM parity under emulation (``--emulate``): outputs on the emulated target CPU vs the host.

    Passes when every output is identical or within one quantization step (LSB), or, for plain
    float outputs, within the relative tolerance of :mod:`edgekit.emulator_compare` (float kernels
    legitimately round differently on Arm and x86).
    """
    if result is None:
        return CheckResult("arm_parity", "skipped", None, None, "<=", "", "not measured: pass --emulate --target T")
    verdict = str(result.get("verdict", "different"))
    outputs = [o for o in result.get("outputs", []) if isinstance(o, Mapping)]
    float_ok = bool(outputs) and all(o.get("float_close") or o.get("verdict") in ("identical", "within_1_lsb")
                                     for o in outputs)
    ok = bool(result.get("inputs_identical", True)) and (verdict in ("identical", "within_1_lsb") or float_ok)
    diffs = [float(o["max_diff"]) for o in outputs if isinstance(o.get("max_diff"), (int, float))]
    max_diff = max(diffs) if diffs else result.get("max_diff")
    unit = next((o.get("unit") for o in outputs if o.get("unit")), result.get("unit")) or ""
    where = result.get("cpu") or result.get("target") or "the emulated CPU"
    msg = f"outputs on emulated {where} vs host over {result.get('samples', '?')} inputs: {verdict.replace('_', ' ')}"
    if max_diff is not None:
        msg += f" (max {float(max_diff):g} {unit or 'steps'})"
    if verdict == "different" and ok:
        msg += "; float outputs within tolerance"
    return CheckResult("arm_parity", "passed" if ok else "failed", None if max_diff is None else float(max_diff),
                       1.0, "<=", unit, msg, {"verdict": verdict, "cpu": result.get("cpu")})


def budget_checks(target: Any, size_bytes: int, arena_bytes: int | None) -> list[CheckResult]:
    """The target profile's own size / arena budgets (``--target``), where the profile sets them."""
    out: list[CheckResult] = []
    budgets = getattr(target, "budgets", None)
    name = getattr(target, "name", "target")
    max_model = getattr(budgets, "max_model_bytes", None)
    if max_model:
        ok = size_bytes <= max_model
        out.append(CheckResult("target_model_size", "passed" if ok else "failed", float(size_bytes), float(max_model),
                               "<=", "B", f"model size {_fmt(size_bytes, 'B')} {'<=' if ok else '>'} {name} budget "
                               f"{_fmt(max_model, 'B')}"))
    max_arena = getattr(budgets, "max_arena_bytes", None)
    if max_arena:
        if arena_bytes is None:
            out.append(CheckResult("target_arena", "skipped", None, float(max_arena), "<=", "B",
                                   f"not measured: the tensor arena could not be planned ({name} budget "
                                   f"{_fmt(max_arena, 'B')})"))
        else:
            ok = arena_bytes <= max_arena
            out.append(CheckResult("target_arena", "passed" if ok else "failed", float(arena_bytes), float(max_arena),
                                   "<=", "B", f"tensor arena {_fmt(arena_bytes, 'B')} {'<=' if ok else '>'} {name} "
                                   f"budget {_fmt(max_arena, 'B')}"))
    return out


# ============================================================================================ CI outputs


def _counts(checks: list[dict[str, Any]]) -> dict[str, int]:
    return {s: sum(1 for c in checks if c["status"] == s) for s in ("passed", "failed", "skipped")}


def junit_xml(report: Mapping[str, Any], *, error: str | None = None) -> str:
    """JUnit XML for a check report: one ``<testcase>`` per check.

    Follows the common (Jenkins / Ant) JUnit schema: ``<testsuites>`` › ``<testsuite>`` with
    ``properties``, ``testcase`` elements and ``system-out`` / ``system-err``. Failed checks carry
    ``<failure message=… type="edgekit.check">`` whose text lists value, limit and message; skipped
    checks ``<skipped message=…>``. With ``error`` (bad input, exit 2) a single testcase carries
    ``<error>``.
    """
    checks = list(report.get("checks", []))
    counts = _counts(checks)
    errors = 1 if error else 0
    tests = len(checks) + errors
    model = str(report.get("model", {}).get("path", "model"))
    elapsed = f"{float(report.get('seconds', 0.0)):.3f}"
    suites = ET.Element("testsuites", {"name": "edgekit check", "tests": str(tests), "failures": str(counts["failed"]),
                                       "errors": str(errors), "skipped": str(counts["skipped"]), "time": elapsed})
    suite = ET.SubElement(suites, "testsuite", {
        "name": f"edgekit check {Path(model).name}", "tests": str(tests), "failures": str(counts["failed"]),
        "errors": str(errors), "skipped": str(counts["skipped"]), "time": elapsed,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()), "hostname": socket.gethostname() or "localhost",
    })
    props = ET.SubElement(suite, "properties")
    for key, value in (("model", model), ("model.sha256", report.get("model", {}).get("sha256")),
                       ("baseline", report.get("baseline", {}).get("path")),
                       ("baseline.model.sha256", report.get("baseline", {}).get("model_sha256")),
                       ("data", report.get("data", {}).get("spec")), ("target", report.get("target")),
                       ("edgekit", report.get("versions", {}).get("edgekit"))):
        if value is not None:
            ET.SubElement(props, "property", {"name": key, "value": str(value)})
    for c in checks:
        case = ET.SubElement(suite, "testcase", {"classname": "edgekit.check", "name": c["name"], "time": "0"})
        facts = f"value: {_fmt(c['value'], c['unit'])}\nlimit: {c['op']} {_fmt(c['limit'], c['unit'])}\n{c['message']}"
        if c["status"] == "failed":
            node = ET.SubElement(case, "failure", {"message": c["message"], "type": "edgekit.check"})
            node.text = facts
        elif c["status"] == "skipped":
            ET.SubElement(case, "skipped", {"message": c["message"]})
        else:
            ET.SubElement(case, "system-out").text = facts
    if error:
        case = ET.SubElement(suite, "testcase", {"classname": "edgekit.check", "name": "inputs", "time": "0"})
        node = ET.SubElement(case, "error", {"message": error, "type": "edgekit.input"})
        node.text = error
    ET.SubElement(suite, "system-out").text = markdown_summary(report, error=error) if checks or error else ""
    ET.SubElement(suite, "system-err").text = ""
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


_STATUS_ICON = {"passed": "✅ passed", "failed": "❌ failed", "skipped": "⚪ not measured"}


def _md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_summary(report: Mapping[str, Any], *, error: str | None = None) -> str:
    """A GitHub-flavoured Markdown section: verdict line, one table row per check, diagnosis."""
    model = report.get("model", {}).get("path", "model")
    if error:
        return f"### edgekit check `{_md(model)}`: ❌ error\n\n{_md(error)}\n"
    checks = list(report.get("checks", []))
    counts = _counts(checks)
    if report.get("baseline_written"):
        head = f"### edgekit check `{_md(model)}`: baseline written to `{_md(report['baseline_written'])}`"
    elif counts["failed"]:
        head = f"### edgekit check `{_md(model)}`: ❌ {counts['failed']} of {len(checks)} checks failed"
    else:
        head = f"### edgekit check `{_md(model)}`: ✅ passed"
        if counts["skipped"]:
            head += f" ({counts['skipped']} not measured)"
    lines = [head, ""]
    if checks:
        lines += ["| check | status | value | limit | details |", "|---|---|---|---|---|"]
        for c in checks:
            limit = f"{c['op']} {_fmt(c['limit'], c['unit'])}" if c["limit"] is not None else "n/a"
            lines.append(f"| {_md(c['name'])} | {_STATUS_ICON[c['status']]} | {_md(_fmt(c['value'], c['unit']))} | "
                         f"{_md(limit)} | {_md(c['message'])} |")
        lines.append("")
    layers = report.get("layers")
    if layers and layers.get("worst"):
        lines.append("Layers losing the most SQNR (int8 vs float32):")
        lines.append("")
        lines += ["| layer | op | SQNR dB | lost dB |", "|---|---|---|---|"]
        for w in layers["worst"]:
            sq = "exact" if w.get("sqnr_db") is None else f"{w['sqnr_db']:.1f}"
            lines.append(f"| `{_md(w['name'].split(';')[0])}` | {w['op']} | {sq} | {w.get('sqnr_drop_db') or 0:.1f} |")
        lines.append("")
    data = report.get("data", {})
    if data:
        lines.append(f"Data: `{_md(data.get('spec'))}` ({data.get('samples')} test samples). "
                     f"Baseline: `{_md(report.get('baseline', {}).get('path'))}`.")
    for note in report.get("notes", []):
        lines.append(f"- {_md(note)}")
    return "\n".join(lines).rstrip() + "\n"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotations(report: Mapping[str, Any], *, error: str | None = None) -> list[str]:
    """GitHub Actions workflow commands: ``::error`` per failed check, ``::notice`` per skipped one."""
    file = _escape_property(str(report.get("model", {}).get("path", "")))
    loc = f"file={file}," if file else ""
    if error:
        return [f"::error {loc}title={_escape_property('edgekit check: bad input')}::{_escape_data(error)}"]
    out = []
    for c in report.get("checks", []):
        if c["status"] == "failed":
            out.append(f"::error {loc}title={_escape_property('edgekit check failed: ' + c['name'])}::"
                       f"{_escape_data(c['message'])}")
        elif c["status"] == "skipped":
            out.append(f"::notice title={_escape_property('edgekit check: ' + c['name'] + ' not measured')}::"
                       f"{_escape_data(c['message'])}")
    return out


def write_ci_outputs(report: Mapping[str, Any], *, junit: str | os.PathLike[str] | None = None,
                     step_summary: str | os.PathLike[str] | None = None, error: str | None = None) -> None:
    """Write the JUnit file (atomically) and append the Markdown summary to ``step_summary``."""
    if junit:
        atomic_write_text(junit, junit_xml(report, error=error))
    if step_summary:
        try:
            with open(step_summary, "a", encoding="utf-8") as fh:
                fh.write(markdown_summary(report, error=error) + "\n")
        except OSError as exc:
            raise ConfigError(f"cannot append to $GITHUB_STEP_SUMMARY ({step_summary}): {exc.strerror or exc}",
                              hint="unset GITHUB_STEP_SUMMARY or make the file writable") from exc


# ============================================================================================ measurements


def measure_arena(model_bytes: bytes) -> tuple[int | None, str | None, str | None]:
    """Tensor-arena bytes and their source (TFLite Micro, else edgekit's planner); ``(None, None, why)``.

    Uses :mod:`edgekit.analysis` (flatbuffer reading in this process, TFLite Micro in a child).
    """
    try:
        from .analysis import analyze_tflite, attach_arena
    except ImportError as exc:  # pragma: no cover - analysis ships with edgekit
        return None, None, f"model analysis unavailable ({exc})"
    try:
        analysis = analyze_tflite(model_bytes)
        attach_arena(analysis, model_bytes)
    except EdgekitError as exc:
        return None, None, str(exc)
    arena = getattr(analysis, "arena_bytes", None)
    if not arena:
        return None, None, "the analysis could not plan a tensor arena for this model"
    return int(arena), getattr(analysis, "arena_source", None) or "unknown", None


def _latency_comparison(model: str, reference_model: str, *, target: Any, threads: int, runs: int | None
                        ) -> dict[str, Any]:
    """Interleaved A/B benchmark (candidate vs baseline model) via edgekit.bench's ``--compare``."""
    from .api import benchmark

    kwargs: dict[str, Any] = {"model": model, "compare": reference_model, "threads": [threads],
                              "target": getattr(target, "name", None)}
    if runs:
        kwargs["runs"] = runs
    result = benchmark(**kwargs)
    if isinstance(result, list):
        result = result[0]
    return normalize_comparison(result)


def normalize_comparison(result: Mapping[str, Any]) -> dict[str, Any]:
    """Ratio / CI / significance of a ``benchmark(..., compare=...)`` document (candidate / reference).

    The benchmark document describes the candidate (``latency_ms``) and holds the interleaved
    reference run under ``compare`` with ``ratio_of_medians``, ``ratio_ci``, ``ci_confidence`` and
    ``significant`` (the interval excludes 1), see :mod:`edgekit.bench.compare`.
    """
    comp = result.get("compare")
    if not isinstance(comp, Mapping):
        raise DeviceError("the benchmark returned no interleaved comparison", hint="run with --debug")
    ratio = comp.get("ratio_of_medians", comp.get("ratio"))
    ci = comp.get("ratio_ci") or comp.get("ci")
    if ratio is None or not isinstance(ci, (list, tuple)) or len(ci) != 2:
        raise DeviceError("the benchmark comparison returned no latency ratio and confidence interval",
                          hint="run with --debug")
    cand = (result.get("latency_ms") or {}).get("p50")
    ref = (comp.get("latency_ms") or {}).get("p50")
    return {"ratio": float(ratio), "ci_low": float(ci[0]), "ci_high": float(ci[1]),
            "significant": bool(comp.get("significant")), "p_value": comp.get("p_value"),
            "confidence": float(comp.get("ci_confidence", comp.get("confidence", 0.95))),
            "candidate_p50_ms": cand, "reference_p50_ms": ref, "runs": result.get("runs"),
            "threads": result.get("threads"), "source": result.get("source"), "method": comp.get("ci_method"),
            "summary": comp.get("summary")}


def _measure_latency(model: str, *, target: Any, threads: int, runs: int | None) -> LatencyInfo:
    from .api import benchmark

    kwargs: dict[str, Any] = {"model": model, "threads": [threads], "target": getattr(target, "name", None)}
    if runs:
        kwargs["runs"] = runs
    result = benchmark(**kwargs)
    if isinstance(result, list):
        result = result[0]
    return LatencyInfo(p50_ms=float(result["latency_ms"]["p50"]), source=str(result.get("source", "measured-host")),
                       threads=int(result.get("threads", threads)), runtime=result.get("runtime"))


# ============================================================================================ check


def _current_primary(ev: Evaluation) -> float:
    name, _ = primary_metric(ev.task)
    value = ev.metrics.get(name)
    if value is None or not math.isfinite(float(value)):
        raise ModelError(f"metric {name} of {ev.model_path} is NaN on {ev.data_spec}",
                         hint="the model's outputs are not usable; check the conversion")
    return float(value)


def _check_data(base: Baseline, ev: Evaluation, *, allow_data_change: bool, baseline_path: str) -> list[str]:
    notes = []
    if base.data.task != ev.task:
        raise DataError(f"data {ev.data_spec} is a {ev.task} task but baseline {baseline_path} was made for "
                        f"{base.data.task}", hint="pass the evaluation data the baseline was made with")
    if ev.samples < base.data.samples:
        raise DataError(f"data {ev.data_spec} has {ev.samples} test samples, fewer than the {base.data.samples} "
                        f"of baseline {baseline_path}: the gate would compare less evidence",
                        hint="evaluate on the full data set, or re-create the baseline with --update-baseline")
    if ev.fingerprint != base.data.fingerprint:
        if not allow_data_change:
            raise DataError(f"data {ev.data_spec} test split fingerprint {ev.fingerprint[:12]}… differs from "
                            f"{base.data.fingerprint[:12]}… recorded in baseline {baseline_path} "
                            f"({base.data.spec}, {base.data.samples} samples)",
                            hint="pass the baseline's data, add --allow-data-change, or re-create the baseline "
                                 "with --update-baseline")
        notes.append(f"data changed since the baseline ({base.data.spec} → {ev.data_spec}); "
                     "compared anyway (--allow-data-change)")
    if ev.sha256 == base.model.sha256:
        notes.append("the model is byte-identical to the baseline's model")
    return notes


def check(*, model: str, baseline: str, data: str, target: str | None = None, junit: str | None = None,
          step_summary: str | None = None, update_baseline: bool = False, allow_data_change: bool = False,
          emulate: bool = False, reference: str | None = None, reference_model: str | None = None,
          max_accuracy_drop: float | None = None, relative: bool | None = None, max_size_growth: float | None = None,
          max_arena_growth: float | None = None, max_latency_regression: float | None = None,
          measure_latency: bool = False, threads: int | None = None, runs: int | None = None,
          trust_model: bool = False, expect_sha256: str | None = None, layer_samples: int = 64) -> dict[str, Any]:
    """Compare ``model`` with a committed baseline, or (``update_baseline``) write that baseline.

    Args:
        model: the candidate ``.tflite``.
        baseline: path of the baseline JSON (see :mod:`edgekit.baseline`).
        data: data spec; its test split is evaluated.
        target: target profile (thread count, budgets, emulated CPU); default: the baseline's.
        junit: write a JUnit XML file here.
        step_summary: append a Markdown summary here (the CLI passes ``$GITHUB_STEP_SUMMARY``).
        update_baseline: measure the model and write the baseline instead of gating.
        allow_data_change: compare even if the data's fingerprint differs from the baseline's.
        emulate: add an ARM parity check under QEMU emulation of the target's CPU.
        reference: Keras / float ``.tflite`` reference: adds parity and per-layer quantization error
            (which layer loses the most) to the report and to a failing accuracy message.
        reference_model: the baseline's ``.tflite`` (its sha256 must match the baseline's): enables the
            latency check through an interleaved A/B benchmark with a significance test.
        max_accuracy_drop, relative, max_size_growth, max_arena_growth, max_latency_regression:
            tolerance overrides (default: the baseline's stored tolerances); with
            ``update_baseline`` they are stored in the new baseline.
        measure_latency: with ``update_baseline``, benchmark the model and record its median latency.
        threads: interpreter threads (default: the target's, else 1).
        runs: benchmark runs per model for latency measurements.
        trust_model: allow Lambda layers / custom objects in the Keras reference.
        expect_sha256: refuse the model unless its sha256 equals this.
        layer_samples: inputs used for the per-layer analysis.

    Returns:
        The check report (``schema_version`` 1): ``passed``, ``checks[{name,status,passed,value,limit,
        op,unit,message,details}]``, ``model``, ``baseline``, ``data``, ``metrics``,
        ``baseline_metrics``, ``tolerances``, ``notes``, ``parity``/``layers`` (with ``reference``),
        ``baseline_written`` (with ``update_baseline``).

    Raises:
        ConfigError / DataError / ModelError (exit 2): bad baseline, data or model (fails closed).
    """
    from .targets import load_target
    from .versions import tool_versions

    started = time.perf_counter()
    overrides = {"max_accuracy_drop": max_accuracy_drop, "relative": relative, "max_size_growth": max_size_growth,
                 "max_arena_growth": max_arena_growth, "max_latency_regression": max_latency_regression}
    old: Baseline | None = None
    notes: list[str] = []
    if update_baseline:
        if Path(baseline).exists():
            try:
                old = load_baseline(baseline)
            except ConfigError as exc:
                notes.append(f"replacing an unreadable baseline: {exc}")
    else:
        old = load_baseline(baseline)
        if max_latency_regression is not None and reference_model is None:
            raise ConfigError("--max-latency-regression needs --reference-model BASELINE.tflite: latency is only "
                              "gated on an interleaved A/B measurement", hint="add --reference-model or drop the flag")
    tgt_name = target or (old.target if old is not None else None)
    tgt = load_target(tgt_name) if tgt_name else None
    n_threads = int(threads or getattr(tgt, "threads", None) or 1)
    if reference_model is not None and not update_baseline:
        if old is not None and sha256_file(reference_model) != old.model.sha256:
            raise ModelError(f"--reference-model {reference_model} is not the baseline's model: its sha256 differs "
                             f"from {old.model.sha256[:16]}… recorded in {baseline}",
                             hint="pass the .tflite the baseline was made from, or re-create the baseline")

    ev = evaluate(model, data, threads=n_threads, expect_sha256=expect_sha256)
    _current_primary(ev)
    if old is not None and not update_baseline:
        notes += _check_data(old, ev, allow_data_change=allow_data_change, baseline_path=baseline)
    tol = resolve_tolerances(task=ev.task, stored=old.tolerances if old is not None else None, **overrides)
    size = ev.size_bytes
    gz = gzip_size(ev.model_bytes)
    arena, arena_source, arena_reason = measure_arena(ev.model_bytes)
    metrics = ev.scalar_metrics()
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "command": "check", "passed": True, "checks": [],
        "model": {"path": str(model), "sha256": ev.sha256, "size_bytes": size, "gzip_bytes": gz,
                  "quantization": ev.quantization, "arena_bytes": arena, "arena_source": arena_source},
        "baseline": {"path": str(baseline)},
        "data": {"spec": ev.data_spec, "split": "test", "samples": ev.samples, "fingerprint": ev.fingerprint,
                 "task": ev.task},
        "target": getattr(tgt, "name", None), "threads": n_threads,
        "metrics": metrics, "baseline_metrics": dict(old.metrics) if old is not None else None,
        "tolerances": tol.model_dump(), "notes": notes, "parity": None, "layers": None, "latency": None,
        "emulation": None, "versions": tool_versions(),
    }
    if reference:
        add_reference(report, ev, reference, trust_model=trust_model, layer_samples=layer_samples, worst=5)

    if update_baseline:
        latency = _measure_latency(model, target=tgt, threads=n_threads, runs=runs) if measure_latency else None
        new = Baseline(
            schema_version=SCHEMA_VERSION, kind="edgekit-baseline", created=utc_now(),
            model=ModelInfo(path=Path(model).name, sha256=ev.sha256, size_bytes=size, gzip_bytes=gz,
                            quantization=ev.quantization),
            data=DataInfo(spec=ev.data_spec, fingerprint=ev.fingerprint, samples=ev.samples, task=ev.task,
                          num_classes=ev.num_classes),
            metrics={k: round(v, 6) for k, v in metrics.items()},
            arena=ArenaInfo(bytes=arena, source=arena_source or "unknown") if arena else None,
            latency=latency, target=getattr(tgt, "name", None), tolerances=tol,
            versions={k: v for k, v in tool_versions().items() if v != "not installed"},
        )
        save_baseline(baseline, new)
        report["baseline_written"] = str(baseline)
        report["baseline"].update({"created": new.created, "model_sha256": ev.sha256})
        report["latency"] = latency.model_dump() if latency else None
        report["seconds"] = round(time.perf_counter() - started, 3)
        write_ci_outputs(report, junit=junit, step_summary=step_summary)
        return report

    assert old is not None
    report["baseline"].update({"created": old.created, "model_sha256": old.model.sha256,
                               "size_bytes": old.model.size_bytes, "arena_bytes": old.arena.bytes if old.arena else None})
    hint = describe_worst_layer(report.get("layers"))
    checks = [accuracy_check(ev.task, old.metrics, metrics, tol, hint=hint), size_check(old.model.size_bytes, size, tol)]
    checks.append(arena_check(old.arena.bytes if old.arena else None, arena, tol, reason=arena_reason or "",
                              base_source=old.arena.source if old.arena else None, cur_source=arena_source))
    if reference_model is not None:
        comparison = _latency_comparison(model, reference_model, target=tgt, threads=n_threads, runs=runs)
        report["latency"] = comparison
        checks.append(latency_check(comparison, tol))
    else:
        checks.append(latency_check(None, tol))
    if emulate:
        report["emulation"] = run_emulation(ev, tgt)
        checks.append(emulation_check(report["emulation"]))
    if tgt is not None:
        checks += budget_checks(tgt, size, arena)
    report["checks"] = [c.to_dict() for c in checks]
    report["passed"] = not any(c.status == "failed" for c in checks)
    report["seconds"] = round(time.perf_counter() - started, 3)
    write_ci_outputs(report, junit=junit, step_summary=step_summary)
    return report


def format_check_text(report: Mapping[str, Any]) -> str:
    """Plain-text result for the terminal: one line per check, then the verdict."""
    lines = []
    if report.get("baseline_written"):
        m = report["model"]
        lines.append(f"baseline written to {report['baseline_written']}: {m['path']} ({m['quantization']}, "
                     f"{m['size_bytes']:,} B), {report['data']['samples']} samples of {report['data']['spec']}")
        lines.append("metrics: " + ", ".join(f"{k} {v:.4f}" for k, v in report["metrics"].items()))
    for c in report.get("checks", []):
        tag = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}[c["status"]]
        lines.append(f"[{tag}] {c['name']}: {c['message']}")
    worst = describe_worst_layer(report.get("layers"))
    if worst and not report.get("baseline_written"):
        lines.append(f"diagnosis: {worst}")
    lines.extend(f"note: {n}" for n in report.get("notes", []))
    if not report.get("baseline_written"):
        counts = _counts(list(report.get("checks", [])))
        lines.append(f"edgekit check: {'FAILED' if counts['failed'] else 'passed'} — {counts['passed']} passed, "
                     f"{counts['failed']} failed, {counts['skipped']} not measured")
    return "\n".join(lines)
