"""The CI baseline file: small, human-readable, versioned JSON meant to be committed.

``edgekit check MODEL --data D --baseline edgekit-baseline.json --update-baseline`` writes one;
``edgekit check`` without ``--update-baseline`` compares a model against it. The file records what
the gate compares (metrics, size, gzip size, tensor arena, latency when measured), what makes the
comparison meaningful (model sha256, data fingerprint, sample count, tool versions) and the
tolerances of the gate, so a team sets them once in the committed file::

    {
      "schema_version": 1,
      "kind": "edgekit-baseline",
      "created": "2025-01-31T12:00:00Z",
      "model": {"path": "model.tflite", "sha256": "…", "size_bytes": 7544, "gzip_bytes": 6011,
                "quantization": "int8"},
      "data": {"spec": "eval.npz", "split": "test", "fingerprint": "…", "samples": 360,
               "task": "classification", "num_classes": 10},
      "metrics": {"accuracy": 0.95, "top3_accuracy": 0.99, "macro_f1": 0.95},
      "arena": {"bytes": 2304, "source": "tflite-micro"},
      "latency": null,
      "target": null,
      "tolerances": {"max_accuracy_drop": 0.01, "relative": false, "max_size_growth": 0.05,
                     "max_arena_growth": 0.1, "max_latency_regression": 0.1},
      "versions": {"edgekit": "0.1.0", "ai-edge-litert": "2.3.0", …}
    }

Anything that is not such a file (missing, not JSON, another tool's JSON, a newer schema, NaN or
negative numbers, unknown fields) is a :class:`~edgekit.errors.ConfigError` (exit 2): the gate
fails closed instead of comparing against garbage.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ConfigError
from .fsutil import atomic_write_text

SCHEMA_VERSION = 1
KIND = "edgekit-baseline"
MAX_BASELINE_BYTES = 1 << 20  # a baseline is a few hundred bytes; anything near 1 MiB is not one
_CREATE_HINT = "create it with: edgekit check MODEL --data SPEC --baseline {path} --update-baseline"

#: Gate defaults used when neither the baseline nor a flag sets a tolerance.
DEFAULT_TOLERANCES: dict[str, Any] = {
    "max_accuracy_drop": 0.01,
    "relative": False,
    "max_size_growth": 0.05,
    "max_arena_growth": 0.10,
    "max_latency_regression": 0.10,
}
#: Defaults for regression tasks, where the gated metric is RMSE (relative growth is the sane unit).
DEFAULT_REGRESSION_TOLERANCES: dict[str, Any] = {**DEFAULT_TOLERANCES, "max_accuracy_drop": 0.05, "relative": True}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tolerances(_Strict):
    """How much worse a candidate may be than the baseline before the gate fails.

    Attributes:
        max_accuracy_drop: allowed drop of the primary metric: accuracy for classification
            (a drop is ``baseline - current``), RMSE for regression (a drop is an increase).
            An absolute amount, or a fraction of the baseline value when ``relative``.
        relative: interpret ``max_accuracy_drop`` as a fraction of the baseline value.
        max_size_growth: allowed growth of the ``.tflite`` size, as a fraction (0.05 = 5 %).
        max_arena_growth: allowed growth of the tensor arena, as a fraction.
        max_latency_regression: allowed slow-down of the median latency, as a fraction; only gated
            with an interleaved measurement that is statistically significant.
    """

    max_accuracy_drop: float = Field(DEFAULT_TOLERANCES["max_accuracy_drop"], ge=0)
    relative: bool = DEFAULT_TOLERANCES["relative"]
    max_size_growth: float = Field(DEFAULT_TOLERANCES["max_size_growth"], ge=0)
    max_arena_growth: float = Field(DEFAULT_TOLERANCES["max_arena_growth"], ge=0)
    max_latency_regression: float = Field(DEFAULT_TOLERANCES["max_latency_regression"], ge=0)

    @field_validator("max_accuracy_drop", "max_size_growth", "max_arena_growth", "max_latency_regression")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v


class ModelInfo(_Strict):
    path: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(gt=0)
    gzip_bytes: int = Field(gt=0)
    quantization: Optional[str] = None


class DataInfo(_Strict):
    spec: str
    split: Literal["test"] = "test"
    fingerprint: str = Field(pattern=r"^[0-9a-f]{64}$")
    samples: int = Field(gt=0)
    task: Literal["classification", "regression"]
    num_classes: Optional[int] = Field(None, gt=0)


class ArenaInfo(_Strict):
    bytes: int = Field(gt=0)
    source: str


class LatencyInfo(_Strict):
    p50_ms: float = Field(gt=0)
    source: str
    threads: int = Field(1, gt=0)
    runtime: Optional[str] = None

    @field_validator("p50_ms")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v


class Baseline(_Strict):
    """A parsed, validated baseline file (see the module docstring for the layout)."""

    schema_version: Literal[1]
    kind: Literal["edgekit-baseline"]
    created: str
    model: ModelInfo
    data: DataInfo
    metrics: dict[str, float]
    arena: Optional[ArenaInfo] = None
    latency: Optional[LatencyInfo] = None
    target: Optional[str] = None
    tolerances: Tolerances = Tolerances()
    versions: dict[str, str] = Field(default_factory=dict)

    @field_validator("metrics")
    @classmethod
    def _finite_metrics(cls, v: dict[str, float]) -> dict[str, float]:
        if not v:
            raise ValueError("must hold at least one metric")
        for name, value in v.items():
            if not math.isfinite(value):
                raise ValueError(f"metric {name!r} is {value}, expected a finite number")
        return v

    def to_json(self) -> str:
        """The file's text: 2-space indented JSON with a trailing newline."""
        return json.dumps(self.model_dump(mode="json"), indent=2) + "\n"


