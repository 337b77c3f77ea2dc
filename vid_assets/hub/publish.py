"""Publish the feature store as a Hugging Face Hub dataset, incrementally, in one commit.

``publish`` picks a target (``hub/targets.py``: the Hub, a local mirror, a dry run), asks it what
the repository holds, stages the next commit's files (``hub/plan.py``) and has the target apply
them. Tokens come from ``HF_TOKEN`` or the caller and never appear in logs, metadata or files.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from vid_assets.hub.layout import SHARD_CLIPS
from vid_assets.hub.plan import PublishError, build_plan
from vid_assets.hub.targets import DryRunTarget, HubTarget, MirrorTarget, PublishResult, Target
from vid_assets.store.features import FeatureStore

log = logging.getLogger(__name__)


def publish(
    store: FeatureStore,
    *,
    repo_id: str | None = None,
    target_dir: str | os.PathLike[str] | None = None,
    token: str | None = None,
    private: bool = True,
    revision: str | None = None,
    dry_run: bool = False,
    out_dir: str | os.PathLike[str] | None = None,
    license: str = "other",
    shard_clips: int = SHARD_CLIPS,
    echo: Callable[[str], None] = log.info,
) -> PublishResult:
    """Publish ``store`` to ``repo_id`` on the Hub, or mirror it into ``target_dir`` (see module doc)."""
    if not repo_id and target_dir is None:
        raise PublishError("say where to publish: repo_id (the Hub) or target_dir (a local folder)")
    token = token or os.environ.get("HF_TOKEN") or None
    target: Target = (
        MirrorTarget(target_dir)
        if target_dir is not None
        else HubTarget(repo_id, token=token, private=private, revision=revision, read_only=dry_run)
    )
    if dry_run:
        target = DryRunTarget(target, out_dir)
    staging = Path(tempfile.mkdtemp(prefix="vid_assets_publish_"))
    try:
        previous, remote_files = target.previous()
        plan = build_plan(
            store,
            previous,
            staging,
            repo_id=repo_id,
            license=license,
            shard_clips=shard_clips,
            remote_files=remote_files,
        )
        echo(f"commit plan for {target.where}: {plan.message}")
        for p in sorted(plan.add):
            echo(f"  + {p}")
        for p in plan.delete:
            echo(f"  - {p}")
        if plan.is_noop and previous is not None:
            echo("  nothing new to publish")
            return PublishResult(plan=plan, target=target.where, committed=False)
        return target.apply(plan, echo)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
