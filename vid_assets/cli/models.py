"""What a video holds (``inspect``) and what an extractor takes and gives (``extractors``)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from vid_assets.cli.options import Args, AsJson, Output, app, fail, parse_args

_INFO_FIELDS = ("source", "container", "codec", "pix_fmt", "width", "height", "avg_fps", "duration_s", "frames")
_INFO_FIELDS += ("bit_rate", "rotation", "has_audio")


@app.command(rich_help_panel="Models and videos")
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
    as_json: AsJson = False,
):
    """Container/stream metadata and the sample timestamps a plan picks (default: 1 fps)."""
    from vid_assets.media import DecodeStats, SamplingPlan, VideoDecodeError, iter_frames, probe

    if sum(x is not None for x in (fps, every_n, segments)) + keyframes > 1:
        raise fail("choose one of --fps, --every-n, --segments, --keyframes")
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
        info, stats = probe(source), DecodeStats()
        samples = list(iter_frames(source, plan, convert=False, stats=stats))
    except (VideoDecodeError, ValueError) as e:
        raise fail(str(e), 1) from None
    out = {
        "source": source,
        **info.to_dict(),
        "plan": plan.to_dict(),
        "timestamps": [round(f.pts_s, 6) for f in samples],
        "segments": [f.segment for f in samples] if plan.segmented else None,
        "decode": stats.to_dict(),
    }
    if as_json:
        sys.stdout.write(json.dumps(out) + "\n")
    else:
        _print_inspection(out, stats)


def _print_inspection(out: dict, stats) -> None:
    for k in _INFO_FIELDS:
        note = ""
        if k == "rotation" and out[k]:
            w, h = (out["height"], out["width"]) if out[k] in (90, 270) else (out["width"], out["height"])
            note = f" (display matrix, counter-clockwise; frames are turned upright: {w}x{h})"
        typer.echo(f"{k:>12}: {out[k]}{note}")
    typer.echo(f"{'plan':>12}: {out['plan']}")
    typer.echo(
        f"{'samples':>12}: {len(out['timestamps'])} (decoded {stats.decoded} frames, dropped"
        f" {stats.skipped} unreferenced ones undecoded, {stats.seeks} seeks ({stats.jumps} to key frames), {stats.seconds:.2f} s)"
    )
    typer.echo(f"{'timestamps':>12}: " + ", ".join(f"{t:.3f}" for t in out["timestamps"]))


@app.command(rich_help_panel="Models and videos")
def extractors(
    name: Annotated[str | None, typer.Argument(help="Build this one on the CPU and describe it.")] = None,
    output: Output = "auto",
    arg: Args = None,
    as_json: AsJson = False,
):
    """List the extractor names and what each takes, or build NAME and say what it gives.

    The list reads each model's declared input (no weights loaded); NAME is built on the CPU from
    local files only (the Hugging Face / torch caches offline), so a missing download shows here,
    before a run fails on it."""
    if name is None:
        _list_extractors(as_json)
    else:
        _describe_extractor(name, output, parse_args(arg), as_json)


def _list_extractors(as_json: bool) -> None:
    from vid_assets.extractors import input_spec, list_extractors, list_prefixes
    from vid_assets.extractors.registry import ALIASES

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


def _describe_extractor(name: str, output: str, args: dict, as_json: bool) -> None:
    from vid_assets.extractors.loading import load_extractor

    try:
        info = load_extractor(name, device="cpu", batch_size=1, output=output, args=args).describe()
    except Exception as e:  # unknown name (with close matches), weights not cached, bad output ...
        raise fail(str(e), 1) from None
    if as_json:
        sys.stdout.write(json.dumps(info, default=str) + "\n")
        return
    labels = f"{info['label_set']} ({info['num_labels']} classes)" if info["num_labels"] else "none"
    what = "its head's output" if info["output"] == "head" else "pooled features"
    takes = f"{info['input_kind']}s" if info["input_kind"] == "frame" else f"clips of {info['num_frames']} frames"
    for k, v in (
        ("id", info["id"]),
        ("input", takes),
        ("size", f"{info['input_size']} px crop of a {info['resize_size']} px short side"),
        ("normalise", f"mean {info['mean']} std {info['std']}"),
        ("features", f"{info['dim']}-d, {what}"),
        ("labels", labels),
    ):
        typer.echo(f"{k:>10}: {v}")
