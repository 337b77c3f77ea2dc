"""Inference-time folding of BatchNorm into the convolution before it.

An eval-mode ``BatchNorm2d`` after a ``Conv2d`` is an affine map per output channel, so it can be
folded into the conv's weight and bias and dropped from the graph. On the 2-core VM that took
EfficientNet-Lite0 from ~206 to ~253 img/s (batch norm was ~19 % of the forward's time).

Which BN follows which conv is read from module registration order (conv, then its BN, as in
timm's and torchvision's CNN blocks). Registration order is not execution order in general, so the
folded copy is checked against the original on a probe input and kept only if they agree; otherwise
the model is left as it was. timm's ``BatchNormAct2d`` keeps its activation (and dropout) after
folding. Conv3d / BatchNorm3d (video models) are left alone.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn


def _fold_into(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """New parameters, not new data in the old ones: the conv's original (shared by the model the
    copy was made from, see :func:`_tree_copy`) stays as it was."""
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(bn.running_mean)
    conv.weight = nn.Parameter(conv.weight.detach() * scale.reshape(-1, 1, 1, 1), requires_grad=False)
    conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias.detach(), requires_grad=False)


def _tree_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module``'s tree of modules that shares its tensors: what the fold and the padding
    rewrite (which submodule sits where, which parameter a conv holds) changes in the copy only.
    ``copy.deepcopy`` also copied every tensor and attribute: 0.3 s of EfficientNet-Lite0's load."""
    clone = copy.copy(module)  # a new object with a shallow copy of the module's __dict__
    clone._parameters = dict(module._parameters)
    clone._buffers = dict(module._buffers)
    clone._modules = {name: None if m is None else _tree_copy(m) for name, m in module._modules.items()}
    return clone


def _fold(parent: nn.Module) -> int:
    count = 0
    names = list(parent._modules)
    for i, name in enumerate(names):
        module = parent._modules[name]
        prev = parent._modules[names[i - 1]] if i else None
        if (
            type(module) is not nn.BatchNorm2d  # subclasses with extra behaviour must declare act/drop
            and not (isinstance(module, nn.BatchNorm2d) and hasattr(module, "act"))
        ) or not isinstance(prev, nn.Conv2d):
            if module is not None:
                count += _fold(module)
            continue
        if not module.track_running_stats or module.running_mean is None or not module.affine:
            continue
        _fold_into(prev, module)
        parent._modules[name] = nn.Sequential(
            getattr(module, "drop", nn.Identity()), getattr(module, "act", nn.Identity())
        )
        count += 1
    return count


@torch.no_grad()  # not inference_mode: its tensors would be unusable outside it (and at 1 thread)
def fold_batchnorm(
    model: nn.Module, probe: torch.Tensor | Sequence[torch.Tensor], rtol: float = 1e-4
) -> tuple[nn.Module, int]:
    """``(model, n)``: a folded copy of eval-mode ``model`` if its output on ``probe`` matches the
    original's (max abs diff <= rtol * max |output|), with the number of folded layers; else the
    original and 0. Several probes: the first one the model runs decides (a small image first, then
    the model's own size for models that take only that)."""
    if not any(isinstance(m, nn.BatchNorm2d) for m in model.modules()):
        return model, 0  # e.g. ViTs: no copy of a large model for nothing
    folded = _tree_copy(model).eval()
    n = _fold(folded)
    if n == 0:
        return model, 0
    for p in [probe] if isinstance(probe, torch.Tensor) else probe:
        try:
            want, got = model.eval()(p).float(), folded(p).float()
        except Exception:  # noqa: BLE001 - a model that cannot run this probe may run the next
            continue
        return (folded, n) if _agrees(want, got, rtol) else (model, 0)
    return model, 0  # it ran none of them: left as it is


def _agrees(want: torch.Tensor, got: torch.Tensor, rtol: float) -> bool:
    """Same shape, and max abs difference <= rtol * max |want|: the check every rewrite here passes."""
    return want.shape == got.shape and (want - got).abs().max() <= rtol * max(want.abs().max().item(), 1e-6)


