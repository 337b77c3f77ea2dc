"""What a run tells Dagster about each of its videos: one materialization per asset, with the
video's own data version and provenance, and one result per check.

Why not ``MaterializeResult``: a run of many partitions gets one data version for all of them,
and per-partition metadata goes through ``context.add_asset_metadata``, which lists every
registered video on each call (256 videos x 4 assets took 10 s on the 2-core VM, and it grows
with the catalogue). Why not ``AssetCheckResult``: in 1.13 it cannot name a partition in a run of
many. So the events are written here, the way Dagster writes a partitioned output's own events
(``DagsterEvent.asset_materialization`` with batch metadata, public to framework code through
``get_step_execution_context``): one batch per asset, in chain order, so that each video's
materialization can point at the upstream event just stored, as Dagster's provenance does. The
UI then shows per video: metadata, data version, stale causes, and each check's outcome.

A video's data version is derived from its content hash and the chain's code versions (which
carry the config: ``definitions.versioned``): the same bytes through the same config give the
same version whichever run, batch or subset made them.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable, Mapping, Sequence

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluationTargetMaterializationData
from dagster._core.definitions.data_version import (
    CODE_VERSION_TAG,
    DATA_VERSION_IS_USER_PROVIDED_TAG,
    DATA_VERSION_TAG,
    NULL_EVENT_POINTER,
    get_input_data_version_tag,
    get_input_event_pointer_tag,
)
from dagster._core.events import DagsterEvent, DagsterEventBatchMetadata, DagsterEventType, generate_event_batch_id
from dagster._core.storage.tags import BACKFILL_ID_TAG

MATERIALIZATION = DagsterEventType.ASSET_MATERIALIZATION


def data_version(code_version: str, upstream: str) -> str:
    """A video's version of one asset: its code version over the upstream version (or, at the
    root, the video's content hash)."""
    return hashlib.sha256(f"{code_version}|{upstream}".encode()).hexdigest()[:16]


class PartitionReport:
    """Per-video events of one step, written in batches; ``checks_outputs`` closes the step."""

    def __init__(self, context: dg.AssetExecutionContext) -> None:
        self.context = context
        self.step = context.get_step_execution_context()
        self.events = context.instance.event_log_storage
        self.code_versions = {k: v or "" for k, v in context.assets_def.code_versions_by_key.items()}
        self.backfill = context.run.tags.get(BACKFILL_ID_TAG)
        self.deps = {k: list(context.assets_def.asset_deps.get(k, ())) for k in context.assets_def.keys}

    # -- materializations -------------------------------------------------------------------------
    def materialize(
        self,
        chain: Sequence[dg.AssetKey],
        keys: Sequence[str],
        metadata: Callable[[dg.AssetKey, str], Mapping],
        content_hash: Mapping[str, str],
    ) -> dict[str, tuple[str, int | None]]:
        """Materialize ``chain`` (upstream first) for ``keys``; returns the last asset's
        ``{video: (data version, storage id)}``."""
        upstream: dict[str, tuple[str, int | None]] = {}  # video -> (data version, storage id)
        for i, asset in enumerate(chain):
            dep = self._dep(asset)
            if i == 0 and dep is not None:
                upstream = self.latest_versions(dep, keys)  # a subset run: what an earlier run made
            code = self.code_versions.get(asset, "")
            versions, events = {}, []
            for key in keys:
                up_version, pointer = upstream.get(key) or (content_hash[key], None)
                versions[key] = data_version(code, up_version)
                tags = {
                    CODE_VERSION_TAG: code,
                    DATA_VERSION_TAG: versions[key],
                    DATA_VERSION_IS_USER_PROVIDED_TAG: "true",
                }
                if dep is not None:
                    tags[get_input_data_version_tag(dep)] = up_version or content_hash[key]
                    tags[get_input_event_pointer_tag(dep)] = str(pointer) if pointer is not None else NULL_EVENT_POINTER
                if self.backfill:
                    tags[BACKFILL_ID_TAG] = self.backfill
                events.append(
                    dg.AssetMaterialization(asset_key=asset, partition=key, metadata=metadata(asset, key), tags=tags)
                )
            self._write(events, DagsterEvent.asset_materialization)
            # each video's latest materialization is now the one just written (what its
            # downstream event points at, as Dagster's provenance does)
            ids = self.latest_ids(asset, keys)
            upstream = {k: (versions[k], ids.get(k)) for k in keys}
        return upstream

    def _dep(self, asset: dg.AssetKey) -> dg.AssetKey | None:
        """The asset's one upstream in the chain (None at its root)."""
        return next(iter(self.deps.get(asset, ())), None)

    def latest_versions(self, asset: dg.AssetKey, keys: Sequence[str]) -> dict[str, tuple[str, int | None]]:
        """``{video: (data version, storage id)}`` of ``asset``'s latest materializations with a version."""
        ids = self.events.get_latest_storage_id_by_partition(asset, MATERIALIZATION, set(keys))
        tags = self.events.get_latest_tags_by_partition(asset, MATERIALIZATION, [DATA_VERSION_TAG], list(keys))
        return {
            k: (tags[k][DATA_VERSION_TAG], ids[k]) for k in keys if k in ids and DATA_VERSION_TAG in tags.get(k, {})
        }

    def downstream_in_run(self) -> bool:
        """Whether a step after this one runs in the same run (``--select '*'``: the training
        view), which Dagster starts only if this step yields its output."""
        plan, me = self.step.execution_plan, self.step.step.key
        return any(
            me in plan.get_step_by_key(k).get_execution_dependency_keys() for k in plan.step_keys_to_execute if k != me
        )

    def materialize_as_output(
        self,
        asset: dg.AssetKey,
        keys: Sequence[str],
        metadata: Callable[[dg.AssetKey, str], Mapping],
        upstream: Mapping[str, tuple[str, int | None]],
        content_hash: Mapping[str, str],
    ):
        """The last asset through Dagster's own output path, so that downstream steps of this run
        start: per-video metadata, and the video's data version when the run has one video (a run
        of many gets Dagster's one logical version; such runs with downstream steps are rare)."""
        for key in keys:
            self.context.add_asset_metadata(metadata(asset, key), asset_key=asset, partition_key=key)
        version = None
        if len(keys) == 1:
            dep, (key,) = self._dep(asset), keys
            if dep is not None and not upstream:
                upstream = self.latest_versions(dep, keys)
            up_version = (upstream.get(key) or (content_hash[key], None))[0]
            version = dg.DataVersion(data_version(self.code_versions.get(asset, ""), up_version))
        yield dg.MaterializeResult(asset_key=asset, data_version=version)

    def latest_ids(self, asset: dg.AssetKey, keys: Sequence[str]) -> dict[str, int]:
        return dict(self.events.get_latest_storage_id_by_partition(asset, MATERIALIZATION, set(keys)))

    # -- checks -----------------------------------------------------------------------------------
    def check(self, asset: dg.AssetKey, outcomes: Mapping[str, Sequence], ids: Mapping[str, int]) -> None:
        """One evaluation per selected check and video, pointing at the video's materialization."""
        selected = {k.name for k in self.context.selected_asset_check_keys if k.asset_key == asset}
        evaluations = [
            dg.AssetCheckEvaluation(
                asset_key=asset,
                check_name=o.name,
                passed=o.passed,
                metadata={"detail": o.detail},
                severity=dg.AssetCheckSeverity.ERROR,
                partition=key,
                target_materialization_data=_target(ids.get(key), self.context.run.run_id),
            )
            for key, results in outcomes.items()
            for o in results
            if o.name in selected
        ]
        self._write(evaluations, _check_event)

    def checks_outputs(self, asset: dg.AssetKey | None = None):
        """The step's check outputs (of ``asset``'s checks only, when given: a step of several
        feature sets reports set by set), so that Dagster does not report them as missing (the
        evaluations themselves are already written, per video)."""
        layer = self.step.job_def.asset_layer
        for key in self.context.selected_asset_check_keys:
            if asset is not None and key.asset_key != asset:
                continue
            name = layer.get_op_output_name(key)
            if name:
                yield dg.Output(None, output_name=name)

    # -- writing ----------------------------------------------------------------------------------
    def _write(self, items: Sequence, make: Callable) -> None:
        batch, last = generate_event_batch_id(), len(items) - 1
        stream = getattr(self.context.op_execution_context, "_events", None)
        for i, item in enumerate(items):
            event = make(self.step, item, DagsterEventBatchMetadata(batch, i == last))
            if stream is not None:  # as ``log_event`` does: the run's result lists them too
                stream.append(event)


