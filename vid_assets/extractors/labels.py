"""Named label sets, so the store records a short name instead of 1,000 strings per video."""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path
from types import ModuleType

# label set -> (list in torchvision's models/_meta.py, public weight enum carrying the same list)
_SETS = {
    "imagenet-1k": ("_IMAGENET_CATEGORIES", "ResNet50_Weights.IMAGENET1K_V1"),
    "kinetics-400": ("_KINETICS400_CATEGORIES", "video.R3D_18_Weights.KINETICS400_V1"),
}


@cache
def _torchvision_meta() -> ModuleType | None:
    """torchvision's ``models/_meta.py`` (plain lists, no imports), loaded by path.

    Importing ``torchvision.models`` costs ~3 s (it pulls in ``torch._dynamo``), and the storage step
    and the demo only need a label name. The lists ship inside torchvision: no download, no copy here.
    """
    spec = importlib.util.find_spec("torchvision")  # finds the package without running its __init__
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "models" / "_meta.py"
        if path.is_file():
            meta_spec = importlib.util.spec_from_file_location("_vid_assets_torchvision_meta", path)
            module = importlib.util.module_from_spec(meta_spec)
            meta_spec.loader.exec_module(module)
            return module
    return None


@cache
def label_names(label_set: str) -> list[str]:
    if label_set not in _SETS:
        raise KeyError(f"unknown label set {label_set!r}")
    attr, weights = _SETS[label_set]
    meta = _torchvision_meta()
    if meta is not None and isinstance(getattr(meta, attr, None), list):
        return list(getattr(meta, attr))
    import torchvision.models  # a torchvision that moved the file: the public weight metadata

    enum_path, member = weights.rsplit(".", 1)
    obj = torchvision.models
    for part in enum_path.split("."):
        obj = getattr(obj, part)
    return list(getattr(obj, member).meta["categories"])
