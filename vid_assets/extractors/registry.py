"""Name -> factory registry, in the shape of timm's ``register_model`` / ``create_model``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from vid_assets.extractors.base import Extractor

DEFAULT_EXTRACTOR = "efficientnet_lite0"

_FACTORIES: dict[str, Callable[..., Extractor]] = {}
_CACHE: dict[tuple, Extractor] = {}
_CACHE_LOCK = threading.Lock()


def register_extractor(fn: Callable[..., Extractor] | None = None, *, name: str | None = None):
    """Decorator registering a factory under ``name`` (default: the function name)."""

    def deco(f: Callable[..., Extractor]) -> Callable[..., Extractor]:
        key = name or f.__name__
        if key in _FACTORIES and _FACTORIES[key] is not f:
            raise ValueError(f"extractor {key!r} is already registered")
        _FACTORIES[key] = f
        return f

    return deco(fn) if fn is not None else deco


def list_extractors() -> list[str]:
    return sorted(_FACTORIES)


def create_extractor(name: str = DEFAULT_EXTRACTOR, **kwargs: Any) -> Extractor:
    """Build a new extractor. Unknown names list what is available."""
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise ValueError(f"unknown extractor {name!r}; available: {', '.join(list_extractors())}") from None
    return factory(**kwargs)


def get_extractor(name: str = DEFAULT_EXTRACTOR, **kwargs: Any) -> Extractor:
    """Per-process cached :func:`create_extractor`: the model loads once per (name, kwargs)."""
    key = (name, tuple(sorted(kwargs.items())))
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = create_extractor(name, **kwargs)
        return _CACHE[key]
