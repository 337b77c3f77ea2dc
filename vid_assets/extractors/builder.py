"""The one builder: what a family's factory returned (a model and its spec) made ready to run."""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import torch

from vid_assets.extractors.base import Extractor
from vid_assets.runtime.devices import resolve_device
from vid_assets.runtime.memory import tune_malloc

RUNTIMES = ("auto", "torch", "onnxruntime")


def build(ext: Extractor) -> Extractor:
    """The one builder: what a factory returned (a model and the facts about it) made ready to
    run. It settles the output (``head``: the head becomes the model's last layer), names a
    model's own labels, takes the device (a free GPU on a many-GPU host), folds eval BatchNorm and
    (on the CPU) TF "same" padding into the convolutions, verified on a probe, moves the model to
    its device in the memory format it runs fastest in, precomputes the normalisation, and
    compiles if asked. Idempotent."""
    if ext._built:
        return ext
    if ext.output == "auto":
        ext.spec = replace(ext.spec, output="pooled")
    if ext.output == "head":
        ext._head_as_features()
    if ext.labels and not ext.label_set:  # the model's own names: stored once, by content hash
        from vid_assets.extractors.labels import custom_label_set

        ext.spec = replace(ext.spec, label_set=custom_label_set(ext.labels))
    tune_malloc()  # page faults on every activation buffer halved CPU throughput (memory.py)
    ext.device = resolve_device(ext.device)
    if ext.fold_bn and ext.input_kind == "frame":
        _fold(ext)
    ext.model.eval().to(ext.device)
    if ext.head is not None:
        ext.head.eval().to(ext.device)
    if ext.device.type != "mps" and ext.input_kind == "frame":
        ext.model.to(memory_format=torch.channels_last)
    # (x / 255 - mean) / std folded into one multiply-add: x * scale + shift
    mean = torch.tensor(ext.mean, dtype=torch.float32, device=ext.device).view(1, 3, 1, 1)
    std = torch.tensor(ext.std, dtype=torch.float32, device=ext.device).view(1, 3, 1, 1)
    ext._scale, ext._shift = 1.0 / (255.0 * std), -mean / std
    # the same constants repeated along one row of input_size RGB pixels (``_normalise_rows``)
    ext._row_scale = ext._scale.view(3).repeat(ext.input_size)
    ext._row_shift = ext._shift.view(3).repeat(ext.input_size)
    ext._forward = _forward(ext)
    ext._built = True
    return ext


def with_runtime(ext: Extractor, runtime: str) -> Extractor:
    """``ext`` (built) run by ``runtime``: ``auto``, ``torch`` or ``onnxruntime`` (see :func:`_forward`).
    Apart from :func:`build` because a family may hand back an extractor it built itself."""
    if runtime != ext.runtime:
        ext.runtime = runtime
        ext.config.pop("runtime", None)
        ext._forward = _forward(ext)
    return ext


def _probe(ext: Extractor) -> torch.Tensor:
    return torch.randn(1, 3, ext.input_size, ext.input_size, generator=torch.Generator().manual_seed(0))


def _forward(ext: Extractor):
    """What runs a pass: the model (compiled if asked) or an ONNX Runtime session over it. ONNX
    Runtime takes fp32 frame models on the CPU: with ``runtime="onnxruntime"`` (a warning where it
    cannot) or ``"auto"`` (silently PyTorch where it does not apply). A failed export or check
    keeps PyTorch with a warning; ``config["runtime"]`` says which runs."""
    if ext.runtime not in RUNTIMES:
        raise ValueError(f"runtime {ext.runtime!r}: expected one of {', '.join(RUNTIMES)}")
    why = _why_not_onnx(ext) if ext.runtime != "torch" else "asked for torch"
    if why is None:
        from vid_assets import settings
        from vid_assets.extractors.onnxrt import onnx_forward

        try:
            fwd = onnx_forward(ext.model, _probe(ext), Path(settings.cache_dir()) / "onnx")
            ext.config["runtime"] = "onnxruntime"
            return fwd
        except Exception as e:  # noqa: BLE001 - any failure leaves the model in PyTorch
            why = f"{type(e).__name__}: {e}"
            warnings.warn(f"{ext.id}: ONNX Runtime not used ({why}); running in PyTorch", stacklevel=2)
    elif ext.runtime == "onnxruntime":
        warnings.warn(f"{ext.id}: runtime onnxruntime does not apply ({why}); running in PyTorch", stacklevel=2)
    ext.config["runtime"] = "torch"
    return torch.compile(ext.model) if ext.compile else ext.model


def _why_not_onnx(ext: Extractor) -> str | None:
    if ext.device.type != "cpu":
        return f"device {ext.device.type}: it runs on the CPU only"
    if ext.input_kind != "frame":
        return "a clip model"
    if ext._autocast_dtype() is not None:
        return f"precision {ext._dtype_name()}: it runs fp32 only"
    if ext.compile:
        return "compile is set"
    return None


def _fold(ext: Extractor) -> None:
    from vid_assets.extractors.fuse import fold_batchnorm, static_same_padding

    # one image: each check runs the model twice on it (a batch of 2 doubled ResNet-50's load time
    # here, 0.8 s against its 0.45 s build on the 2-core VM). The fold's check is about which BN
    # follows which conv, which any size shows: 64 px first (ResNet-50's check 1.3 -> 0.1 s),
    # the model's own size where it takes only that
    probe = _probe(ext)
    small = [probe[..., :64, :64]] if ext.input_size > 64 else []
    ext.model, folded = fold_batchnorm(ext.model.eval().cpu(), [*small, probe])
    if folded:
        ext.config["batchnorm_folded"] = folded
    if ext.static_pad and ext.device.type == "cpu":  # measured there; cuDNN has tuned 3x3/5x5
        ext.model, unpadded = static_same_padding(ext.model, probe)  # depthwise kernels
        if unpadded:
            ext.config["same_padding_static"] = unpadded
