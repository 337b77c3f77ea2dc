"""The plan of one publish: which files the next commit adds and deletes, staged locally.

Repository layout (what ``datasets.load_dataset(repo_id, "clips")`` and pandas/pyarrow read)::

    README.md                          dataset card (huggingface_hub DatasetCard): YAML metadata with
                                       two configs, extractor id, sampling plan, counts, checksums
    data/clips-<digest>.parquet        video_id, clip_index, start_s, end_s, embedding (float32 [D])
    videos.parquet                     video_id, source (file name), content_hash, duration_s,
                                       num_clips, extractor, sampling_plan (JSON), caption
    vid_assets_manifest.json           which videos (and feature digests) each shard holds

Incremental: shards are immutable and named by their content; a plan adds shards only for new
videos (and rewrites only shards whose videos changed or vanished), so 10 new videos in a
10,000-video repo stage one new shard plus the small tables. Where the files go is a target's
business (``hub/targets.py``); this module never touches the network.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vid_assets.hub.card import write_card
from vid_assets.hub.layout import CARD, CLIP_COLUMNS, MANIFEST, SHARD_CLIPS, VIDEOS, clip_columns, plan_description
from vid_assets.store.features import FeatureStore


class PublishError(RuntimeError):
    """A publish that cannot go on; the message says why (never containing the token)."""


def redact(text: str, token: str | None) -> str:
    if token:
        text = text.replace(token, "hf_***")
    return text


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class CommitPlan:
    """What one publish changes in the repository."""

    add: dict[str, Path] = field(default_factory=dict)  # path in repo -> staged local file
    delete: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    message: str = ""
    description: str = ""
    new_videos: list[str] = field(default_factory=list)
    updated_videos: list[str] = field(default_factory=list)
    removed_videos: list[str] = field(default_factory=list)
    manifest: dict = field(default_factory=dict)
    is_noop: bool = False  # no shard added or deleted and the videos table is unchanged

    def operations(self) -> list:
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete

        ops = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(f)) for p, f in sorted(self.add.items())]
        return ops + [CommitOperationDelete(path_in_repo=p) for p in sorted(self.delete)]

    def to_dict(self) -> dict:
        return {
            "message": self.message,
            "add": sorted(self.add),
            "delete": sorted(self.delete),
            "unchanged": sorted(self.unchanged),
            "new_videos": self.new_videos,
            "updated_videos": self.updated_videos,
            "removed_videos": self.removed_videos,
            "sha256": {p: _sha256(f) for p, f in sorted(self.add.items())},
        }


def _write_shard(store: FeatureStore, videos: list[str], staging: Path, columns: list[str]) -> tuple[str, Path, int]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols: dict[str, list] = {k: [] for k in columns}
    dim = None
    for vid in videos:
        v = store.read_video(vid, rows_only=True)
        feats = v.features.astype(np.float32)
        emb = feats.mean(axis=1) if feats.shape[1] > 1 else feats[:, 0]
        dim = emb.shape[1]
        ts = v.timestamps
        n = len(emb)
        cols["video_id"] += [vid] * n
        cols["clip_index"].append(np.arange(n, dtype=np.int32))
        if "segment" in cols:  # -1 for a video another plan sampled
            cols["segment"].append(v.segments if v.segments is not None else np.full(n, -1))
        cols["start_s"].append(ts[:, 0])
        cols["end_s"].append(ts[:, 1])
        cols["embedding"].append(emb)
    flat = np.concatenate(cols["embedding"]).reshape(-1)
    arrays = {
        "video_id": pa.array(cols["video_id"], pa.string()),
        "clip_index": pa.array(np.concatenate(cols["clip_index"])),
        "start_s": pa.array(np.concatenate(cols["start_s"])),
        "end_s": pa.array(np.concatenate(cols["end_s"])),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), dim),
    }
    if "segment" in cols:
        arrays["segment"] = pa.array(np.concatenate(cols["segment"]).astype(np.int32))
    table = pa.table({k: arrays[k] for k in columns})
    tmp = staging / "shard.parquet"
    pq.write_table(table, tmp, compression="zstd")
    digest = _sha256(tmp)[:16]
    name = f"data/clips-{digest}.parquet"
    final = staging / name
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, final)
    return name, final, table.num_rows


def _videos_table(attrs_by_video: dict[str, dict], videos: list[str], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = {
        k: []
        for k in (
            "video_id",
            "source",
            "content_hash",
            "duration_s",
            "num_clips",
            "extractor",
            "sampling_plan",
            "caption",
        )
    }
    for vid in videos:
        a = attrs_by_video[vid]
        rows["video_id"].append(vid)
        rows["source"].append(os.path.basename(str(a.get("source", ""))))  # no local paths in public data
        rows["content_hash"].append(a.get("content_hash", ""))
        rows["duration_s"].append(float(a.get("duration_s", float("nan"))))
        rows["num_clips"].append(int(a.get("num_clips", 0)))
        rows["extractor"].append(a.get("extractor", ""))
        rows["sampling_plan"].append(json.dumps(a.get("sampling_plan", {}), sort_keys=True))
        rows["caption"].append(a.get("caption"))
    pq.write_table(pa.table(rows), path, compression="zstd")


def build_plan(
    store: FeatureStore,
    previous: dict | None,
    staging: Path,
    *,
    repo_id: str | None = None,
    license: str = "other",
    shard_clips: int = SHARD_CLIPS,
    remote_files: set[str] | None = None,
) -> CommitPlan:
    """Stage the files of the next commit in ``staging`` and say what changes against ``previous``."""
    previous = previous or {"shards": {}}
    attrs = {vid: store.video_attrs(vid) for vid in store.list_videos()}  # read once per video
    current = {vid: a.get("features_sha256", "") for vid, a in attrs.items()}
    attrs0 = _one_extractor(store, attrs)
    columns = clip_columns(attrs0.get("sampling_plan", {}))
    same_schema = previous.get("columns", CLIP_COLUMNS) == columns
    kept, pending = _kept_shards(previous, current, same_schema, remote_files)
    prev_digest = {v: d for m in previous.get("shards", {}).values() for v, d in m}
    new = sorted(v for v in current if v not in prev_digest)
    updated = sorted(v for v in current if v in prev_digest and prev_digest[v] != current[v])
    removed = sorted(v for v in prev_digest if v not in current)
    plan = CommitPlan(new_videos=new, updated_videos=updated, removed_videos=removed)
    shards = dict(kept)
    for batch in _shard_batches(sorted(set(pending) | set(new)), attrs, shard_clips):
        name, path, _ = _write_shard(store, batch, staging, columns)
        shards[name] = [[v, current[v]] for v in batch]
        plan.add[name] = path
    plan.delete = sorted(s for s in previous.get("shards", {}) if s not in shards)
    plan.unchanged = sorted(kept)
    videos = sorted(current)
    _videos_table(attrs, videos, staging / VIDEOS)
    manifest = _manifest(attrs0, columns, shards, sum(int(attrs[v].get("num_clips", 0)) for v in videos), videos)
    prev_sums = previous.get("sha256", {})
    manifest["sha256"] = {s: prev_sums.get(s) or _sha256(plan.add[s]) for s in shards}
    manifest["sha256"][VIDEOS] = _sha256(staging / VIDEOS)
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    write_card(manifest, repo_id, license, staging / CARD)
    for name in (VIDEOS, MANIFEST, CARD):
        plan.add[name] = staging / name
    plan.manifest = manifest
    plan.is_noop = (
        bool(previous.get("shards"))
        and not any(p.startswith("data/") for p in plan.add)
        and not plan.delete
        and prev_sums.get(VIDEOS) == manifest["sha256"][VIDEOS]
    )
    _describe(plan, rewrite=bool(previous.get("shards")) and not same_schema)
    return plan


def _one_extractor(store: FeatureStore, attrs: dict[str, dict]) -> dict:
    """The first video's attributes, once every video is known to share its extractor."""
    if not attrs:
        raise PublishError(f"the feature store at {store.root} holds no videos yet: nothing to publish")
    attrs0 = next(iter(attrs.values()))
    extractor = attrs0.get("extractor", "")
    for vid, a in attrs.items():
        if a.get("extractor") != extractor:
            raise PublishError(
                f"video {vid} was embedded with another extractor than {extractor}: publish one extractor"
            )
    return attrs0


