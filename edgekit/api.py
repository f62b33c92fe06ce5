"""Library entry points: keyword-only, typed, no click. ``edgekit.<name>`` re-exports these.

Each area module implements its own entry point; this module only gathers them so users have one
import: ``from edgekit import compress, inspect, benchmark, validate, check, load_target``.
"""
from __future__ import annotations

from .pipeline import compress  # noqa: F401

# Areas add their one-line re-export below (keep alphabetical by module).
from .analysis.inspection import inspect, list_targets, load_target  # noqa: F401
from .bench.run import benchmark  # noqa: F401
from .gate import check  # noqa: F401
from .validate import validate  # noqa: F401

__all__ = ["benchmark", "check", "compress", "inspect", "list_targets", "load_target", "validate"]
