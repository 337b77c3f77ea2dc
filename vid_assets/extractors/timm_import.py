"""timm, imported without ``torch._dynamo``: import this module instead of ``timm``.

``import timm`` imports every model module it has. One of them (``naflexvit``, timm 1.0.31)
decorates methods with ``torch.compiler.disable``, whose body imports the whole of Dynamo: 2.1 of
timm's 3.2 s (``python -X importtime``, 2-core VM), paid by every process that builds a timm model,
the default EfficientNet-Lite0 included: ``dagster asset materialize``, ``vid-assets extract``, the
service, each test worker. (The torchvision that timm imports goes through ``tv_import`` for the
same reason.)

So while timm imports, ``torch.compiler.disable`` is a deferred one: it marks the function the way
Dynamo recognises a disabled one (``_torchdynamo_disable``: a compiled caller does not trace into
it), and the first call disables the function for real, importing Dynamo then, and calls that from
then on. A decorated function nobody calls costs nothing; one that is called behaves as torch's.
The real ``torch.compiler.disable`` is back as soon as timm is imported. Where Dynamo is already
imported, timm is imported the ordinary way. A test holds this to timm's own import.
"""

from __future__ import annotations

import functools
import sys
import types
from collections.abc import Callable

import torch

from vid_assets.extractors.tv_import import torchvision  # noqa: F401  (timm imports it: without Dynamo too)


def deferred_disable(fn: Callable | None = None, recursive: bool = True, *, reason: str | None = None):
    """``torch.compiler.disable`` that imports Dynamo at the function's first call, not at decoration."""
    if fn is None:
        return functools.partial(deferred_disable, recursive=recursive, reason=reason)
    real: list[Callable] = []

    @functools.wraps(fn)
    def call(*args, **kwargs):
        if not real:
            real.append(torch.compiler.disable(fn, recursive=recursive, reason=reason))
        return real[0](*args, **kwargs)

    call._torchdynamo_disable = True  # a compiling caller graph-breaks here instead of inlining
    call._torchdynamo_disable_msg = reason
    return call


def _import_timm() -> types.ModuleType:
    if "timm" in sys.modules or "torch._dynamo" in sys.modules:
        import timm

        return timm
    disable = torch.compiler.disable
    torch.compiler.disable = deferred_disable
    try:
        import timm
    finally:
        torch.compiler.disable = disable
    return timm


timm = _import_timm()
