"""The deployment's data: sample videos, registering a folder, progress, garbage, the store's rows."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vid_assets.cli.options import AsJson, app

if TYPE_CHECKING:
    import dagster as dg


@app.command(rich_help_panel="The deployment")
def demo(
    videos_dir: str = typer.Option(None, help="Folder for the sample videos (default $VID_ASSETS_VIDEOS)."),
):
    """Fetch sample videos, register them and materialize every partition (idempotent)."""
    from vid_assets.demo import run_demo

    raise typer.Exit(run_demo(videos_dir))


@app.command(rich_help_panel="The deployment")
def register(
    folder: Annotated[Path, typer.Argument(exists=True, file_okay=False)],
    run: Annotated[
        bool,
        typer.Option(
            "--run",
            help="Then materialize its new and stale videos: batch runs of the embed job in this process"
            " (VID_ASSETS_BATCH videos each), recorded in the instance like the daemon's; a progress bar.",
        ),
    ] = False,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="With --run: also videos whose decode or store failed before.")
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            exists=True,
            dir_okay=False,
            help="With --run: a run config YAML, as `dagster job execute -c`.",
        ),
    ] = None,
):
    """Catalog every video under FOLDER and add its partition to the Dagster instance."""
    import dagster as dg

    from vid_assets import settings
    from vid_assets.media import VideoCatalog, VideoRef, scan_folder

    # the catalog the definitions' workspace resource reads (VID_ASSETS_WORK), without loading the
    # definitions: they import torch and the models' configs, 2.3 s of a 3.5-s command here
    catalog = VideoCatalog(Path(settings.work_dir()) / "catalog")
    skipped: list = []
    refs = [catalog.register(VideoRef.from_path(p)) for p, _ in scan_folder(folder, skipped=skipped)]
    instance = dg.DagsterInstance.get()
    instance.add_dynamic_partitions("videos", [r.key for r in refs])
    for r in refs:
        typer.echo(f"{r.key}\t{r.uri}")
    for s in skipped:
        typer.echo(f"skipped: {s.path}: {s.reason}", err=True)
    if run:
        raise typer.Exit(_run_registered(instance, [r.key for r in refs], retry_failed, config))


def _run_registered(instance: dg.DagsterInstance, keys: list[str], retry_failed: bool, config: Path | None) -> int:
    """``register --run``: the registered videos through the embed job; 1 if any video failed."""
    if not keys:
        typer.echo("no videos registered: nothing to run")
        return 0
    import yaml

    from vid_assets.definitions import defs  # torch and the models' configs: only when there is work
    from vid_assets.defs.videos.local_runs import print_outcome, run_outdated
    from vid_assets.demo import make_console

    console = make_console()
    run_config = yaml.safe_load(config.read_text()) if config else None
    outcome = run_outdated(instance, defs, keys, console, retry_failed=retry_failed, run_config=run_config)
    print_outcome(console, outcome)
    return 1 if outcome.failed else 0


@app.command(rich_help_panel="The deployment")
def status(as_json: AsJson = False):
    """Progress per asset (done / stale / failed / running / missing), throughput, ETA and latest failures."""
    import datetime as dt
    import json

    import dagster as dg
    from rich.table import Table

    from vid_assets.definitions import defs
    from vid_assets.defs.videos.status import progress
    from vid_assets.demo import make_console

    report = progress(dg.DagsterInstance.get(), defs.resources["workspace"].catalog(), defs=defs)
    if as_json:
        typer.echo(json.dumps(report))
        return
    console = make_console()
    table = Table(title=f"{report['videos']} videos (partitions)")
    for col in ("asset", "done", "stale", "failed", "running", "missing", "videos/h", "ETA"):
        table.add_column(col)
    for name, c in report["assets"].items():
        eta = "-" if c["eta_s"] is None else str(dt.timedelta(seconds=int(c["eta_s"])))
        rate = "-" if c["videos_per_hour"] is None else f"{c['videos_per_hour']:,.0f}"
        stale = "-" if c["stale"] is None else str(c["stale"])
        table.add_row(
            name, str(c["done"]), stale, str(c["failed"]), str(c["in_progress"]), str(c["missing"]), rate, eta
        )
    console.print(table)
    for f in report["failures"]:
        stage = f.get("stage", "decode")
        console.print(f"[red]failed[/red] {f['id']} at {stage} ({f['time']}): {f['error_class']}: {f['message']}")
    if not report.get("runs_in_flight"):
        console.print("no runs queued or running: no ETA")


@app.command(rich_help_panel="The deployment")
def gc(
    min_age: Annotated[
        float, typer.Option(help="Spare leftovers younger than this many seconds (a run may be writing them).")
    ] = 900,
):
    """Free the disk crashed runs left: half-written output, trash, intermediates of stored videos."""
    from vid_assets.definitions import defs
    from vid_assets.store.gc import collect_garbage

    workspace = defs.resources["workspace"]
    freed = collect_garbage(
        workspace.artifacts(),
        defs.resources["feature_store"].store(),
        keep_intermediates=workspace.keep_intermediates,
        older_than_s=min_age,
    )
    typer.echo(
        f"freed {_size(freed['staging_bytes'])} of half-written or replaced output and "
        f"{_size(freed['intermediate_bytes'])} of intermediates ({freed['videos_cleaned']} stored videos)"
    )


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


@app.command(rich_help_panel="The deployment")
def summary():
    """Print one row per video in the feature store."""
    from vid_assets.definitions import defs
    from vid_assets.demo import make_console, summary_table

    store = defs.resources["feature_store"].store()
    make_console().print(summary_table(store))
