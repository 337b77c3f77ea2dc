"""``vid-assets`` command line."""

from __future__ import annotations

import time
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
FramesPerClip = Annotated[
    int, typer.Option(help="Sampled frames per clip (0: the model's clip length, 2 for image models).")
]
Crop = Annotated[str, typer.Option(help="center | five | ten | random.")]
Args = Annotated[
    list[str] | None,
    typer.Option(
        "--arg",
        help="An argument for the extractor's factory, KEY=VALUE with a YAML value (pretrained=false,"
        " img_size=224, weights=null); repeat for more.",
    ),
]


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

    from vid_assets import settings
    from vid_assets.media import VideoCatalog, VideoRef, scan_folder

    # the catalog the definitions' workspace resource reads (VID_ASSETS_WORK), without loading the
    # definitions: they import torch and the models' configs, 2.3 s of a 3.5-s command here
    catalog = VideoCatalog(Path(settings.work_dir()) / "catalog")
    skipped: list = []
    refs = [catalog.register(VideoRef.from_path(p)) for p, _ in scan_folder(folder, skipped=skipped)]
    dg.DagsterInstance.get().add_dynamic_partitions("videos", [r.key for r in refs])
    for r in refs:
        typer.echo(f"{r.key}\t{r.uri}")
    for s in skipped:
        typer.echo(f"skipped: {s.path}: {s.reason}", err=True)


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False):
    """Progress per asset (done / stale / failed / running / missing), throughput, ETA and latest failures."""
    import datetime as dt
    import json

    import dagster as dg
    from rich.table import Table

    from vid_assets.definitions import defs
    from vid_assets.demo import make_console
    from vid_assets.pipeline.status import progress

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


