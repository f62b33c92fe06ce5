"""What to measure, independent of where: the harness's command-line arguments.

Every runner (local child process, SSH, QEMU emulation) runs the same ``harness.py`` with the
arguments built here, so a number means the same thing wherever it was measured.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import edgekit.harness as harness  # not `from .. import`: edgekit's lazy __getattr__ would recurse
from ..errors import ConfigError

RUNTIME_CHOICES = ("auto",) + harness.RUNTIMES


def parse_threads(value: int | str | Sequence[int] | None) -> tuple[int, ...] | None:
    """``4``, ``"1,2,4"`` or ``[1, 2, 4]`` → a tuple of thread counts (None stays None)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigError(f"--threads {value!r}: expected positive integers like 1,2,4")
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, str):
        text = value
    else:
        text = ",".join(str(v) for v in value)
    try:
        return tuple(harness.parse_threads(text))
    except harness.HarnessError as exc:
        raise ConfigError(exc.message, hint="e.g. --threads 4 or --threads 1,2,4") from exc


def parse_cpus(value: str | Sequence[int] | None) -> tuple[int, ...] | None:
    """``"0-3,6"`` or ``[0, 1]`` → a tuple of CPU numbers (checked on the machine that runs it)."""
    if value is None:
        return None
    text = value if isinstance(value, str) else ",".join(str(int(v)) for v in value)
    try:
        cpus = harness.parse_cpus(text)
    except harness.HarnessError as exc:
        raise ConfigError(exc.message, hint="e.g. --cpus 0-3 or --cpus 0,2") from exc
    if not cpus:
        raise ConfigError(f"--cpus {value!r}: no CPU listed")
    return tuple(cpus)


@dataclass(frozen=True)
class HarnessOptions:
    """Measurement settings, validated; :meth:`args` turns them into harness arguments."""

    threads: tuple[int, ...] = (1,)
    runs: int = 100
    warmup: int = 5
    warmup_time: float = 5.0
    min_time: float = 1.0
    max_time: float = 60.0
    max_runs: int = 20000
    cpus: tuple[int, ...] | None = None
    xnnpack: bool = True
    runtime: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.threads or any(t < 1 for t in self.threads):
            raise ConfigError(f"threads {self.threads}: each must be at least 1")
        if self.runs < 1:
            raise ConfigError(f"--runs {self.runs}: must be at least 1")
        if self.warmup < 0:
            raise ConfigError(f"--warmup {self.warmup}: must be 0 or more")
        for name in ("min_time", "max_time", "warmup_time"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or math.isnan(value) or math.isinf(value) or value < 0:
                raise ConfigError(f"--{name.replace('_', '-')} {value}: must be a finite number of seconds >= 0")
        if self.max_time < self.min_time:
            raise ConfigError(f"--max-time {self.max_time} is below --min-time {self.min_time}")
        if self.max_runs < self.runs:
            raise ConfigError(f"--runs {self.runs} is above the cap of {self.max_runs} runs",
                              hint="lower --runs, or use --min-time to measure longer")
        if self.runtime not in RUNTIME_CHOICES:
            raise ConfigError(f"--runtime {self.runtime!r}: expected one of {', '.join(RUNTIME_CHOICES)}")

    def args(self, *, model: str, source: str, compare: str | None = None, inputs: str | None = None,
             dump_outputs: str | None = None, samples: bool = True) -> list[str]:
        """The harness command line after ``harness.py`` (model first)."""
        out = [model, "--threads", ",".join(str(t) for t in self.threads), "--runs", str(self.runs),
               "--warmup", str(self.warmup), "--warmup-time", repr(float(self.warmup_time)),
               "--min-time", repr(float(self.min_time)), "--max-time", repr(float(self.max_time)),
               "--max-runs", str(self.max_runs), "--runtime", self.runtime, "--seed", str(self.seed),
               "--source", source]
        if self.cpus:
            out += ["--cpus", harness.format_cpus(list(self.cpus))]
        if not self.xnnpack:
            out.append("--no-xnnpack")
        if compare:
            out += ["--compare", compare]
        if inputs:
            out += ["--inputs", inputs]
        if dump_outputs:
            out += ["--dump-outputs", dump_outputs]
        if samples:
            out.append("--samples")
        return out

    def time_limit(self, *, models: int = 1, slack: float = 120.0) -> float:
        """Seconds after which a run is certainly stuck (the harness bounds itself by max-time)."""
        per_config = self.warmup_time + self.max_time * 1.2 + 10.0
        return slack + len(self.threads) * per_config * max(1, models)
