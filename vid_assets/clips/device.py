"""Clips from YUV frames on the accelerator: colour conversion, resize and crops on the device.

The CPU path (``decode.to_rgb`` + ``build.crop_frames``) converts every kept frame to RGB on the
host (swscale at the source size, then torch's uint8 resize). On the lent H100 host the older
scale-and-convert in swscale ran at ~220 frames/s per core (decoding itself ~2,000) and 14 decoders
could not feed the GPU (benchmarks/RESULTS.md). Here the host
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

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from vid_assets.clips.build import ClipSpec, crop_boxes
from vid_assets.media.decode import YuvInfo, scaled_size
from vid_assets.runtime.transfer import upload

# (Kr, Kb) luma coefficients per matrix; RGB = Y + [Cr*2(1-Kr), -Cb*2Kb(1-Kb)/Kg - Cr*2Kr(1-Kr)/Kg, Cb*2(1-Kb)]
_K = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722), "bt2020": (0.2627, 0.0593)}


_aa_half_unsupported: set[str] = set()  # device types whose antialiased resize lacks float16


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == size:
        return x
    if size[0] >= x.shape[-2] and size[1] >= x.shape[-1]:
        # enlarging: the antialiased kernel computes the same weights as plain bilinear (within
        # 1e-4 of 255) but runs ~2x slower on the CPU; chroma is always enlarged, luma usually is
        return F.interpolate(x, size=size, mode="bilinear", antialias=False, align_corners=False)
    half = x.dtype in (torch.float16, torch.bfloat16)
    if not half or x.device.type not in _aa_half_unsupported:
        try:
            return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        except (NotImplementedError, RuntimeError):  # some builds implement it for float32 only
            if not half:
                raise
            _aa_half_unsupported.add(x.device.type)
    return F.interpolate(x.float(), size=size, mode="bilinear", antialias=True, align_corners=False).to(x.dtype)


def yuv_to_rgb_matrix(info: YuvInfo, offset: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(M [3, 3], b [3])`` with ``rgb = M @ (y, u, v) + b`` for 8-bit planes, range scaling and the
    chroma offset of 128 folded in (``offset`` is added to every channel, e.g. 0.5 before truncating)."""
    kr, kb = _K.get(info.matrix, _K["bt601"])
    kg = 1.0 - kr - kb
    a = torch.tensor(
        [
            [1.0, 0.0, 2.0 * (1.0 - kr)],
            [1.0, -2.0 * kb * (1.0 - kb) / kg, -2.0 * kr * (1.0 - kr) / kg],
            [1.0, 2.0 * (1.0 - kb), 0.0],
        ],
        dtype=torch.float64,
    )
    if info.full_range:
        scale, y0 = torch.ones(3, dtype=torch.float64), 0.0
    else:  # limited ("MPEG") range: Y 16..235, C 16..240
        scale, y0 = torch.tensor([255 / 219, 255 / 224, 255 / 224], dtype=torch.float64), 16.0
    m = a * scale
    b = offset - m @ torch.tensor([y0, 128.0, 128.0], dtype=torch.float64)
    return m.float(), b.float()