@app.command()
def extract(
    sources: Annotated[list[str], typer.Argument(help="Video files, folders (recursive) or URLs.")],
    out: Annotated[
        Path | None,
        typer.Option(
            help="Output folder (zarr: the feature store's root). Omitted with --set: the set's store in the deployment, reported to its Dagster instance."
        ),
    ] = None,
    format: Annotated[
        str, typer.Option(help="zarr (the feature store) | npy (<stem>.npy + failed_videos.json).")
    ] = "zarr",
    extractor: Annotated[
        str, typer.Option(help="Extractor name (see `vid-assets extractors`).")
    ] = "efficientnet_lite0",
    arg: Args = None,
    set_name: Annotated[
        str | None,
        typer.Option("--set", help="A declared feature set (`vid-assets sets`): its extractor, args and plan."),
    ] = None,
    device: Device = "auto",
    mode: Mode = "fps",
    fps: Fps = 2.0,
    every_n: EveryN = 1,
    segment_s: SegmentS = 5.0,
    frames_per_segment: FramesPerSegment = 20,
    frames_per_clip: FramesPerClip = 0,
    crop: Crop = "center",
    workers: Annotated[int | None, typer.Option(help="Parallel decoders (default: the host's).")] = None,
    progress_url: Annotated[
        str | None,
        typer.Option(help="POST progress as JSON here ({total_frames}, {current_frame, total_frames}), 1/s."),
    ] = None,
    shard: Annotated[
        str | None,
        typer.Option(
            help="Only the I-th of every N videos: a SLURM array task's share ($SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)."
        ),
    ] = None,
):
    """Features for SOURCES into --out with the pipeline's engine, no Dagster needed; done videos skipped."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from vid_assets.demo import make_console
    from vid_assets.extraction import extract as run_extract

    plan = {
        "mode": mode,
        "fps": fps,
        "every_n_frames": every_n,
        "segment_s": segment_s,
        "frames_per_segment": frames_per_segment,
        "frames_per_clip": frames_per_clip,
        "crop": crop,
    }
    args = parse_args(arg)
    deployment = None
    if set_name is not None:  # the set decides the model and plan, as in the pipeline
        defs, fset = _feature_set(set_name)
        extractor, args, plan = fset.extractor, fset.args, fset.sampling
        if out is None:  # into the deployment: its store, its catalog, its instance
            deployment = _deployment_sink(defs, fset)
    if out is None and deployment is None:
        typer.echo("error: give --out DIR (or --set NAME to write into the deployment's store)", err=True)
        raise typer.Exit(2)
    parts = None
    if shard:
        i, sep, n = shard.partition("/")
        if not sep or not (i.isdigit() and n.isdigit()) or not int(i) < int(n):
            typer.echo(f"error: --shard takes I/N with 0 <= I < N, got {shard!r}", err=True)
            raise typer.Exit(2)
        parts = (int(i), int(n))
    console = make_console()
    web = None
    if progress_url:
        from vid_assets.progress import WebProgress

        web = WebProgress(progress_url)
    with Progress(
        TextColumn("[bold]{task.fields[videos]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("frames"),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("frames", total=None, videos="videos", rate="")
        clips, t0 = [0], time.perf_counter()

        class Hook:  # frames sampled of all videos (reset once, update per frame), mirrored to --progress-url
            def reset(self, total_frames: int) -> None:
                bar.update(task, total=total_frames, completed=0)
                if web is not None:
                    web.reset(total_frames)

            def update(self, current_frame: int) -> None:
                bar.update(task, completed=current_frame)
                if web is not None:
                    web.update(current_frame)

        def on_pass(n: int) -> None:
            clips[0] += n
            bar.update(task, rate=f"{clips[0] / max(time.perf_counter() - t0, 1e-9):.1f} clips/s")

        def on_video(done: int, total: int) -> None:
            bar.update(task, videos=f"{done}/{total} videos")

        summary = run_extract(
            sources,
            out=out,
            format=format,
            extractor=extractor,
            extractor_args=args,
            device=device,
            progress=Hook(),
            on_pass=on_pass,
            on_video=on_video,
            num_workers=workers,
            shard=parts,
            **(deployment or {}),
            **plan,
        )
    console.print(
        f"{summary['done']} done, {summary['skipped']} already there, {len(summary['failed'])} failed "
        f"in {summary['seconds']:.1f} s -> {summary['out']}"
    )
    for f in summary["failed"]:
        console.print(f"[red]failed[/red] {f['source']} ({f['stage']}): {f['reason']}")
    raise typer.Exit(1 if summary["failed"] else 0)


def _deployment_sink(defs, fset) -> dict:
    """``extract``'s keyword arguments to write into the deployment: the set's store, and each
    stored video registered in the catalog and reported to the Dagster instance ($DAGSTER_HOME)."""
    import dagster as dg

    from vid_assets.pipeline.definitions import set_versions
    from vid_assets.pipeline.report import report_extracted

    instance, catalog, versions = dg.DagsterInstance.get(), defs.resources["workspace"].catalog(), set_versions(fset)

    def on_stored(ref, result, meta) -> None:
        ref = catalog.register(ref)
        report_extracted(instance, fset, versions, ref, meta)

    return {"store": defs.resources["feature_store"].store(fset), "on_stored": on_stored}


@app.command()
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


@app.command()
def summary():
    """Print one row per video in the feature store."""
    from vid_assets.definitions import defs
    from vid_assets.demo import make_console, summary_table

    store = defs.resources["feature_store"].store()
    make_console().print(summary_table(store))


def _feature_set(name: str):
    """The code location's feature set ``name`` (exits with the known names when there is none)."""
    from vid_assets.definitions import defs
    from vid_assets.pipeline.definitions import sets_of

    sets = sets_of(defs)
    if name not in sets:
        typer.echo(f"error: no feature set {name!r}; this deployment has {', '.join(sets)} (VID_ASSETS_SETS)", err=True)
        raise typer.Exit(2)
    return defs, sets[name]


@app.command()
def export(
    kind: Annotated[
        str, typer.Argument(help="npy: <video id>.npy files + failed_videos.json; failed: the report only.")
    ],
    out: Annotated[Path, typer.Argument(help="npy: the folder; failed: the JSON file.")],
    set_name: Annotated[str, typer.Option("--set", help="The feature set to export (`vid-assets sets`).")] = "default",
    crops: Annotated[str, typer.Option(help="mean: average a clip's crops; first: the first crop.")] = "mean",
):
    """Exports for the old scripts: seed 002's OUT/<video id>.npy float32 [frames, D] and
    OUT/failed_videos.json (incremental: a second export writes only what changed)."""
    from vid_assets.store.exports import export_npy, failed_report

    if kind not in ("npy", "failed"):
        typer.echo(f"error: export npy OUT or export failed FILE, not {kind!r}", err=True)
        raise typer.Exit(2)
    defs, fset = _feature_set(set_name)
    failures = failed_report(defs.resources["workspace"].catalog(), feature_set=fset.name)
    if kind == "failed":
        failed_report(defs.resources["workspace"].catalog(), out, feature_set=fset.name)
        typer.echo(f"{len(failures)} failed videos in {out}")
        return
    done = export_npy(defs.resources["feature_store"].store(fset), out, crops=crops, failures=failures)
    typer.echo(
        f"{len(done.written)} .npy written, {done.unchanged} unchanged, {len(done.removed)} removed in {out}; "
        f"{done.failed} failed videos in {out / 'failed_videos.json'}"
    )


