"""The child-process boundary: results, errors and crashes cross it as they should."""
import sys
from pathlib import Path

import pytest

from edgekit.child import run_in_child
from edgekit.errors import ChildCrash, DataError

sys.path.insert(0, str(Path(__file__).parent))
import _child_targets as targets  # noqa: E402


def test_child_returns_result():
    assert run_in_child(targets.add, 2, 3, what="adding") == 5


def test_child_segfault_becomes_childcrash_exit3():
    with pytest.raises(ChildCrash) as info:
        run_in_child(targets.segfault, what="crashing on purpose")
    assert "SIGSEGV" in str(info.value)
    assert info.value.exit_code == 3


def test_child_edgekit_error_crosses_unchanged():
    with pytest.raises(DataError) as info:
        run_in_child(targets.raise_data_error, what="failing")
    assert str(info.value) == "bad sample 3 in x.npz (clean it)"
    assert info.value.exit_code == 2


def test_child_unexpected_error_is_reported_with_traceback():
    with pytest.raises(ChildCrash) as info:
        run_in_child(targets.raise_value_error, what="failing")
    assert "ValueError: boom" in str(info.value)
    assert "raise_value_error" in info.value.child_traceback


def test_child_timeout_kills_the_child():
    with pytest.raises(ChildCrash) as info:
        run_in_child(targets.sleep_forever, what="sleeping", timeout=2)
    assert "timed out" in str(info.value)


def test_child_sets_legacy_keras_env():
    assert run_in_child(targets.read_env, "TF_USE_LEGACY_KERAS", what="env") == "1"


def test_child_killed_reports_out_of_memory_distinctly():
    with pytest.raises(ChildCrash) as info:
        run_in_child(targets.allocate_until_killed, 512 << 20, what="allocating")
    assert "SIGKILL" in str(info.value) and "out of memory" in str(info.value)
    assert info.value.exit_code == 3
