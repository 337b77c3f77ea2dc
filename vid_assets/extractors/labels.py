"""Named label sets, so the store records a short name instead of 1,000 strings per video.

Three kinds of name: torchvision's lists (``imagenet-1k``, ``kinetics-400``), timm's ImageNet
subsets (``imagenet-21k-goog``, ...), and a model's own names (a hub config's ``label_names``, a
plug-in's list) under a content hash, ``labels-<16 hex>``: written once as a JSON file beside
the data that uses it (:func:`save_label_set`) and registered in the process that made it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import uuid
from functools import cache
from pathlib import Path

CUSTOM_PREFIX = "labels-"
_CUSTOM: dict[str, list[str]] = {}

# label set -> its list in torchvision's models/_meta.py (the lists its weight enums carry; tested)
_SETS = {"imagenet-1k": "_IMAGENET_CATEGORIES", "kinetics-400": "_KINETICS400_CATEGORIES"}


@cache
def _torchvision_meta():
    """torchvision's ``models/_meta.py`` (plain lists, no imports), loaded by path.

    Importing ``torchvision.models`` costs ~3 s (it pulls in ``torch._dynamo``), and the storage step
    and the demo only need a label name. The lists ship inside torchvision: no download, no copy here.
    """
    package = Path(importlib.util.find_spec("torchvision").origin).parent  # found, not imported
    spec = importlib.util.spec_from_file_location("_vid_assets_torchvision_meta", package / "models" / "_meta.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def custom_label_set(names: list[str]) -> str:
    """The content-addressed name of a model's own label list, registered in this process."""
    names = [str(n) for n in names]
    key = CUSTOM_PREFIX + hashlib.sha256(json.dumps(names).encode()).hexdigest()[:16]
    _CUSTOM[key] = names
    return key


def save_label_set(folder: str | os.PathLike[str], label_set: str, names: list[str]) -> None:
    """Write a custom label set to ``<folder>/<label_set>.json`` once (atomically: same content for
    the same name, so concurrent writers agree); named sets need no file."""
    path = Path(folder) / f"{label_set}.json"
    if label_set.startswith(CUSTOM_PREFIX) and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
        tmp.write_text(json.dumps(names))
        os.replace(tmp, path)


def load_label_set(folder: str | os.PathLike[str], label_set: str) -> list[str] | None:
    """A custom label set saved in ``folder``, or None when it is not there."""
    path = Path(folder) / f"{label_set}.json"
    return json.loads(path.read_text()) if path.exists() else None


def label_names(label_set: str) -> list[str]:
    """Class names of ``label_set``: torchvision's lists (``imagenet-1k``, ``kinetics-400``), one of
    timm's ImageNet subsets (``imagenet-12k``, ``imagenet-21k-goog``, ``imagenet-22k``, ...), each
    class named by its first WordNet lemma as torchvision names the 1k classes ("tench"), or a
    custom set registered in this process (elsewhere read it with :func:`load_label_set`)."""
    if label_set in _CUSTOM:
        return _CUSTOM[label_set]
    return _named(label_set)


@cache
def _named(label_set: str) -> list[str]:
    if label_set in _SETS:
        return list(getattr(_torchvision_meta(), _SETS[label_set]))
    try:
        from vid_assets.extractors.timm_import import timm

        info = timm.data.ImageNetInfo(label_set)
    except (ImportError, AttributeError, AssertionError):  # no timm, an older one; a subset it does not know
        raise KeyError(f"unknown label set {label_set!r}") from None
    return [d.split(", ")[0] for d in info.label_descriptions()]


def top_k(logits, k: int):
    """Softmax over the last axis of ``logits [..., C]``, then the ``k`` best: ``(indices, scores)``
    as numpy arrays ``[..., k]``, indices int16 where the classes fit (a 40k-class head needs int32)."""
    import numpy as np
    import torch

    x = torch.from_numpy(np.asarray(logits, dtype=np.float32))
    scores, idx = torch.softmax(x, dim=-1).topk(min(k, x.shape[-1]), dim=-1)
    n = x.shape[-1]
    return idx.numpy().astype(np.int16 if n <= np.iinfo(np.int16).max + 1 else np.int32), scores.numpy()
