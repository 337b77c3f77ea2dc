"""Random-weight models of real architectures, saved as their hubs publish them: what tests and
benchmarks load with no network (speed and shapes do not depend on the weights' values)."""

from __future__ import annotations

import os

# Stable Diffusion's VAE: 4 latent channels, 8x downsampling, scaling factor 0.18215
SD_VAE = {"block_out_channels": (128, 256, 512, 512), "layers_per_block": 2, "norm_num_groups": 32}
SMALL_VAE = {"block_out_channels": (8, 16, 16, 16), "layers_per_block": 1, "norm_num_groups": 4}
TINY_VAE = {"block_out_channels": (4, 4, 4, 4), "layers_per_block": 1, "norm_num_groups": 2}


def save_random_vae(folder: str | os.PathLike[str], widths: dict = SMALL_VAE):
    """A diffusers ``AutoencoderKL`` shaped like Stable Diffusion's (``widths``: its channels), saved
    with ``save_pretrained`` as a published VAE is; returns the model."""
    from diffusers import AutoencoderKL

    vae = AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        sample_size=256,
        **widths,
    ).eval()
    vae.save_pretrained(str(folder))
    return vae
