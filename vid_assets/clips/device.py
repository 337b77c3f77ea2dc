"""Clips from YUV frames on the accelerator: colour conversion, resize and crops on the device.

The CPU path (``decode.to_rgb`` + ``build.crop_frames``) has FFmpeg's swscale scale and convert
every kept frame to RGB on the host. On the lent H100 host that step ran at ~220 frames/s per core
(decoding itself ~2,000): 14 decoders could not feed the GPU (benchmarks/RESULTS.md). Here the host
only decodes and copies the 4:2:0 planes (1.5 bytes per pixel, at the stream's size); this module
does the rest as a few batched tensor ops, on whatever device the model is on:

    planes -> BT.601/709/2020 (limited or full range) RGB -> rotation -> resize to the plan's short
    side (bilinear, antialiased) -> uint8 -> the clip spec's crops (same boxes as the CPU path)

Output is the CPU path's layout, uint8 ``[n, T, crops, S, S, 3]``, so ``embed_clips`` takes it
unchanged. Pixels differ from swscale's by a few levels (different filters and rounding), so
features made this way are recorded as such (``preprocess: "device"``) and not mixed with CPU-path
features of the same plan.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vid_assets.clips.build import ClipSpec, crop_boxes
from vid_assets.media.decode import YuvInfo, scaled_size

# (Kr, Kb) luma coefficients per matrix; RGB = Y + [Cr*2(1-Kr), -Cb*2Kb(1-Kb)/Kg - Cr*2Kr(1-Kr)/Kg, Cb*2(1-Kb)]
_K = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722), "bt2020": (0.2627, 0.0593)}


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)


def yuv420_to_rgb(planes: torch.Tensor, info: YuvInfo, size: tuple[int, int] | None = None) -> torch.Tensor:
    """uint8 packed planes ``[N, H*3/2, W]`` -> float RGB ``[N, 3, h, w]`` in 0..255 (unclamped).

    Like swscale: planes are scaled to the output ``size`` (default: the luma size) first, then
    converted; at the same size chroma samples are replicated over their 2x2 luma block (swscale's
    unscaled converters do the same; measured within 1-2 levels of it).
    """
    n, h, w = planes.shape[0], info.height, info.width
    size = size or (h, w)
    x = planes.float()
    y = _resize(x[:, None, :h], size)[:, 0]
    chroma = x[:, h:].reshape(n, 2, h // 2, w // 2)  # U plane then V plane, each (h/2) x (w/2)
    if size == (h, w):
        chroma = chroma.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)
    else:
        chroma = _resize(chroma, size)
    u, v = chroma[:, 0] - 128.0, chroma[:, 1] - 128.0
    if not info.full_range:  # limited ("MPEG") range: Y 16..235, C 16..240
        y = (y - 16.0) * (255.0 / 219.0)
        u, v = u * (255.0 / 224.0), v * (255.0 / 224.0)
    kr, kb = _K.get(info.matrix, _K["bt601"])
    kg = 1.0 - kr - kb
    r = y + 2.0 * (1.0 - kr) * v
    b = y + 2.0 * (1.0 - kb) * u
    g = y - (2.0 * kb * (1.0 - kb) / kg) * u - (2.0 * kr * (1.0 - kr) / kg) * v
    return torch.stack((r, g, b), dim=1)


def clips_from_yuv(
    planes: torch.Tensor,
    info: YuvInfo,
    spec: ClipSpec,
    short_side: int,
    *,
    first_clip: int = 0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """uint8 ``[n, T, H*3/2, W]`` (a batch of one video's clips) -> uint8 ``[n, T, crops, S, S, 3]``
    on ``device`` (default: where ``planes`` are). ``first_clip`` numbers the clips for random
    crops, so boxes equal the CPU path's for the same clip index."""
    device = torch.device(device) if device is not None else planes.device
    n, t = planes.shape[:2]
    # scale before rotating: a quarter turn swaps which side is the short one
    quarter = (info.rotation // 90) % 2 == 1
    disp_w, disp_h = (info.height, info.width) if quarter else (info.width, info.height)
    new_w, new_h = scaled_size(disp_w, disp_h, short_side)
    size = (new_w, new_h) if quarter else (new_h, new_w)
    rgb = yuv420_to_rgb(planes.to(device, non_blocking=True).reshape(n * t, *planes.shape[2:]), info, size)
    if info.rotation:
        rgb = torch.rot90(rgb, k=(info.rotation // 90) % 4, dims=(-2, -1))
    s = spec.crop_size
    if new_h < s or new_w < s:  # edge-pad small frames, centred (as build.pad_to)
        ph, pw = max(0, s - new_h), max(0, s - new_w)
        rgb = F.pad(rgb, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode="replicate")
    frames = rgb.clamp_(0, 255).round_().to(torch.uint8)  # the CPU path's frames are uint8 too
    frames = frames.reshape(n, t, 3, *frames.shape[-2:])
    out = torch.empty((n, t, spec.num_crops, s, s, 3), dtype=torch.uint8, device=device)
    height, width = frames.shape[-2:]
    # boxes depend on the clip index only for random crops; otherwise one copy per crop serves the
    # whole batch (a per-clip loop here cost ~15 ms of host time per 300-clip batch on the H100 host)
    per_clip = spec.crop == "random"
    groups = [(slice(i, i + 1), first_clip + i) for i in range(n)] if per_clip else [(slice(None), first_clip)]
    for rows, clip_index in groups:
        for c, (top, left, flip) in enumerate(crop_boxes(height, width, spec, clip_index)):
            crop = frames[rows, :, :, top : top + s, left : left + s]
            if flip:
                crop = crop.flip(-1)
            out[rows, :, c] = crop.permute(0, 1, 3, 4, 2)
    return out


def to_device_clips(batch, spec: ClipSpec, short_side: int, device: torch.device | str) -> torch.Tensor:
    """A :class:`~vid_assets.clips.stream.ClipBatch` as uint8 ``[n, T, crops, S, S, 3]`` on ``device``:
    converted there when it holds YUV planes, else just moved."""
    if batch.color is None:
        return batch.pixels.to(device, non_blocking=True)
    return clips_from_yuv(batch.pixels, batch.color, spec, short_side, first_clip=batch.first_clip, device=device)
