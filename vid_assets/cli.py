"""``vid-assets`` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="vid_assets: video collections -> training-ready embeddings.", no_args_is_help=True)


@app.command()
def demo(
    videos_dir: str = typer.Option(None, help="Folder for the sample videos (default $VID_ASSETS_VIDEOS)."),
):
    """Fetch sample videos, register them and materialize every partition (idempotent)."""
    from vid_assets.demo import run_demo

    raise typer.Exit(run_demo(videos_dir))


@app.command()
def register(folder: Annotated[Path, typer.Argument(exists=True, file_okay=False)]):
    """Catalog every video under FOLDER and add its partition to the Dagster instance."""
    import dagster as dg

    from vid_assets.definitions import defs
    from vid_assets.demo import register_videos
    from vid_assets.media import scan_folder

    refs = register_videos(dg.DagsterInstance.get(), defs, [p for p, _ in scan_folder(folder)])
    for r in refs:
        typer.echo(f"{r.key}\t{r.uri}")


@app.command()
def summary():
    """Print one row per video in the feature store."""
    from vid_assets.definitions import defs
    from vid_assets.demo import make_console, summary_table

    store = defs.resources["feature_store"].store()
    make_console().print(summary_table(store))


if __name__ == "__main__":
    app()
