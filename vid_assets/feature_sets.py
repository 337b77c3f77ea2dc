"""Feature sets: which model, plan and clips make one kind of feature, declared once.

A feature set is a name plus everything that decides what its features are: the extractor (and
its arguments), the sampling plan and clip spec (fields of :func:`vid_assets.fit.fit_config`,
0-fields fitted to the model), precision, output and caption model, and how the store keeps them.
Each set becomes its own chain of the four per-video assets over the shared ``videos``
partitions (``defs/videos/``), its own group in the store and its own training view; its fields
are its code versions, so changing a set makes exactly its own partitions stale.

Sets are declared in YAML (``VID_ASSETS_SETS``: files or folders of ``*.yaml``)::

    sets:
      dinov2_frames:                  # lower-case name: asset key prefix, UI group, store group
        description: DINOv2-L per 1-fps frame (seed 002)
        extractor: dinov2-large       # any registry name (`vid-assets extractors`)
        args: {img_size: 224}         # keyword arguments for the extractor's factory
        sampling: {fps: 1, frames_per_clip: 1}
        precision: bf16

The built-in ``default`` set (EfficientNet-Lite0, 2 fps, 2-frame clips: what the project always
computed) is always there, keeps the unprefixed asset keys and the store's root group, and is
replaced by a set named ``default`` in the YAML.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vid_assets.extractors import DEFAULT_EXTRACTOR, Extractor, InputSpec, input_spec
from vid_assets.extractors.text import DEFAULT_TEXT_MODEL
from vid_assets.fit import PipelineConfig, fit_config, sampling_fields

DEFAULT_SET = "default"
DEFAULT_GROUP = "video_features"
NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
SAMPLING_FIELDS = sampling_fields()
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
OUTPUTS = ("auto", "pooled", "head")


class FeatureSetError(ValueError):
    """A declaration that cannot be used, with where it came from and what to write instead."""


def _frozen(d: Mapping[str, Any] | None) -> tuple[tuple[str, Any], ...]:
    """A mapping as sorted pairs, so a set is an immutable value (nested values as JSON text)."""
    return tuple(sorted((str(k), v if _scalar(v) else json.dumps(v, sort_keys=True)) for k, v in (d or {}).items()))


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, bool | int | float | str)


def _thawed(pairs: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    out = {}
    for k, v in pairs:
        if isinstance(v, str) and v[:1] in "[{":
            with contextlib.suppress(ValueError):
                v = json.loads(v)
        out[k] = v
    return out


@dataclass(frozen=True)
class FeatureSet:
    name: str = DEFAULT_SET
    extractor: str = DEFAULT_EXTRACTOR
    extractor_args: tuple[tuple[str, Any], ...] = ()
    sampling_fields: tuple[tuple[str, Any], ...] = ()
    precision: str = "auto"
    output: str = "auto"
    text_model: str = DEFAULT_TEXT_MODEL
    dtype: str = "float16"
    compression_level: int = 5
    description: str = field(default="", compare=False)

    # -- what it is ----------------------------------------------------------------------------
    @property
    def args(self) -> dict[str, Any]:
        """Keyword arguments for the extractor's factory (``pretrained``, ``img_size`` ...)."""
        return _thawed(self.extractor_args)

    @property
    def sampling(self) -> dict[str, Any]:
        """The :func:`~vid_assets.fit.fit_config` fields this set sets (the rest: defaults / fitted)."""
        return _thawed(self.sampling_fields)

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT_SET

    @property
    def key_prefix(self) -> list[str]:
        """Asset key prefix: none for the default set (its keys and history predate sets)."""
        return [] if self.is_default else [self.name]

    @property
    def group(self) -> str:
        return DEFAULT_GROUP if self.is_default else self.name

    def fits_model(self) -> bool:
        """Whether a size is left to the model (0 or unset), i.e. the config needs its input spec."""
        return not all(self.sampling.get(k) for k in ("short_side", "frames_per_clip", "stride", "crop_size"))

    def input_spec(self, build: bool = True) -> InputSpec | None:
        """What the model eats, from its config (no weights) where its factory declares it; a
        set that fixes every size needs nothing from the model."""
        if not self.fits_model():
            return InputSpec()
        return input_spec(self.extractor, build=build, **self.args)

    def config(self, fit: Extractor | InputSpec | None = None) -> PipelineConfig:
        """The set's plan and clip spec, 0-fields fitted to the model (``fit``: a loaded extractor
        or its spec; default: looked up from the model's config)."""
        return fit_config(fit if fit is not None else self.input_spec(), **self.sampling)

    def load(self, *, device: str = "auto", batch_size: int = 0, compile: bool = False, runtime: str = "") -> Extractor:
        """The set's model, once per process (``device``, ``batch_size``, ``compile`` and
        ``runtime`` are how it runs, not what it computes: those may change per run)."""
        from vid_assets.extractors.loading import load_extractor

        return load_extractor(
            self.extractor,
            device=device,
            precision=self.precision,
            compile=compile,
            runtime=runtime,
            batch_size=batch_size,
            output=self.output,
            args=self.args,
        )

    def store_root(self, root: str | os.PathLike[str]) -> Path | str:
        """This set's group in the feature store: the root for the default set, else ``sets/<name>``
        (a URL under a URL root)."""
        s = os.fspath(root)
        if "://" in s and not s.startswith("file://"):
            return s if self.is_default else f"{s.rstrip('/')}/sets/{self.name}"
        return Path(root) if self.is_default else Path(root) / "sets" / self.name

    def to_dict(self) -> dict[str, Any]:
        """The set as its YAML body (``from_dict(name, to_dict())`` gives it back)."""
        return {
            "extractor": self.extractor,
            "args": self.args,
            "sampling": self.sampling,
            "precision": self.precision,
            "output": self.output,
            "text_model": self.text_model,
            "store": {"dtype": self.dtype, "compression_level": self.compression_level},
            "description": self.description,
        }

    # -- how it is declared ----------------------------------------------------------------------
    @classmethod
    def from_dict(cls, name: str, body: Mapping[str, Any] | None, where: str = "") -> FeatureSet:
        """A set from its YAML body; every mistake is a :class:`FeatureSetError` naming the field."""
        at = f"{where}: set {name!r}" if where else f"set {name!r}"
        if not isinstance(name, str) or not NAME.match(name):
            raise FeatureSetError(f"{at}: a set name is lower-case letters, digits and _ (starting with a letter)")
        body = dict(body or {})
        known = {"extractor", "args", "extractor_args", "sampling", "precision", "output", "text_model", "store"}
        known |= {"description"}
        unknown = sorted(set(body) - known)
        if unknown:
            raise FeatureSetError(
                f"{at}: unknown field(s) {', '.join(unknown)}; a set takes {', '.join(sorted(known))}"
            )
        args = body.get("args", body.get("extractor_args")) or {}
        sampling = body.get("sampling") or {}
        store = body.get("store") or {}
        for label, value in (("args", args), ("sampling", sampling), ("store", store)):
            if not isinstance(value, Mapping):
                raise FeatureSetError(f"{at}: {label} must be a mapping, got {type(value).__name__}")
        bad = sorted(set(sampling) - set(SAMPLING_FIELDS))
        if bad:
            raise FeatureSetError(
                f"{at}: unknown sampling field(s) {', '.join(bad)}; known: {', '.join(SAMPLING_FIELDS)}"
            )
        bad = sorted(set(store) - {"dtype", "compression_level"})
        if bad:
            raise FeatureSetError(f"{at}: unknown store field(s) {', '.join(bad)}; known: dtype, compression_level")
        fset = cls(
            name=name,
            extractor=str(body.get("extractor") or DEFAULT_EXTRACTOR),
            extractor_args=_frozen(args),
            sampling_fields=_frozen(sampling),
            precision=str(body.get("precision") or "auto"),
            output=str(body.get("output") or "auto"),
            text_model=str(body.get("text_model") or DEFAULT_TEXT_MODEL),
            dtype=str(store.get("dtype", "float16")),
            compression_level=int(store.get("compression_level", 5)),
            description=str(body.get("description") or ""),
        )
        fset.validate(at)
        return fset

    def validate(self, at: str = "") -> None:
        at = at or f"set {self.name!r}"
        if self.precision not in PRECISIONS:
            raise FeatureSetError(f"{at}: precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.output not in OUTPUTS:
            raise FeatureSetError(f"{at}: output must be one of {', '.join(OUTPUTS)}, got {self.output!r}")
        if self.dtype not in ("float16", "bfloat16"):
            raise FeatureSetError(f"{at}: store.dtype must be float16 or bfloat16, got {self.dtype!r}")
        if not 0 <= self.compression_level <= 9:
            raise FeatureSetError(f"{at}: store.compression_level must be 0..9, got {self.compression_level}")
        try:  # the plan's own checks (a mode it does not know, a negative fps ...), without the model
            fit_config(InputSpec(), **self.sampling)
        except (TypeError, ValueError) as e:
            raise FeatureSetError(f"{at}: sampling: {e}") from None


def _yaml_files(paths: Iterable[str]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        path = Path(p).expanduser()
        if path.is_dir():
            out += sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml"))
        elif path.exists():
            out.append(path)
        else:
            raise FeatureSetError(f"feature sets file {path} does not exist (VID_ASSETS_SETS)")
    return out


def read_sets(path: str | os.PathLike[str]) -> list[FeatureSet]:
    """The sets one YAML file declares (``sets:`` mapping name -> body)."""
    import yaml

    where = str(path)
    try:
        doc = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as e:
        raise FeatureSetError(f"{where}: not valid YAML: {e}") from None
    if not isinstance(doc, Mapping) or not isinstance(doc.get("sets", {}), Mapping):
        raise FeatureSetError(f"{where}: expected a mapping with `sets: {{name: {{extractor: ..., sampling: ...}}}}`")
    extra = sorted(set(doc) - {"sets"})
    if extra:
        raise FeatureSetError(f"{where}: unknown top-level field(s) {', '.join(extra)}; expected `sets:`")
    return [FeatureSet.from_dict(name, body, where) for name, body in (doc.get("sets") or {}).items()]


def load_sets(paths: Iterable[str] = (), default: FeatureSet | None = None) -> dict[str, FeatureSet]:
    """``{name: set}``: the default set first, then each file's sets in order. A name declared
    twice is an error (a set named ``default`` replaces the built-in one)."""
    sets: dict[str, FeatureSet] = {DEFAULT_SET: default or FeatureSet()}
    declared: dict[str, str] = {}
    for path in _yaml_files(paths):
        for fset in read_sets(path):
            if fset.name in declared:
                raise FeatureSetError(f"{path}: set {fset.name!r} is already declared in {declared[fset.name]}")
            declared[fset.name] = str(path)
            sets[fset.name] = fset
    return sets