# -- TF "same" padding as the convolution's own -------------------------------------------------
#
# timm's TF-ported models (EfficientNet-Lite0 here) pad every stride-2 conv's input at run time
# (``Conv2dSame``: F.pad, then a conv without padding) because TensorFlow's "same" padding puts the
# odd pixel on the right/bottom. The pad is a full copy of the activation: on the 2-core VM a
# batch of 8 x 32 x 112 x 112 took 2.0 ms to pad against 0.75 ms for the depthwise conv after it.
# For a known input size, padding (l, r) with l < r equals padding r on both sides with a kernel
# r - l taps larger whose leading taps are zero: the conv then reads the same pixels with the same
# weights, and the copy is gone. Other input sizes run the original module.


class _StaticSameConv(nn.Module):
    """A ``Conv2dSame`` for one input size as one padded conv; other sizes run the original."""

    def __init__(self, original: nn.Conv2d, size: tuple[int, int]) -> None:
        super().__init__()
        (kh, kw), (sh, sw) = original.kernel_size, original.stride
        pads = [_same_pad(n, k, s) for n, k, s in ((size[0], kh, sh), (size[1], kw, sw))]
        (lh, rh), (lw, rw) = pads
        conv = nn.Conv2d(
            original.in_channels,
            original.out_channels,
            (kh + rh - lh, kw + rw - lw),
            stride=original.stride,
            padding=(rh, rw),
            groups=original.groups,
            bias=original.bias is not None,
        )
        weight = torch.zeros_like(conv.weight)
        weight[:, :, rh - lh :, rw - lw :] = original.weight.detach()
        conv.weight = nn.Parameter(weight, requires_grad=False)
        if original.bias is not None:
            conv.bias = nn.Parameter(original.bias.detach().clone(), requires_grad=False)
        self.conv, self.original, self.size = conv, original, tuple(size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) if tuple(x.shape[-2:]) == self.size else self.original(x)


def _same_pad(n: int, k: int, s: int) -> tuple[int, int]:
    total = max((-(-n // s) - 1) * s + k - n, 0)  # TensorFlow's "same" (timm's get_same_padding)
    return total // 2, total - total // 2


def _is_same_conv(m: nn.Module) -> bool:
    return (
        type(m).__name__ == "Conv2dSame"
        and isinstance(m, nn.Conv2d)
        and m.dilation == (1, 1)
        and m.padding == (0, 0)
        and m.padding_mode == "zeros"
    )


@torch.no_grad()
def static_same_padding(model: nn.Module, probe: torch.Tensor, rtol: float = 1e-4) -> tuple[nn.Module, int]:
    """``(model, n)``: a copy of eval-mode ``model`` whose ``n`` run-time-padded convs pad as part of
    the conv for ``probe``'s input size, if its output on ``probe`` matches the original's; else the
    original and 0 (as :func:`fold_batchnorm`)."""
    if not any(_is_same_conv(m) for m in model.modules()):
        return model, 0
    sizes: dict[str, tuple[int, int]] = {}

    def record(name: str):
        def hook(_module, args) -> None:  # returns None: a value would replace the inputs
            sizes.setdefault(name, tuple(args[0].shape[-2:]))

        return hook

    hooks = [m.register_forward_pre_hook(record(name)) for name, m in model.named_modules() if _is_same_conv(m)]
    try:
        want = model.eval()(probe).float()
    except Exception:
        return model, 0
    finally:
        for h in hooks:
            h.remove()
    static = _tree_copy(model).eval()
    for name, size in sizes.items():
        parent_name, _, child = name.rpartition(".")
        parent = static.get_submodule(parent_name) if parent_name else static
        parent._modules[child] = _StaticSameConv(parent._modules[child], size)
    return (static, len(sizes)) if _agrees(want, static(probe).float(), rtol) else (model, 0)
