"""The interface contract (DESIGN.md §7), checked by the project's shared contract checker.

The checker lives beside the repository (``../shared/tools/contract_check.py``) in the workplace
and in CI; a plain clone elsewhere has no copy and skips this test.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

CHECKER = Path(__file__).resolve().parents[2] / "shared" / "tools" / "contract_check.py"

pytestmark = pytest.mark.tf


@pytest.mark.skipif(not CHECKER.exists(), reason="shared/tools/contract_check.py is not beside this clone")
def test_contract_every_check_passes():
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run([sys.executable, str(CHECKER)], capture_output=True, text=True, timeout=1500, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert lines and all(line.startswith("PASS") for line in lines), proc.stdout
