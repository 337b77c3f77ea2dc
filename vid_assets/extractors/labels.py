"""Named label sets, so the store records a short name instead of 1,000 strings per video."""

from __future__ import annotations

from functools import cache


@cache
def label_names(label_set: str) -> list[str]:
    if label_set == "imagenet-1k":
        # Ships inside torchvision's weight metadata: no download needed.
        from torchvision.models import ResNet50_Weights

        return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
    if label_set == "kinetics-400":
        from torchvision.models.video import R3D_18_Weights

        return list(R3D_18_Weights.KINETICS400_V1.meta["categories"])
    raise KeyError(f"unknown label set {label_set!r}")
