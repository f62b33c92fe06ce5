"""The HTML report of a real compress run in a real browser: headless Debian ``chromium``.

The page is served by a small local HTTP server that is also the browser's proxy, so every request
the page makes (same host, or any other host through the proxy, recognised by its Referer) is
logged: the only request must be the page itself (chromium's own background requests carry no
Referer and are ignored). A script injected into a copy of the page records errors and chart sizes in the
DOM (``--dump-dom`` prints them); chromium's own console log must be clean. A page with a
deliberate script error, a missing image and an external image proves the probes see such things.
A screenshot must come out as a real, non-blank PNG; set ``EDGEKIT_UPDATE_SCREENSHOTS=1`` to copy
it to docs/report.png.
"""
from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import struct
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from _report_helpers import CHROMIUM, ROOT, compress_run, parse_html

pytestmark = [pytest.mark.tf, pytest.mark.skipif(not Path(CHROMIUM).exists() and not shutil.which("chromium"),
                                                 reason="chromium is not installed (scripts/install-system-deps.sh)")]

# Injected into a copy of the page only: records errors, fetched resources and chart sizes in the DOM,
# which --dump-dom then prints. The report itself has no script at all.
PROBE = """<script>
window.__edgekitErrors = [];
window.addEventListener("error", function (e) {
  var what = e.message || (e.target && e.target.outerHTML) || "error";
  window.__edgekitErrors.push(String(what));
}, true);
window.addEventListener("unhandledrejection", function (e) { window.__edgekitErrors.push("rejection " + e.reason); });
["error", "warn"].forEach(function (level) {
  var orig = console[level];
  console[level] = function () { window.__edgekitErrors.push(level + ": " + Array.from(arguments).join(" "));
                                 return orig.apply(console, arguments); };
});
window.addEventListener("load", function () {
  var root = document.documentElement;
  root.setAttribute("data-probe-errors", JSON.stringify(window.__edgekitErrors));
  root.setAttribute("data-probe-charts", JSON.stringify(Array.from(document.querySelectorAll("svg.chart"))
                    .map(function (s) { var b = s.getBoundingClientRect(); return [Math.round(b.width),
                                                                                   Math.round(b.height)]; })));
  root.setAttribute("data-probe-done", "1");
});
</script>"""


def chromium(*args: str, user_data: Path, timeout: float = 90) -> subprocess.CompletedProcess:
    exe = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
           f"--user-data-dir={user_data}", "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


class _LoggingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the test folder and logs every request; refuses anything for another host."""

    requests: list[tuple[str, str]]

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self.requests.append((self.path, self.headers.get("Referer") or ""))
        if not self.path.startswith("/"):  # an absolute URL: the browser used us as its proxy
            self.send_error(502, "no network in tests")
            return
        super().do_GET()

    def do_CONNECT(self) -> None:  # noqa: N802 - https through the proxy
        self.requests.append((f"CONNECT {self.path}", self.headers.get("Referer") or ""))
        self.send_error(502, "no network in tests")

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def serve(directory: Path) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """Serve ``directory`` on 127.0.0.1; yield ``host:port`` and the live list of (path, referer)."""
    requests: list[tuple[str, str]] = []
    handler = functools.partial(type("Handler", (_LoggingHandler,), {"requests": requests}), directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()


def probe(page: Path, tmp_path: Path) -> tuple[dict, str, list[str]]:
    """Load ``page`` with the probe injected; return what it recorded, chromium's stderr, the requests."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    html = page.read_text(encoding="utf-8")
    (site / "page.html").write_text(html.replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    with serve(site) as (host, requests):
        proc = chromium("--virtual-time-budget=10000", f"--proxy-server=http://{host}",
                        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--dump-dom",
                        f"http://{host}/page.html", user_data=tmp_path / "profile")
        # what the page asked for: same-host paths, and anything else sent with the page as Referer
        seen_requests = [path for path, referer in requests if path != "/favicon.ico" and
                         (path.startswith("/") or referer.startswith(f"http://{host}"))]
    assert proc.returncode == 0, proc.stderr[-2000:]
    root = parse_html(proc.stdout)
    attrs = root.attrib if root.tag == "html" else root.find(".//html").attrib
    assert attrs.get("data-probe-done") == "1", f"the page never finished loading:\n{proc.stderr[-2000:]}"
    return {k: json.loads(attrs[f"data-probe-{k}"]) for k in ("errors", "charts")}, proc.stderr, seen_requests


def console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines()
            if "CONSOLE" in line or "Uncaught" in line or "Failed to load resource" in line]


@pytest.fixture(scope="module")
def real_report(tmp_path_factory, tiny_keras_model, digits_npz) -> Path:
    return compress_run(tmp_path_factory, "report-pass", tiny_keras_model, digits_npz, "rpi4", expect_rc=0) \
        / "report.html"


def test_browser_render_real_report_without_errors_or_fetches(real_report, tmp_path):
    seen, stderr, requests = probe(real_report, tmp_path)
    assert seen["errors"] == []
    assert requests == ["/page.html"]  # nothing else fetched: no fonts, styles, scripts or images, from anywhere
    assert len(seen["charts"]) >= 2 and all(w >= 300 and h >= 100 for w, h in seen["charts"]), seen["charts"]
    assert console_lines(stderr) == []


def test_browser_probe_sees_script_errors_and_fetches(tmp_path):
    broken = tmp_path / "broken.html"
    broken.write_text("<!DOCTYPE html><html><head><title>x</title></head><body><img src='missing.png'>"
                      "<img src='http://cdn.example.com/logo.png'><script>undefinedFunction()</script></body></html>",
                      encoding="utf-8")
    seen, stderr, requests = probe(broken, tmp_path)
    assert any("undefinedFunction" in e for e in seen["errors"])
    assert any("missing.png" in e for e in seen["errors"])
    assert "/missing.png" in requests and "http://cdn.example.com/logo.png" in requests
    assert any("Uncaught" in line for line in console_lines(stderr))


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_browser_screenshot_is_a_real_png(real_report, tmp_path):
    shot = tmp_path / "report.png"
    proc = chromium("--hide-scrollbars", f"--screenshot={shot}", "--window-size=1280,2000", real_report.as_uri(),
                    user_data=tmp_path / "profile")
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    data = shot.read_bytes()
    assert png_size(data) == (1280, 2000)
    from PIL import Image

    with Image.open(shot) as img:
        img.verify()
    with Image.open(shot) as img:
        rgb = img.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 20) or []
        background = max(colours)[0] / (rgb.width * rgb.height)
        assert len(colours) > 200, "the screenshot has almost no detail"
        assert background < 0.9, "the screenshot is mostly one colour"
        # the verdict badge and the charts put colour on the page, not only grey text
        assert any(abs(r - g) > 40 or abs(g - b) > 40 for _, (r, g, b) in colours)
    if os.environ.get("EDGEKIT_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(shot, ROOT / "docs" / "report.png")
