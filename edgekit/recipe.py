"""Recipes: which compression stages run, in which order, with which settings.

A recipe comes from three layers, merged in one order only (DESIGN.md §5)::

    target defaults  <  recipe file (--recipe FILE.yaml)  <  command-line flags

A recipe file looks like this (every key is optional; unknown keys are errors)::

    version: 1
    stages: [prune, qat]            # any of prune, cluster, qat (convert always runs last)
    prune:
      sparsity: 0.5                 # in [0, 1)
      schedule: polynomial          # or constant
      structured: "2:4"             # N:M = N zeros in every M consecutive input-channel weights
      policy: none                  # none | auto | xnnpack (XNNPACK latency-oriented pruning)
      skip_first: true              # leave the first prunable layer dense
      skip_last: true               # ... and the last one (usually the classifier)
      skip_max_share: 0.1           # ... unless it holds >= 10 % of the prunable weights
      include: []                   # fnmatch patterns of layer names to prune (empty: all)
      exclude: ["*_head*"]          # patterns of layer names to leave dense
    cluster: {clusters: 16, init: kmeans++}
    qat: {exclude: []}
    train: {epochs: 2, batch_size: 32, learning_rate: 0.0005, lr_schedule: cosine, patience: 2,
            validation_split: 0.1, loss: auto, distill: 0.0}
    convert: {quantize: int8, io_dtype: float32}

Nothing here imports TensorFlow: recipes are checked before any model is loaded.
"""
from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, Literal, Mapping, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError

STAGE_ORDER: tuple[str, ...] = ("prune", "cluster", "qat")
"""Training stages in the only order that works (prune-preserving clustering, then (P)(C)QAT)."""

QUANTIZE_MODES = ("int8", "float16", "dynamic", "int16x8", "float32")

LOSSES = ("auto", "sparse_categorical_crossentropy", "sparse_categorical_crossentropy_from_logits",
          "categorical_crossentropy", "categorical_crossentropy_from_logits", "binary_crossentropy",
          "binary_crossentropy_from_logits", "mse", "mae", "huber")

_NM = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


def parse_structured(value: str) -> tuple[int, int]:
    """Parse ``"N:M"`` into ``(N, M)``: N zeros in every block of M (tfmot's ``sparsity_m_by_n``).

    Raises:
        ValueError: the text is not ``N:M`` with ``1 <= N < M <= 64``.
    """
    m = _NM.match(str(value))
    if not m:
        raise ValueError(f"structured sparsity {value!r} is not N:M (e.g. 2:4)")
    zeros, block = int(m.group(1)), int(m.group(2))
    if not 1 <= zeros < block:
        raise ValueError(f"structured sparsity {value!r}: N must be in [1, M) (N zeros in every block of M)")
    if block > 64:
        raise ValueError(f"structured sparsity {value!r}: blocks larger than 64 are not supported")
    return zeros, block


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PruneConfig(_Strict):
    """Magnitude pruning (tfmot ``prune_low_magnitude``)."""

    sparsity: float = Field(default=0.5, ge=0.0, lt=1.0, description="final fraction of zero weights, in [0, 1)")
    schedule: Literal["polynomial", "constant"] = Field(
        default="polynomial", description="PolynomialDecay (ramp up) or ConstantSparsity (prune at once)")
    initial_sparsity: float = Field(default=0.0, ge=0.0, lt=1.0, description="start of the polynomial ramp")
    ramp: float = Field(default=0.7, gt=0.0, le=1.0,
                        description="fraction of the training steps over which the polynomial schedule ramps up")
    frequency: Optional[int] = Field(default=None, ge=1,
                                     description="update the masks every N steps (default: ~10 updates per ramp)")
    structured: Optional[str] = Field(default=None, description="N:M = N zeros in every M consecutive weights")
    policy: Literal["none", "auto", "xnnpack"] = Field(
        default="none", description="xnnpack: prune only what XNNPACK's sparse kernels can use; auto: when the "
                                    "graph and the export dtype allow it")
    skip_first: bool = Field(default=True, description="leave the first prunable layer dense")
    skip_last: bool = Field(default=True, description="leave the last prunable layer dense")
    skip_max_share: float = Field(default=0.1, gt=0.0, le=1.0,
                                  description="skip_first/skip_last only spare a layer holding less than this share "
                                              "of the prunable weights (1.0: always)")
    include: list[str] = Field(default_factory=list, description="layer-name patterns to prune (empty: all)")
    exclude: list[str] = Field(default_factory=list, description="layer-name patterns to leave dense")
    epochs: Optional[int] = Field(default=None, ge=1, description="override train.epochs for this stage")
    learning_rate: Optional[float] = Field(default=None, gt=0, description="override train.learning_rate")

    @field_validator("structured")
    @classmethod
    def _check_structured(cls, value: Optional[str]) -> Optional[str]:
        if value is None or str(value).strip().lower() in ("", "none", "off"):
            return None
        zeros, block = parse_structured(value)
        return f"{zeros}:{block}"

    @model_validator(mode="after")
    def _check_ramp(self) -> "PruneConfig":
        if self.schedule == "polynomial" and self.initial_sparsity > self.sparsity:
            raise ValueError(f"initial_sparsity ({self.initial_sparsity}) is larger than sparsity ({self.sparsity})")
        return self

    @property
    def m_by_n(self) -> Optional[tuple[int, int]]:
        """``(N zeros, block M)`` for structured sparsity, else None."""
        return parse_structured(self.structured) if self.structured else None

    @property
    def effective_sparsity(self) -> float:
        """The sparsity the pruned layers end with (N/M for structured sparsity)."""
        nm = self.m_by_n
        return nm[0] / nm[1] if nm else self.sparsity


