"""timm models: any architecture, ``hf-hub:`` repos (CLIP, DINOv2, SigLIP image towers) and
``local-dir:`` folders, all through ``timm.create_model`` so timm's own hub code does the loading.

Offline (``HF_HUB_OFFLINE=1``), ``hf-hub:`` resolves from the local Hugging Face cache and
``local-dir:`` from a folder written by ``timm.models.save_for_hf`` (config.json + safetensors).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from vid_assets.extractors._hub import cached_revision, hub_hint, load_error, pinned_revision, weights_digest
from vid_assets.extractors.base import Extractor
from vid_assets.extractors.builder import build
from vid_assets.extractors.labels import label_names
from vid_assets.extractors.registry import register_prefix
from vid_assets.extractors.spec import InputSpec


class TimmBackbone(torch.nn.Module):
    """Pooled pre-logits features of a timm model (``forward_head(..., pre_logits=True)``)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)


def create_timm_model(name: str, **kwargs) -> torch.nn.Module:
    """``timm.create_model``, importing timm only now: timm and the torchvision it pulls in take
    ~1.4 s to import (~3.5 s without ``timm_import``), which every Dagster step process (decode,
    clips, storage) would pay."""
    from vid_assets.extractors.timm_import import timm

    return timm.create_model(name, **kwargs)


def _sizes(data_cfg: dict) -> tuple[int, int]:
    """(crop, resize short side) of timm's eval transform: resize to floor(size / crop_pct), crop size."""
    size = int(data_cfg["input_size"][-1])
    return size, int(math.floor(size / float(data_cfg.get("crop_pct") or 0.875)))


def spec_from_cfg(pretrained_cfg: dict, img_size=None, pretrained_cfg_overlay: dict | None = None, **_) -> InputSpec:
    """The :class:`InputSpec` of a timm pretrained cfg (what ``from_timm`` derives from the model),
    with the ``create_model`` arguments that change it: ``pretrained_cfg_overlay`` and ``img_size``."""
    from vid_assets.extractors.timm_import import timm

    cfg = {**pretrained_cfg, **(pretrained_cfg_overlay or {})}
    if img_size:
        cfg["input_size"] = (3, *_pair(img_size))
    size, resize = _sizes(timm.data.resolve_data_config(pretrained_cfg=cfg))
    return InputSpec("frame", 1, size, resize)


def _pair(size) -> tuple[int, int]:
    return (int(size[0]), int(size[-1])) if isinstance(size, list | tuple) else (int(size), int(size))


def fixed_input_size(model: torch.nn.Module) -> int | None:
    """The square size a ViT-style model was built for (``patch_embed.img_size``), or None when it
    takes any size. A model built with ``img_size=224`` from a config made for 518 (DINOv2) keeps
    518 in its pretrained cfg: preprocessing must follow the model, not the cfg."""
    embed = getattr(model, "patch_embed", None)
    size = getattr(embed, "img_size", None)
    if size is None or getattr(embed, "dynamic_img_size", False) or getattr(embed, "dynamic_img_pad", False):
        return None
    return _pair(size)[-1]


def is_projection(model: torch.nn.Module) -> bool:
    """Whether a timm model's "classifier" is a CLIP image tower's projection into the image-text
    space (``vit_base_patch16_clip_224.openai``: num_classes 512). timm marks CLIP weights only in
    the architecture or tag name; a head with label names or the size of an ImageNet subset
    (``..._clip_224.openai_ft_in1k``) is a fine-tuned classifier instead."""
    from vid_assets.extractors.timm_import import timm

    cfg = getattr(model, "pretrained_cfg", None) or {}
    named = f"{cfg.get('architecture', '')}.{cfg.get('tag', '')}".lower()
    return (
        getattr(model, "num_classes", 0) > 0
        and "clip" in named
        and not cfg.get("label_names")
        and timm.data.infer_imagenet_subset(model) is None
    )


def _label_list(names, num_classes: int) -> list[str]:
    """timm's ``label_names``: a list, or ``{class index: name}`` where indices have gaps."""
    if isinstance(names, dict):
        by_index = {int(k): str(v) for k, v in names.items()}
        return [by_index.get(i, f"class {i}") for i in range(num_classes)]
    return [str(n) for n in names]


def from_timm(
    model: torch.nn.Module, *, name: str, id: str, labels: str | None = None, output: str = "auto", **kwargs
) -> Extractor:
    """Wrap a built timm model; preprocessing comes from its pretrained config.

    ``output="auto"``: a CLIP image tower's features are its projected image embeddings (what
    ``encode_image`` gives, comparable with the text tower's), every other model's are the pooled
    pre-logits features. A classifier's labels are named from ``labels`` (a label set), the hub
    config's ``label_names``, or timm's ImageNet tables by the head's size (1k, 12k, 21k, 22k).
    """
    from vid_assets.extractors.timm_import import timm

    cfg = dict(timm.data.resolve_model_data_config(model))
    built = fixed_input_size(model)
    if built is not None and built != int(cfg["input_size"][-1]):
        cfg["input_size"] = (3, built, built)
    size, resize = _sizes(cfg)
    head = model.get_classifier() if getattr(model, "num_classes", 0) else None
    if isinstance(head, torch.nn.Identity):
        head = None
    projection = head is not None and is_projection(model)
    if output == "auto":
        output = "head" if projection else "pooled"
    if projection and output != "head":
        head = None  # a projection, not a classifier: nothing to rank
    names, label_set = None, None
    if head is not None:
        own = model.pretrained_cfg.get("label_names")
        label_set = labels or (None if own else timm.data.infer_imagenet_subset(model))
        # a list of its own gets a content-hash set name from the Extractor
        names = label_names(label_set) if label_set else _label_list(own, model.num_classes) if own else None
    return build(  # a helper other families call directly: hand back a ready extractor
        Extractor(
            name=name,
            id=id,
            model=TimmBackbone(model),
            head=head,
            input_size=size,
            resize_size=resize,
            mean=tuple(float(v) for v in cfg["mean"]),
            std=tuple(float(v) for v in cfg["std"]),
            dim=int(model.num_features),
            labels=names,
            label_set=label_set,
            output=output,
            config={"timm": timm.__version__, "arch": model.default_cfg.get("architecture", name)},
            **kwargs,
        )
    )


