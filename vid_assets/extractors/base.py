"""The extractor interface and the device-side preprocessing every model shares.

An :class:`Extractor` is a ``backbone`` (pixels -> pooled features ``[N, D]``) plus an optional
linear ``head`` (features -> class logits), and the facts needed to reproduce its features: input
kind (single frames or clips of ``num_frames``), input size, normalisation, output dim and a stable
``id`` (name + weights revision) stored with every feature array.

Inputs arrive as uint8 arrays; conversion to float, resize-to-model and normalisation run on the
extractor's device, so the host only moves bytes (4x less than float32).

Constructing an ``Extractor`` only checks its fields. :func:`build` (the one builder) makes it
ready to run: device, BatchNorm folding, memory format, normalisation constants, compile. The
registry builds whatever a factory returns; one made by hand is built on its first pass.
"""

from __future__ import annotations

import contextlib
from dataclasses import fields, replace
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from vid_assets.extractors.labels import top_k as labels_top_k
from vid_assets.extractors.passes import PendingFeatures
from vid_assets.extractors.spec import ExtractorSpec, InputSpec
from vid_assets.runtime.transfer import upload

T = TypeVar("T")
P = TypeVar("P")


_SPEC_FIELDS = frozenset(f.name for f in fields(ExtractorSpec))


def _out_dim(head: torch.nn.Module) -> int:
    """Width of a head's output: its last linear (or convolution) layer's."""
    for m in reversed(list(head.modules())):
        for attr in ("out_features", "out_channels"):
            if isinstance(getattr(m, attr, None), int):
                return getattr(m, attr)
    raise ValueError(f"cannot tell the output width of head {type(head).__name__}")


