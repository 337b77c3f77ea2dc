"""The main job on embedded defaults: sample videos -> partitions -> Dagster runs -> summary.

Runs against the persistent instance in ``$DAGSTER_HOME`` (so the UI shows the history): the
videos not yet materialized (or stale) as one in-process batch run, as ``vid-assets register
--run`` runs a folder; a second run finds everything done.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from rich.console import Console
from rich.table import Table

from vid_assets import settings
from vid_assets.defs.videos.local_runs import print_outcome, run_outdated
from vid_assets.defs.videos.partitions import videos_partitions
from vid_assets.media import VideoRef
from vid_assets.samples import ensure_sample_videos
from vid_assets.store import FeatureStore

# Step-level DEBUG events still go to the event log (and the UI); the terminal shows warnings only.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def register_videos(instance: dg.DagsterInstance, defs: dg.Definitions, paths: list[Path]) -> list[VideoRef]:
    """Catalog the files and add their partitions (idempotent)."""
    catalog = defs.resources["workspace"].catalog()
    refs = [catalog.register(VideoRef.from_path(p)) for p in paths]
    instance.add_dynamic_partitions(videos_partitions.name, [r.key for r in refs])
    return refs


def make_console() -> Console:
    """A console that does not squeeze tables to 80 columns when output is piped (make, CI logs)."""
    console = Console()
    return console if console.is_terminal else Console(width=160)


def summary_table(store: FeatureStore, keys: list[str] | None = None) -> Table:
    table = Table(title=f"Feature store {store.root}")
    table.add_column("video", no_wrap=True)
    for col in ("clips", "feature shape", "first clip top-1 (p)", "duration s"):
        table.add_column(col)
    table.add_column("store path", no_wrap=True)
    for key in keys if keys is not None else store.list_videos():
        if not store.has_video(key):
            table.add_row(key, "-", "-", "(not stored)", "-", "-")
            continue
        v = store.read_video(key)
        attrs = v.attrs
        top1 = "-"
        if attrs.get("label_set") and v.top_labels is not None:
            idx, score = int(v.top_labels[0, 0, 0]), float(v.top_scores[0, 0, 0])
            top1 = f"{store.label_names(attrs['label_set'])[idx]} ({score:.2f})"
        table.add_row(
            key,
            str(attrs["num_clips"]),
            "x".join(map(str, attrs["feature_shape"])) + " " + attrs["feature_dtype"],
            top1,
            f"{attrs['duration_s']:.1f}",
            str(store.video_path(key).relative_to(store.root)),
        )
    return table


def _code_changed(instance: dg.DagsterInstance, defs: dg.Definitions, name: str) -> bool:
    """Whether asset ``name``'s code version moved since its last materialization (the UI shows it
    stale): a new training-view layout, say, is rebuilt by the next demo run."""
    key = dg.AssetKey(name)
    last = instance.get_latest_materialization_event(key)
    recorded = (last.asset_materialization.tags or {}).get("dagster/code_version", "") if last else ""
    return bool(recorded) and recorded != (defs.resolve_asset_graph().get(key).code_version or "")


def run_demo(videos_dir: str | None = None) -> int:
    from vid_assets.definitions import defs

    console = make_console()
    folder = Path(videos_dir or settings.videos_dir())
    instance = dg.DagsterInstance.get()
    console.print(f"[bold]vid_assets demo[/bold]  DAGSTER_HOME={instance.root_directory}")
    paths = ensure_sample_videos(folder)
    console.print(f"{len(paths)} sample videos in {folder}")
    refs = register_videos(instance, defs, paths)
    keys = [r.key for r in refs]
    outcome = run_outdated(instance, defs, keys, console)
    store = defs.resources["feature_store"].store()
    console.print(summary_table(store, keys))
    last = instance.get_latest_materialization_event(dg.AssetKey("hub_dataset"))
    published = last.asset_materialization.metadata["num_videos"].value if last else -1
    stored = len(store.list_videos())
    refreshed = bool(set(outcome.stale) & set(outcome.stored))
    outdated = any(_code_changed(instance, defs, name) for name in ("training_view", "hub_dataset"))
    if stored != published or refreshed or outdated:  # a training-view + publish run only when needed
        run = defs.resolve_job_def("publish_dataset").execute_in_process(
            instance=instance, run_config=QUIET, raise_on_error=False
        )
        if run.success:
            pub = instance.get_latest_materialization_event(dg.AssetKey("hub_dataset")).asset_materialization.metadata
            console.print(f"Training view updated; dataset mirror {pub['target'].value}: {pub['commit_message'].value}")
        else:
            console.print("[red]publish_dataset failed[/red] (see the run in the UI)")
    else:
        console.print(f"Training view and dataset mirror already hold all {stored} stored videos.")
    print_outcome(console, outcome)
    console.print("Open the UI: [bold]make ui[/bold] then http://127.0.0.1:3000 (Assets -> video_features).")
    return 1 if outcome.failed or outcome.quarantined else 0
