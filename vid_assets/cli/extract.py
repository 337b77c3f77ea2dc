"""``vid-assets extract``: features for files, folders or URLs on the engine, no Dagster needed."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from vid_assets.cli.options import (
    Args,
    Device,
    OutDir,
    app,
    fail,
    feature_set,
    parse_args,
    plan_options,
    set_option,
)

Sources = Annotated[list[str], typer.Argument(help="Video files, folders (recursive) or URLs.")]
Format = Annotated[str, typer.Option(help="zarr (the feature store) | npy (<stem>.npy + failed_videos.json).")]
ExtractorName = Annotated[str, typer.Option(help="Extractor name (see `vid-assets extractors`).")]
Workers = Annotated[int | None, typer.Option(help="Parallel decoders (default: the host's).")]
ProgressUrl = Annotated[
    str | None,
    typer.Option(help="POST progress as JSON here ({total_frames}, {current_frame, total_frames}), 1/s."),
]
Shard = Annotated[
    str | None,
    typer.Option(
        help="Only the I-th of every N videos: a SLURM array task's share"
        " ($SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)."
    ),
]


@app.command(rich_help_panel="Without Dagster")
@plan_options
def extract(
    sources: Sources,
    out: OutDir = None,
    format: Format = "zarr",
    extractor: ExtractorName = "efficientnet_lite0",
    arg: Args = None,
    set_name: Annotated[str | None, set_option("its extractor, args and plan")] = None,
    device: Device = "auto",
    workers: Workers = None,
    progress_url: ProgressUrl = None,
    shard: Shard = None,
    plan: dict | None = None,
):
    """Features for SOURCES into --out with the pipeline's engine, no Dagster needed; done videos skipped."""
    from vid_assets.extraction import extract as run_extract

    args, deployment = parse_args(arg), None
    if set_name is not None:  # the set decides the model and plan, as in the pipeline
        defs, fset = feature_set(set_name)
        extractor, args, plan = fset.extractor, fset.args, fset.sampling
        if out is None:  # into the deployment: its store, its catalog, its instance
            deployment = _deployment_sink(defs, fset)
    if out is None and deployment is None:
        raise fail("give --out DIR (or --set NAME to write into the deployment's store)")
    with ProgressBar(progress_url) as bar:
        summary = run_extract(
            sources,
            out=out,
            format=format,
            extractor=extractor,
            extractor_args=args,
            device=device,
            num_workers=workers,
            shard=_parse_shard(shard),
            **bar.hooks(),
            **(deployment or {}),
            **plan,
        )
    bar.console.print(
        f"{summary['done']} done, {summary['skipped']} already there, {len(summary['failed'])} failed "
        f"in {summary['seconds']:.1f} s -> {summary['out']}"
    )
    for f in summary["failed"]:
        bar.console.print(f"[red]failed[/red] {f['source']} ({f['stage']}): {f['reason']}")
    raise typer.Exit(1 if summary["failed"] else 0)


def _parse_shard(shard: str | None) -> tuple[int, int] | None:
    if not shard:
        return None
    i, sep, n = shard.partition("/")
    if not sep or not (i.isdigit() and n.isdigit()) or not int(i) < int(n):
        raise fail(f"--shard takes I/N with 0 <= I < N, got {shard!r}")
    return int(i), int(n)


class ProgressBar:
    """A ``rich`` bar over the frames sampled of all videos, with videos done, clips/s and ETA,
    mirrored to ``--progress-url`` (``vid_assets.progress.WebProgress``) when one is given."""

    def __init__(self, progress_url: str | None) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from vid_assets.demo import make_console

        self.console = make_console()
        self.web = None
        if progress_url:
            from vid_assets.progress import WebProgress

            self.web = WebProgress(progress_url)
        columns = (TextColumn("[bold]{task.fields[videos]}"), BarColumn(), MofNCompleteColumn(), TextColumn("frames"))
        self.bar = Progress(*columns, TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=self.console)
        self.clips, self.t0 = 0, time.perf_counter()

    def __enter__(self) -> ProgressBar:
        self.bar.__enter__()
        self.task = self.bar.add_task("frames", total=None, videos="videos", rate="")
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

    # the seed's hook protocol: reset once with the total, update per frame
    def reset(self, total_frames: int) -> None:
        self.bar.update(self.task, total=total_frames, completed=0)
        if self.web is not None:
            self.web.reset(total_frames)

    def update(self, current_frame: int) -> None:
        self.bar.update(self.task, completed=current_frame)
        if self.web is not None:
            self.web.update(current_frame)

    def on_pass(self, n: int) -> None:
        self.clips += n
        self.bar.update(self.task, rate=f"{self.clips / max(time.perf_counter() - self.t0, 1e-9):.1f} clips/s")

    def on_video(self, done: int, total: int) -> None:
        self.bar.update(self.task, videos=f"{done}/{total} videos")

    def hooks(self) -> dict:
        """``extract``'s keyword arguments that report to this bar."""
        return {"progress": self, "on_pass": self.on_pass, "on_video": self.on_video}


def _deployment_sink(defs, fset) -> dict:
    """``extract``'s keyword arguments to write into the deployment: the set's store, and each
    stored video registered in the catalog and reported to the Dagster instance ($DAGSTER_HOME)."""
    import dagster as dg

    from vid_assets.defs.build import set_versions
    from vid_assets.defs.videos.report import report_extracted

    instance, catalog, versions = dg.DagsterInstance.get(), defs.resources["workspace"].catalog(), set_versions(fset)

    def on_stored(ref, result, meta) -> None:
        ref = catalog.register(ref)
        report_extracted(instance, fset, versions, ref, meta)

    return {"store": defs.resources["feature_store"].store(fset), "on_stored": on_stored}
