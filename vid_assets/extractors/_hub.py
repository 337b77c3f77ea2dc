"""Hugging Face Hub and cache resolution, for every family that loads weights by repo id: which
commit a cached snapshot is (so a stored id pins the exact weights), what to tell a user whose
repo did not load offline, and a digest for weights saved in a folder."""

from __future__ import annotations

import hashlib
from pathlib import Path


def is_commit(revision: str) -> bool:
    return len(revision) == 40 and all(c in "0123456789abcdef" for c in revision)


def cached_revision(repo_id: str, revision: str | None = None, cache_dir: str | None = None) -> str | None:
    """The commit of the cached snapshot a loader reads for ``revision`` (``refs/main`` by
    default), so the stored id pins the exact weights; None when nothing is cached."""
    try:
        from huggingface_hub import try_to_load_from_cache

        path = try_to_load_from_cache(repo_id, "config.json", cache_dir=cache_dir, revision=revision)
    except Exception:
        return None
    return Path(path).parent.name if isinstance(path, str) else None


def pinned_revision(repo_id: str, revision: str | None = None, cache_dir: str | None = None) -> str:
    """A commit for ``revision``: itself if it is one, else the commit a branch or tag pointed at
    in the cache here (``main`` when nothing is cached)."""
    if revision and is_commit(revision):
        return revision
    return cached_revision(repo_id, revision or None, cache_dir) or revision or "main"


def weights_digest(folder: Path) -> str:
    """12 hex of the weights file saved in ``folder`` (``unknown`` if there is none)."""
    for fname in ("model.safetensors", "pytorch_model.bin"):
        p = folder / fname
        if p.exists():
            return hashlib.sha256(p.read_bytes()).hexdigest()[:12]
    return "unknown"


def load_error(what: str, e: Exception, hint: str) -> RuntimeError:
    return RuntimeError(f"could not load {what}: {str(e).rstrip('. ')}. {hint}")


def hub_hint(repo_id: str, cache_dir: str | None, folder: str = "local-dir:<folder>") -> str:
    """What to do about a hub repo that did not load: fetch it into the cache, or use timm's copy
    (``folder``: how the factory's prefix names a saved folder)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = {
            f: try_to_load_from_cache(repo_id, f, cache_dir=cache_dir) for f in ("config.json", "open_clip_config.json")
        }
    except Exception:
        cached = {}
    if isinstance(cached.get("open_clip_config.json"), str) and not isinstance(cached.get("config.json"), str):
        return (
            f"{repo_id} is an open_clip repo, not a timm one: use timm's copy of the image tower "
            "(hf-hub:timm/<arch>.<tag>, e.g. hf-hub:timm/vit_base_patch32_clip_224.laion2b_e16)."
        )
    return (
        f"Offline (HF_HUB_OFFLINE=1) the repo must already be in the Hugging Face cache: run "
        f"`hf download {repo_id}` where there is network (same HF_HOME), or save it as a folder and use {folder}."
    )
