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


# a ViT shrunk to one 64-wide block at 64 px: seconds to build, save and run on the CPU
TINY_VIT = {"depth": 1, "embed_dim": 64, "num_heads": 2, "img_size": 64}


def save_tiny_timm(folder, arch: str, *, label_names=None, **model_args):
    """A randomly initialised timm ``arch`` saved in Hugging Face hub format (``local-dir:`` /
    the hub cache), as ``timm.models.save_for_hf`` writes a published model; returns the model."""
    import timm
    from timm.models import save_for_hf

    model = timm.create_model(arch, pretrained=False, **model_args).eval()
    config = {"label_names": list(label_names)} if label_names else None
    save_for_hf(model, str(folder), model_config=config, model_args=model_args, safe_serialization=True)
    return model


def normalised(pixels: np.ndarray, mean, std):
    """uint8 ``[N, H, W, 3]`` -> float ``[N, 3, H, W]`` the way a model card says: /255, -mean, /std."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2).float() / 255
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