class ClusterConfig(_Strict):
    """Weight clustering (tfmot ``cluster_weights``); sparsity-preserving after pruning."""

    clusters: int = Field(default=16, ge=2, le=256, description="number of shared weight values per layer")
    init: Literal["kmeans++", "linear", "density", "random"] = "kmeans++"
    skip_first: bool = False
    skip_last: bool = False
    skip_max_share: float = Field(default=0.1, gt=0.0, le=1.0)
    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    epochs: Optional[int] = Field(default=None, ge=1)
    learning_rate: Optional[float] = Field(default=1e-4, gt=0)


class QatConfig(_Strict):
    """Quantization-aware training (tfmot default 8-bit; prune-/cluster-preserving when needed)."""

    exclude: list[str] = Field(default_factory=list, description="layer-name patterns left in float during QAT")
    epochs: Optional[int] = Field(default=None, ge=1)
    learning_rate: Optional[float] = Field(default=None, gt=0)


class TrainConfig(_Strict):
    """Fine-tuning shared by the training stages."""

    epochs: int = Field(default=2, ge=0, le=1000, description="fine-tuning epochs (at least 1 when training)")
    batch_size: int = Field(default=32, ge=1, le=65536)
    learning_rate: float = Field(default=5e-4, gt=0, le=1.0, description="peak learning rate of each stage")
    lr_schedule: Literal["constant", "cosine"] = Field(
        default="cosine", description="learning rate over a stage: cosine decay to 1 % of it (default), or constant")
    patience: int = Field(default=2, ge=1, description="early stopping: epochs without val_loss improvement")
    validation_split: float = Field(default=0.1, gt=0.0, lt=0.5,
                                    description="share of the training split held out for early stopping")
    loss: str = Field(default="auto", description=f"one of {', '.join(LOSSES)}")
    seed: int = 0
    max_samples: Optional[int] = Field(default=None, ge=1, description="use at most this many training samples")
    distill: float = Field(default=0.0, ge=0.0, le=0.5,
                           description="knowledge distillation: weight of the input model's predicted class "
                                       "probabilities in the fine-tuning targets, the rest being the labels "
                                       "(0: labels only; at most 0.5 so the label always stays the target "
                                       "class; softmax / logits classifiers only)")

    @field_validator("loss")
    @classmethod
    def _check_loss(cls, value: str) -> str:
        if value not in LOSSES:
            near = difflib.get_close_matches(value, LOSSES, n=1)
            raise ValueError(f"unknown loss {value!r}" + (f" (did you mean {near[0]!r}?)" if near else "")
                             + f"; choose one of {', '.join(LOSSES)}")
        return value


