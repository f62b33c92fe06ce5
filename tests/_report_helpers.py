"""Shared helpers of the report tests: real compress runs (cached per session) and report documents.

The compress runs go through the installed ``edgekit`` console script on the tiny digits CNN of
``conftest.py``: int8 with the rpi4 profile (passes) and float32 with a copy of that profile whose
model-size budget is 4 KiB (fails with exit 1), so the reports under test are real ones. Their output folders
live under pytest's session base temp and are reused when two test modules ask for them.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from conftest import run_edgekit

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("EDGEKIT_CHROMIUM", "/usr/bin/chromium")

URL_ATTRIBUTES = {"src", "href", "action", "poster", "srcset", "data", "background", "formaction", "ping"}
FETCHING_TAGS = {"script", "link", "img", "iframe", "object", "embed", "audio", "video", "source", "base", "image",
                 "use", "feimage"}


def _local(tag: Any) -> str:
    return str(tag).rsplit("}", 1)[-1].lower()


def parse_html(html: str) -> Any:
    """Parse like a browser does (html5lib); returns the ElementTree root."""
    import html5lib

    return html5lib.parse(html, namespaceHTMLElements=False)


def assert_self_contained(html: str) -> Any:
    """Fail if the page could make the browser fetch anything; returns the parsed tree.

    No URL scheme anywhere, no element that loads a resource (scripts, links, images, frames,
    SVG ``<use>``/``<image>``), no URL-valued attribute other than an in-page ``#anchor``, no
    ``@import`` or ``url()`` in styles except ``url(#id)`` (SVG clip paths).
    """
    assert not re.search(r"(?i)\b(?:https?|ftp|wss?|file):", html), "the page mentions a URL scheme"
    root = parse_html(html)
    for el in root.iter():
        tag = _local(el.tag)
        assert tag not in FETCHING_TAGS or (tag == "use" and all(
            str(v).startswith("#") for k, v in el.attrib.items() if _local(k) == "href")), f"<{tag}> in the page"
        for key, value in el.attrib.items():
            name = _local(key)
            if name in URL_ATTRIBUTES:
                assert str(value).startswith("#"), f"<{tag} {name}={value!r}>"
            if name == "style" or name.startswith("on"):
                assert not name.startswith("on"), f"event handler {name} on <{tag}>"
                assert not re.search(r"url\(\s*['\"]?(?!#)", str(value)), f"url() in style of <{tag}>"
        if tag == "style":
            text = el.text or ""
            assert "@import" not in text, "@import in a <style>"
            assert not re.search(r"url\(\s*['\"]?(?!#)", text), "url() in a <style>"
    return root


def svg_count(root: Any) -> int:
    """Inline SVG charts in a parsed page."""
    return sum(1 for el in root.iter() if _local(el.tag) == "svg")


def compress_run(tmp_path_factory: pytest.TempPathFactory, name: str, model: Path, data: Path,
                 target: str, *, expect_rc: int, quantize: str = "int8") -> Path:
    """Run ``edgekit compress`` once per session into ``<basetemp>/<name>``; return the output dir."""
    out = tmp_path_factory.getbasetemp() / name
    if (out / "report.json").is_file():
        return out
    proc = run_edgekit("compress", str(model), "--target", target, "--data", str(data), "--prune", "0",
                       "--no-qat", "--quantize", quantize, "-o", str(out), "--quiet", timeout=900,
                       env={"EDGEKIT_CACHE_DIR": str(tmp_path_factory.getbasetemp() / "edgekit-cache")})
    assert proc.returncode == expect_rc, f"edgekit compress exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    assert (out / "report.json").is_file(), f"no report.json in {out}:\n{proc.stderr[-3000:]}"
    return out


def tiny_budget_target(directory: Path) -> Path:
    """The built-in rpi4 profile with a 4 KiB model-size budget: every real model fails it."""
    import yaml

    src = ROOT / "edgekit" / "targets_data" / "rpi4.yaml"
    profile = yaml.safe_load(src.read_text(encoding="utf-8"))
    profile["name"] = "rpi4-tiny-budget"
    profile["budgets"] = {**(profile.get("budgets") or {}), "max_model_bytes": 4096}
    path = directory / "rpi4-tiny-budget.yaml"
    path.write_text(yaml.safe_dump(profile, sort_keys=False), encoding="utf-8")
    return path


def load(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))
