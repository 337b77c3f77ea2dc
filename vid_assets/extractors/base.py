"""The extractor interface and the device-side preprocessing every image model shares.

Inputs arrive as uint8 ``[N, H, W, 3]`` arrays; conversion to float, resize-to-model and
normalisation run on the extractor's device so the host only moves bytes.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks cuda > mps > cpu."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(device)


@dataclass
class ClipFeatures:
    """Per-clip outputs: ``features`` float32 ``[B, crops, D]``; ``logits`` ``[B, crops, C]`` or None."""

    features: np.ndarray
    logits: np.ndarray | None = None


@dataclass
class Extractor:
    """A frame-level image model plus the facts needed to reproduce its features.

    ``id`` is stable (name + weights revision) and is stored with every feature array.
    """

    name: str
    id: str
    model: torch.nn.Module
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    dim: int
    device: torch.device
    labels: list[str] | None = None
    label_set: str | None = None  # name resolvable by ``extractors.labels.label_names``
    batch_size: int = 64
    input_kind: str = "frame"
    config: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.model.eval().to(self.device)
        if self.device.type != "mps":
            self.model.to(memory_format=torch.channels_last)
        self._mean = torch.tensor(self.mean, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(self.std, device=self.device).view(1, 3, 1, 1)

    def describe(self) -> dict:
        return {
            "name": self.name,
            "id": self.id,
            "input_kind": self.input_kind,
            "input_size": self.input_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "dim": self.dim,
            "label_set": self.label_set,
            "num_labels": len(self.labels) if self.labels else 0,
            **self.config,
        }

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def preprocess(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 ``[N, H, W, 3]`` (any device) -> normalised float ``[N, 3, S, S]`` on the device."""
        x = pixels.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
        if x.shape[-2:] != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", antialias=True)
        x = (x - self._mean) / self._std
        return x.contiguous(memory_format=torch.channels_last)

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Pooled features ``[N, D]`` and class logits (None for headless models)."""
        feats = self.model.forward_head(self.model.forward_features(x), pre_logits=True)
        head = self.model.get_classifier()
        logits = head(feats) if self.labels and not isinstance(head, torch.nn.Identity) else None
        return feats, logits

    @torch.inference_mode()
    def embed_frames(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """uint8 ``[N, H, W, 3]`` -> float32 features ``[N, D]`` and logits ``[N, C]`` (or None)."""
        feats_out, logits_out = [], []
        t = torch.from_numpy(np.ascontiguousarray(pixels))
        for i in range(0, t.shape[0], self.batch_size):
            with self._autocast():
                feats, logits = self._forward(self.preprocess(t[i : i + self.batch_size]))
            feats_out.append(feats.float().cpu())
            if logits is not None:
                logits_out.append(logits.float().cpu())
        feats_np = torch.cat(feats_out).numpy() if feats_out else np.zeros((0, self.dim), np.float32)
        logits_np = torch.cat(logits_out).numpy() if logits_out else None
        return feats_np, logits_np

    def top_k(self, logits: np.ndarray, k: int = 5) -> list[list[tuple[str, float]]]:
        """Softmax top-k ``(label, probability)`` per row of ``logits [N, C]``."""
        if self.labels is None:
            return [[] for _ in range(len(logits))]
        probs = torch.softmax(torch.from_numpy(np.asarray(logits, dtype=np.float32)), dim=-1)
        scores, idx = probs.topk(min(k, probs.shape[-1]), dim=-1)
        return [
            [(self.labels[j], float(s)) for j, s in zip(row_i.tolist(), row_s.tolist(), strict=True)]
            for row_i, row_s in zip(idx, scores, strict=True)
        ]


def embed_clips(extractor: Extractor, clip_pixels: np.ndarray) -> ClipFeatures:
    """uint8 ``[B, T, crops, S, S, 3]`` -> per-clip features ``[B, crops, D]``.

    Frame models embed every frame of every crop in one batched pass; a clip's feature is the mean
    of its frames' features (temporal mean pooling), and its logits are the classifier applied to
    that mean (identical to the mean of per-frame logits for a linear head).
    """
    b, t, c = clip_pixels.shape[:3]
    frames = clip_pixels.reshape(b * t * c, *clip_pixels.shape[3:])
    feats, _ = extractor.embed_frames(frames)
    feats = feats.reshape(b, t, c, -1).mean(axis=1)
    logits = None
    if extractor.labels:
        with torch.inference_mode():
            head = extractor.model.get_classifier()
            x = torch.from_numpy(feats.reshape(b * c, -1)).to(extractor.device)
            logits = head(x).float().cpu().numpy().reshape(b, c, -1)
    return ClipFeatures(features=feats, logits=logits)
