"""torchvision, imported without ``torch._dynamo``: import this module instead of ``torchvision``.

torchvision's ``ops/roi_align.py`` imports ``is_compile_supported`` from ``torch._dynamo.utils`` at
the top of the module, so ``import torchvision`` (and with it every ``torchvision.models`` import)
imports the whole of Dynamo: sympy, FSDP, the tracer. On the 2-core VM that is 2.5 of torchvision's
2.8 s (``python -X importtime``), paid in every process that builds a ``tv:`` model: each run, each
step, the service, the CLI. The function is only called by roi_align's compiled path, which imports
Dynamo anyway, and torchvision's own ``lazy_compile`` in that file says it means to avoid "eagerly
importing dynamo".

So while torchvision is imported, ``sys.modules`` holds a stand-in ``torch._dynamo.utils`` whose
one function imports the real one when first called; the stand-in is removed right after, so any
later ``import torch._dynamo`` (``torch.compile``, timm's ``torch.compiler.disable``) imports the
real thing. Where Dynamo is already imported, or the stand-in does not satisfy what torchvision
imports (a different torchvision), it is imported the ordinary way. A test holds this to
torchvision's own import: same models and ops, no Dynamo, and the real
``is_compile_supported`` (and Dynamo) when roi_align asks for it.
"""

from __future__ import annotations

import sys
import types

import torch  # noqa: F401  (imported before the stand-in goes in)

_NAME = "torch._dynamo.utils"


def _is_compile_supported(device_type):
    from torch._dynamo.utils import is_compile_supported

    return is_compile_supported(device_type)


def _import_torchvision() -> types.ModuleType:
    if "torchvision" in sys.modules or "torch._dynamo" in sys.modules or _NAME in sys.modules:
        import torchvision

        return torchvision
    stand_in = types.ModuleType(_NAME, "stand-in while torchvision imports (vid_assets.extractors.tv_import)")
    stand_in.is_compile_supported = _is_compile_supported
    sys.modules[_NAME] = stand_in
    try:
        import torchvision

        return torchvision
    except ImportError:  # it wanted more of Dynamo than the stand-in has: import both as usual, below
        for name in [n for n in sys.modules if n.split(".")[0] == "torchvision" or n.startswith("torch._dynamo")]:
            del sys.modules[name]
    finally:
        if sys.modules.get(_NAME) is stand_in:
            del sys.modules[_NAME]
    import torchvision

    return torchvision


torchvision = _import_torchvision()
