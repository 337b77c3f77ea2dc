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


def save_tiny_clip(folder) -> None:
    """A randomly initialised transformers ``CLIPModel`` (both towers, 64-px images, 24-d joint
    space) with its processor, saved as ``save_pretrained`` writes a published checkpoint. The
    tokenizer is character-level: CLIP's byte alphabet with no merges (no vocabulary download)."""
    import json
    from pathlib import Path

    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    chars = [chr(b) for b in printable] + [chr(256 + i) for i in range(len(others))]  # GPT-2's byte alphabet
    tokens = [*chars, *(c + "</w>" for c in chars), "<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tower = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
    config = CLIPConfig(
        text_config={
            **tower,
            "vocab_size": len(tokens),
            "bos_token_id": len(tokens) - 2,
            "eos_token_id": len(tokens) - 1,
        },
        vision_config={**tower, "image_size": 64, "patch_size": 16},
        projection_dim=24,
    )
    torch.manual_seed(0)
    CLIPModel(config).eval().save_pretrained(folder)
    images = CLIPImageProcessor(size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64})
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(folder)


def save_tiny_vae(folder):
    """A randomly initialised ``AutoencoderKL`` with Stable Diffusion's shape, 8-16 channels wide."""
    from vid_assets.devtools.models import SMALL_VAE, save_random_vae

    return save_random_vae(folder, SMALL_VAE)