def _timm_kwargs(kwargs: dict) -> tuple[dict, dict]:
    """Split timm.create_model kwargs from Extractor kwargs."""
    extractor_keys = {"device", "batch_size", "precision", "compile", "output"}
    return {k: v for k, v in kwargs.items() if k not in extractor_keys}, {
        k: v for k, v in kwargs.items() if k in extractor_keys
    }


def _arch_spec(arch: str, **kwargs) -> InputSpec | None:
    from vid_assets.extractors.timm_import import timm

    cfg = timm.models.get_pretrained_cfg(arch)
    return spec_from_cfg(cfg.to_dict(), **kwargs) if cfg is not None else None


def _hub_spec(repo: str, **kwargs) -> InputSpec:
    """timm's own repos (``timm/<arch>.<tag>``) are answered from timm's built-in pretrained cfg,
    with no network call and nothing cached; any other repo from its hub config."""
    from vid_assets.extractors.timm_import import timm

    repo_id = repo.partition("@")[0]
    if repo_id.startswith("timm/"):
        cfg = timm.models.get_pretrained_cfg(repo_id.removeprefix("timm/"), allow_unregistered=False)
        if cfg is not None:
            return spec_from_cfg(cfg.to_dict(), **kwargs)
    return spec_from_cfg(timm.models.load_model_config_from_hf(repo)[0], **kwargs)


def _local_dir_spec(path: str, **kwargs) -> InputSpec:
    from vid_assets.extractors.timm_import import timm

    # timm.models._hub's function is not exported; a failure builds the model instead
    return spec_from_cfg(timm.models._hub.load_model_config_from_path(Path(path).expanduser())[0], **kwargs)


@register_prefix("timm", spec=_arch_spec, spec_imports=("vid_assets.extractors.timm_import",))
def timm_arch(arch: str, pretrained: bool = True, **kwargs) -> Extractor:
    """``timm:<arch>``: pretrained weights via timm's default source (the HF Hub cache offline)."""
    model_kw, ext_kw = _timm_kwargs(kwargs)
    try:
        model = create_timm_model(arch, pretrained=pretrained, **model_kw)
    except Exception as e:  # offline without a cached copy, unknown arch, ...
        raise load_error(
            f"timm model {arch!r} (pretrained={pretrained})",
            e,
            "Offline, pretrained weights must already be in the Hugging Face cache; use pretrained=False for random init.",
        ) from e
    rev = "random-init"
    if pretrained:
        hub_id = model.pretrained_cfg.get("hf_hub_id")
        rev = hub_id or model.pretrained_cfg.get("tag") or "default"
        commit = cached_revision(hub_id, cache_dir=model_kw.get("cache_dir")) if hub_id else None
        if commit:  # the snapshot the weights came from: a re-uploaded checkpoint gets a new id
            rev = f"{rev}:{commit}"
    return from_timm(model, name=f"timm:{arch}", id=f"timm/{arch}@{rev}", **ext_kw)


@register_prefix("hf-hub", spec=_hub_spec, spec_imports=("vid_assets.extractors.timm_import",))
def timm_hf_hub(repo: str, **kwargs) -> Extractor:
    """``hf-hub:<org>/<name>[@revision]`` via timm's hub loader (honours HF_HUB_OFFLINE / the cache)."""
    model_kw, ext_kw = _timm_kwargs(kwargs)
    repo_id, _, revision = repo.partition("@")
    try:
        model = create_timm_model(f"hf-hub:{repo}", pretrained=True, **model_kw)
    except Exception as e:  # not cached offline, not a timm repo, ...
        raise load_error(f"hf-hub:{repo}", e, hub_hint(repo_id, model_kw.get("cache_dir"))) from e
    revision = pinned_revision(repo_id, revision, model_kw.get("cache_dir"))  # a branch or tag: its commit here
    return from_timm(model, name=f"hf-hub:{repo_id}", id=f"hf-hub:{repo_id}@{revision}", **ext_kw)


@register_prefix("local-dir", spec=_local_dir_spec, spec_imports=("vid_assets.extractors.timm_import",))
def timm_local_dir(path: str, **kwargs) -> Extractor:
    """``local-dir:<folder>`` written by ``timm.models.save_for_hf`` (or a downloaded hub snapshot)."""
    model_kw, ext_kw = _timm_kwargs(kwargs)
    folder = Path(path).expanduser().resolve()
    if not (folder / "config.json").exists():
        raise FileNotFoundError(f"{folder} has no config.json (expected a timm hub-format folder)")
    model = create_timm_model(f"local-dir:{folder}", pretrained=True, **model_kw)
    return from_timm(
        model,
        name=f"local-dir:{folder.name}",
        id=f"local-dir:{folder.name}@{weights_digest(folder)}",
        **ext_kw,
    )