def yuv420_to_rgb(
    planes: torch.Tensor,
    info: YuvInfo,
    size: tuple[int, int] | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    offset: float = 0.0,
) -> torch.Tensor:
    """uint8 packed planes ``[N, H*3/2, W]`` -> RGB ``[N, 3, h, w]`` in 0..255 (unclamped, ``dtype``).

    Like swscale: planes are scaled to the output ``size`` (default: the luma size) first, then
    converted; at the same size chroma samples are replicated over their 2x2 luma block (swscale's
    unscaled converters do the same; measured within 1-2 levels of it). Matrix, range and offsets
    are folded into one ``M @ yuv + b`` (``yuv_to_rgb_matrix``): on CUDA a single 1x1 convolution.
    """
    n, h, w = planes.shape[0], info.height, info.width
    size = size or (h, w)
    x = planes.to(dtype)  # one contiguous float copy; the planes below are views of it
    y = _resize(x[:, None, :h], size)
    chroma = x[:, h:].reshape(n, 2, h // 2, w // 2)  # U plane then V plane
    same = size == (h, w)
    chroma = F.interpolate(chroma, scale_factor=2, mode="nearest") if same else _resize(chroma, size)
    m, b = yuv_to_rgb_matrix(info, offset)
    if planes.device.type == "cuda":  # cuDNN's 1x1 convolution: one pass (3.0 ms per 300 frames, H100)
        yuv = torch.cat((y, chroma), dim=1)
        # non-blocking: a blocking host-to-device copy waits for every pass queued on the stream,
        # so the device would idle while the host launches this batch (test_cuda: no syncs)
        m, b = (t.to(planes.device, dtype, non_blocking=True) for t in (m, b))
        return F.conv2d(yuv, m[..., None, None], b)
    # on the CPU oneDNN's 3-channel 1x1 convolution is ~200x slower; per-plane multiply-adds that
    # skip the matrix's zeros (no U in R, no V in B) are fastest there
    rgb = torch.empty((n, 3, *size), dtype=dtype, device=planes.device)
    _colour_into([rgb[:, c] for c in range(3)], y[:, 0], chroma[:, 0], chroma[:, 1], m, b)
    return rgb


def _colour_into(channels: list[torch.Tensor], y: torch.Tensor, u: torch.Tensor, v: torch.Tensor, m, b) -> None:
    """``channels[c] = m[c] @ (y, u, v) + b[c]`` as per-plane multiply-adds that skip the matrix's
    zeros (no U in R, no V in B): fastest on the CPU, and predictable on any device."""
    luma = y * float(m[0, 0])  # the same luma weight in all three rows
    for c, out in enumerate(channels):
        out = torch.add(luma, u, alpha=float(m[c, 1]), out=out) if m[c, 1] else out.copy_(luma)
        if m[c, 2]:
            out.add_(v, alpha=float(m[c, 2]))
        out.add_(float(b[c]))


_MATRICES: dict[tuple, object] = {}  # resampling matrices and crop indices per geometry and device


def _axis_matrix(n_in: int, n_out: int, pad: tuple[int, int], nearest: bool, device, dtype) -> torch.Tensor:
    """``[n_out + pads, n_in]``: what :func:`_resize` (or the 2x nearest chroma upsampling at the
    source size) and the replicate padding after it do along one axis, as a matrix.

    Bilinear resizing is separable and linear, so resizing an identity matrix gives exactly the
    weights it applies (antialiased when this axis shrinks, as ``_resize``; enlarging, the two
    kernels agree within 1e-4 of 255). Built in float64 once per geometry and cached."""
    key = (n_in, n_out, pad, nearest, str(device), dtype)
    m = _MATRICES.get(key)
    if m is None:
        if nearest:
            r = torch.zeros((n_out, n_in), dtype=torch.float64)
            r[torch.arange(n_out), torch.arange(n_out) // 2] = 1.0
        elif n_out == n_in:
            r = torch.eye(n_in, dtype=torch.float64)
        else:
            eye = torch.eye(n_in, dtype=torch.float64)[None, None]
            r = F.interpolate(eye, size=(n_out, n_in), mode="bilinear", antialias=n_out < n_in, align_corners=False)[
                0, 0
            ]
        rows = torch.arange(-pad[0], n_out + pad[1]).clamp_(0, n_out - 1)
        m = _MATRICES[key] = r[rows].to(device=device, dtype=dtype)
    return m


def _crop_indices(height: int, width: int, spec: ClipSpec, keys: Sequence[int], device):
    """Row and column indices ``[groups, crops, S]`` of every crop box (columns reversed for a flip):
    one group per clip for random crops (drawn from its crop key; new every batch), else one for
    all, cached."""
    key = ("crops", height, width, spec, str(device))
    if spec.crop != "random" and key in _MATRICES:
        return _MATRICES[key]
    groups = list(keys) if spec.crop == "random" else [0]
    boxes = torch.tensor([crop_boxes(height, width, spec, g) for g in groups])
    ramp = torch.arange(spec.crop_size)
    rows = boxes[..., 0, None] + ramp
    cols = boxes[..., 1, None] + torch.where(boxes[..., 2, None].bool(), ramp.flip(0), ramp)
    # random boxes are new every batch: copied without blocking (see yuv420_to_rgb)
    out = rows.to(device, non_blocking=True), cols.to(device, non_blocking=True)
    if spec.crop != "random":
        _MATRICES[key] = out
    return out


def _crops_by_matmul(
    planes: torch.Tensor, info: YuvInfo, spec: ClipSpec, short_side: int, keys: Sequence[int], dtype: torch.dtype
) -> torch.Tensor:
    """``clips_from_yuv`` as resampling matrices: each crop is ``Rows @ plane @ Cols^T`` per plane.

    Resize, padding, crop and flip are all linear maps of the source plane, so per crop box they
    collapse into one ``[S, h]`` and one ``[S, w]`` matrix; only the crop's pixels are computed
    (the interpolating path resizes the whole frame: a centre crop keeps 57 % of a 341x256 frame)
    and the colour matrix then runs on crops, not frames. On an accelerator these are batched
    GEMMs; on the CPU the dense matrices multiply mostly zeros (measured: benchmarks/device_convert.py).
    """
    n, t = planes.shape[:2]
    h, w = info.height, info.width
    x = planes.to(dtype)
    y = x[:, :, :h]  # [n, T, h, w]
    chroma = x[:, :, h:].reshape(n, t, 2, h // 2, w // 2)  # U plane then V plane
    k = (info.rotation // 90) % 4
    if k:  # bilinear resizing commutes with quarter turns: turn the small planes, then resize
        y, chroma = torch.rot90(y, k, dims=(-2, -1)), torch.rot90(chroma, k, dims=(-2, -1))
    hd, wd = y.shape[-2:]
    new_w, new_h = scaled_size(wd, hd, short_side)
    s = spec.crop_size
    ph, pw = max(0, s - new_h), max(0, s - new_w)
    pads_h, pads_w = (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)
    same = (new_h, new_w) == (hd, wd)
    dev = planes.device
    ly = _axis_matrix(hd, new_h, pads_h, False, dev, dtype)
    lx = _axis_matrix(wd, new_w, pads_w, False, dev, dtype)
    cy = _axis_matrix(hd // 2, new_h, pads_h, same, dev, dtype)
    cx = _axis_matrix(wd // 2, new_w, pads_w, same, dev, dtype)
    height, width = new_h + ph, new_w + pw
    rows_t, cols_t = _crop_indices(height, width, spec, keys, dev)

    def resample(plane: torch.Tensor, my: torch.Tensor, mx: torch.Tensor, lead: int) -> torch.Tensor:
        a = my[rows_t]  # [G, crops, S, h]
        b = mx[cols_t].transpose(-1, -2)  # [G, crops, w, S]
        for _ in range(lead):  # broadcast over T (and the U/V axis): [G, 1.., crops, ...]
            a, b = a.unsqueeze(1), b.unsqueeze(1)
        plane = plane.unsqueeze(-3)  # [..., 1, h, w]: one copy per crop by broadcasting
        return (a @ plane) @ b  # [n, T(, 2), crops, S, S]

    out_y = resample(y, ly, lx, 1)  # [n, T, crops, S, S]
    out_c = resample(chroma, cy, cx, 2)
    m, b = yuv_to_rgb_matrix(info, offset=0.5)  # +0.5: the uint8 cast below rounds
    # written straight into the channels-last layout (a [.., 3] x [3, 3] GEMM over millions of rows
    # would leave the choice of kernel to cuBLAS's heuristics)
    rgb = torch.empty((*out_y.shape, 3), dtype=dtype, device=dev)
    _colour_into([rgb[..., c] for c in range(3)], out_y, out_c[:, :, 0], out_c[:, :, 1], m, b)
    return rgb.clamp_(0, 255).to(torch.uint8)


def clips_from_yuv(
    planes: torch.Tensor,
    info: YuvInfo,
    spec: ClipSpec,
    short_side: int,
    *,
    first_clip: int = 0,
    crop_keys: Sequence[int] | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    method: str = "auto",
) -> torch.Tensor:
    """uint8 ``[n, T, H*3/2, W]`` (a batch of one video's clips) -> uint8 ``[n, T, crops, S, S, 3]``
    on ``device`` (default: where ``planes`` are). Random crops are drawn from each clip's
    ``crop_keys`` (``Clip.crop_key``: its segment, or its index) or, without them, from clip
    indices numbered from ``first_clip``, so boxes equal the CPU path's. ``dtype``: arithmetic precision
    (default float16 on CUDA, float32 elsewhere). ``method``: ``matmul`` (resampling matrices,
    only the crops' pixels: :func:`_crops_by_matmul`), ``interpolate`` (whole frames, then crops),
    ``auto``: matmul on CUDA, interpolate elsewhere. Both give the same pixels within a level."""
    device = torch.device(device) if device is not None else planes.device
    n, t = planes.shape[:2]
    keys = [int(k) for k in crop_keys] if crop_keys is not None else list(range(first_clip, first_clip + n))
    if method == "auto":
        method = "matmul" if device.type == "cuda" else "interpolate"
    if method not in ("matmul", "interpolate"):
        raise ValueError(f"method must be auto, matmul or interpolate, not {method!r}")
    if method == "matmul":
        dtype = dtype or (torch.float16 if device.type == "cuda" else torch.float32)
        return _crops_by_matmul(upload(planes, device), info, spec, short_side, keys, dtype)
    # scale before rotating: a quarter turn swaps which side is the short one
    quarter = (info.rotation // 90) % 2 == 1
    disp_w, disp_h = (info.height, info.width) if quarter else (info.width, info.height)
    new_w, new_h = scaled_size(disp_w, disp_h, short_side)
    size = (new_w, new_h) if quarter else (new_h, new_w)
    # half precision on CUDA halves the bytes of every pass (within a level of fp32, checked by
    # benchmarks/device_convert.py); +0.5 is folded in so the uint8 cast of each crop rounds
    dtype = dtype or (torch.float16 if device.type == "cuda" else torch.float32)
    planes = upload(planes, device)
    rgb = yuv420_to_rgb(planes.reshape(n * t, *planes.shape[2:]), info, size, dtype=dtype, offset=0.5)
    if info.rotation:
        rgb = torch.rot90(rgb, k=(info.rotation // 90) % 4, dims=(-2, -1))
    s = spec.crop_size
    if new_h < s or new_w < s:  # edge-pad small frames, centred (as build.pad_to)
        ph, pw = max(0, s - new_h), max(0, s - new_w)
        rgb = F.pad(rgb, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode="replicate")
    frames = rgb.clamp_(0, 255).reshape(n, t, 3, *rgb.shape[-2:])  # the copies below cast to uint8
    out = torch.empty((n, t, spec.num_crops, s, s, 3), dtype=torch.uint8, device=device)
    height, width = frames.shape[-2:]
    # boxes depend on the clip (its crop key) only for random crops; otherwise one copy per crop
    # serves the whole batch instead of one per clip (fewer, larger kernels)
    per_clip = spec.crop == "random"
    groups = [(slice(i, i + 1), keys[i]) for i in range(n)] if per_clip else [(slice(None), 0)]
    for rows, crop_key in groups:
        for c, (top, left, flip) in enumerate(crop_boxes(height, width, spec, crop_key)):
            crop = frames[rows, :, :, top : top + s, left : left + s]
            if flip:
                crop = crop.flip(-1)
            out[rows, :, c] = crop.permute(0, 1, 3, 4, 2)
    return out


def to_device_clips(
    batch, spec: ClipSpec, short_side: int, device: torch.device | str, method: str = "auto"
) -> torch.Tensor:
    """A :class:`~vid_assets.clips.stream.ClipBatch` as uint8 ``[n, T, crops, S, S, 3]`` on ``device``:
    converted there (``method``: see :func:`clips_from_yuv`) when it holds YUV planes, else just moved."""
    if batch.color is None:
        return upload(batch.pixels, device)
    return clips_from_yuv(
        batch.pixels,
        batch.color,
        spec,
        short_side,
        first_clip=batch.first_clip,
        crop_keys=batch.crop_keys,
        device=device,
        method=method,
    )
