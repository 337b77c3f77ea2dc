"""One run of the ``video_features`` step: which feed, which intermediates, what Dagster is told.

No video logic lives here: decoding, clips and the model are ``vid_assets.engine``; keeping and
reading intermediates and writing the store are ``vid_assets.partial_runs``. This class only decides,
from the selected assets and what the work folder holds, which of those to call, and turns what
each video did into its own materializations (or its own failure).
"""

from __future__ import annotations

import contextlib
import json
import time
from itertools import chain
from pathlib import Path

import dagster as dg
from dagster._core.errors import DagsterExecutionInterruptedError

from vid_assets import engine, partial_runs, results, settings
from vid_assets.defs.resources import (
    ExtractorResource,
    FeatureStoreResource,
    SamplingResource,
    WorkspaceResource,
)
from vid_assets.defs.videos import resume
from vid_assets.defs.videos.live_report import LiveReport
from vid_assets.defs.videos.report import PartitionReport, video_metadata
from vid_assets.feature_sets import FeatureSet
from vid_assets.media import VideoDecodeError

ORDER = ("decoded_frames", "clip_tensors", "clip_embeddings", "stored_features")
LOG_EVERY_S = 30.0


def stop_on_cancel(context: dg.AssetExecutionContext, events):
    """``events``, except that an interrupt because the run is being cancelled stops the step:
    Dagster turns an interrupt into a retry when the step has a retry policy (ours retries
    transient trouble)."""
    try:
        yield from events
    except DagsterExecutionInterruptedError:
        run = context.instance.get_run_by_id(context.run.run_id)
        if run is not None and run.status in (dg.DagsterRunStatus.CANCELING, dg.DagsterRunStatus.CANCELED):
            raise dg.Failure("The run was cancelled.", allow_retries=False) from None
        raise