def _kept_shards(
    previous: dict, current: dict[str, str], same_schema: bool, remote_files: set[str] | None
) -> tuple[dict[str, list], list[str]]:
    """Shards that stay as they are, and the videos of the others (to be written again)."""
    kept: dict[str, list] = {}
    pending: list[str] = []
    for shard, members in previous.get("shards", {}).items():
        valid = same_schema and all(current.get(v) == d for v, d in members)
        if valid and (remote_files is None or shard in remote_files):
            kept[shard] = members
        else:
            pending += [v for v, _ in members if v in current]
    return kept, pending


def _shard_batches(videos: list[str], attrs: dict[str, dict], shard_clips: int):
    """``videos`` in order, cut into batches of at most ``shard_clips`` clips (a bigger video alone)."""
    batch, clips = [], 0
    for vid in videos:
        n = int(attrs[vid].get("num_clips", 0))
        if batch and clips + n > shard_clips:
            yield batch
            batch, clips = [], 0
        batch.append(vid)
        clips += n
    if batch:
        yield batch


def _manifest(attrs0: dict, columns: list[str], shards: dict, num_clips: int, videos: list[str]) -> dict:
    return {
        "layout": "vid_assets.hub/1",
        "extractor": attrs0.get("extractor", ""),
        "sampling_plan": attrs0.get("sampling_plan", {}),
        "clip_spec": attrs0.get("clip_spec", {}),
        "dim": int(attrs0.get("feature_shape", [0, 0, 0])[-1]),
        "output": (attrs0.get("extractor_config") or {}).get("output", "pooled"),
        "columns": columns,
        "num_videos": len(videos),
        "num_clips": num_clips,
        "shards": dict(sorted(shards.items())),
        "sha256": {},
    }


def _describe(plan: CommitPlan, rewrite: bool) -> None:
    """The commit's message and description, from what the plan changes."""
    m, parts = plan.manifest, []
    new, updated, removed = plan.new_videos, plan.updated_videos, plan.removed_videos
    if new:
        parts.append(f"Add {len(new):,} video{'s' if len(new) != 1 else ''}")
    if updated:
        parts.append(f"update {len(updated):,}")
    if removed:
        parts.append(f"remove {len(removed):,}")
    if rewrite:
        parts.append(f"rewrite every shard with columns {', '.join(m['columns'])}")
    head = ", ".join(parts) if parts else "Refresh dataset card"
    head = head[0].upper() + head[1:]
    plan.message = (
        f"{head} ({m['num_videos']:,} total, {m['num_clips']:,} clips) — extractor {m['extractor']},"
        f" {plan_description(m['sampling_plan'])}"
    )
    added = len([p for p in plan.add if p.startswith("data/")])
    plan.description = f"Shards added: {added}, deleted: {len(plan.delete)}."
