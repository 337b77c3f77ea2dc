"""Name -> factory registry, in the shape of timm's ``register_model`` / ``create_model``.

``create_extractor(name, **kwargs)`` resolves, in order:

0. a short name (``dinov2-large``, ``clip-vit-b32``, ...; see :data:`ALIASES`) stands for the
   hub id it maps to;
1. a registered name (``efficientnet_lite0``, ``r3d_18``, ...; see :func:`list_extractors`);
2. a prefix: ``timm:<arch>``, ``hf-hub:<repo>[@rev]``, ``local-dir:<path>`` (timm's own loaders),
   ``tv:<torchvision image model>``;
3. ``package.module:callable`` - any importable factory returning an :class:`Extractor`;
4. a plug-in advertised under the ``vid_assets.extractors`` entry-point group, so third-party
   packages add extractors with no edits here.

Unknown names fail with the close matches.

``kwargs`` go to the factory (``pretrained=False``, ``img_size=224``, ``weights=None`` ...), also
from a feature set's YAML ``args:`` and the CLI's ``--arg``.

``input_spec(name, **kwargs)`` says what a name eats (frames or clips of T, input and resize size) without
loading weights: factories declare it (``spec=``), from their configs; anything else is built on
the CPU once to ask. The pipeline cuts clips to fit it before the model is loaded.
"""

from __future__ import annotations

import difflib
import importlib
import json
import threading
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from vid_assets import settings
from vid_assets.extractors.base import Extractor
from vid_assets.extractors.builder import build, with_runtime
from vid_assets.extractors.spec import InputSpec

DEFAULT_EXTRACTOR = "efficientnet_lite0"
ENTRY_POINT_GROUP = "vid_assets.extractors"

_FACTORIES: dict[str, Callable[..., Extractor]] = {}
_PREFIXES: dict[str, Callable[..., Extractor]] = {}
_SPECS: dict[str, InputSpec | Callable[[], InputSpec]] = {}
_PREFIX_SPECS: dict[str, Callable[[str], InputSpec | None]] = {}
_PREFIX_IMPORTS: dict[str, tuple[str, ...]] = {}
_CACHE: dict[tuple, Extractor] = {}
_CACHE_LOCK = threading.Lock()
_SPEC_CACHE: dict[str, InputSpec] = {}

# Short names for the models people ask for by family and size, mapped to timm's copies on the Hub
# (image towers; CLIP's and SigLIP's give their projected image embeddings, see timm_models).
ALIASES: dict[str, str] = {
    "dinov2-small": "hf-hub:timm/vit_small_patch14_dinov2.lvd142m",
    "dinov2-base": "hf-hub:timm/vit_base_patch14_dinov2.lvd142m",
    "dinov2-large": "hf-hub:timm/vit_large_patch14_dinov2.lvd142m",
    "dinov2-giant": "hf-hub:timm/vit_giant_patch14_dinov2.lvd142m",
    "clip-vit-b32": "hf-hub:timm/vit_base_patch32_clip_224.openai",
    "clip-vit-l14": "hf-hub:timm/vit_large_patch14_clip_224.openai",
    "siglip-base": "hf-hub:timm/vit_base_patch16_siglip_224.webli",
}


def resolve_alias(name: str) -> str:
    """The hub id a short name stands for (any other name as it is)."""
    return ALIASES.get(name, name)


def _args_key(kwargs: dict[str, Any]) -> str:
    return json.dumps(kwargs, sort_keys=True, default=str)


def register_extractor(
    fn: Callable[..., Extractor] | None = None,
    *,
    name: str | None = None,
    spec: InputSpec | Callable[[], InputSpec] | None = None,
):
    """Decorator registering a factory under ``name`` (default: the function name). ``spec``: its
    :class:`InputSpec` (or a function giving it), so clips can be fitted without building it."""

    def deco(f: Callable[..., Extractor]) -> Callable[..., Extractor]:
        key = name or f.__name__
        if key in _FACTORIES and _FACTORIES[key] is not f:
            raise ValueError(f"extractor {key!r} is already registered")
        _FACTORIES[key] = f
        if spec is not None:
            _SPECS[key] = spec
        return f

    return deco(fn) if fn is not None else deco


def register_prefix(
    prefix: str, *, spec: Callable[[str], InputSpec | None] | None = None, spec_imports: tuple[str, ...] = ()
):
    """Decorator for a factory handling every ``<prefix>:<rest>`` name; it gets ``rest`` first.
    ``spec(rest)``: the :class:`InputSpec` from configs alone, or None when it cannot tell;
    ``spec_imports``: the heavy modules ``spec`` imports (see :func:`spec_imports`)."""

    def deco(f: Callable[..., Extractor]) -> Callable[..., Extractor]:
        _PREFIXES[prefix] = f
        if spec is not None:
            _PREFIX_SPECS[prefix] = spec
        if spec_imports:
            _PREFIX_IMPORTS[prefix] = tuple(spec_imports)
        return f

    return deco


