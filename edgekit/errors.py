"""Error classes. Each carries the exit code the CLI maps it to (DESIGN.md §5, §7).

Messages name the file, the field and the fix, in one line.
"""
from __future__ import annotations


class EdgekitError(Exception):
    """Base class of every error edgekit raises on purpose."""

    exit_code: int = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:  # one line, always
        text = self.message if not self.hint else f"{self.message} ({self.hint})"
        return " ".join(text.split())

    def __reduce__(self):  # survive pickling across the child-process boundary
        return (_rebuild, (type(self), self.message, self.hint))


def _rebuild(cls, message, hint):
    return cls(message, hint=hint)


class ConfigError(EdgekitError):
    """Bad usage, flags, recipe or target profile (exit 2)."""


class ModelError(EdgekitError):
    """A model file that is corrupt, unsupported or unsafe (exit 2)."""


class DataError(EdgekitError):
    """A dataset that is missing, malformed or does not match the model (exit 2)."""


class BudgetError(EdgekitError):
    """A check or budget failed (exit 1)."""

    exit_code = 1


class DeviceError(EdgekitError):
    """A failure outside the user's input: crashed interpreter or converter, unreachable device (exit 3)."""

    exit_code = 3


class ChildCrash(DeviceError):
    """A child process died (signal, timeout, memory limit) while doing work for edgekit (exit 3)."""