class ConvertConfig(_Strict):
    """The exported ``.tflite`` (see :mod:`edgekit.stages.convert`)."""

    quantize: Literal["int8", "float16", "dynamic", "int16x8", "float32"] = "int8"
    io_dtype: Literal["int8", "float32"] = "float32"


class Recipe(_Strict):
    """A complete, validated compression recipe."""

    version: Literal[1] = 1
    stages: list[Literal["prune", "cluster", "qat", "convert"]] = Field(default_factory=list)
    prune: PruneConfig = Field(default_factory=PruneConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    qat: QatConfig = Field(default_factory=QatConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    convert: ConvertConfig = Field(default_factory=ConvertConfig)

    @field_validator("stages")
    @classmethod
    def _check_stages(cls, value: list[str]) -> list[str]:
        seen: list[str] = []
        for name in value:
            if name in seen:
                raise ValueError(f"stage {name!r} is listed twice")
            seen.append(name)
        if "convert" in seen and seen[-1] != "convert":
            raise ValueError("convert must be the last stage")
        train = [s for s in seen if s != "convert"]
        ordered = [s for s in STAGE_ORDER if s in train]
        if train != ordered:
            raise ValueError(f"stages {train} are out of order; the only working order is "
                             f"{' -> '.join(ordered)} (e.g. QAT after pruning keeps the zeros, not the reverse)")
        return [s for s in STAGE_ORDER if s in train]

    @model_validator(mode="after")
    def _check_combination(self) -> "Recipe":
        if "qat" in self.stages and self.convert.quantize != "int8":
            raise ValueError(f"qat trains for int8 but convert.quantize is {self.convert.quantize}; "
                             "use quantize int8 or drop the qat stage (--no-qat)")
        if self.convert.io_dtype == "int8" and self.convert.quantize != "int8":
            raise ValueError(f"io_dtype int8 needs quantize int8 (got {self.convert.quantize})")
        if "prune" in self.stages and self.prune.effective_sparsity == 0.0:
            self.stages = [s for s in self.stages if s != "prune"]  # sparsity 0: nothing to prune
        for stage in self.stages:
            if self.epochs_for(stage) < 1:
                raise ValueError(f"the {stage} stage fine-tunes the model and needs at least 1 epoch "
                                 f"(train.epochs is {self.train.epochs}); use --epochs 1 or more")
        return self

    # -- convenience ---------------------------------------------------------------------------
    @property
    def training(self) -> bool:
        """True when any stage fine-tunes the model."""
        return bool(self.stages)

    def epochs_for(self, stage: str) -> int:
        """Fine-tuning epochs of one stage (its own override, else ``train.epochs``)."""
        own = getattr(getattr(self, stage), "epochs", None)
        return int(own or self.train.epochs)

    def learning_rate_for(self, stage: str) -> float:
        """Learning rate of one stage (its own override, else ``train.learning_rate``)."""
        own = getattr(getattr(self, stage), "learning_rate", None)
        return float(own or self.train.learning_rate)

    def stage_config(self, stage: str) -> dict[str, Any]:
        """The canonical config of one stage, as it enters its cache key (stage + training settings)."""
        if stage == "convert":
            return self.convert.model_dump()
        return {"stage": getattr(self, stage).model_dump(), "train": self.train.model_dump(),
                "epochs": self.epochs_for(stage), "learning_rate": self.learning_rate_for(stage),
                "after": [s for s in STAGE_ORDER[: STAGE_ORDER.index(stage)] if s in self.stages]}


# ------------------------------------------------------------------------------------------------
# Building a recipe from the three layers
# ------------------------------------------------------------------------------------------------
FLAG_NAMES = ("prune", "structured", "clusters", "qat", "quantize", "io_dtype", "epochs")
"""Flat settings shared by CLI flags and a target's ``default_recipe``."""

_FLAG_TEXT = {"prune": "--prune", "structured": "--structured", "clusters": "--clusters", "qat": "--qat/--no-qat",
              "quantize": "--quantize", "io_dtype": "--io", "epochs": "--epochs"}


def _flat_to_nested(flat: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, bool]]:
    """Map flat settings (flags / target defaults) to recipe keys and stage switches."""
    nested: dict[str, Any] = {}
    switches: dict[str, bool] = {}
    if flat.get("prune") is not None:
        nested.setdefault("prune", {})["sparsity"] = flat["prune"]
        switches["prune"] = float(flat["prune"]) > 0
    if flat.get("structured") is not None:
        text = str(flat["structured"]).strip()
        off = text.lower() in ("", "none", "off")
        nested.setdefault("prune", {})["structured"] = None if off else text
        if not off:
            switches["prune"] = True
    if flat.get("clusters") is not None:
        clusters = int(flat["clusters"])
        if clusters:
            nested.setdefault("cluster", {})["clusters"] = clusters
        switches["cluster"] = clusters > 0
    if flat.get("qat") is not None:
        switches["qat"] = bool(flat["qat"])
    for key in ("quantize", "io_dtype"):
        if flat.get(key) is not None:
            nested.setdefault("convert", {})[key] = flat[key]
    if flat.get("epochs") is not None:
        nested.setdefault("train", {})["epochs"] = flat["epochs"]
    return nested, switches


def _deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _walk_sources(data: Mapping[str, Any], source: str, prefix: str, sources: dict[str, str]) -> None:
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            _walk_sources(value, source, path + ".", sources)
        else:
            sources[path] = source


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    model: Any = Recipe
    for part in loc:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            break
        model = field.annotation
    return list(getattr(model, "model_fields", {}).keys())


def _explain(exc: ValidationError, source: str, sources: Mapping[str, str] | None = None) -> ConfigError:
    """Turn the first pydantic error into a one-line ConfigError naming file, field and fix."""
    err = exc.errors()[0]
    loc = tuple(p for p in err.get("loc", ()) if not isinstance(p, int))
    path = ".".join(str(p) for p in loc)
    where = (sources or {}).get(path, source)
    if err["type"] == "extra_forbidden":
        known = _fields_at(loc[:-1])
        near = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.5)
        hint = f"did you mean {'.'.join([*map(str, loc[:-1]), near[0]])!r}?" if near else \
            f"known keys here: {', '.join(known)}"
        return ConfigError(f"{where}: unknown key {path!r}", hint=hint)
    if err["type"] == "literal_error" and loc and loc[0] == "stages":
        bad = str(err.get("input"))
        near = difflib.get_close_matches(bad, [*STAGE_ORDER, "convert"], n=1, cutoff=0.5)
        hint = (f"did you mean {near[0]!r}? " if near else "") + "stages are prune, cluster, qat (convert runs last)"
        return ConfigError(f"{where}: unknown stage {bad!r} in 'stages'", hint=hint)
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    if not loc:  # a rule about the combination of settings
        return ConfigError(f"{where}: {msg}", hint="change one of the settings named above")
    value = err.get("input")
    shown = "" if isinstance(value, (dict, list)) or value is None else f"={value!r}"
    return ConfigError(f"{where}: {path or 'recipe'}{shown}: {msg}", hint="fix the value and re-run")


