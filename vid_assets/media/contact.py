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
