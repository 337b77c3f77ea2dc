"""Contact sheets: a small thumbnail grid of the sampled frames, so people can look, not read."""

from __future__ import annotations

import io

import numpy as np


class ContactSheet:
    """Keeps at most ``max_thumbs`` thumbnails spread uniformly over a stream of unknown length.

    When full, every other thumbnail is dropped and the keep-stride doubles: memory stays bounded
    (``max_thumbs`` small images) however long the video.
    """

    def __init__(self, max_thumbs: int = 16, height: int = 72) -> None:
        self.max_thumbs, self.height = max_thumbs, height
        self.stride, self.seen = 1, 0
        self.thumbs: list[tuple[float, np.ndarray]] = []

    def add(self, image: np.ndarray, pts_s: float) -> None:
        if self.seen % self.stride == 0:
            from PIL import Image

            h, w = image.shape[:2]
            width = max(1, round(w * self.height / h))
            thumb = np.asarray(Image.fromarray(image).resize((width, self.height), Image.BILINEAR))
            self.thumbs.append((pts_s, thumb))
            if len(self.thumbs) > self.max_thumbs:
                self.thumbs = self.thumbs[::2]
                self.stride *= 2
        self.seen += 1

    def strip(self, label: str, count: int = 4, height: int = 48, quality: int = 80) -> bytes | None:
        """One row of ``count`` thumbnails spread over the video, ``label`` (the video id) over the
        first: the per-video line of a batch's sheet (see :func:`stack`)."""
        if not self.thumbs:
            return None
        from PIL import Image, ImageDraw

        picks = np.linspace(0, len(self.thumbs) - 1, min(count, len(self.thumbs))).round().astype(int)
        thumbs = [Image.fromarray(self.thumbs[i][1]) for i in dict.fromkeys(picks.tolist())]
        thumbs = [t.resize((max(1, round(t.width * height / t.height)), height), Image.BILINEAR) for t in thumbs]
        width = max(t.width for t in thumbs)
        row = Image.new("RGB", (count * width, height), (20, 20, 20))
        for i, t in enumerate(thumbs):
            row.paste(t, (i * width, 0))
        draw = ImageDraw.Draw(row)
        box = draw.textbbox((3, 2), label)
        draw.rectangle((box[0] - 2, box[1] - 1, box[2] + 2, box[3] + 1), fill=(0, 0, 0))
        draw.text((3, 2), label, fill=(255, 255, 0))
        buf = io.BytesIO()
        row.save(buf, format="JPEG", quality=quality)
        return buf.getvalue()

    def jpeg(self, columns: int = 4, quality: int = 85) -> bytes | None:
        """The grid as JPEG: ~0.4 ms and ~40 KB for 16 thumbnails, where an optimized PNG took
        ~18 ms and ~170 KB (cpu2). The bytes end up base64 in every decode materialization's
        metadata, so size matters as much as time."""
        if not self.thumbs:
            return None
        from PIL import Image, ImageDraw

        width = max(t.shape[1] for _, t in self.thumbs)
        rows = (len(self.thumbs) + columns - 1) // columns
        sheet = Image.new("RGB", (columns * width, rows * self.height), (20, 20, 20))
        draw = ImageDraw.Draw(sheet)
        for i, (pts, thumb) in enumerate(self.thumbs):
            x, y = (i % columns) * width, (i // columns) * self.height
            sheet.paste(Image.fromarray(thumb), (x, y))
            draw.text((x + 3, y + 2), f"{pts:.1f}s", fill=(255, 255, 0))
        buf = io.BytesIO()
        sheet.save(buf, format="JPEG", quality=quality)
        return buf.getvalue()


def stack(strips: list[bytes], quality: int = 80) -> bytes:
    """Per-video strips one under another: a batch run's sheet. Dagster copies a multi-partition
    step's metadata onto every partition of the run, so this one image (a few KB per video) is what
    each partition of the batch shows, its own row labelled."""
    from PIL import Image

    rows = [Image.open(io.BytesIO(b)).convert("RGB") for b in strips]
    sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), (20, 20, 20))
    y = 0
    for r in rows:
        sheet.paste(r, (0, y))
        y += r.height
    buf = io.BytesIO()
    sheet.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()
