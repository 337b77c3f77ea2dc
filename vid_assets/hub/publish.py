"""Publish the feature store as a Hugging Face Hub dataset, incrementally, in one commit.

Repository layout (what ``datasets.load_dataset(repo_id, "clips")`` and pandas/pyarrow read)::

    README.md                          dataset card (huggingface_hub DatasetCard): YAML metadata with
                                       two configs, extractor id, sampling plan, counts, checksums
    data/clips-<digest>.parquet        video_id, clip_index, start_s, end_s, embedding (float32 [D])
    videos.parquet                     video_id, source (file name), content_hash, duration_s,
                                       num_clips, extractor, sampling_plan (JSON), caption
    vid_assets_manifest.json           which videos (and feature digests) each shard holds

Incremental: shards are immutable and named by their content; a publish adds shards only for new
videos (and rewrites only shards whose videos changed or vanished), so 10 new videos in a
10,000-video repo upload one new shard plus the small tables. Everything goes in one
``create_commit``: the card can never describe data the repo does not hold.

Targets: ``repo_id`` (the Hub), or ``target_dir`` (a local folder mirroring the repo). ``dry_run``
computes the same plan, writes exactly the files the commit would add (and ``commit_plan.json``) to
``out_dir`` and uploads nothing. Tokens come from ``HF_TOKEN`` or the caller and never appear in
logs, metadata or files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vid_assets.store.features import FeatureStore

log = logging.getLogger(__name__)
MANIFEST = "vid_assets_manifest.json"
VIDEOS = "videos.parquet"
CARD = "README.md"
SHARD_CLIPS = 50_000
# the clips shards' columns; a segments plan adds ``segment`` (the clip's segment in its video, the
# seed notes' segment -> video map). One schema per dataset: a change rewrites every shard.
CLIP_COLUMNS = ["video_id", "clip_index", "start_s", "end_s", "embedding"]


def clip_columns(sampling_plan: dict) -> list[str]:
    if sampling_plan.get("mode") == "segments":
        return [*CLIP_COLUMNS[:2], "segment", *CLIP_COLUMNS[2:]]
    return list(CLIP_COLUMNS)


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


def plan_description(plan: dict) -> str:
    mode = plan.get("mode", "fps")
    if mode == "fps":
        return f"{plan.get('fps', 0):g} fps"
    if mode == "segments":
        return f"{plan.get('segment_s', 0):g} s x {plan.get('frames_per_segment', 0)} frames segments"
    if mode == "every_n":
        return f"every {plan.get('every_n_frames')} frames"
    return mode


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
        g = store.open_video(vid)
        feats = FeatureStore.features(g).astype(np.float32)
        emb = feats.mean(axis=1) if feats.shape[1] > 1 else feats[:, 0]
        dim = emb.shape[1]
        ts = g["timestamps"][...]
        n = len(emb)
        cols["video_id"] += [vid] * n
        cols["clip_index"].append(np.arange(n, dtype=np.int32))
        if "segment" in cols:  # -1 for a video another plan sampled
            cols["segment"].append(g["segments"][...] if "segments" in g.array_keys() else np.full(n, -1))
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


def _card(manifest: dict, repo_id: str | None, license: str, path: Path) -> None:
    from huggingface_hub import DatasetCard, DatasetCardData

    total_clips = manifest["num_clips"]
    data = DatasetCardData(
        license=license,
        pretty_name=f"vid_assets features ({manifest['extractor']})",
        tags=["video", "embeddings", "vid_assets"],
        size_categories=_size_category(total_clips),
        configs=[
            {"config_name": "clips", "data_files": [{"split": "train", "path": "data/*.parquet"}], "default": True},
            {"config_name": "videos", "data_files": [{"split": "train", "path": VIDEOS}]},
        ],
    )
    name = repo_id or "<user>/<dataset>"
    plan = manifest["sampling_plan"]
    checks = "\n".join(f"| `{p}` | `{h}` |" for p, h in sorted(manifest["sha256"].items()))
    content = f"""---
{data.to_yaml()}
---

# Video features: {manifest["extractor"]}

