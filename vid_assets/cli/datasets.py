"""Datasets: the feature sets a deployment computes, exports for the old scripts, the Hub."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vid_assets.cli.options import AsJson, app, fail, feature_set


@app.command(rich_help_panel="Datasets")
def export(
    kind: Annotated[
        str, typer.Argument(help="npy: <video id>.npy files + failed_videos.json; failed: the report only.")
    ],
    out: Annotated[Path, typer.Argument(help="npy: the folder; failed: the JSON file.")],
    set_name: Annotated[str, typer.Option("--set", help="The feature set to export (`vid-assets sets`).")] = "default",
    crops: Annotated[str, typer.Option(help="mean: average a clip's crops; first: the first crop.")] = "mean",
):
    """Exports for the old scripts: seed 002's OUT/<video id>.npy float32 (frames x D) and
    OUT/failed_videos.json (incremental: a second export writes only what changed)."""
    from vid_assets.store.exports import export_npy, failed_report

    if kind not in ("npy", "failed"):
        raise fail(f"export npy OUT or export failed FILE, not {kind!r}")
    defs, fset = feature_set(set_name)
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


@app.command(rich_help_panel="Datasets")
def sets(as_json: AsJson = False):
    """The feature sets this deployment computes (the default set plus VID_ASSETS_SETS)."""
    import json

    from vid_assets.definitions import defs
    from vid_assets.defs.build import sets_of

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


@app.command(rich_help_panel="Datasets")
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
        raise fail("give --repo-id, --target DIR or --dry-run")
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
        raise fail(str(e), 1) from None
    if result.commit_url:
        typer.echo(f"committed: {result.commit_url}")
