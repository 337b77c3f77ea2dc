"""Named label sets, so the store records a short name instead of 1,000 strings per video."""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

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


@cache
def label_names(label_set: str) -> list[str]:
    """Class names of ``label_set``: torchvision's lists (``imagenet-1k``, ``kinetics-400``), or one
    of timm's ImageNet subsets (``imagenet-12k``, ``imagenet-21k-goog``, ``imagenet-22k``, ...), each
    class named by its first WordNet lemma as torchvision names the 1k classes ("tench")."""
    if label_set in _SETS:
        return list(getattr(_torchvision_meta(), _SETS[label_set]))
    try:
        from timm.data import ImageNetInfo

        info = ImageNetInfo(label_set)
    except (ImportError, AssertionError):  # timm asserts on a subset it does not know
        raise KeyError(f"unknown label set {label_set!r}") from None
    return [d.split(", ")[0] for d in info.label_descriptions()]


def stored_label_names(extractor: dict) -> list[str] | None:
    """The class names a stored extractor description (``Extractor.describe()``) ranks: its named
    set, or the list it carries itself (a hub model's own ``label_names``)."""
    if extractor.get("label_set"):
        return label_names(extractor["label_set"])
    return extractor.get("labels")