def read_recipe_file(path: str | Path) -> dict[str, Any]:
    """Read a recipe YAML file into a plain dict (syntax and top-level shape only)."""
    import yaml

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"recipe file {p} does not exist", hint="check the --recipe path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read recipe file {p}: {exc}", hint="pass a UTF-8 YAML file") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"recipe file {p} is not valid YAML{at}", hint="fix the YAML syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"recipe file {p} must be a mapping (keys like stages:, prune:), got {type(data).__name__}",
                          hint="see `edgekit compress --help` for the recipe format")
    return data


def load_recipe(path: str | Path) -> Recipe:
    """Load and validate a recipe file on its own (no target defaults, no flags)."""
    data = read_recipe_file(path)
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        raise _explain(exc, str(path)) from None


class ResolvedRecipe(BaseModel):
    """A recipe plus where each setting came from (for ``--dry-run``)."""

    recipe: Recipe
    sources: dict[str, str] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)


def _rank(source: str | None) -> int:
    if not source:
        return -1
    return 2 if source == "flags" else 1 if source.startswith("recipe") else 0


def resolve_recipe(*, target_name: str | None = None, target_defaults: Any = None,
                   recipe_path: str | Path | None = None, flags: Mapping[str, Any] | None = None) -> ResolvedRecipe:
    """Merge target defaults < recipe file < flags into one validated :class:`Recipe`.

    Args:
        target_name: the target's name (for messages and provenance).
        target_defaults: the target's ``default_recipe`` (pydantic model or mapping of the flat
            settings in :data:`FLAG_NAMES`); None for no defaults.
        recipe_path: a recipe YAML file, or None.
        flags: flat CLI settings (:data:`FLAG_NAMES`); None values are "not given".

    Raises:
        ConfigError: an unknown key or stage, a value out of range, or an impossible combination.
    """
    data: dict[str, Any] = {}
    sources: dict[str, str] = {}
    enabled: dict[str, tuple[bool, str]] = {}

    def apply_flat(flat: Mapping[str, Any], source: str) -> None:
        nonlocal data
        flat = {k: v for k, v in flat.items() if k in FLAG_NAMES and v is not None}
        nested, switches = _flat_to_nested(flat)
        data = _deep_merge(data, nested)
        _walk_sources(nested, source, "", sources)
        for stage, on in switches.items():
            enabled[stage] = (on, source)

    if target_defaults is not None:
        if hasattr(target_defaults, "model_dump"):
            defaults = target_defaults.model_dump()
        else:
            defaults = dict(target_defaults)
        apply_flat(defaults, f"target {target_name or '?'}")
    if recipe_path is not None:
        file_data = read_recipe_file(recipe_path)
        file_stages = file_data.get("stages")
        if file_stages is not None:
            try:
                Recipe.model_validate({"stages": file_stages})
            except ValidationError as exc:
                raise _explain(exc, str(recipe_path)) from None
            for stage in STAGE_ORDER:
                enabled[stage] = (stage in file_stages, f"recipe {recipe_path}")
        rest = {k: v for k, v in file_data.items() if k != "stages"}
        data = _deep_merge(data, rest)
        _walk_sources(rest, f"recipe {recipe_path}", "", sources)
    if flags:
        unknown = [k for k, v in flags.items() if k not in FLAG_NAMES and v is not None]
        if unknown:
            raise ConfigError(f"unknown compress setting(s) {', '.join(sorted(unknown))}",
                              hint=f"known settings: {', '.join(FLAG_NAMES)}")
        apply_flat(flags, "flags")
    data["stages"] = [s for s in STAGE_ORDER if enabled.get(s, (False, ""))[0]]
    notes: list[str] = []
    quantize = (data.get("convert") or {}).get("quantize", "int8")
    q_source = sources.get("convert.quantize")
    if quantize != "int8":
        # A lower layer's int8-only settings give way to an explicit non-int8 choice above them.
        if "qat" in data["stages"] and _rank(enabled["qat"][1]) < _rank(q_source):
            data["stages"].remove("qat")
            notes.append(f"qat from {enabled['qat'][1]} dropped: quantize {quantize} (from {q_source}) "
                         "is not int8")
            enabled["qat"] = (False, f"{enabled['qat'][1]}, dropped for quantize {quantize}")
        io_source = sources.get("convert.io_dtype")
        if (data.get("convert") or {}).get("io_dtype") == "int8" and _rank(io_source) < _rank(q_source):
            data["convert"]["io_dtype"] = "float32"
            sources["convert.io_dtype"] = f"{io_source}, float32 for quantize {quantize}"
    for stage, (_on, source) in enabled.items():
        sources[f"stages.{stage}"] = source
    # name the flag in messages about flag values
    flag_sources = {path: (f"{_FLAG_TEXT[_flag_of(path)]}" if src == "flags" and _flag_of(path) else src)
                    for path, src in sources.items()}
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        raise _explain(exc, f"recipe {recipe_path}" if recipe_path else "settings", flag_sources) from None
    return ResolvedRecipe(recipe=recipe, sources=sources, notes=notes)


