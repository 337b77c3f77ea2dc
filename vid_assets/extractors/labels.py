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
    if label_set not in _SETS:
        raise KeyError(f"unknown label set {label_set!r}")
    return list(getattr(_torchvision_meta(), _SETS[label_set]))
