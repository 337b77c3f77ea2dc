"""File names are data: bytes that are not UTF-8, newlines and non-Latin scripts go through the
four assets, the training view and the published dataset, and come back exactly."""

from __future__ import annotations

import base64
import os
import shutil

import dagster as dg

from vid_assets.defs.build import build_definitions
from vid_assets.defs.resources import ExtractorResource, HubResource
from vid_assets.demo import register_videos
from vid_assets.media import partition_key


def test_keys_of_non_latin_names_stay_readable():
    """Before: every non-Latin name became ``video-<hash>``."""
    assert partition_key("日本の動画.mp4", "abcdef0123") == "日本の動画-abcdef01"
    assert partition_key("Видео дня.mov", "abcdef0123") == "Видео_дня-abcdef01"
    # the same name decomposed (as macOS writes it) gives the same key
    assert partition_key("cafe\u0301.mp4", "abcdef0123") == partition_key("caf\u00e9.mp4", "abcdef0123")
    assert partition_key("two\nlines.mp4", "abcdef0123") == "two_lines-abcdef01"
    assert partition_key(os.fsdecode(b"caf\xe9.mp4"), "abcdef0123") == "caf-abcdef01"


def test_odd_names_go_through_the_store_view_and_dataset(tmp_path, media_dir):
    """Before: one name that is not UTF-8 made ``training_view`` and ``hub_dataset`` fail for the
    whole store (UnicodeEncodeError)."""
    videos = tmp_path / "videos"
    videos.mkdir()
    names = [b"caf\xe9 latin-1.mp4", b"two\nlines.mp4", "日本の動画.mp4".encode()]
    for i, raw in enumerate(names):
        path = os.path.join(os.fsencode(videos), raw)
        shutil.copyfile(media_dir / "clip_a.mp4", path)
        with open(path, "ab") as f:
            f.write(bytes([i]) * 8)  # distinct bytes: three videos
    defs = build_definitions(
        work_dir=str(tmp_path / "work"),
        store_dir=str(tmp_path / "f.zarr"),
        extractor=ExtractorResource(device="cpu"),
        hub=HubResource(target_dir=str(tmp_path / "mirror")),
    )
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        paths = sorted(videos.iterdir())
        refs = register_videos(instance, defs, paths)
        job = defs.resolve_job_def("embed_videos")
        for ref in refs:
            assert job.execute_in_process(partition_key=ref.key, instance=instance).success
        assert defs.resolve_job_def("publish_dataset").execute_in_process(instance=instance).success
        store = defs.resources["feature_store"].store()
        sources = {}
        for key in store.list_videos():
            attrs = store.read_video(key).attrs
            raw = (
                base64.b64decode(attrs["source_bytes_b64"]) if "source_bytes_b64" in attrs else attrs["source"].encode()
            )
            sources[os.path.basename(raw)] = attrs["source"]
        assert sorted(sources) == sorted(names)  # every name back, byte for byte
        assert sources[b"caf\xe9 latin-1.mp4"].endswith("caf\\xe9 latin-1.mp4")  # readable text for the odd byte
        view = instance.get_latest_materialization_event(dg.AssetKey("training_view")).asset_materialization
        assert view.metadata["num_videos"].value == 3
        keys = {r.key for r in refs}
        assert any(k.startswith("日本の動画-") for k in keys)
