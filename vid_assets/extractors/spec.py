"""What an extractor is, as values: what it eats (``InputSpec``, known without loading its
weights: the pipeline fits decoding and clips to it, ``vid_assets/fit.py``) and everything else
stored with its features (``ExtractorSpec``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InputSpec:
    """What an extractor eats, known without loading its weights (``registry.input_spec``): the
    pipeline decodes and cuts clips to fit it. ``resize``: the short side its eval transform resizes
    to before the centre crop of ``size`` (timm: ``floor(size / crop_pct)``; torchvision: the
    weights' ``resize_size``)."""

    kind: str = "frame"  # "frame" | "clip"
    num_frames: int = 1
    size: int = 224
    resize: int = 256


OUTPUTS = ("auto", "pooled", "head")


@dataclass(frozen=True)
class ExtractorSpec:
    """What a model is, known before it runs and stored with every feature array: what it eats
    (kind, frames, size, resize, normalisation) and what it gives (dim or shape, labels), under a
    stable ``id`` (name + weights revision). Immutable: the builder makes a new one when it settles
    the output (``head`` makes the head's width the dim and leaves no labels)."""

    name: str
    id: str
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    dim: int
    input_kind: str = "frame"  # "frame": [N, 3, S, S]; "clip": [N, 3, T, S, S]
    num_frames: int = 1  # T for clip models
    resize_size: int = 0  # short side of its eval resize before the crop (0: input_size / 0.875)
    labels: tuple[str, ...] | None = None
    label_set: str | None = None  # ``extractors.labels`` name; a labels list alone gets a content-hash one
    # what the features are: "pooled" the backbone's; "head" the head's output (a CLIP image
    # tower's projection into the image-text space; a classifier's logits if asked); "auto" lets
    # the factory choose (timm: "head" for CLIP towers), "pooled" when it does not
    output: str = "auto"
    # what one image gives when it is not a vector: a VAE's latent [4, S/8, S/8] (dim = its size)
    feature_shape: tuple[int, ...] = ()
    # keep each frame of a clip ([clips, crops, T, *feature_shape]) instead of their mean: per-frame
    # latents of a segment (seed 003), where averaging frames would mean nothing
    per_frame: bool = False

    def __post_init__(self) -> None:
        if self.input_kind not in ("frame", "clip"):
            raise ValueError(f"input_kind must be 'frame' or 'clip', got {self.input_kind!r}")
        if self.output not in OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(OUTPUTS)}; got {self.output!r}")

    @property
    def input_spec(self) -> InputSpec:
        resize = self.resize_size or int(self.input_size / 0.875)
        return InputSpec(self.input_kind, self.num_frames if self.input_kind == "clip" else 1, self.input_size, resize)
