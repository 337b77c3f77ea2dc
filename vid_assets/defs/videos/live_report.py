"""A run's finished videos told to Dagster while the run goes on, a batch every few seconds.

A run of 256 videos used to write its ~2,000 events (four materializations and four check results
per video) after its last video, and the UI showed none of its videos until the run ended. Here
each video is reported within ``every_s`` of its features being committed to the store, so a
long run shows its progress per video, and a run stopped by an error or a cancel has reported
what it stored (``VideoRun.abandon`` writes the last batch).

The writes happen in the step's own thread, between the engine's results. A thread beside the
engine was measured first (session 18, 2-core VM): its Python-heavy event writing held the GIL
against the model's passes, which hand the GIL back and forth at every layer, and the engine ran
10 % slower, more than the ~2 s of writing it took off the run's end.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import dagster as dg

from vid_assets.defs.videos.report import PartitionReport


class LiveReport:
    """Materializations of ``assets`` (chain order) and, when the store is among them, its check
    results, for each video handed to :meth:`add`, written in batches at most ``every_s`` apart."""

    def __init__(
        self,
        report: PartitionReport,
        assets: Sequence[dg.AssetKey],
        store_key: dg.AssetKey,
        metadata: Callable[[dg.AssetKey, str], Mapping],
        checks: Mapping[str, list],
        every_s: float,
    ) -> None:
        self.report, self.assets, self.store_key = report, list(assets), store_key
        self.metadata, self.checks, self.every_s = metadata, checks, every_s
        self.hashes: dict[str, str] = {}
        self._pending: list[str] = []
        self._due = 0.0

    def add(self, key: str, content_hash: str) -> None:
        """A video whose results are final (its metadata and check outcomes already set)."""
        self.hashes[key] = content_hash
        if not self._pending:
            self._due = time.monotonic() + self.every_s
        self._pending.append(key)
        if time.monotonic() >= self._due:
            self.flush()

    def flush(self) -> None:
        """Write the videos not yet reported (the step's end calls it)."""
        keys, self._pending = self._pending, []
        if not keys or not self.assets:
            return
        last = self.report.materialize(self.assets, keys, self.metadata, {k: self.hashes[k] for k in keys})
        if self.store_key in self.assets:
            ids = {k: i for k, (_, i) in last.items()}
            self.report.check(self.store_key, {k: self.checks.get(k, []) for k in keys}, ids)