def _flag_of(path: str) -> str | None:
    return {"prune.sparsity": "prune", "prune.structured": "structured", "cluster.clusters": "clusters",
            "convert.quantize": "quantize", "convert.io_dtype": "io_dtype", "train.epochs": "epochs",
            "stages.qat": "qat"}.get(path)


def load_recipe_overrides(path: str | Path) -> dict[str, Any]:
    """The flat settings (:data:`FLAG_NAMES`) a recipe file sets; for callers that only need those."""
    recipe_data = read_recipe_file(path)
    rec = load_recipe(path)
    out: dict[str, Any] = {}
    if "stages" in recipe_data:
        out["qat"] = "qat" in rec.stages
        out["prune"] = rec.prune.sparsity if "prune" in rec.stages else 0.0
        out["clusters"] = rec.cluster.clusters if "cluster" in rec.stages else None
    if "prune" in recipe_data and "structured" in recipe_data["prune"]:
        out["structured"] = rec.prune.structured
    for key in ("quantize", "io_dtype"):
        if key in (recipe_data.get("convert") or {}):
            out[key] = getattr(rec.convert, key)
    if "epochs" in (recipe_data.get("train") or {}):
        out["epochs"] = rec.train.epochs
    return out


def describe(recipe: Recipe) -> list[str]:
    """Human-readable lines of the plan, one per stage (for ``--dry-run``)."""
    lines = []
    for stage in recipe.stages:
        epochs = recipe.epochs_for(stage)
        if stage == "prune":
            p = recipe.prune
            if p.m_by_n:
                what = f"structured {p.structured} ({p.m_by_n[0]} zeros in every {p.m_by_n[1]} weights, " \
                       f"{p.effective_sparsity:.0%})"
            else:
                what = f"{p.schedule} schedule to {p.sparsity:.0%} sparsity"
            lines.append(f"prune: {what}, policy {p.policy}, {epochs} epoch(s)")
        elif stage == "cluster":
            lines.append(f"cluster: {recipe.cluster.clusters} clusters ({recipe.cluster.init})"
                         f"{', sparsity-preserving' if 'prune' in recipe.stages else ''}, {epochs} epoch(s)")
        elif stage == "qat":
            scheme = "cluster-preserving (PCQAT)" if "cluster" in recipe.stages and "prune" in recipe.stages else \
                "cluster-preserving (CQAT)" if "cluster" in recipe.stages else \
                "prune-preserving (PQAT)" if "prune" in recipe.stages else "default 8-bit"
            lines.append(f"qat: {scheme}, {epochs} epoch(s)")
    if recipe.training and recipe.train.distill > 0:
        lines.append(f"fine-tuning targets: {1 - recipe.train.distill:.0%} labels + {recipe.train.distill:.0%} "
                     "the input model's predictions (distillation)")
    c = recipe.convert
    lines.append(f"convert: {c.quantize}" + (f" ({c.io_dtype} I/O)" if c.quantize == "int8" else ""))
    return lines
