"""Test helpers shared by several test modules."""

import numpy as np

from vid_assets.store import FeatureStore


def write_fake_video(store: FeatureStore, vid: str, n: int, seed: int, *, caption=False, dim=8, **attrs) -> None:
    """A stored video with seeded random features, 1-second clips and plausible provenance attrs."""
    rng = np.random.default_rng(seed)
    store.write_video(
        vid,
        features=rng.standard_normal((n, 1, dim)).astype(np.float32),
        timestamps=np.stack([np.arange(n), np.arange(n) + 1.0], axis=1).astype(np.float64),
        frame_times=np.arange(n, dtype=np.float64)[:, None],
        attrs={
            "source": f"/videos/{vid}.mp4",
            "content_hash": f"h{seed}",
            "duration_s": float(n),
            "extractor": "test@1",
            "sampling_plan": {"mode": "fps", "fps": 1.0},
            **attrs,
        },
        caption_embedding=rng.standard_normal(4).astype(np.float16) if caption else None,
    )