@app.command()
def sets(as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False):
    """The feature sets this deployment computes (the default set plus VID_ASSETS_SETS)."""
    import json

    from vid_assets.definitions import defs
    from vid_assets.pipeline.definitions import sets_of

    declared = {name: s.to_dict() for name, s in sets_of(defs).items()}
    if as_json:
        typer.echo(json.dumps(declared))
        return
    for name, d in declared.items():
        plan = ", ".join(f"{k}={v}" for k, v in d["sampling"].items()) or "defaults"
        args = f" {d['args']}" if d["args"] else ""
        typer.echo(f"{name}: {d['extractor']}{args}; sampling {plan}; precision {d['precision']}")
        if d["description"]:
            typer.echo(f"    {d['description']}")


@app.command()
def publish(
    repo_id: Annotated[str | None, typer.Option(help="Hub dataset repo (needs HF_TOKEN with write access).")] = None,
    target: Annotated[Path | None, typer.Option(help="Mirror the repo into this local folder instead.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Plan and write the commit's files; upload nothing.")
    ] = False,
    out: Annotated[Path, typer.Option(help="Where --dry-run writes the files.")] = Path("hub_dry_run"),
    private: Annotated[bool, typer.Option(help="Create the repo private.")] = True,
    revision: Annotated[str | None, typer.Option(help="Branch to commit to.")] = None,
    license: Annotated[str, typer.Option(help="License field of the dataset card.")] = "other",
):
    """Publish the feature store as a Hugging Face dataset (incremental, one commit)."""
    from vid_assets.definitions import defs
    from vid_assets.hub import PublishError
    from vid_assets.hub import publish as do_publish

    if repo_id is None and target is None and not dry_run:
        typer.echo("error: give --repo-id, --target DIR or --dry-run", err=True)
        raise typer.Exit(2)
    try:
        result = do_publish(
            defs.resources["feature_store"].store(),
            repo_id=repo_id,
            target_dir=target if target is not None or repo_id else out.parent / (out.name + "_mirror"),
            private=private,
            revision=revision,
            dry_run=dry_run,
            out_dir=out,
            license=license,
            echo=typer.echo,
        )
    except PublishError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    if result.commit_url:
        typer.echo(f"committed: {result.commit_url}")


