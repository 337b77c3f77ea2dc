"""Sampling plans: which timestamps of a video we decode.

A plan is a small frozen value object so it can be hashed into data versions and stored verbatim
with the features (reproducibility).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class SamplingPlan:
    """Sample frames at ``fps`` frames per second of stream time.

    ``short_side`` is the size FFmpeg scales every decoded frame to (aspect kept) before it reaches
    numpy, so memory per frame is bounded whatever the source resolution.
    """

    fps: float = 2.0
    short_side: int = 256

    def __post_init__(self) -> None:
        if not self.fps > 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if self.short_side < 16:
            raise ValueError(f"short_side must be >= 16, got {self.short_side}")

    @property
    def step_s(self) -> float:
        return 1.0 / self.fps

    def to_dict(self) -> dict:
        return {"kind": "fps", **asdict(self)}
