"""Hostile things in a watched folder: FIFOs, files still being copied, links out of the folder,
audio-only files. Each is skipped with a reason the user can read, and never blocks a scan."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg

from vid_assets.defs.resources import WorkspaceResource
from vid_assets.defs.videos.partitions import videos_partitions
from vid_assets.defs.videos.sensors import build_videos_sensor
from vid_assets.media import scan_folder
from vid_assets_tests.test_sensor import _tick


def _age(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_a_fifo_is_skipped_and_register_returns(tmp_path, media_dir):
    """Before: ``vid-assets register`` opened the FIFO to hash it and hung forever."""
    folder = tmp_path / "videos"
    folder.mkdir()
    os.mkfifo(folder / "pipe.mp4")
    (folder / "clip_a.mp4").write_bytes((media_dir / "clip_a.mp4").read_bytes())
    skipped: list = []
    assert [p.name for p, _ in scan_folder(folder, settle_s=0, skipped=skipped)] == ["clip_a.mp4"]
    assert [(s.path.name, s.reason) for s in skipped] == [("pipe.mp4", "not a regular file (a FIFO, socket or device)")]
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), "VID_ASSETS_DATA": str(tmp_path / "data")}
    (tmp_path / "home").mkdir()
    cli = Path(sys.executable).parent / "vid-assets"
    out = subprocess.run([cli, "register", str(folder)], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "clip_a-" in out.stdout and "skipped: " in out.stderr and "pipe.mp4: not a regular file" in out.stderr


def test_a_file_still_being_copied_is_taken_once_whole(tmp_path, media_dir, monkeypatch):
    """Before: the sensor hashed a half-copied file (a wrong key), and a second partition appeared
    once the copy ended. Now a file is taken once unmodified for the settle time (default 5 s)."""
    monkeypatch.delenv("VID_ASSETS_SETTLE_S", raising=False)
    folder = tmp_path / "videos"
    folder.mkdir()
    data = (media_dir / "clip_a.mp4").read_bytes()
    target = folder / "clip_a.mp4"
    target.write_bytes(data[: len(data) // 2])  # the copy is half way
    skipped: list = []
    assert scan_folder(folder, skipped=skipped) == []
    assert skipped[0].reason.startswith("still being written")

    workspace = WorkspaceResource(work_dir=str(tmp_path / "work"))
    sensor = build_videos_sensor(str(folder))
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        r1 = _tick(sensor, instance, workspace, None)
        assert r1.run_requests == [] and instance.get_dynamic_partitions(videos_partitions.name) == []
        with target.open("ab") as f:  # the copy ends...
            f.write(data[len(data) // 2 :])
        _age(target, 6.0)  # ...and the file has been left alone for longer than the settle time
        r2 = _tick(sensor, instance, workspace, r1.cursor)
        (key,) = instance.get_dynamic_partitions(videos_partitions.name)
        assert [r.partition_key for r in r2.run_requests] == [key]
        from vid_assets.media.identity import content_hash

        assert workspace.catalog().get(key).content_hash == content_hash(media_dir / "clip_a.mp4")


def test_links_out_of_the_folder_are_not_followed_unless_allowed(tmp_path, media_dir):
    """Before: a link to any file on the system was read and hashed."""
    folder, elsewhere = tmp_path / "videos", tmp_path / "private"
    folder.mkdir()
    elsewhere.mkdir()
    (elsewhere / "secret.mp4").write_bytes((media_dir / "clip_a.mp4").read_bytes())
    (folder / "inside.mp4").write_bytes((media_dir / "clip_b.mp4").read_bytes())
    (folder / "out.mp4").symlink_to(elsewhere / "secret.mp4")
    (folder / "alias.mp4").symlink_to(folder / "inside.mp4")  # a link within the folder is fine
    skipped: list = []
    assert sorted(p.name for p, _ in scan_folder(folder, settle_s=0, skipped=skipped)) == ["alias.mp4", "inside.mp4"]
    assert [s.path.name for s in skipped] == ["out.mp4"] and "outside" in skipped[0].reason
    allowed = scan_folder(folder, settle_s=0, follow_links_outside=True)
    assert sorted(p.name for p, _ in allowed) == ["alias.mp4", "inside.mp4", "out.mp4"]


def test_audio_only_files_are_reported_as_skipped(tmp_path, media_dir):
    """Before: an ``.m4a`` beside the videos vanished without a word."""
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "talk.m4a").write_bytes((media_dir / "audio_only.m4a").read_bytes())
    skipped: list = []
    assert scan_folder(folder, settle_s=0, skipped=skipped) == []
    assert [(s.path.name, s.reason.split(":")[0]) for s in skipped] == [("talk.m4a", "audio only (.m4a)")]
