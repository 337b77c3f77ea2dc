"""The Typer app and the options several commands share (one help text each)."""

from __future__ import annotations

import functools
import inspect
import typing
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="vid_assets: video collections -> training-ready embeddings.", no_args_is_help=True)

Device = Annotated[str, typer.Option(help="auto (cuda > mps > cpu), cpu, cuda ...")]
Output = Annotated[str, typer.Option(help="auto | pooled | head (as the extractor resource's field).")]
AsJson = Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")]
OutDir = Annotated[
    Path | None,
    typer.Option(
        "--out",
        help="Output folder (zarr: the feature store's root). Omitted with --set: the set's store in the"
        " deployment, reported to its Dagster instance.",
    ),
]
Args = Annotated[
    list[str] | None,
    typer.Option(
        "--arg",
        help="An argument for the extractor's factory, KEY=VALUE with a YAML value (pretrained=false,"
        " img_size=224, weights=null); repeat for more.",
    ),
]


# The sampling plan's options, shared by every command that runs the engine (extract, serve), listed
# once: (option, type, default, the fit_config field it sets, help). The same fields as the
# pipeline's sampling resource, fitted to the model by vid_assets/fit.py.
PLAN_OPTIONS = (
    ("mode", str, "fps", "mode", "fps | every_n | segments | keyframes, or a registered mode (media/modes.py)."),
    ("fps", float, 2.0, "fps", "fps mode: frames sampled per second of video."),
    ("every_n", int, 1, "every_n_frames", "every_n mode: keep every n-th frame."),
    ("segment_s", float, 5.0, "segment_s", "segments mode: segment length (s)."),
    ("frames_per_segment", int, 20, "frames_per_segment", "segments mode: frames per segment."),
    ("max_segments", int, 0, "max_segments", "segments mode: cap, spread uniformly (0 = all)."),
    ("short_side", int, 0, "short_side", "Resize frames to this short side (0: the model's)."),
    ("frames_per_clip", int, 0, "frames_per_clip", "Frames per clip (0: the model's clip length, 2 for image models)."),
    ("stride", int, 0, "stride", "Sampled frames between clip starts (0: the clip length)."),
    ("crop_size", int, 0, "crop_size", "0: the model's input size."),
    ("crop", str, "center", "crop", "center | five | ten | random."),
    ("crop_reduce", str, "none", "crop_reduce", "none | mean (average the crops)."),
    ("seed", int, 0, "seed", "Seed for random crops."),
    ("top_k", int, 5, "top_k", "Labels per clip."),
)


def plan_options(command):
    """Give ``command`` the plan options (``--mode``, ``--fps`` ... ``--top-k``); it receives them
    as one ``plan`` dict of :func:`vid_assets.fit.fit_config` fields."""
    sig = inspect.signature(command)
    hints = typing.get_type_hints(command, include_extras=True)  # the command module's names, resolved
    own = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in sig.parameters.values() if p.name != "plan"]
    types = {name: Annotated[kind, typer.Option(help=text)] for name, kind, _, _, text in PLAN_OPTIONS}
    keyword = inspect.Parameter.KEYWORD_ONLY
    added = [inspect.Parameter(n, keyword, default=d, annotation=types[n]) for n, _, d, _, _ in PLAN_OPTIONS]

    @functools.wraps(command)
    def with_plan(*args, **kwargs):
        plan = {field: kwargs.pop(name) for name, _, _, field, _ in PLAN_OPTIONS}
        return command(*args, plan=plan, **kwargs)

    del with_plan.__wrapped__  # Typer reads the signature below, not the command's
    with_plan.__signature__ = sig.replace(parameters=own + added)
    with_plan.__annotations__ = {**hints, **types}
    return with_plan


def set_option(what: str) -> object:
    """``--set NAME``: a declared feature set (``vid-assets sets``) decides ``what``."""
    return typer.Option("--set", help=f"A declared feature set (`vid-assets sets`): {what}.")


def parse_args(pairs: list[str] | None) -> dict:
    """``["pretrained=false", "img_size=224"]`` -> ``{"pretrained": False, "img_size": 224}``."""
    import yaml

    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"--arg takes KEY=VALUE, got {pair!r}")
        out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    return out


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` on stderr; ``raise fail(...)`` ends the command with ``code``."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def feature_set(name: str):
    """The code location's definitions and its feature set ``name`` (exits listing the known ones)."""
    from vid_assets.definitions import defs
    from vid_assets.defs.build import sets_of

    sets = sets_of(defs)
    if name not in sets:
        raise fail(f"no feature set {name!r}; this deployment has {', '.join(sets)} (VID_ASSETS_SETS)")
    return defs, sets[name]