Per-clip embeddings extracted with [vid_assets](https://github.com/) from
{manifest["num_videos"]:,} videos ({total_clips:,} clips).

| | |
| --- | --- |
| extractor | `{manifest["extractor"]}` |
| feature dim / dtype | {manifest["dim"]} / float32 (stored as float16 upstream) |
| features | {_OUTPUTS.get(manifest.get("output", "pooled"), manifest.get("output"))} |
| sampling plan | `{json.dumps(plan, sort_keys=True)}` ({plan_description(plan)}) |
| clip spec / crops | `{json.dumps(manifest["clip_spec"], sort_keys=True)}` (crops averaged per clip) |
| videos / clips | {manifest["num_videos"]:,} / {total_clips:,} |

## Load

```python
from datasets import load_dataset
clips = load_dataset("{name}", "clips", split="train")     # {", ".join(manifest.get("columns", CLIP_COLUMNS))}
videos = load_dataset("{name}", "videos", split="train")   # one row per video
```

```python
import pandas as pd
df = pd.read_parquet("hf://datasets/{name}/data/")
```

The Zarr training view (`vid_assets.loader.ClipDataset`) reads local copies or any fsspec URL,
including `hf://datasets/{name}/...` through huggingface_hub's filesystem.

## Files and checksums (sha256)

| file | sha256 |
| --- | --- |
{checks}
"""
    DatasetCard(content).save(path)


_OUTPUTS = {
    "pooled": "the model's pooled features (before any classifier)",
    "head": "the model head's output (for a CLIP image tower: its projection into the image-text space)",
}


def _size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return label
    return "1M<n<10M"


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
    attrs = {vid: dict(store.open_video(vid).attrs) for vid in store.list_videos()}  # read once per video
    current = {vid: a.get("features_sha256", "") for vid, a in attrs.items()}
    if not current:
        raise PublishError(f"the feature store at {store.root} holds no videos yet: nothing to publish")
    attrs0 = attrs[next(iter(current))]
    extractor = attrs0.get("extractor", "")
    for vid in current:
        if attrs[vid].get("extractor") != extractor:
            raise PublishError(
                f"video {vid} was embedded with another extractor than {extractor}: publish one extractor"
            )
    columns = clip_columns(attrs0.get("sampling_plan", {}))
    same_schema = previous.get("columns", CLIP_COLUMNS) == columns
    kept_shards: dict[str, list] = {}
    pending: list[str] = []
    for shard, members in previous.get("shards", {}).items():
        valid = (
            same_schema
            and all(current.get(v) == d for v, d in members)
            and (remote_files is None or shard in remote_files)
        )
        if valid:
            kept_shards[shard] = members
        else:
            pending += [v for v, _ in members if v in current]
    prev_digest = {v: d for m in previous.get("shards", {}).values() for v, d in m}
    prev_videos = set(prev_digest)
    new = sorted(v for v in current if v not in prev_videos)
    updated = sorted(v for v in current if v in prev_digest and prev_digest[v] != current[v])
    removed = sorted(v for v in prev_videos if v not in current)
    pending = sorted(set(pending) | set(new))

    plan = CommitPlan(new_videos=new, updated_videos=updated, removed_videos=removed)
    shards = dict(kept_shards)
    batch, clips = [], 0
    for vid in pending + [None]:
        n = 0 if vid is None else int(attrs[vid].get("num_clips", 0))
        if batch and (vid is None or clips + n > shard_clips):
            name, path, _ = _write_shard(store, batch, staging, columns)
            shards[name] = [[v, current[v]] for v in batch]
            plan.add[name] = path
            batch, clips = [], 0
        if vid is not None:
            batch.append(vid)
            clips += n
    plan.delete = sorted(s for s in previous.get("shards", {}) if s not in shards)
    plan.unchanged = sorted(kept_shards)

    videos = sorted(current)
    _videos_table(attrs, videos, staging / VIDEOS)
    num_clips = sum(int(attrs[v].get("num_clips", 0)) for v in videos)
    plan_dict = attrs0.get("sampling_plan", {})
    manifest = {
        "layout": "vid_assets.hub/1",
        "extractor": extractor,
        "sampling_plan": plan_dict,
        "clip_spec": attrs0.get("clip_spec", {}),
        "dim": int(attrs0.get("feature_shape", [0, 0, 0])[-1]),
        "output": (attrs0.get("extractor_config") or {}).get("output", "pooled"),
        "columns": columns,
        "num_videos": len(videos),
        "num_clips": num_clips,
        "shards": dict(sorted(shards.items())),
        "sha256": {},
    }
    prev_sums = previous.get("sha256", {})
    manifest["sha256"] = {s: prev_sums.get(s) or _sha256(plan.add[s]) for s in shards}
    manifest["sha256"][VIDEOS] = _sha256(staging / VIDEOS)
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    _card(manifest, repo_id, license, staging / CARD)
    for name in (VIDEOS, MANIFEST, CARD):
        plan.add[name] = staging / name
    plan.manifest = manifest
    plan.is_noop = (
        bool(previous.get("shards"))
        and not any(p.startswith("data/") for p in plan.add)
        and not plan.delete
        and prev_sums.get(VIDEOS) == manifest["sha256"][VIDEOS]
    )

    parts = []
    if new:
        parts.append(f"Add {len(new):,} video{'s' if len(new) != 1 else ''}")
    if updated:
        parts.append(f"update {len(updated):,}")
    if removed:
        parts.append(f"remove {len(removed):,}")
    if previous.get("shards") and not same_schema:
        parts.append(f"rewrite every shard with columns {', '.join(columns)}")
    head = ", ".join(parts) if parts else "Refresh dataset card"
    head = head[0].upper() + head[1:]
    plan.message = (
        f"{head} ({len(videos):,} total, {num_clips:,} clips) — extractor {extractor}, {plan_description(plan_dict)}"
    )
    plan.description = (
        f"Shards added: {len([p for p in plan.add if p.startswith('data/')])}, deleted: {len(plan.delete)}."
    )
    return plan


# -- targets --------------------------------------------------------------------------------------
def _remote_state(api, repo_id: str, revision: str | None) -> tuple[dict | None, set[str]]:
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        files = set(api.list_repo_files(repo_id, repo_type="dataset", revision=revision))
    except (RepositoryNotFoundError, RevisionNotFoundError):
        return None, set()
    if MANIFEST not in files:
        return None, files
    try:
        path = api.hf_hub_download(repo_id, MANIFEST, repo_type="dataset", revision=revision)
    except EntryNotFoundError:
        return None, files
    return json.loads(Path(path).read_text()), files


def _hub_call(fn: Callable, what: str, token: str | None, attempts: int = 4):
    """Call the Hub with retries and backoff for transient errors; clear, token-free messages."""
    import tenacity
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    def transient(e: BaseException) -> bool:
        if isinstance(e, HfHubHTTPError):
            status = getattr(e.response, "status_code", None)
            return status == 429 or (status is not None and status >= 500)
        return isinstance(e, ConnectionError | TimeoutError) or type(e).__name__ in ("ConnectError", "ReadTimeout")

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(attempts),
        wait=tenacity.wait_exponential(multiplier=1, max=30),
        retry=tenacity.retry_if_exception(transient),
        reraise=True,
    )
    try:
        return retrying(fn)
    except OfflineModeIsEnabled as e:
        raise PublishError(f"{what}: HF_HUB_OFFLINE is set, no network; use dry_run or target_dir") from (
            None if e else None
        )
    except HfHubHTTPError as e:
        status = getattr(e.response, "status_code", None)
        if status in (401, 403):
            raise PublishError(
                f"{what}: authentication failed (HTTP {status}): the token needs write access to this dataset repo"
            ) from None
        if status == 429:
            raise PublishError(f"{what}: rate limited by the Hub (HTTP 429) after {attempts} attempts") from None
        raise PublishError(redact(f"{what}: Hub error (HTTP {status}): {e}", token)) from None
    except Exception as e:  # network down and friends
        raise PublishError(redact(f"{what}: cannot reach the Hub ({type(e).__name__}: {e})", token)) from None


@dataclass
class PublishResult:
    plan: CommitPlan
    target: str
    committed: bool
    commit_url: str | None = None
    dry_run_dir: str | None = None


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
    staging = Path(tempfile.mkdtemp(prefix="vid_assets_publish_"))
    try:
        api = None
        remote_files = None
        if target_dir is not None:
            mirror = Path(target_dir)
            prev_path = mirror / MANIFEST
            previous = json.loads(prev_path.read_text()) if prev_path.exists() else None
            remote_files = (
                {str(p.relative_to(mirror)) for p in mirror.rglob("*") if p.is_file()} if mirror.exists() else set()
            )
            where = str(mirror)
        else:
            from huggingface_hub import HfApi

            if not token and not dry_run:
                raise PublishError("no Hugging Face token: set HF_TOKEN (write access) or pass token=...")
            api = HfApi(token=token)
            previous, remote_files = _hub_call(
                lambda: _remote_state(api, repo_id, revision), f"reading {repo_id}", token
            )
            where = f"hf://datasets/{repo_id}" + (f"@{revision}" if revision else "")
        plan = build_plan(
            store,
            previous,
            staging,
            repo_id=repo_id,
            license=license,
            shard_clips=shard_clips,
            remote_files=remote_files,
        )
        echo(f"commit plan for {where}: {plan.message}")
        for p in sorted(plan.add):
            echo(f"  + {p}")
        for p in plan.delete:
            echo(f"  - {p}")
        if plan.is_noop and previous is not None:
            echo("  nothing new to publish")
            return PublishResult(plan=plan, target=where, committed=False)
        if dry_run:
            out = Path(out_dir or (Path(tempfile.gettempdir()) / "vid_assets_dry_run"))
            if out.exists():
                shutil.rmtree(out)
            for p, f in plan.add.items():
                (out / p).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, out / p)
            (out / "commit_plan.json").write_text(json.dumps(plan.to_dict(), indent=1))
            echo(f"dry run: {len(plan.add)} files written to {out} (nothing uploaded)")
            return PublishResult(plan=plan, target=where, committed=False, dry_run_dir=str(out))
        if target_dir is not None:
            mirror = Path(target_dir)
            for p, f in plan.add.items():
                (mirror / p).parent.mkdir(parents=True, exist_ok=True)
                tmp = mirror / (p + ".tmp")
                shutil.copyfile(f, tmp)
                os.replace(tmp, mirror / p)
            for p in plan.delete:
                (mirror / p).unlink(missing_ok=True)
            return PublishResult(plan=plan, target=where, committed=True)
        _hub_call(
            lambda: api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True),
            f"creating {repo_id}",
            token,
        )
        info = _hub_call(
            lambda: api.create_commit(
                repo_id,
                plan.operations(),
                commit_message=plan.message,
                commit_description=plan.description,
                repo_type="dataset",
                revision=revision,
            ),
            f"committing to {repo_id}",
            token,
        )
        return PublishResult(plan=plan, target=where, committed=True, commit_url=getattr(info, "commit_url", None))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
