"""Publishing: dataset card, commit plans (first and incremental), dry run == commit, token safety."""

import json
import logging
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from huggingface_hub import DatasetCard

from vid_assets.hub import PublishError, build_plan, publish
from vid_assets.hub.layout import CLIP_COLUMNS, clip_columns
from vid_assets.store import FeatureStore
from vid_assets_tests.helpers import write_fake_video


def _write(store, vid, n, seed, dim=8):
    write_fake_video(
        store,
        vid,
        n,
        seed,
        dim=dim,
        source=f"/home/someone/videos/{vid}.mp4",
        extractor="test-extractor@1",
        sampling_plan={"mode": "fps", "fps": 1.0, "short_side": 256, "start_s": 0.0, "end_s": None},
        clip_spec={"frames_per_clip": 1, "stride": 1, "crop": "center"},
    )


@pytest.fixture
def store(tmp_path):
    s = FeatureStore(tmp_path / "store.zarr")
    for i in range(3):
        _write(s, f"vid{i}", 4 + i, seed=i)
    return s


def test_first_publish_then_incremental(store, tmp_path):
    mirror = tmp_path / "mirror"
    first = publish(store, target_dir=mirror, repo_id=None)
    plan = first.plan
    assert first.committed
    shards = [p for p in plan.add if p.startswith("data/")]
    assert len(shards) == 1 and sorted(plan.add) == sorted(
        [*shards, "README.md", "videos.parquet", "vid_assets_manifest.json"]
    )
    assert plan.message == "Add 3 videos (3 total, 15 clips) — extractor test-extractor@1, 1 fps"
    clips = pq.read_table(mirror / shards[0]).to_pydict()
    assert clips["video_id"][:4] == ["vid0"] * 4 and clips["clip_index"][:4] == [0, 1, 2, 3]
    assert len(clips["embedding"][0]) == 8 and clips["start_s"][1] == 1.0
    np.testing.assert_allclose(clips["embedding"][5], store.read_video("vid1").features[1, 0].astype(np.float32))
    videos = pq.read_table(mirror / "videos.parquet").to_pydict()
    assert videos["source"] == ["vid0.mp4", "vid1.mp4", "vid2.mp4"]  # no local paths leak

    assert not publish(store, target_dir=mirror).committed  # nothing new: no commit

    _write(store, "vid3", 5, seed=3)
    _write(store, "vid4", 2, seed=4)
    second = publish(store, target_dir=mirror).plan
    new_shards = [p for p in second.add if p.startswith("data/")]
    assert len(new_shards) == 1 and new_shards[0] not in shards  # only the new videos' shard
    assert second.unchanged == shards and second.delete == []
    assert second.message == "Add 2 videos (5 total, 22 clips) — extractor test-extractor@1, 1 fps"

    _write(store, "vid1", 3, seed=11)  # re-extracted: its shard is rewritten without it
    store.delete_video("vid4")
    third = publish(store, target_dir=mirror).plan
    assert third.updated_videos == ["vid1"] and third.removed_videos == ["vid4"]
    assert set(third.delete) == {shards[0], new_shards[0]}
    assert third.message.startswith("Update 1, remove 1 (4 total, 18 clips)")
    on_disk = sorted(p.name for p in (mirror / "data").iterdir())
    manifest = json.loads((mirror / "vid_assets_manifest.json").read_text())
    assert on_disk == sorted(s.removeprefix("data/") for s in manifest["shards"])
    all_rows = sum(pq.read_metadata(mirror / s).num_rows for s in manifest["shards"])
    assert all_rows == 18


def test_a_segments_plan_publishes_each_clips_segment(store, tmp_path):
    """A dataset sampled in segments keeps the segment -> video map on the Hub (a ``segment``
    column beside ``video_id``), so per-frame rows can be grouped back into segments there. The
    columns are one schema per dataset: when the plan switches, every shard is rewritten."""
    mirror = tmp_path / "mirror"
    (first,) = [p for p in publish(store, target_dir=mirror).plan.add if p.startswith("data/")]  # fps: no column
    plan = {"mode": "segments", "segment_s": 5.0, "frames_per_segment": 2, "max_segments": 0}
    for i in range(3):  # re-extracted with a segments plan, one row per frame (vid0: the same bytes)
        rng = np.random.default_rng(i)
        store.write_video(
            f"vid{i}",
            features=rng.standard_normal((4, 1, 8)).astype(np.float32),
            timestamps=np.stack([np.arange(4.0), np.arange(4.0) + 1], 1),
            frame_times=np.arange(4.0)[:, None],
            attrs={"extractor": "test-extractor@1", "sampling_plan": plan, "num_clips": 4},
            segments=np.array([0, 0, 3, 3]),
        )
    result = publish(store, target_dir=mirror).plan
    # vid0's features did not change, but its shard lacks the column: rewritten all the same
    assert result.message.startswith("Update 2, rewrite every shard with columns video_id, clip_index, segment")
    assert result.delete == [first] and result.unchanged == []
    manifest = json.loads((mirror / "vid_assets_manifest.json").read_text())
    assert manifest["columns"] == ["video_id", "clip_index", "segment", "start_s", "end_s", "embedding"]
    (shard,) = manifest["shards"]
    clips = pq.read_table(mirror / shard)
    assert clips.column_names == manifest["columns"] and str(clips.schema.field("segment").type) == "int32"
    assert clips.to_pydict()["segment"] == [0, 0, 3, 3] * 3
    assert "clip_index, segment, start_s" in (mirror / "README.md").read_text()
    # an fps dataset's shards stay as they were (no column, nothing rewritten for it)
    assert clip_columns({"mode": "fps", "fps": 1.0}) == CLIP_COLUMNS


