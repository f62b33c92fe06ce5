"""Regenerate docs/report.png and docs/terminal.png from a real ``edgekit compress`` run.

    .venv/bin/python docs/make_screenshots.py [--workdir DIR] [--full-session]

Trains the tiny digits CNN the tests use (sklearn's digits, 8x8), compresses it for rpi4 with 50 %
pruning and QAT inside a pseudo-terminal (so progress and colours are what a user sees), then
photographs ``report.html`` and the terminal with headless Debian ``chromium``. The terminal shot
shows the end-of-run summary; ``--full-session`` shows the whole session instead.
Needs TensorFlow (this project's environment) and ``chromium`` (scripts/install-system-deps.sh).
"""
from __future__ import annotations

import argparse
import fcntl
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import termios
import textwrap
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
PYTHON = sys.executable
EDGEKIT = str(Path(PYTHON).with_name("edgekit"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
COLS, ROWS = 100, 50

TRAIN = textwrap.dedent("""
    import sys, numpy as np, tf_keras as keras, tensorflow as tf
    from sklearn.datasets import load_digits
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32").reshape(-1, 8, 8, 1); y = y.astype("int64")
    np.savez(sys.argv[1], x_train=x[:1400], y_train=y[:1400], x_test=x[1400:], y_test=y[1400:])
    tf.keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.layers.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, activation="relu", name="conv"),
                          keras.layers.Flatten(name="flatten"),
                          keras.layers.Dense(32, activation="relu", name="hidden"),
                          keras.layers.Dense(10, activation="softmax", name="probs")])
    m.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy",
              metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    m.fit(x[:1400], y[:1400], epochs=8, batch_size=32, verbose=0)
    m.save(sys.argv[2])
""")


def run_in_pty(cmd: list[str], env: dict[str, str]) -> tuple[int, bytes]:
    """Run ``cmd`` attached to a pseudo-terminal of COLS x ROWS; return its exit code and raw output."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    out = bytearray()
    while True:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(), bytes(out)


_CSI = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])")


def final_screen(raw: bytes) -> list[str]:
    """What the terminal shows at the end: replay line feeds, carriage returns, erase-line and cursor-up.

    Enough of a terminal for rich's live displays (they redraw with CR, ``ESC[2K`` and ``ESC[1A``);
    colour codes (SGR) stay in the lines.
    """
    lines, row, text = [""], 0, raw.decode("utf-8", "replace")
    pos = 0
    while pos < len(text):
        m = _CSI.match(text, pos)
        if m:
            params, cmd = m.groups()
            if cmd == "m":
                lines[row] += m.group(0)
            elif cmd == "K":
                lines[row] = "" if params in ("2", "") else lines[row]
            elif cmd == "A":
                row = max(0, row - int(params or 1))
            pos = m.end()
            continue
        ch = text[pos]
        if ch == "\n":
            row += 1
            if row == len(lines):
                lines.append("")
        elif ch == "\r":
            if not text.startswith("\n", pos + 1):
                lines[row] = ""  # rich rewrites the whole line after a bare CR
        elif ch >= " " or ch == "\t":
            lines[row] += ch
        pos += 1
    while lines and not re.sub(r"\x1b\[[0-9;]*m", "", lines[-1]).strip():
        lines.pop()
    return lines


def terminal_html(lines: list[str], title: str) -> str:
    """A dark terminal window (HTML, inline styles only) showing ``lines`` with their colours."""
    from rich.console import Console
    from rich.terminal_theme import TerminalTheme
    from rich.text import Text

    theme = TerminalTheme((30, 33, 40), (220, 223, 228),
                          [(30, 33, 40), (224, 108, 117), (152, 195, 121), (229, 192, 123), (97, 175, 239),
                           (198, 120, 221), (86, 182, 194), (171, 178, 191)],
                          [(92, 99, 112), (224, 108, 117), (152, 195, 121), (229, 192, 123), (97, 175, 239),
                           (198, 120, 221), (86, 182, 194), (255, 255, 255)])
    console = Console(record=True, width=COLS, force_terminal=True, color_system="truecolor",
                      file=open(os.devnull, "w"))
    for line in lines:
        console.print(Text.from_ansi(line), soft_wrap=True)
    body = console.export_html(theme=theme, inline_styles=True, code_format="{code}")
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8"><style>
body{{margin:0;background:#f6f6f3;padding:28px}}
.win{{display:inline-block;background:rgb(30,33,40);border-radius:10px;box-shadow:0 6px 24px rgba(0,0,0,.18);
overflow:hidden}}
.bar{{background:#2b2f37;color:#9aa1ad;font:12px "DejaVu Sans",sans-serif;padding:8px 14px}}
.bar i{{display:inline-block;width:11px;height:11px;border-radius:50%;margin-right:6px;vertical-align:-1px}}
pre{{margin:0;padding:14px 18px 16px;color:rgb(220,223,228);font:13px/1.45 "DejaVu Sans Mono",monospace}}
</style></head><body><div class="win"><div class="bar"><i style="background:#e06c75"></i><i style="background:#e5c07b">
</i><i style="background:#98c379"></i>&nbsp; {title}</div><pre>{body}</pre></div></body></html>"""


def chromium_shot(page: Path, png: Path, *, width: int, height: int, profile: Path) -> None:
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
                    f"--user-data-dir={profile}", f"--screenshot={png}", f"--window-size={width},{height}",
                    page.as_uri()], check=True, capture_output=True, timeout=120)


