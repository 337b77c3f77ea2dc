"""The ``video_features`` step of a group of feature sets that share a sampling plan."""

from __future__ import annotations

import dagster as dg

from vid_assets import engine
from vid_assets.defs.videos.video_run import VideoRun, stop_on_cancel
from vid_assets.feature_sets import FeatureSet


class GroupRun:
    """The step of feature sets that share a sampling plan: the sets this run selected, and where
    two or more of them decode afresh and store, one decode of each video feeds all their models
    (``engine.run_many``). Each set still gets its own materializations, checks and failures."""

    def __init__(self, context: dg.AssetExecutionContext, sets: list[FeatureSet], *resources) -> None:
        self.context = context
        runs = [VideoRun(context, fset, *resources) for fset in sets]
        self.runs = [r for r in runs if r.selected]

    def execute(self):
        yield from stop_on_cancel(self.context, self._execute())

    def _execute(self):
        try:
            self._work()
        except BaseException:
            for run in self.runs:
                run.abandon()
            raise
        for run in self.runs:
            yield from run.report(raise_failure=len(self.runs) == 1)
        failed = [r for r in self.runs if r.failed]
        if failed and len(self.runs) > 1:
            raise self._failure(failed)

    def _work(self) -> None:
        sharing = [r for r in self.runs if r.streams_whole_chain]
        if len(sharing) < 2 or not all(
            engine.shares_decode(sharing[0].config, r.config) and r.keys == sharing[0].keys for r in sharing
        ):
            sharing = []
        if sharing:
            self._embed_shared(sharing)
        for run in self.runs:
            if run not in sharing:
                run.work()

    def _embed_shared(self, runs: list[VideoRun]) -> None:
        keys = runs[0].keys
        models = [run._model() for run in runs]
        for run, model in zip(runs, models, strict=True):
            if model.label_set:
                run.store.save_label_set(model.label_set, model.labels)
            run.started(model)
        lead = runs[0]
        sources = [lead.catalog.get(k).uri for k in keys]
        pairs = [(m, r.config) for m, r in zip(models, runs, strict=True)]
        feed = engine.decode_feed(sources, lead.config, models[0], also=pairs[1:], **lead.workspace.feed_options())
        names = ", ".join(r.fset.name for r in runs)
        self.context.log.info(f"one decode of {len(keys)} video(s) feeds the sets {names}")
        for i, result in engine.run_many(feed, pairs):
            runs[i].take(keys[result.index], result, decoded=True)
        for run in runs:
            run.finished(len(keys))

    def _failure(self, failed: list[VideoRun]) -> dg.Failure:
        first = failed[0].failure()
        parts = [f"[{r.fset.name}] {r.failure().description}" for r in failed]
        return dg.Failure(description="; ".join(parts), metadata=first.metadata, allow_retries=False)