def spec_imports(name: str) -> tuple[str, ...]:
    """Modules that answering ``input_spec(name)`` imports (``timm`` for ``timm:`` names, ...).

    Every Dagster step process loads the definitions, whose code versions hold the fitted sizes,
    so the local executor's forkserver imports these once per run instead of once per step."""
    prefix, sep, _ = name.partition(":")
    return _PREFIX_IMPORTS.get(prefix, ()) if sep else ()


def input_spec(name: str = DEFAULT_EXTRACTOR, *, build: bool = True, **kwargs: Any) -> InputSpec | None:
    """What ``name`` takes as input, without loading weights where its factory declares it (from
    the model's config: timm's pretrained cfg, torchvision's weight transforms). A factory that
    declares nothing, or a declaration that fails (a config not in the cache, say), is answered by
    building the extractor on the CPU once per process, or with None when ``build`` is False; an
    unknown name raises as :func:`create_extractor` does. ``kwargs``: the factory arguments (a
    declaration that takes them, e.g. timm's ``img_size``, answers for them). Cached per process."""
    name = resolve_alias(name)
    cache_key = f"{name}|{_args_key(kwargs)}"
    if cache_key in _SPEC_CACHE:
        return _SPEC_CACHE[cache_key]
    spec: InputSpec | None = None
    prefix, sep, rest = name.partition(":")
    try:
        if name in _SPECS and not kwargs:
            declared = _SPECS[name]
            spec = declared() if callable(declared) else declared
        elif sep and prefix in _PREFIX_SPECS:
            spec = _PREFIX_SPECS[prefix](rest, **kwargs)
    except Exception:  # the factory itself gives the real error, or the answer, below
        spec = None
    if spec is None:
        if not build:
            return None
        # built once, on the CPU, and kept: a run on the CPU loads this same model next
        # (``feed.load_extractor``) instead of building it a second time
        spec = get_extractor(name, device="cpu", **kwargs).input_spec
    _SPEC_CACHE[cache_key] = spec
    return spec


def _plugins() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def list_extractors(include_plugins: bool = True) -> list[str]:
    names = set(_FACTORIES)
    if include_plugins:
        names |= set(_plugins())
    return sorted(names)


def list_prefixes() -> list[str]:
    """The ``<prefix>:`` forms names may take (``hf-hub``, ``local-dir``, ``timm``, ``tv``, ...)."""
    return sorted(_PREFIXES)


def create_extractor(name: str = DEFAULT_EXTRACTOR, **kwargs: Any) -> Extractor:
    """Build a new extractor (see the module docstring for how names resolve). ``runtime``
    (``auto``, ``torch`` or ``onnxruntime``; default :func:`vid_assets.settings.runtime`) is how
    the built model runs, whatever family made it."""
    runtime = kwargs.pop("runtime", None) or settings.runtime()
    return with_runtime(build(_make(resolve_alias(name), kwargs)), runtime)


def _make(name: str, kwargs: dict[str, Any]) -> Extractor:
    """What the factory for ``name`` returns (not yet built)."""
    if name in _FACTORIES:
        return _FACTORIES[name](**kwargs)
    prefix, sep, rest = name.partition(":")
    if sep and prefix in _PREFIXES:
        return _PREFIXES[prefix](rest, **kwargs)
    plugins = _plugins()
    if name in plugins:
        return _check(plugins[name].load()(**kwargs), name)
    if sep and "." in prefix or (sep and prefix.isidentifier() and rest.isidentifier()):
        try:
            module = importlib.import_module(prefix)
        except ImportError as e:
            raise ValueError(f"extractor {name!r}: cannot import module {prefix!r}: {e}") from e
        factory = getattr(module, rest, None)
        if not callable(factory):
            raise ValueError(f"extractor {name!r}: {prefix!r} has no callable {rest!r}")
        return _check(factory(**kwargs), name)
    known = list_extractors()
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"unknown extractor {name!r}.{hint} Registered: {', '.join(known)}; "
        f"prefixes: {', '.join(p + ':' for p in list_prefixes())}; or 'package.module:factory'."
    )


def _check(obj: Any, name: str) -> Extractor:
    if not isinstance(obj, Extractor):
        raise TypeError(f"extractor factory {name!r} returned {type(obj).__name__}, not vid_assets Extractor")
    return obj


def get_extractor(name: str = DEFAULT_EXTRACTOR, **kwargs: Any) -> Extractor:
    """Per-process cached :func:`create_extractor`: the model loads once per (name, kwargs)."""
    kwargs["runtime"] = kwargs.get("runtime") or settings.runtime()
    key = (resolve_alias(name), _args_key(kwargs))
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = create_extractor(name, **kwargs)
        return _CACHE[key]


def loads_so_far() -> int:
    """How many distinct models this process has loaded through :func:`get_extractor`."""
    return len(_CACHE)
