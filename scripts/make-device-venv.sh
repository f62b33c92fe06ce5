#!/usr/bin/env bash
# Build a "device-like" Python virtual environment: only numpy<2 and tflite-runtime 2.14, which is
# what a Raspberry Pi typically has. edgekit's tests run the on-device harness inside it (locally
# and through a real sshd) to prove the harness needs nothing from edgekit.
#
# Usage: scripts/make-device-venv.sh DIR [PYTHON]
# Idempotent: a DIR whose interpreter already imports numpy and tflite_runtime is left alone; a
# half-built one (interrupted earlier) is removed and built again.
set -euo pipefail

dir="${1:?usage: make-device-venv.sh DIR [PYTHON]}"
python="${2:-python3}"
check='import numpy, tflite_runtime.interpreter; assert numpy.__version__ < "2"'

if [ -x "$dir/bin/python" ] && "$dir/bin/python" -c "$check" >/dev/null 2>&1; then
    echo "device venv ready: $dir"
    exit 0
fi

if ! "$python" -c 'import sys; sys.exit(not ((3, 8) <= sys.version_info[:2] <= (3, 11)))'; then
    echo "make-device-venv.sh: $python is Python $("$python" -c 'import platform; print(platform.python_version())');" \
         "tflite-runtime 2.14 has wheels for Python 3.8-3.11 only: pass one as the second argument" >&2
    exit 2
fi

rm -rf "$dir"
mkdir -p "$(dirname "$dir")"
"$python" -m venv "$dir"
"$dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    "numpy<2" "tflite-runtime==2.14.0"
"$dir/bin/python" -c "$check"
echo "device venv ready: $dir"
