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
