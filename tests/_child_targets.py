"""Module-level functions for child-process tests (must be importable by the spawned child)."""
import os
import signal
import time

from edgekit.errors import DataError


def add(a, b):
    return a + b


def segfault():
    os.kill(os.getpid(), signal.SIGSEGV)


def raise_data_error():
    raise DataError("bad sample 3 in x.npz", hint="clean it")


def raise_value_error():
    raise ValueError("boom")


def sleep_forever():
    time.sleep(600)


def read_env(name):
    return os.environ.get(name)


def allocate_until_killed(limit_bytes):
    """Grow memory under an address-space limit: the allocation fails like an out-of-memory kill would."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))
    blocks = []
    try:
        while True:
            blocks.append(bytearray(16 << 20))
    except MemoryError:
        os.kill(os.getpid(), signal.SIGKILL)  # what the kernel's OOM killer does to a process