def test_dataset_card_is_valid_and_describes_the_data(store, tmp_path):
    publish(store, target_dir=tmp_path / "m", repo_id=None)
    card = DatasetCard.load(tmp_path / "m" / "README.md", ignore_metadata_errors=False)
    data = card.data.to_dict()
    assert data["license"] == "other" and data["size_categories"] == "n<1K"
    assert [c["config_name"] for c in data["configs"]] == ["clips", "videos"]
    assert "test-extractor@1" in card.text and "1 fps" in card.text and "load_dataset" in card.text
    assert "| features | the model's pooled features (before any classifier) |" in card.text  # what the vectors are
    manifest = json.loads((tmp_path / "m" / "vid_assets_manifest.json").read_text())
    for path, digest in manifest["sha256"].items():
        assert digest in card.text, path  # checksums listed in the card


def test_dry_run_writes_exactly_the_commit(store, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    token = "hf_DoNotLeakThisToken1234567890"
    staging = tmp_path / "staging"
    staging.mkdir()
    plan = build_plan(store, None, staging, repo_id="acme/features")
    ops = {op.path_in_repo: Path(op.path_or_fileobj).read_bytes() for op in plan.operations()}
    result = publish(store, target_dir=tmp_path / "empty_mirror", dry_run=True, out_dir=tmp_path / "dry", token=token)
    written = {
        str(p.relative_to(tmp_path / "dry")): p.read_bytes()
        for p in (tmp_path / "dry").rglob("*")
        if p.is_file() and p.name != "commit_plan.json"
    }
    readme = written.pop("README.md")
    ops_readme = ops.pop("README.md")
    assert written == ops  # same files, same bytes as create_commit would upload
    assert readme.replace(b"<user>/<dataset>", b"acme/features") == ops_readme
    plan_json = json.loads((tmp_path / "dry" / "commit_plan.json").read_text())
    assert plan_json["message"] == result.plan.message and sorted(plan_json["add"]) == sorted([*ops, "README.md"])
    everything = (
        caplog.text
        + json.dumps(plan_json)
        + "".join(p.read_text(errors="ignore") for p in (tmp_path / "dry").rglob("*.json"))
    )
    assert token not in everything


def test_failures_are_clear_and_never_show_the_token(store, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    token = "hf_SecretSecretSecret1234567890"
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(PublishError, match="no Hugging Face token: set HF_TOKEN"):
        publish(store, repo_id="acme/features")
    with pytest.raises(PublishError) as err:  # this suite runs with HF_HUB_OFFLINE=1: no network
        publish(store, repo_id="acme/features", token=token)
    assert "HF_HUB_OFFLINE" in str(err.value) or "cannot reach the Hub" in str(err.value)
    assert token not in str(err.value) and token not in caplog.text
    with pytest.raises(PublishError, match="holds no videos"):
        publish(FeatureStore(store.root.parent / "empty.zarr"), target_dir=store.root.parent / "x")


@pytest.mark.skipif(
    not os.environ.get("HF_TOKEN") or os.environ.get("HF_HUB_OFFLINE") == "1",
    reason="real-Hub publish needs HF_TOKEN and network (HF_HUB_OFFLINE unset)",
)
def test_real_hub_publish(store):  # pragma: no cover - needs credentials
    import uuid

    from huggingface_hub import HfApi

    api = HfApi()
    repo = f"{api.whoami()['name']}/vid-assets-test-{uuid.uuid4().hex[:8]}"
    try:
        result = publish(store, repo_id=repo, private=True)
        assert result.committed and "videos.parquet" in api.list_repo_files(repo, repo_type="dataset")
        assert not publish(store, repo_id=repo).committed
    finally:
        api.delete_repo(repo, repo_type="dataset", missing_ok=True)


def test_the_loader_reads_the_published_dataset_as_laid_out_on_the_hub(store, tmp_path):
    """``HubClipDataset`` over a local copy of the repo (what ``hf://datasets/<name>`` serves): every
    clip once per epoch, its embedding and times as published, the video it came from; two ranks
    split it without overlap; a folder that is not a published dataset says so."""
    from torch.utils.data import DataLoader

    from vid_assets.hub.dataset import HubClipDataset

    mirror = tmp_path / "mirror"
    publish(store, target_dir=mirror, repo_id=None, shard_clips=6)  # several shards
    table = pq.read_table(mirror / "data").to_pylist()
    expected = {(r["video_id"], int(r["clip_index"])): np.asarray(r["embedding"], np.float32) for r in table}
    ds = HubClipDataset(mirror, batch_size=4, seed=3)
    # worker processes (a plain DataLoader) and reader threads (ds.loader)
    for loader in (DataLoader(ds, batch_size=None, num_workers=2), HubClipDataset(mirror, batch_size=4).loader(2)):
        seen = {}
        for batch in loader:
            assert batch["features"].dtype.is_floating_point and batch["features"].shape[1] == 8
            assert len(batch["video_id"]) == len(batch["features"]) <= 4
            for vid, idx, feat in zip(
                batch["video_id"], batch["clip_index"].tolist(), batch["features"].numpy(), strict=True
            ):
                assert (vid, idx) not in seen
                seen[vid, idx] = feat
        assert seen.keys() == expected.keys() and len(seen) == ds.num_rows == 4 + 5 + 6
        for key, feat in seen.items():
            np.testing.assert_array_equal(feat, expected[key])
    halves = [
        {
            (v, i)
            for b in HubClipDataset(mirror, rank=r, world_size=2)
            for v, i in zip(b["video_id"], b["clip_index"].tolist(), strict=True)
        }
        for r in (0, 1)
    ]
    assert not halves[0] & halves[1] and halves[0] | halves[1] == expected.keys()
    with pytest.raises(ValueError, match="not a dataset hub_dataset published"):
        HubClipDataset(tmp_path)