def video_metadata(meta: dict) -> dict:
    """One video's metadata for one asset, as the UI shows it; a decode's contact sheet (``_jpeg``)
    inline, so that it shows on the materialization."""
    from vid_assets.defs.videos.assets import as_metadata

    meta = dict(meta)
    jpeg = meta.pop("_jpeg", None)
    out = as_metadata(meta)
    if jpeg:
        out["contact_sheet"] = dg.MetadataValue.md(
            f"![contact sheet](data:image/jpeg;base64,{base64.b64encode(jpeg).decode()})"
        )
    return out


def _target(storage_id: int | None, run_id: str) -> AssetCheckEvaluationTargetMaterializationData | None:
    if storage_id is None:
        return None
    return AssetCheckEvaluationTargetMaterializationData(storage_id=storage_id, run_id=run_id, timestamp=time.time())


def _check_event(step, evaluation: dg.AssetCheckEvaluation, batch: DagsterEventBatchMetadata) -> DagsterEvent:
    return DagsterEvent.from_step(
        event_type=DagsterEventType.ASSET_CHECK_EVALUATION,
        step_context=step,
        event_specific_data=evaluation,
        message=f"Check {evaluation.check_name} on {evaluation.partition}: "
        + ("passed." if evaluation.passed else f"did not pass: {evaluation.metadata['detail'].value}"),
        batch_metadata=batch,
    )


def report_extracted(instance: dg.DagsterInstance, fset, versions: dict[str, str], ref, meta: dict) -> None:
    """A video that ``vid-assets extract --set`` (a SLURM task, a notebook) stored outside a run,
    told to the instance as materializations of the set's four assets for its partition, with the
    set's code versions: the UI, staleness and ``vid-assets status`` then count it like a run's."""
    from vid_assets.defs.videos.assets import STAGES, stage_key
    from vid_assets.defs.videos.partitions import videos_partitions

    if not instance.has_dynamic_partition(videos_partitions.name, ref.key):
        instance.add_dynamic_partitions(videos_partitions.name, [ref.key])
    about = {"via": "vid-assets extract", "source": ref.uri, **{k: v for k, v in meta.items() if k != "seconds"}}
    for stage in STAGES:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key=stage_key(fset, stage),
                partition=ref.key,
                metadata=about if stage == "stored_features" else {"via": "vid-assets extract"},
                tags={"dagster/code_version": versions[stage]},
            )
        )