class Extractor:
    """A model (``model``: normalised float input -> pooled features ``[N, D]``; ``head``:
    features -> logits) with the facts about it (``spec``, read through as ``ext.dim``,
    ``ext.input_size`` ...) and how it runs here (device, precision, batch size, compile).

    Factories construct it flat, as before: ``Extractor(name, id, model, input_size=..., mean=...,
    std=..., dim=..., head=..., labels=...)``, or with ``spec=`` an :class:`ExtractorSpec`."""

    def __init__(
        self,
        name: str = "",
        id: str = "",
        model: torch.nn.Module | None = None,
        input_size: int = 224,
        mean: tuple[float, float, float] = (0.5, 0.5, 0.5),
        std: tuple[float, float, float] = (0.5, 0.5, 0.5),
        dim: int = 0,
        device: torch.device | str = "auto",
        head: torch.nn.Module | None = None,
        labels: list[str] | None = None,
        label_set: str | None = None,
        batch_size: int = 64,
        input_kind: str = "frame",
        num_frames: int = 1,
        precision: str = "auto",  # auto (bf16 autocast on cuda, fp32 elsewhere) | fp32 | bf16 | fp16
        compile: bool = False,
        runtime: str = "torch",  # or "onnxruntime" / "auto": fp32 frame models on the CPU (onnxrt.py)
        config: dict | None = None,
        batch_size_probed: bool = False,  # set once ``probe_batch_size`` has tuned batch_size
        fold_bn: bool = True,  # fold eval BatchNorm into the conv before it, verified (fuse.py)
        resize_size: int = 0,
        static_pad: bool = True,  # on the CPU: TF "same" padding as part of the conv (fuse.py)
        output: str = "auto",
        feature_shape: tuple[int, ...] = (),
        per_frame: bool = False,
        *,
        spec: ExtractorSpec | None = None,
    ) -> None:
        """Checks only (the spec's): what the model becomes on its device is :func:`build`'s job."""
        self.spec = spec or ExtractorSpec(
            name=name,
            id=id,
            input_size=input_size,
            mean=tuple(mean),
            std=tuple(std),
            dim=dim,
            input_kind=input_kind,
            num_frames=num_frames,
            resize_size=resize_size,
            labels=tuple(labels) if labels else None,
            label_set=label_set,
            output=output,
            feature_shape=tuple(feature_shape),
            per_frame=per_frame,
        )
        self.model, self.head, self.device = model, head, device
        self.batch_size, self.precision, self.compile = batch_size, precision, compile
        self.runtime = runtime
        self.config = dict(config or {})
        self.batch_size_probed, self.fold_bn, self.static_pad = batch_size_probed, fold_bn, static_pad
        self._built = False

    @property
    def spec(self) -> ExtractorSpec:
        return self._spec

    @spec.setter
    def spec(self, spec: ExtractorSpec) -> None:
        self._spec = spec
        self._labels = list(spec.labels) if spec.labels is not None else None  # read often (top-k)

    @property
    def labels(self) -> list[str] | None:
        return self._labels

    def _ready(self) -> None:
        """An extractor made by hand is built on first use (the registry builds what factories return)."""
        if not self._built:
            from vid_assets.extractors.builder import build

            build(self)

    def keep_no_pools(self) -> None:
        """Passes that give their buffers back (ONNX Runtime without its arena): for a long-lived
        service, where what a burst allocated should go back once it is idle. PyTorch's passes
        already do; batch runs keep the arena, which the next pass reuses."""
        self._ready()
        lean = getattr(self._forward, "without_arena", None)
        if lean is not None:
            self._forward = lean()

    def __getattr__(self, name: str):
        """The spec's facts read through: ``ext.dim`` is ``ext.spec.dim`` (and so on)."""
        spec = self.__dict__.get("_spec")
        if spec is not None and name in _SPEC_FIELDS:
            return getattr(spec, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def output_shape(self) -> tuple[int, ...]:
        """One image's output: ``feature_shape``, or ``(dim,)`` for a vector."""
        return tuple(self.feature_shape) or (self.dim,)

    def _head_as_features(self) -> None:
        """The head becomes the last layer of the model: its output is the feature, nothing is
        left to rank as labels (top-k over a projection's dimensions would be noise)."""
        if self.head is None:
            raise ValueError(f"{self.name} has no head, so output='head' has nothing to return; use 'pooled'")
        self.spec = replace(self.spec, dim=_out_dim(self.head), labels=None, label_set=None)
        self.model = torch.nn.Sequential(self.model, self.head)
        self.head = None

    # -- facts ----------------------------------------------------------------------------------
    @property
    def input_spec(self) -> InputSpec:
        return self.spec.input_spec

    def describe(self) -> dict:
        self._ready()
        return {
            "name": self.name,
            "id": self.id,
            "input_kind": self.input_kind,
            "num_frames": self.num_frames,
            "input_size": self.input_size,
            "resize_size": self.input_spec.resize,
            "mean": list(self.mean),
            "std": list(self.std),
            "dim": self.dim,
            "label_set": self.label_set,
            "num_labels": len(self.labels) if self.labels else 0,
            "output": self.output,
            "precision": self._dtype_name(),
            **({"feature_shape": list(self.feature_shape)} if self.feature_shape else {}),
            **({"per_frame": True} if self.per_frame else {}),
            **self.config,
        }

    def _autocast_dtype(self) -> torch.dtype | None:
        if self.precision == "fp32":
            return None
        if self.precision == "auto":
            return torch.bfloat16 if self.device.type == "cuda" else None
        return {"bf16": torch.bfloat16, "fp16": torch.float16}[self.precision]

    def _dtype_name(self) -> str:
        dt = self._autocast_dtype()
        return "fp32" if dt is None else str(dt).removeprefix("torch.")

    def _autocast(self):
        dt = self._autocast_dtype()
        if dt is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dt)

    # -- compute --------------------------------------------------------------------------------
    def preprocess(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 ``[N, H, W, 3]`` (any device) -> normalised float ``[N, 3, S, S]`` on the device."""
        self._ready()
        t = upload(pixels, self.device)
        h, w = t.shape[1:3]
        size = (self.input_size, self.input_size)
        if self.device.type == "cpu":
            # one pass instead of three (cast, multiply, add): uint8 * scale + shift promotes to
            # float32. Done over rows of W*3 interleaved RGB values with the per-channel constants
            # repeated along the row: broadcasting [1, 3, 1, 1] over a channels_last tensor leaves
            # an inner loop of 3 elements that does not vectorise (0.67-1.1 vs 0.13 ms per batch
            # of 8 at 224 px on the 2-core VM, bit-identical; benchmarks/preprocess.py). The NCHW
            # view of the result is channels_last. Other sizes are resized after normalising
            # (bilinear weights sum to 1, so the order only moves float rounding).
            x = self._normalise_rows(t)
            if (h, w) != size:
                x = F.interpolate(x, size=size, mode="bilinear", antialias=True)
            return x.contiguous(memory_format=torch.channels_last)
        x = t.permute(0, 3, 1, 2).float()  # NHWC permuted to NCHW: channels_last, no copy until .float()
        if x.shape[-2:] != size:
            x = F.interpolate(x, size=size, mode="bilinear", antialias=True)
        x.mul_(self._scale).add_(self._shift)
        return x.contiguous(memory_format=torch.channels_last)

    def _normalise_rows(self, t: torch.Tensor) -> torch.Tensor:
        """uint8 ``[N, H, W, 3]`` -> normalised float32 ``[N, 3, H, W]`` (a channels_last view), one
        ``addcmul`` over rows of ``W * 3`` interleaved values (see ``preprocess``)."""
        n, h, w = t.shape[:3]
        scale, shift = self._row_scale, self._row_shift
        if w != self.input_size:
            scale, shift = self._scale.view(3).repeat(w), self._shift.view(3).repeat(w)
        return torch.addcmul(shift, t.reshape(n * h, w * 3), scale).view(n, h, w, 3).permute(0, 3, 1, 2)

    def _features(self, x: torch.Tensor, pass_size: int | None = None) -> torch.Tensor:
        """Features of one pass. ``pass_size``: the caller's full pass; a compiled model gets a
        shorter (tail) pass zero-padded to it, because its graph is specialised to the batch size
        and a new one costs a recompilation (~20 s for EfficientNet-Lite0 on cpu2, once per
        process) and then a slower dynamic-shape graph."""
        n = x.shape[0]
        if self.compile and pass_size is not None and n < pass_size:
            fmt = torch.channels_last if x.dim() == 4 and self.device.type != "mps" else torch.contiguous_format
            padded = torch.empty((pass_size, *x.shape[1:]), dtype=x.dtype, device=x.device, memory_format=fmt)
            padded[:n] = x
            padded[n:] = 0
            x = padded
        with self._autocast():
            return self._forward(x).float()[:n]

    def head_logits(self, feats: torch.Tensor) -> torch.Tensor | None:
        """The head over features ``[..., D]`` on the device -> float32 ``[..., C]``; None if headless."""
        self._ready()
        if self.head is None:
            return None
        return self.head(feats.reshape(-1, feats.shape[-1])).float().reshape(*feats.shape[:-1], -1)

    def logits_from_features(self, feats: np.ndarray) -> np.ndarray | None:
        """Apply the (linear) head to pooled features ``[..., D]`` -> ``[..., C]``; None if headless."""
        if self.head is None:
            return None
        with torch.inference_mode():
            f = torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32)).to(self.device)
            return self.head_logits(f).cpu().numpy()

    @torch.inference_mode()
    def submit_frames(self, pixels: np.ndarray | torch.Tensor, finish=None) -> PendingFeatures:
        """Queue frame-model passes over uint8 ``[N, H, W, 3]``; ``.result()`` waits for ``[N, D]``.

        On an accelerator the passes and the copy of the features back to (pinned) host memory are
        only enqueued, so the caller can prepare the next batch while the device computes this one.
        ``finish``: see :meth:`PendingFeatures.of`.
        """
        if self.input_kind != "frame":
            raise TypeError(f"{self.name} takes clips of {self.num_frames} frames; use embed_clips")
        self._ready()
        t = pixels if isinstance(pixels, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(pixels))
        bs = self.batch_size
        out = [self._features(self.preprocess(t[i : i + bs]), bs) for i in range(0, len(t), bs)]
        return PendingFeatures.of(out, self.dim, self.device, finish)

    def embed_frames(self, pixels: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        """Frame models: uint8 ``[N, H, W, 3]`` -> features ``[N, D]`` float32 and logits (or None)."""
        feats = self.submit_frames(pixels).result()
        return feats, self.logits_from_features(feats)

    @torch.inference_mode()
    def submit_video_clips(self, pixels: np.ndarray | torch.Tensor, finish=None) -> PendingFeatures:
        """Clip models: queue passes over uint8 ``[N, T, H, W, 3]``; ``.result()`` waits for ``[N, D]``."""
        self._ready()
        t = pixels if isinstance(pixels, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(pixels))
        n, frames = t.shape[:2]
        if frames != self.num_frames:
            raise ValueError(
                f"{self.name} expects clips of {self.num_frames} frames, got {frames}; "
                f"set frames_per_clip={self.num_frames}"
            )
        step = max(1, self.batch_size // frames)
        out = []
        for i in range(0, n, step):
            chunk = t[i : i + step]
            x = self.preprocess(chunk.reshape(-1, *chunk.shape[2:]))  # [b*T, 3, S, S]
            x = x.reshape(len(chunk), frames, 3, *x.shape[-2:]).permute(0, 2, 1, 3, 4).contiguous()
            out.append(self._features(x, step))
        return PendingFeatures.of(out, self.dim, self.device, finish)

    def embed_video_clips(self, pixels: np.ndarray | torch.Tensor) -> np.ndarray:
        """Clip models: uint8 ``[N, T, H, W, 3]`` -> features ``[N, D]`` float32."""
        return self.submit_video_clips(pixels).result()

    def top_k(self, logits: np.ndarray, k: int = 5) -> list[list[tuple[str, float]]]:
        """Softmax top-k ``(label, probability)`` per row of ``logits [N, C]``."""
        if self.labels is None:
            return [[] for _ in range(len(logits))]
        idx, scores = labels_top_k(logits, k)
        return [
            [(self.labels[j], float(s)) for j, s in zip(row_i.tolist(), row_s.tolist(), strict=True)]
            for row_i, row_s in zip(idx, scores, strict=True)
        ]