class VideoRun:
    def __init__(
        self,
        context: dg.AssetExecutionContext,
        fset: FeatureSet,
        workspace: WorkspaceResource,
        sampling: SamplingResource,
        extractor: ExtractorResource,
        feature_store: FeatureStoreResource,
    ) -> None:
        self.context, self.fset, self.workspace, self.extractor = context, fset, workspace, extractor
        self.asset_keys = {a: dg.AssetKey([*fset.key_prefix, a]) for a in ORDER}
        self.selected = [a for a in ORDER if self.asset_keys[a] in context.selected_asset_keys]
        self.keys = list(context.partition_keys)
        self.catalog, self.artifacts = workspace.catalog(), workspace.artifacts(fset)
        self.store = feature_store.store(fset)
        self.config = fset.config()
        self.time_budget_s = sampling.decode_time_budget_s
        self.meta: dict[str, dict[str, dict]] = {a: {} for a in ORDER}
        self.failed: dict[str, tuple[str, str]] = {}  # key -> (stage, reason)
        self.checks: dict[str, list] = {}  # video -> its check outcomes
        self._done, self._logged = 0, time.monotonic()
        self.live = self._live_report()
        self._skip_stored_already()

    def _live_report(self) -> LiveReport | None:
        """Videos reported as they finish; the store's materializations wait for the step's end
        when a later step of this run needs its output (``store_held``)."""
        assets, self.store_held = [self.asset_keys[a] for a in self.selected], False
        if not assets:
            return None
        report = PartitionReport(self.context)
        self.store_held = assets[-1] == self.asset_keys["stored_features"] and report.downstream_in_run()
        live = assets[:-1] if self.store_held else assets
        return LiveReport(
            report, live, self.asset_keys["stored_features"], self._metadata, self.checks, settings.report_every_s()
        )

    def _skip_stored_already(self) -> None:
        """A retry leaves out the videos its earlier attempt stored, and restates them (``resume.py``)."""
        live = self.live
        if (
            live is None
            or self.store_held
            or "stored_features" not in self.selected
            or not resume.is_retry(self.context)
        ):
            return
        hashes = {k: self.catalog.get(k).content_hash for k in self.keys}
        done = set(resume.restate_stored(live, [self.asset_keys[a] for a in ORDER], hashes, self.store))
        self.keys = [k for k in self.keys if k not in done]

    # -- what to run ------------------------------------------------------------------------------
    def execute(self):
        yield from stop_on_cancel(self.context, self._execute())

    def _execute(self):
        try:
            self.work()
        except BaseException:
            self.abandon()
            raise
        yield from self.report()

    def abandon(self) -> None:
        """The step stops early (an error, a cancel): the videos already stored are still told."""
        if self.live is not None:
            with contextlib.suppress(Exception):  # the step's own error is the one to raise
                self.live.flush()

    @property
    def streams_whole_chain(self) -> bool:
        """A run that decodes afresh and stores: the case one shared decode can serve."""
        return {"decoded_frames", "clip_embeddings", "stored_features"} <= set(self.selected)

    def work(self) -> None:
        """Everything but telling Dagster: decode / embed / store what the run selected."""
        wants = set(self.selected)
        if not wants & {"clip_embeddings", "stored_features"}:
            self._keep_intermediates()
            return
        kept = (
            []
            if "clip_embeddings" in wants
            else [k for k in self.keys if self.artifacts.exists(partial_runs.EMBEDDINGS, k)]
        )
        for key in kept:  # a store-only run over kept embeddings
            result, info = partial_runs.load_result(self.artifacts, key)
            self._finish(key, result, info)
        rest = [k for k in self.keys if k not in kept]
        if rest:
            self._embed(rest)

    def _keep_intermediates(self) -> None:
        """A run that stops before the model: frames (and clips) stay in the work folder for a later run."""
        for key in self.keys:
            try:
                if "decoded_frames" in self.selected or not self.artifacts.exists(partial_runs.FRAMES, key):
                    meta = partial_runs.decode_video(
                        self.catalog.get(key), self.config.plan, self.artifacts, self.time_budget_s
                    )
                    jpeg_path = meta.pop("contact_sheet_path", "")
                    jpeg = Path(jpeg_path).read_bytes() if jpeg_path else None
                    self.meta["decoded_frames"][key] = {**meta, "_jpeg": jpeg}
                if "clip_tensors" in self.selected:
                    self.meta["clip_tensors"][key] = partial_runs.build_clips(key, self.config.clip, self.artifacts)
                self._reported(key)
            except VideoDecodeError as e:
                self._fail(key, "decode", str(e))

    def _embed(self, keys: list[str]) -> None:
        model = self._model()
        if model.label_set:  # a model's own class names go to the store once
            self.store.save_label_set(model.label_set, model.labels)
        redecode = "decoded_frames" in self.selected
        from_kept = [k for k in keys if not redecode and partial_runs.has_clips_or_frames(self.artifacts, k)]
        to_decode = [k for k in keys if k not in from_kept]
        order = to_decode + from_kept
        decoded = (
            engine.decode_feed(
                [self.catalog.get(k).uri for k in to_decode], self.config, model, **self.workspace.feed_options()
            )
            if to_decode
            else ()
        )
        kept = partial_runs.artifact_feed(
            [(len(to_decode) + i, k) for i, k in enumerate(from_kept)],
            self.artifacts,
            self.config.clip,
            engine.pass_clips(model, self.config.clip),
        )
        self.started(model)
        for result in engine.run(chain(decoded, kept), model, self.config, on_pass=self.on_pass):
            key = order[result.index]
            self.take(key, result, decoded=key in to_decode)
        self.finished(len(keys))

    # -- one video's result -------------------------------------------------------------------
    def started(self, model) -> None:
        self._info, self._counts = (
            model.describe(),
            {"t0": time.perf_counter(), "images": 0, "frames": 0, "model_s": 0.0},
        )
        self._device = str(model.device)

    def on_pass(self, clips: int) -> None:
        """Progress for a pass of ``clips`` (kept for the engine's log line)."""

    def take(self, key: str, result: engine.VideoResult, *, decoded: bool) -> None:
        """One video's engine result: its metadata per asset, then the store (or its failure)."""
        c = self.config.clip
        self._counts["images"] += result.num_clips * c.frames_per_clip * c.num_crops
        self._counts["frames"] += ((result.summary or {}).get("decode") or {}).get("decoded", 0)
        self._counts["model_s"] += result.model_seconds
        self._counts.setdefault("first", (time.perf_counter(), self._counts["images"], self._counts["model_s"]))
        if not result.ok:
            self._fail(key, result.stage or "embed", result.error or "")
            return
        if result.summary is not None and decoded:
            jpeg = result.summary.get("contact_sheet_jpeg")
            self.meta["decoded_frames"][key] = {**results.decode_meta(result.summary), "_jpeg": jpeg}
        self.meta["clip_tensors"][key] = {
            "clips": result.num_clips,
            "clip_tensor_shape": [result.num_clips, *self._clip_shape()],
        }
        shape = list(result.features.shape) if result.features is not None else [0]
        self.meta["clip_embeddings"][key] = {
            "clips": result.num_clips,
            "feature_shape": shape,
            "extractor": self._info["id"],
            "device": self._device,
            "runtime": self._info.get("runtime", "torch"),
            "seconds": result.seconds,
            "clips_per_s": result.num_clips / max(result.seconds, 1e-9),
        }
        self._finish(key, result, self._info)

    def finished(self, videos: int) -> None:
        now = time.perf_counter()
        took = now - self._counts["t0"]
        images, frames = self._counts["images"], self._counts["frames"]
        stats = {"videos": videos, "images": images, "decoded_frames": frames, "seconds": round(took, 3)}
        stats.update(
            images_per_s=round(images / max(took, 1e-9), 1), decoded_frames_per_s=round(frames / max(took, 1e-9), 1)
        )
        model_s = self._counts["model_s"]  # the model's own time: its rate without the decode's waits
        stats.update(model_s=round(model_s, 3), model_images_per_s=round(images / max(model_s, 1e-9), 1))
        if "first" in self._counts:  # the first video pays the model's warm-up (a compile: tens of seconds)
            t_first, images_first, model_first = self._counts["first"]
            stats["first_video_s"] = round(t_first - self._counts["t0"], 3)
            if videos > 1 and images > images_first:
                stats["steady_images_per_s"] = round((images - images_first) / max(now - t_first, 1e-9), 1)
                steady_model = max(model_s - model_first, 1e-9)
                stats["steady_model_images_per_s"] = round((images - images_first) / steady_model, 1)
        where = "" if self.fset.is_default else f" [{self.fset.name}]"
        self.context.log.info(f"engine{where}: {json.dumps(stats)}")

    def _model(self):
        return self.extractor.load(self.context.log, self.fset)

    def _clip_shape(self) -> list[int]:
        c = self.config.clip
        return [c.frames_per_clip, c.num_crops, c.crop_size, c.crop_size, 3]

    def _finish(self, key: str, result: engine.VideoResult, extractor_info: dict) -> None:
        """Store the video (and drop its intermediates), or keep its embeddings for a store-only run."""
        if "stored_features" not in self.selected:
            partial_runs.save_result(self.artifacts, key, result, self._model())
            self._reported(key)
            return
        ref = self.catalog.get(key)
        try:
            stored = results.store_result(
                ref,
                result,
                self.store,
                extractor_info,
                self.config,
                text_model=self.fset.text_model,
            )
        except Exception as e:  # noqa: BLE001 - a store write fails this video, not the batch
            self._fail(key, "store", f"{type(e).__name__}: {e}")
            return
        self.meta["stored_features"][key], self.checks[key] = stored.meta, stored.checks
        self.catalog.clear_failure(key, self.fset.name)
        if not self.workspace.keep_intermediates:
            self.artifacts.discard(key)
        self._reported(key, ref.content_hash)
        self._done += 1
        if time.monotonic() - self._logged > LOG_EVERY_S:
            self._logged = time.monotonic()
            self.context.log.info(f"{self._done} of {len(self.keys)} videos stored")

    def _fail(self, key: str, stage: str, reason: str) -> None:
        """Not transient: recorded for the failed-videos report and quarantine, never retried."""
        error_class = "VideoDecodeError" if stage == "decode" else reason.split(":", 1)[0]
        self.catalog.record_failure(key, error_class, reason, stage=stage, feature_set=self.fset.name)
        self.failed[key] = (stage, reason)
        self.context.log.error(f"{key}: {stage} failed: {reason}")

    # -- what Dagster is told ---------------------------------------------------------------------
    def _reported(self, key: str, content_hash: str | None = None) -> None:
        """The video's results are final: report it now (the live report) or at the end."""
        if self.live is not None:
            self.live.add(key, content_hash or self.catalog.get(key).content_hash)

    def _metadata(self, asset: dg.AssetKey, key: str) -> dict:
        meta = dict(self.meta[asset.path[-1]].get(key, {}))
        if not self.fset.is_default:
            meta["feature_set"] = self.fset.name
        return video_metadata(meta)

    def report(self, raise_failure: bool = True):
        """Ends the step's report: each good video's materializations and check results were
        written as it finished (``live_report.py``), but for a store held for this run's next step
        (the training view, ``--select '*'``), which Dagster starts only on an output. Then the
        step fails, naming the bad videos, if there are any (``raise_failure``; a group of sets
        raises once for all of them)."""
        store_key = self.asset_keys["stored_features"]
        if self.live is None:
            return
        self.live.flush()
        report, good = self.live.report, [k for k in self.keys if k not in self.failed]
        if self.store_held and good:
            hashes = {k: self.live.hashes[k] for k in good}
            if self.failed:  # no output: the next step does not start
                report.materialize([store_key], good, self._metadata, hashes)
            else:
                yield from report.materialize_as_output(store_key, good, self._metadata, {}, hashes)
            ids = report.latest_ids(store_key, good)
            report.check(store_key, {k: self.checks.get(k, []) for k in good}, ids)
        if self.failed and raise_failure:
            raise self.failure()
        yield from report.checks_outputs(store_key)

    def failure(self) -> dg.Failure:
        first = next(iter(self.failed))
        stage, reason = self.failed[first]
        what = "decode" if all(s == "decode" for s, _ in self.failed.values()) else "go through"
        error_class = "VideoDecodeError" if stage == "decode" else reason.split(":", 1)[0]
        return dg.Failure(
            description=(
                f"{error_class}: {reason}"
                if len(self.keys) == 1
                else f"{len(self.failed)} of {len(self.keys)} videos failed to {what}: "
                + "; ".join(f"{k}: {why}" for k, (_, why) in self.failed.items())
            ),
            metadata={
                "failed_partitions": dg.MetadataValue.json({k: why for k, (_, why) in self.failed.items()}),
                "failed_stages": dg.MetadataValue.json({k: s for k, (s, _) in self.failed.items()}),
                "source": self.catalog.get(first).uri,
                "error_class": error_class,
                "reason": reason,
            },
            allow_retries=False,
        )
