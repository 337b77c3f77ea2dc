"""A retried run does not redo the videos that its earlier attempt already stored.

A run of a batch fails when one of its videos is bad (so that the UI shows that partition failed),
and a retry (Dagster's re-execution, its run retries, or the step's retry policy) gets the whole
batch again. Its good videos were stored and reported as they finished (``live_report.py``), so
redoing them is wasted work: 511 good videos of a batch redone for one bad one. The seed scripts skipped
the videos whose ``.npy`` existed; here a video is skipped when Dagster's own record says it is
current: its latest ``stored_features`` materialization carries the data version that this run
would give it (the same content through the same code and config, ``report.data_version``), and
its features are in the store. Anything else (a changed config, a video whose report a killed run
never wrote) is done again.

The retry planned every video of its batch again, so a skipped video is materialized again by it,
with the earlier attempt's metadata (contact sheet and all) and data versions, and its checks run
again on the store: otherwise the UI would count the video as failed with the retry.

Only retries skip: a run the user starts afresh recomputes what it selects, as Dagster's
materialize means.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import dagster as dg

from vid_assets.defs.videos.live_report import LiveReport
from vid_assets.defs.videos.report import MATERIALIZATION, PartitionReport, data_version
from vid_assets.store import FeatureStore


def is_retry(context: dg.AssetExecutionContext) -> bool:
    """A re-executed run (the UI's re-execute, run retries), or the step's retry within its run."""
    return context.run.parent_run_id is not None or context.retry_number > 0


def stored_already(
    report: PartitionReport, chain: Sequence[dg.AssetKey], content_hash: Mapping[str, str], store: FeatureStore
) -> list[str]:
    """The videos of ``content_hash`` (video -> content hash) whose last asset of ``chain`` (the
    whole chain, root first) is current and stored."""
    latest = report.latest_versions(chain[-1], list(content_hash))
    current = []
    for key in content_hash:
        version = content_hash[key]
        for asset in chain:
            version = data_version(report.code_versions.get(asset, ""), version)
        if key in latest and latest[key][0] == version and store.has_video(key):
            current.append(key)
    return current


def earlier_metadata(instance: dg.DagsterInstance, asset: dg.AssetKey, keys: Sequence[str]) -> dict[str, dict]:
    """``{video: metadata}`` of ``asset``'s latest materialization of each of ``keys``."""
    ids = instance.event_log_storage.get_latest_storage_id_by_partition(asset, MATERIALIZATION, set(keys))
    if not ids:
        return {}
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset, storage_ids=list(ids.values())), limit=len(ids)
    ).records
    return {r.partition_key: dict(r.asset_materialization.metadata) for r in records if r.asset_materialization}


def restate_stored(
    live: LiveReport, chain: Sequence[dg.AssetKey], hashes: Mapping[str, str], store: FeatureStore
) -> list[str]:
    """The videos of ``hashes`` (video -> content hash) stored already, restated by this run: their
    materializations of ``live``'s assets as the earlier attempt made them, and their checks."""
    report = live.report
    done = stored_already(report, chain, hashes, store)
    if not done:
        return []
    earlier = {a: earlier_metadata(report.context.instance, a, done) for a in live.assets}
    last = report.materialize(live.assets, done, lambda a, k: earlier[a].get(k, {}), hashes)
    report.check(chain[-1], {k: store.check(k) for k in done}, {k: i for k, (_, i) in last.items()})
    report.context.log.info(f"{len(done)} video(s) stored by an earlier attempt of this run: not done again")
    return done
