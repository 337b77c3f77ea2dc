"""The Typer app and the options several commands share (one help text each)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="vid_assets: video collections -> training-ready embeddings.", no_args_is_help=True)

# The sampling plan's options, shared by every command that runs the engine (extract, serve): the
# same fields as the pipeline's sampling resource, fitted to the model by vid_assets/fit.py.
Device = Annotated[str, typer.Option(help="auto (cuda > mps > cpu), cpu, cuda ...")]
Mode = Annotated[str, typer.Option(help="fps | every_n | segments | keyframes (as the sampling resource).")]
Fps = Annotated[float, typer.Option(help="fps mode: frames sampled per second of video.")]
EveryN = Annotated[int, typer.Option(help="every_n mode: keep every n-th frame.")]
SegmentS = Annotated[float, typer.Option(help="segments mode: segment length (s).")]
FramesPerSegment = Annotated[int, typer.Option(help="segments mode: frames per segment.")]
MaxSegments = Annotated[int, typer.Option(help="segments mode: cap, spread uniformly (0 = all).")]
FramesPerClip = Annotated[
    int, typer.Option(help="Sampled frames per clip (0: the model's clip length, 2 for image models).")
]
Crop = Annotated[str, typer.Option(help="center | five | ten | random.")]
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