@app.command()
def inspect(
    source: Annotated[str, typer.Argument(help="A video path or URL (http(s)://, s3://, hf://, rtmp://, ...).")],
    fps: Annotated[float | None, typer.Option(help="Sample F frames per second.")] = None,
    every_n: Annotated[int | None, typer.Option("--every-n", help="Keep every N-th frame.")] = None,
    segments: Annotated[float | None, typer.Option(help="Segment length S in seconds (with --frames).")] = None,
    frames: Annotated[int, typer.Option(help="Frames per segment (with --segments).")] = 20,
    max_segments: Annotated[int | None, typer.Option(help="Spread at most this many segments.")] = None,
    keyframes: Annotated[bool, typer.Option(help="Key frames only.")] = False,
    start: Annotated[float, typer.Option(help="Trim start (s).")] = 0.0,
    end: Annotated[float | None, typer.Option(help="Trim end (s).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
):
    """Container/stream metadata and the sample timestamps a plan picks (default: 1 fps)."""
    import json
    import sys

    from vid_assets.media import DecodeStats, SamplingPlan, VideoDecodeError, iter_frames, probe

    chosen = [x is not None for x in (fps, every_n, segments)] + [keyframes]
    if sum(chosen) > 1:
        typer.echo("error: choose one of --fps, --every-n, --segments, --keyframes", err=True)
        raise typer.Exit(2)
    trim = {"start_s": start, "end_s": end}
    try:
        if every_n is not None:
            plan = SamplingPlan.every_n(every_n, **trim)
        elif segments is not None:
            plan = SamplingPlan.segments(segments, frames, max_segments, **trim)
        elif keyframes:
            plan = SamplingPlan.keyframes(**trim)
        else:
            plan = SamplingPlan.at_fps(fps or 1.0, **trim)
        info = probe(source)
        stats = DecodeStats()
        samples = list(iter_frames(source, plan, convert=False, stats=stats))
    except (VideoDecodeError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    out = {
        "source": source,
        **info.to_dict(),
        "plan": plan.to_dict(),
        "timestamps": [round(f.pts_s, 6) for f in samples],
        "segments": [f.segment for f in samples] if plan.mode == "segments" else None,
        "decode": stats.to_dict(),
    }
    if as_json:
        sys.stdout.write(json.dumps(out) + "\n")
        return
    for k in (
        "source",
        "container",
        "codec",
        "pix_fmt",
        "width",
        "height",
        "avg_fps",
        "duration_s",
        "frames",
        "bit_rate",
        "rotation",
        "has_audio",
    ):
        note = ""
        if k == "rotation" and out[k]:
            w, h = out["width"], out["height"]
            if out[k] in (90, 270):
                w, h = h, w
            note = f" (display matrix, counter-clockwise; frames are turned upright: {w}x{h})"
        typer.echo(f"{k:>12}: {out[k]}{note}")
    typer.echo(f"{'plan':>12}: {out['plan']}")
    typer.echo(
        f"{'samples':>12}: {len(samples)} (decoded {stats.decoded} frames, {stats.seeks} seeks, {stats.seconds:.2f} s)"
    )
    typer.echo(f"{'timestamps':>12}: " + ", ".join(f"{t:.3f}" for t in out["timestamps"]))


@app.command()
def extractors(
    name: Annotated[str | None, typer.Argument(help="Build this one on the CPU and describe it.")] = None,
    output: Annotated[str, typer.Option(help="auto | pooled | head (as the extractor resource's field).")] = "auto",
    arg: Args = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
):
    """List the extractor names and what each takes, or build NAME and say what it gives.

    The list reads each model's declared input (no weights loaded); NAME is built on the CPU from
    local files only (the Hugging Face / torch caches offline), so a missing download shows here,
    before a run fails on it."""
    import json
    import sys

    from vid_assets.extractors import input_spec, list_extractors, list_prefixes
    from vid_assets.extractors.loading import load_extractor
    from vid_assets.extractors.registry import ALIASES

    if name is None:
        rows = []
        for n in [*ALIASES, *list_extractors()]:
            try:  # an alias's hub config may not be cached offline: "?" then
                spec = input_spec(n, build=False)
            except Exception:  # noqa: BLE001 - the listing goes on
                spec = None
            rows.append({"name": n, "stands_for": ALIASES.get(n, ""), **({} if spec is None else spec.__dict__)})
        listing = {"extractors": rows, "prefixes": [p + ":" for p in list_prefixes()]}
        if as_json:
            sys.stdout.write(json.dumps(listing) + "\n")
            return
        from rich.table import Table

        from vid_assets.demo import make_console

        table = Table(title="extractors: what each takes (its config)")
        for col in ("name", "input", "size", "resize", "stands for"):
            table.add_column(col)
        for r in rows:
            kind = "?" if "kind" not in r else "frames" if r["kind"] == "frame" else f"clips of {r['num_frames']}"
            table.add_row(r["name"], kind, str(r.get("size", "?")), str(r.get("resize", "?")), r["stands_for"])
        make_console().print(table)
        typer.echo(
            f"also: {', '.join(f'{p}<name>' for p in listing['prefixes'])}, package.module:factory, "
            "and plug-ins under the vid_assets.extractors entry-point group"
        )
        return
    try:
        info = load_extractor(name, device="cpu", batch_size=1, output=output, args=parse_args(arg)).describe()
    except Exception as e:  # unknown name (with close matches), weights not cached, bad output ...
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        sys.stdout.write(json.dumps(info, default=str) + "\n")
        return
    labels = f"{info['label_set']} ({info['num_labels']} classes)" if info["num_labels"] else "none"
    what = "its head's output" if info["output"] == "head" else "pooled features"
    for k, v in (
        ("id", info["id"]),
        (
            "input",
            f"{info['input_kind']}s" if info["input_kind"] == "frame" else f"clips of {info['num_frames']} frames",
        ),
        ("size", f"{info['input_size']} px crop of a {info['resize_size']} px short side"),
        ("normalise", f"mean {info['mean']} std {info['std']}"),
        ("features", f"{info['dim']}-d, {what}"),
        ("labels", labels),
    ):
        typer.echo(f"{k:>10}: {v}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    extractor: Annotated[str, typer.Option(help="Extractor name (as in the pipeline's resource).")] = "",
    device: Annotated[str, typer.Option(help="auto (cuda > mps > cpu), cpu, cuda ...")] = "",
    batch_size: Annotated[int, typer.Option(help="Images per forward pass (0 = probe).")] = 0,
    output: Annotated[str, typer.Option(help="auto | pooled | head (as the extractor resource's field).")] = "auto",
    arg: Args = None,
    set_name: Annotated[
        str | None,
        typer.Option("--set", help="Serve a declared feature set (`vid-assets sets`): its model, args and plan."),
    ] = None,
    mode: Mode = "fps",
    fps: Fps = 2.0,
    every_n: EveryN = 1,
    segment_s: SegmentS = 5.0,
    frames_per_segment: FramesPerSegment = 20,
    max_segments: Annotated[int, typer.Option(help="segments mode: cap, spread uniformly (0 = all).")] = 0,
    short_side: Annotated[int, typer.Option(help="Resize frames to this short side (0: the model's).")] = 0,
    frames_per_clip: FramesPerClip = 0,
    stride: Annotated[int, typer.Option(help="Sampled frames between clip starts (0: the clip length).")] = 0,
    crop_size: Annotated[int, typer.Option(help="0: the model's input size.")] = 0,
    crop: Crop = "center",
    crop_reduce: Annotated[str, typer.Option(help="none | mean (average the crops).")] = "none",
    seed: Annotated[int, typer.Option(help="Seed for random crops.")] = 0,
    top_k: Annotated[int, typer.Option(help="Labels per clip.")] = 5,
    max_upload_mb: Annotated[float, typer.Option(help="Largest accepted upload.")] = 1024,
    max_duration: Annotated[float, typer.Option(help="Longest accepted video / live stream (s).")] = 1800,
    max_streams: Annotated[int, typer.Option(help="Concurrent predictions; more get 429.")] = 8,
    budget: Annotated[float, typer.Option(help="Wall-time budget per request (s).")] = 600,
    max_wait_ms: Annotated[float, typer.Option(help="Dynamic batching: longest wait for other clips.")] = 5,
    allow_host: Annotated[
        list[str] | None, typer.Option(help="Host GET /v1/predict?url= may pull from (repeat; '*.example.com').")
    ] = None,
):
    """Serve per-clip predictions as Server-Sent Events (see vid_assets/serve/app.py)."""
    from vid_assets import settings
    from vid_assets.extractors import DEFAULT_EXTRACTOR
    from vid_assets.extractors.loading import load_extractor
    from vid_assets.fit import fit_config
    from vid_assets.serve import Limits, Predictor
    from vid_assets.serve.app import serve as run_server

    if set_name is not None:  # exactly what the set's assets compute
        _, fset = _feature_set(set_name)
        ext = fset.load(device=device or settings.device(), batch_size=batch_size)
        config = fset.config(ext)
    else:
        ext = load_extractor(
            extractor or DEFAULT_EXTRACTOR,
            device=device or settings.device(),
            batch_size=batch_size,
            output=output,
            args=parse_args(arg),
        )
    # every plan the assets take, fitted to the model by the same function (vid_assets/fit.py)
    config = (
        config
        if set_name is not None
        else fit_config(
            ext,
            mode=mode,
            fps=fps,
            every_n_frames=every_n,
            segment_s=segment_s,
            frames_per_segment=frames_per_segment,
            max_segments=max_segments,
            short_side=short_side,
            frames_per_clip=frames_per_clip,
            stride=stride,
            crop_size=crop_size,
            crop=crop,
            crop_reduce=crop_reduce,
            seed=seed,
            top_k=top_k,
        )
    )
    limits = Limits(
        max_upload_bytes=int(max_upload_mb * (1 << 20)),
        max_duration_s=max_duration,
        max_streams=max_streams,
        request_budget_s=budget,
    )
    typer.echo(f"vid-assets serve: {ext.id} on {ext.device}, http://{host}:{port}/", err=True)
    run_server(
        Predictor(ext, config, max_wait_s=max_wait_ms / 1000),
        host=host,
        port=port,
        limits=limits,
        allow_hosts=tuple(allow_host or ()),
    )


if __name__ == "__main__":
    app()
