"""``vae:`` - a diffusers ``AutoencoderKL`` as a per-frame latent encoder (seed 003's recipe).

``vae:<hub id>[@revision]`` (``stabilityai/sd-vae-ft-mse``; a full Stable Diffusion repo has its
VAE in ``vae/``, found on its own) or ``vae:<folder>`` written by ``save_pretrained``. Each frame
becomes its latent ``[latent_channels, S/8, S/8]`` (``[4, 32, 32]`` at the default 256 px),
multiplied by the model's ``scaling_factor`` (minus its ``shift_factor`` where it has one), as a
diffusion model is trained on them. Frames of a clip are kept, not averaged (``per_frame``), so a
segments plan stores ``[segments, crops, frames, 4, 32, 32]``.

Arguments: ``size`` (input pixels, default 256), ``latent`` (``mean``, the default: the
posterior's mean, deterministic; ``sample``: a draw from it, seeded by ``seed`` per pass),
``subfolder`` (where the VAE lies in the repo; default: ``vae`` when the repo has one).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import torch

from vid_assets.extractors.base import Extractor
from vid_assets.extractors.registry import register_prefix
from vid_assets.extractors.spec import InputSpec

DEFAULT_SIZE = 256


class VaeLatents(torch.nn.Module):
    """Normalised ``[-1, 1]`` pixels -> scaled latents ``[N, C, S/8, S/8]``."""

    def __init__(self, vae: torch.nn.Module, sample: bool = False, seed: int = 0) -> None:
        super().__init__()
        self.vae, self.sample, self.seed = vae, sample, seed
        cfg = vae.config
        self.scale = float(getattr(cfg, "scaling_factor", None) or 1.0)
        self.shift = float(getattr(cfg, "shift_factor", None) or 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dist = self.vae.encode(x.to(self.vae.dtype)).latent_dist
        draw = torch.Generator(device=x.device).manual_seed(self.seed) if self.sample else None
        z = dist.sample(generator=draw) if self.sample else dist.mean
        return (z.float() - self.shift) * self.scale


def _vae_spec(ref: str, size: int = DEFAULT_SIZE, **_) -> InputSpec:
    """Crops of ``size`` from frames resized to that short side (the latent grid is ``size / 8``)."""
    return InputSpec("frame", 1, int(size), int(size))


def _locate(ref: str, subfolder: str | None) -> tuple[str, str | None, str | None, bool]:
    """``(source, revision, subfolder, local)`` for a folder or a hub id."""
    path = Path(ref).expanduser()
    if path.exists():
        if subfolder is None and (path / "vae" / "config.json").exists():
            subfolder = "vae"
        return str(path.resolve()), None, subfolder, True
    repo, _, revision = ref.partition("@")
    if subfolder is None:
        try:
            from huggingface_hub import try_to_load_from_cache

            nested = try_to_load_from_cache(repo, "vae/config.json", revision=revision or None)
            subfolder = "vae" if isinstance(nested, str) else None
        except Exception:  # noqa: BLE001 - loading tells the real story
            subfolder = None
    return repo, revision or None, subfolder, False


def _weights_id(source: str, revision: str | None, subfolder: str | None, local: bool) -> str:
    folder = Path(source) / (subfolder or "")
    if local:
        for name in ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"):
            if (folder / name).exists():
                return f"{Path(source).name}@{hashlib.sha256((folder / name).read_bytes()).hexdigest()[:12]}"
        return f"{Path(source).name}@unknown"
    from vid_assets.extractors._hub import pinned_revision

    return f"{source}@{pinned_revision(source, revision)}"


@register_prefix("vae", spec=_vae_spec, spec_imports=())
def vae_encoder(
    ref: str,
    size: int = DEFAULT_SIZE,
    latent: str = "mean",
    seed: int = 0,
    subfolder: str | None = None,
    **kwargs,
) -> Extractor:
    """``vae:<hub id or folder>``: per-frame latents of a diffusers ``AutoencoderKL``."""
    if latent not in ("mean", "sample"):
        raise ValueError(f"vae: latent must be 'mean' or 'sample', got {latent!r}")
    try:
        from diffusers import AutoencoderKL
    except ImportError as e:
        raise RuntimeError("the vae: extractors need `pip install 'vid_assets[vae]'` (diffusers)") from e
    source, revision, subfolder, local = _locate(ref, subfolder)
    try:
        vae = AutoencoderKL.from_pretrained(source, subfolder=subfolder, revision=revision, low_cpu_mem_usage=False)
    except Exception as e:  # not cached offline, not a diffusers VAE ...
        raise RuntimeError(
            f"could not load the VAE {ref!r}: {str(e).rstrip('. ')}. Offline (HF_HUB_OFFLINE=1) it must already be "
            f"in the Hugging Face cache (`hf download {ref}` where there is network), or a folder saved with "
            "AutoencoderKL.save_pretrained."
        ) from e
    vae = vae.eval()
    down = 2 ** (len(vae.config.block_out_channels) - 1)
    if size % down:
        raise ValueError(f"vae: size must be a multiple of {down} (the VAE's downsampling), got {size}")
    shape = (int(vae.config.latent_channels), size // down, size // down)
    ext_kw = {k: v for k, v in kwargs.items() if k in ("device", "batch_size", "precision", "compile", "output")}
    unknown = sorted(set(kwargs) - set(ext_kw))
    if unknown:
        raise TypeError(f"vae: unknown argument(s) {', '.join(unknown)}; it takes size, latent, seed, subfolder")
    return Extractor(
        name=f"vae:{Path(source).name if local else source}",
        id=f"vae:{_weights_id(source, revision, subfolder, local)}"
        + (f":{latent}{seed}" if latent == "sample" else ""),
        model=VaeLatents(vae, sample=latent == "sample", seed=seed),
        input_size=size,
        resize_size=size,
        mean=(0.5, 0.5, 0.5),  # pixels to [-1, 1], as diffusers' VaeImageProcessor does
        std=(0.5, 0.5, 0.5),
        dim=math.prod(shape),
        feature_shape=shape,
        per_frame=True,
        fold_bn=False,
        static_pad=False,
        config={
            "diffusers_class": "AutoencoderKL",
            "latent": latent,
            "scaling_factor": float(getattr(vae.config, "scaling_factor", None) or 1.0),
            "shift_factor": float(getattr(vae.config, "shift_factor", None) or 0.0),
        },
        **ext_kw,
    )
