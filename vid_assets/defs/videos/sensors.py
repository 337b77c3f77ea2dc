"""Folder sensor: new video files become partitions plus run requests (one per batch of new videos).

The cursor remembers each file's ``size:mtime_ns`` fingerprint (zlib+base64 JSON), so unchanged
files are skipped without re-hashing, while files moved in with an old mtime are still seen. A file
whose content hash already names a partition (renamed/moved copy) adds nothing.
"""

import base64
import json
import zlib

import dagster as dg

from vid_assets import settings
from vid_assets.defs.resources import WorkspaceResource
from vid_assets.defs.videos.assets import BATCH, embed_videos_job, stage_key
from vid_assets.defs.videos.partitions import videos_partitions
from vid_assets.feature_sets import FeatureSet
from vid_assets.media import VideoRef, scan_folder
from vid_assets.media.discovery import Skipped, read_manifest, scan_prefix

MAX_NEW_PER_TICK = 500


def encode_cursor(seen: dict[str, str]) -> str:
    return base64.b64encode(zlib.compress(json.dumps(seen, sort_keys=True).encode())).decode()


def decode_cursor(cursor: str | None) -> dict[str, str]:
    if not cursor:
        return {}
    return json.loads(zlib.decompress(base64.b64decode(cursor)))


def discover(
    sources: list[str], manifests: list[str], skipped: list[Skipped] | None = None
) -> dict[str, tuple[str, dict]]:
    """Every candidate video: ``{cursor id: (fingerprint, {uri, id, caption})}``.

    Folders are walked (size:mtime), fsspec prefixes listed (size:mtime/etag), manifests read (a row's
    fingerprint is the row itself, so an edited caption or id is picked up). Files a folder walk
    does not take (still being copied, FIFOs, links out of the folder, audio only) go to ``skipped``.
    """
    found: dict[str, tuple[str, dict]] = {}
    for src in sources:
        if "://" in src and not src.startswith("file://"):
            for uri, fp in scan_prefix(src):
                found[uri] = (fp, {"uri": uri, "id": None, "caption": None})
            continue
        for path, mtime_ns in scan_folder(src.removeprefix("file://"), skipped=skipped):
            try:
                fp = f"{path.stat().st_size}:{mtime_ns}"
            except FileNotFoundError:
                continue
            found[str(path)] = (fp, {"uri": str(path), "id": None, "caption": None})
    for manifest in manifests:
        for row in read_manifest(manifest):
            found[f"{manifest}#{row['uri']}"] = (json.dumps(row, sort_keys=True), row)
    return found


RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def range_request(keys: list[str], *, run_key: str | None = None, **kwargs) -> dg.RunRequest:
    """One run over consecutive partitions (``keys`` in partition order); a single key stays a plain
    partition request."""
    if len(keys) == 1:
        return dg.RunRequest(partition_key=keys[0], run_key=run_key or keys[0], **kwargs)
    tags = {RANGE_START: keys[0], RANGE_END: keys[-1], **kwargs.pop("tags", {})}
    return dg.RunRequest(run_key=run_key or f"{keys[0]}..{keys[-1]}", tags=tags, **kwargs)


def batch_requests(keys: list[str], batch: int) -> list[dg.RunRequest]:
    return [range_request(keys[i : i + batch]) for i in range(0, len(keys), batch)]


def keys_of_run(run: dg.DagsterRun, all_keys: list[str]) -> list[str]:
    """The partitions a run covered: its partition tag or its range (in partition order)."""
    if run.tags.get("dagster/partition"):
        return [run.tags["dagster/partition"]]
    start, end = run.tags.get(RANGE_START), run.tags.get(RANGE_END)
    if start in all_keys and end in all_keys:
        return all_keys[all_keys.index(start) : all_keys.index(end) + 1]
    return []


def contiguous_runs(keys: list[str], all_keys: list[str]) -> list[list[str]]:
    """``keys`` split into runs that are consecutive in the partition order."""
    position = {k: i for i, k in enumerate(all_keys)}
    out: list[list[str]] = []
    for k in sorted(keys, key=position.__getitem__):
        if out and position[out[-1][-1]] + 1 == position[k]:
            out[-1].append(k)
        else:
            out.append([k])
    return out