def crop_to_content(png: Path, background: tuple[int, int, int] = (246, 246, 243), margin: int = 20) -> None:
    from PIL import Image, ImageChops

    with Image.open(png) as img:
        rgb = img.convert("RGB")
    box = ImageChops.difference(rgb, Image.new("RGB", rgb.size, background)).getbbox()
    if box:
        left, top, right, bottom = box
        rgb = rgb.crop((max(0, left - margin), max(0, top - margin), min(rgb.width, right + margin),
                        min(rgb.height, bottom + margin)))
    rgb.save(png, optimize=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=None, help="keep the model, data and run here")
    parser.add_argument("--full-session", action="store_true", help="show the whole terminal session")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="edgekit-shots-"))
    work.mkdir(parents=True, exist_ok=True)
    npz, model, out = work / "digits.npz", work / "digits_cnn.keras", work / "out"
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    if not model.exists():
        subprocess.run([PYTHON, "-c", TRAIN, str(npz), str(model)], check=True, env=env)
    os.chdir(work)  # short relative paths in the command line and the report
    cmd = [EDGEKIT, "compress", model.name, "--target", "rpi4", "--data", npz.name, "--prune", "0.5", "--qat",
           "--epochs", "2", "--no-cache", "-o", out.name]
    rc, raw = run_in_pty(cmd, {**os.environ, "COLUMNS": str(COLS), "LINES": str(ROWS), "TERM": "xterm-256color"})
    if rc not in (0, 1):
        sys.stderr.write(raw.decode("utf-8", "replace")[-4000:])
        return rc
    chromium_shot(out / "report.html", DOCS / "report.png", width=1280, height=2300, profile=work / "profile")
    lines = final_screen(raw)
    if not args.full_session:  # the summary at the end: from the last "edgekit compress" heading
        plain = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in lines]
        start = max((i for i, line in enumerate(plain) if line.startswith("edgekit compress")), default=0)
        lines = lines[start:]
    prompt = "\x1b[32m$\x1b[0m edgekit " + " ".join(cmd[1:])
    elided = [] if args.full_session else ["\x1b[2m…\x1b[0m"]
    page = work / "terminal.html"
    page.write_text(terminal_html([prompt, *elided, *lines], "edgekit compress"), encoding="utf-8")
    chromium_shot(page, DOCS / "terminal.png", width=1100, height=1600, profile=work / "profile")
    crop_to_content(DOCS / "terminal.png")
    print(f"wrote {DOCS / 'report.png'} and {DOCS / 'terminal.png'} (run in {work})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