def _reject_constant(name: str) -> float:
    raise ValueError(f"non-finite number {name} (JSON allows only finite numbers)")


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def load_baseline(path: str | os.PathLike[str]) -> Baseline:
    """Read and validate a baseline file.

    Raises:
        ConfigError: the file is missing, unreadable, too large, not JSON, not an edgekit baseline,
            from a newer schema, or has a missing / wrong / non-finite field. Exit 2.
    """
    p = Path(path)
    hint = _CREATE_HINT.format(path=p)
    if not p.exists():
        raise ConfigError(f"baseline {p} does not exist", hint=hint)
    if not p.is_file():
        raise ConfigError(f"baseline {p} is not a file", hint=hint)
    try:
        size = p.stat().st_size
        if size > MAX_BASELINE_BYTES:
            raise ConfigError(f"baseline {p} is {size} bytes, expected a small JSON file (< {MAX_BASELINE_BYTES})",
                              hint="pass the edgekit-baseline.json written by --update-baseline")
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read baseline {p}: {exc.strerror or exc}", hint="check the path and permissions") from exc
    try:
        doc = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"baseline {p} is not UTF-8 text (byte {exc.start})",
                          hint="the file is corrupt; restore it from version control or " + hint) from exc
    except (json.JSONDecodeError, ValueError) as exc:
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise ConfigError(f"baseline {p} is not valid JSON{where}: {getattr(exc, 'msg', exc)}",
                          hint="the file is corrupt; restore it from version control or " + hint) from exc
    if not isinstance(doc, dict) or doc.get("kind") != KIND:
        found = type(doc).__name__ if not isinstance(doc, dict) else f"kind={doc.get('kind')!r}"
        raise ConfigError(f"baseline {p} is not an edgekit baseline (expected \"kind\": \"{KIND}\", got {found})",
                          hint="pass the file written by --update-baseline, or " + hint)
    version = doc.get("schema_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        raise ConfigError(f"baseline {p} has schema_version {version}; this edgekit reads version {SCHEMA_VERSION}",
                          hint="upgrade edgekit, or re-create the baseline with --update-baseline")
    try:
        return Baseline.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"baseline {p}: field {_field_path(err['loc'])}: {err['msg']}{more}",
                          hint="fix the field, or " + hint) from exc


def save_baseline(path: str | os.PathLike[str], baseline: Baseline) -> Path:
    """Write ``baseline`` atomically (temp file + rename): an interrupted write leaves the old file."""
    return atomic_write_text(path, baseline.to_json())


def resolve_tolerances(*, task: str, stored: Tolerances | None = None, **overrides: Any) -> Tolerances:
    """Tolerances in precedence order: task defaults < the baseline's stored values < flags.

    Args:
        task: ``"classification"`` or ``"regression"`` (picks the defaults when nothing is stored).
        stored: the baseline's tolerances, if a baseline exists.
        **overrides: flag values; ``None`` means "not given".

    Raises:
        ConfigError: a negative or non-finite override.
    """
    base = stored.model_dump() if stored is not None else dict(
        DEFAULT_REGRESSION_TOLERANCES if task == "regression" else DEFAULT_TOLERANCES)
    unknown = set(overrides) - set(Tolerances.model_fields)
    if unknown:
        raise ConfigError(f"unknown tolerance(s): {', '.join(sorted(unknown))}",
                          hint=f"use {', '.join(Tolerances.model_fields)}")
    base.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Tolerances.model_validate(base)
    except ValidationError as exc:
        err = exc.errors()[0]
        flag = "--" + str(err["loc"][0]).replace("_", "-")
        raise ConfigError(f"tolerance {flag}: {err['msg']} (got {err.get('input')!r})",
                          hint="pass a finite, non-negative fraction, e.g. 0.01") from exc


def utc_now() -> str:
    """The current time as an ISO-8601 UTC string with a ``Z`` suffix, to the second."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
