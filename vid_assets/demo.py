"""The main job on embedded defaults: sample videos -> partitions -> Dagster runs -> summary.

Runs against the persistent instance in ``$DAGSTER_HOME`` (so the UI shows the history), one
in-process run per video that is not yet materialized; a second run finds everything done.
"""

from __future__ import annotations

import time
from pathlib import Path

import dagster as dg
from rich.console import Console
from rich.table import Table

from vid_assets import settings
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


def outdated(instance: dg.DagsterInstance, defs: dg.Definitions, keys: list[str]) -> dict[str, str]:
    """Keys whose stored features are missing or stale (a config or code version changed since,
    see ``pipeline.status.stale_partitions``), with which of the two."""
    from vid_assets.defs.videos.status import chains, stale_partitions

    # done in every feature set (the embed job runs them all)
    done = set.intersection(*(set(instance.get_materialized_partitions(c[-1])) for c in chains(defs)))
    stale = set().union(*stale_partitions(instance, defs).values())
    return {k: "missing" if k not in done else "stale" for k in keys if k not in done or k in stale}


def materialize_missing(
    instance: dg.DagsterInstance, defs: dg.Definitions, keys: list[str], console: Console
) -> dict[str, str]:
    """Run the embed job for every key whose stored features are missing or stale."""
    todo = outdated(instance, defs, keys)
    job = defs.resolve_job_def("embed_videos")
    outcome: dict[str, str] = {}
    for key in keys:
        if key not in todo:
            outcome[key] = "already materialized"
            continue
        t0 = time.perf_counter()
        result = job.execute_in_process(partition_key=key, instance=instance, raise_on_error=False, run_config=QUIET)
        if result.success:
            again = "re-materialized (was stale)" if todo[key] == "stale" else "materialized"
            outcome[key] = f"{again} in {time.perf_counter() - t0:.1f} s (run {result.run_id[:8]})"
        else:
            failure = next((e for e in result.all_events if e.is_step_failure), None)
            reason = failure.step_failure_data.error.message.strip() if failure else "run failed"
            outcome[key] = f"FAILED: {reason.splitlines()[0][:200]}"
        console.print(f"  {key}: {outcome[key]}")
    return outcome


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
    outcome = materialize_missing(instance, defs, keys, console)
    store = defs.resources["feature_store"].store()
    console.print(summary_table(store, keys))
    last = instance.get_latest_materialization_event(dg.AssetKey("hub_dataset"))
    published = last.asset_materialization.metadata["num_videos"].value if last else -1
    stored = len(store.list_videos())
    refreshed = any(v.startswith("re-materialized") for v in outcome.values())
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
    skipped = sum(v == "already materialized" for v in outcome.values())
    failed = [k for k, v in outcome.items() if v.startswith("FAILED")]
    console.print(
        f"{len(keys) - skipped - len(failed)} materialized, {skipped} already done, {len(failed)} failed.\n"
        "Open the UI: [bold]make ui[/bold] then http://127.0.0.1:3000 (Assets -> video_features)."
    )
    return 1 if failed else 0