def build_resume_sensor(
    sets: list[FeatureSet] | None = None, *, default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING
) -> dg.SensorDefinition:
    """After a batch run fails because some of its videos are bad, run the rest of the pipeline for
    the good ones (their ``decoded_frames`` is already materialized; the bad ones stay failed and
    quarantined). Dagster skips downstream steps of a failed step, and cannot fail a single
    partition of a multi-partition step (dagster issue 17836): this is the other half of that."""

    @dg.run_failure_sensor(
        name="resume_after_bad_videos",
        # no monitored_jobs: every job of this code location, because UI backfills run the
        # assets through Dagster's implicit asset job, not through ``embed_videos``
        request_job=embed_videos_job,
        default_status=default_status,
        description="Carries the good videos of a batch with bad videos through clips, embeddings, store.",
    )
    def resume_after_bad_videos(context: dg.RunFailureSensorContext, workspace: WorkspaceResource):
        run = context.dagster_run
        all_keys = list(context.instance.get_dynamic_partitions(videos_partitions.name))
        keys = keys_of_run(run, all_keys)
        if len(keys) < 2:
            return dg.SkipReason("single-partition run: nothing to carry on")
        bad = {f["id"] for f in workspace.catalog().failures()} & set(keys)
        if not bad:
            return dg.SkipReason("the run did not fail on bad videos (transient errors are retried)")
        requests = []
        for fset in sets or [FeatureSet()]:
            decoded = context.instance.get_materialized_partitions(stage_key(fset, "decoded_frames"))
            stored = context.instance.get_materialized_partitions(stage_key(fset, "stored_features"))
            # a batch of the whole chain stores its good videos itself; one that stopped at decode does not
            good = [k for k in keys if k not in bad and k in decoded and k not in stored]
            downstream = [stage_key(fset, s) for s in ("clip_tensors", "clip_embeddings", "stored_features")]
            requests += [
                range_request(chunk, run_key=f"resume-{run.run_id}-{fset.name}-{i}", asset_selection=downstream)
                for i, chunk in enumerate(contiguous_runs(good, all_keys))
            ]
        return requests

    return resume_after_bad_videos


def build_videos_sensor(
    videos_dir: str | None = None,
    *,
    manifests: list[str] | None = None,
    minimum_interval_seconds: int = 30,
    max_new_per_tick: int = MAX_NEW_PER_TICK,
    batch: int = BATCH,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
) -> dg.SensorDefinition:
    """``videos_dir``: one or more folders / fsspec prefixes, comma-separated (default
    ``$VID_ASSETS_VIDEOS``); ``manifests``: CSV/JSONL/Parquet files with ``uri, id, caption``
    (default ``$VID_ASSETS_MANIFESTS``, comma-separated). New videos are requested ``batch`` per run
    (a partition range: consecutive keys added in one tick are adjacent in the partition order)."""
    sources = settings.comma_list(videos_dir or settings.videos_dir())
    manifest_list = manifests if manifests is not None else settings.manifests()
    described = ", ".join(sources + manifest_list)

    @dg.sensor(
        name="new_videos_sensor",
        job=embed_videos_job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=f"Registers new videos from {described} as partitions and requests their runs.",
    )
    def new_videos_sensor(context: dg.SensorEvaluationContext, workspace: WorkspaceResource) -> dg.SensorResult:
        present, changed = _look(context, sources, manifest_list, decode_cursor(context.cursor))
        for cid, _row in changed[max_new_per_tick:]:  # look again next tick
            present.pop(cid, None)
        # nothing changed (most ticks): no instance, partition list or catalog is opened
        new_keys = _register(context, workspace.catalog(), changed[:max_new_per_tick], present) if changed else []
        if new_keys:
            context.log.info(f"{len(new_keys)} new video(s): {', '.join(new_keys[:10])}")
        return dg.SensorResult(
            run_requests=batch_requests(new_keys, batch),
            dynamic_partitions_requests=[videos_partitions.build_add_request(new_keys)] if new_keys else [],
            cursor=encode_cursor(present),
            skip_reason=None if new_keys else f"no new videos in {described}",
        )

    return new_videos_sensor


def _look(context, sources: list[str], manifests: list[str], seen: dict) -> tuple[dict, list[tuple[str, dict]]]:
    """What the sources hold now (id -> fingerprint, the cursor's next state) and what changed
    since ``seen``; skipped files are logged once per file and reason (a FIFO stays there tick
    after tick)."""
    present: dict[str, str] = {}
    changed: list[tuple[str, dict]] = []
    skipped: list[Skipped] = []
    for cid, (fp, row) in discover(sources, manifests, skipped).items():
        present[cid] = fp
        if seen.get(cid) != fp:
            changed.append((cid, row))
    for skip in skipped:
        if skip.reason.startswith("still being written"):
            context.log.info(f"not yet: {skip.path}: {skip.reason}")
            continue
        cid = f"skipped:{skip.path}"
        present[cid] = skip.reason
        if seen.get(cid) != skip.reason:
            context.log.warning(f"skipping {skip.path}: {skip.reason}")
    return present, changed


def _register(context, catalog, changed: list[tuple[str, dict]], present: dict) -> list[str]:
    """Catalog the changed videos; the keys of those to request (not yet partitions, not quarantined).

    Quarantine: a key names exact bytes, so a recorded failure means these bytes already failed;
    they are requested again only when the file changes (which gives a new key)."""
    existing = set(context.instance.get_dynamic_partitions(videos_partitions.name))
    quarantined = {f["id"] for f in catalog.failures()}
    new_keys: list[str] = []
    for cid, row in changed:
        try:
            ref = VideoRef.from_uri(row["uri"], caption=row.get("caption"), id=row.get("id"))
        except (OSError, ValueError) as e:  # vanished, unreadable, unreachable
            context.log.warning(f"skipping {row['uri']}: {e}")
            present.pop(cid, None)
            continue
        ref = catalog.register(ref)  # a moved/renamed file keeps its first key
        if ref.key in quarantined:
            context.log.info(f"{ref.key} is quarantined (its decode failed before): not requested")
        elif ref.key not in existing and ref.key not in new_keys:
            new_keys.append(ref.key)
    return new_keys
