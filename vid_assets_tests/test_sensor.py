"""The folder sensor, evaluated against a real instance with its real cursor."""

import os
import shutil

import dagster as dg

from vid_assets.defs.resources import WorkspaceResource
from vid_assets.defs.videos.partitions import videos_partitions
from vid_assets.defs.videos.sensors import build_videos_sensor, decode_cursor


def _tick(sensor, instance, workspace, cursor):
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"workspace": workspace})
    result = sensor(ctx)
    # apply what the daemon would apply
    for req in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
    return result


def _requested(result, instance) -> list[str]:
    """Partition keys a tick requested: single-partition requests and partition ranges (batches)."""
    order = list(instance.get_dynamic_partitions(videos_partitions.name))
    keys = []
    for req in result.run_requests:
        if req.partition_key:
            keys.append(req.partition_key)
        else:
            rng = req.partition_key_range
            keys.extend(order[order.index(rng.start) : order.index(rng.end) + 1])
    return keys


def test_new_file_once_then_nothing(tmp_path, media_dir):
    videos = tmp_path / "videos"
    (videos / "sub").mkdir(parents=True)
    workspace = WorkspaceResource(work_dir=str(tmp_path / "work"))
    sensor = build_videos_sensor(str(videos))
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        r0 = _tick(sensor, instance, workspace, None)
        assert r0.run_requests == [] and "no new videos" in r0.skip_reason.skip_message

        shutil.copyfile(media_dir / "clip_a.mp4", videos / "sub" / "clip_a.mp4")
        (videos / "notes.txt").write_text("not a video")
        r1 = _tick(sensor, instance, workspace, r0.cursor)
        assert len(r1.run_requests) == 1
        key = r1.run_requests[0].partition_key
        assert key.startswith("clip_a-") and r1.run_requests[0].run_key == key
        assert instance.get_dynamic_partitions(videos_partitions.name) == [key]
        assert workspace.catalog().get(key).uri == str((videos / "sub" / "clip_a.mp4").resolve())
        assert list(decode_cursor(r1.cursor)) == [str(videos / "sub" / "clip_a.mp4")]

        r2 = _tick(sensor, instance, workspace, r1.cursor)
        assert r2.run_requests == []  # nothing new -> no request
        # and such a tick (most ticks) opens no instance: a context without one is enough
        idle = sensor(dg.build_sensor_context(cursor=r1.cursor, resources={"workspace": workspace}))
        assert idle.run_requests == [] and idle.cursor == r2.cursor

        # moved/renamed file (same bytes): seen by the cursor, but its partition already exists
        os.rename(videos / "sub" / "clip_a.mp4", videos / "renamed.mp4")
        r3 = _tick(sensor, instance, workspace, r2.cursor)
        assert r3.run_requests == []
        assert instance.get_dynamic_partitions(videos_partitions.name) == [key]
        assert workspace.catalog().get(key).uri == str((videos / "renamed.mp4").resolve())  # location follows

        # a second, different video -> exactly one more partition
        shutil.copyfile(media_dir / "clip_b.mp4", videos / "clip_b.mp4")
        r4 = _tick(sensor, instance, workspace, r3.cursor)
        assert [r.partition_key for r in r4.run_requests] == [
            k for k in instance.get_dynamic_partitions("videos") if k != key
        ]


def test_failed_video_is_quarantined_until_its_bytes_change(tmp_path, media_dir):
    from vid_assets.media import VideoRef

    videos = tmp_path / "videos"
    videos.mkdir()
    workspace = WorkspaceResource(work_dir=str(tmp_path / "work"))
    sensor = build_videos_sensor(str(videos))
    (tmp_path / "home").mkdir()
    shutil.copyfile(media_dir / "clip_a.mp4", videos / "bad.mp4")
    bad = VideoRef.from_path(videos / "bad.mp4")
    workspace.catalog().register(bad)
    workspace.catalog().record_failure(bad.key, "VideoDecodeError", "planted failure")
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        r = _tick(sensor, instance, workspace, None)
        assert r.run_requests == []  # same bytes failed before: not requested
        with (videos / "bad.mp4").open("ab") as f:  # the file changes -> new identity -> requested
            f.write(b"\0" * 16)
        r2 = _tick(sensor, instance, workspace, r.cursor)
        assert len(r2.run_requests) == 1 and r2.run_requests[0].partition_key != bad.key


def test_manifests_and_fsspec_prefixes(tmp_path, media_dir):
    """A CSV manifest (relative uris, ids, captions), a JSONL one, and an fsspec (memory://) prefix."""
    import json

    import fsspec

    folder = tmp_path / "m"
    folder.mkdir()
    shutil.copyfile(media_dir / "clip_a.mp4", folder / "a.mp4")
    (folder / "list.csv").write_text("uri,id,caption\na.mp4,walk/01,a person walking\n")
    (tmp_path / "list.jsonl").write_text(json.dumps({"uri": str(media_dir / "clip_b.mp4"), "caption": "a ball"}) + "\n")
    with fsspec.open("memory://bucket/videos/remote.mp4", "wb") as f:
        f.write((media_dir / "clip_a.mp4").read_bytes()[:-1] + b"\x00")  # different bytes, same look
    workspace = WorkspaceResource(work_dir=str(tmp_path / "work"))
    sensor = build_videos_sensor(
        "memory://bucket/videos/", manifests=[str(folder / "list.csv"), str(tmp_path / "list.jsonl")]
    )
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        r = _tick(sensor, instance, workspace, None)
        keys = sorted(_requested(r, instance))
        assert len(keys) == 3 and len(r.run_requests) == 1  # one run for the batch of new videos
        refs = {k: workspace.catalog().get(k) for k in keys}
        by_uri = {ref.uri: ref for ref in refs.values()}
        walk = by_uri[f"{folder}/a.mp4"]
        assert walk.key.startswith("walk_01-") and walk.caption == "a person walking"
        assert by_uri[str(media_dir / "clip_b.mp4")].caption == "a ball"
        (remote,) = [ref for uri, ref in by_uri.items() if uri.startswith("memory://")]
        assert remote.uri.endswith("bucket/videos/remote.mp4") and remote.key.startswith("remote-")
        assert remote.size == (media_dir / "clip_a.mp4").stat().st_size
        assert _tick(sensor, instance, workspace, r.cursor).run_requests == []
        (folder / "list.csv").write_text("uri,id,caption\na.mp4,walk/01,someone walking slowly\n")
        r3 = _tick(sensor, instance, workspace, r.cursor)  # edited caption: same partition, caption updated
        assert r3.run_requests == [] and workspace.catalog().get(walk.key).caption == "someone walking slowly"


def test_new_partitions_per_tick_are_capped(tmp_path, media_dir):
    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(5):
        data = (media_dir / "clip_a.mp4").read_bytes() + bytes([i])  # 5 distinct videos
        (videos / f"v{i}.mp4").write_bytes(data)
    workspace = WorkspaceResource(work_dir=str(tmp_path / "work"))
    sensor = build_videos_sensor(str(videos), max_new_per_tick=2)
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        cursor, per_tick = None, []
        for _ in range(4):
            r = _tick(sensor, instance, workspace, cursor)
            per_tick.append(len(_requested(r, instance)))
            assert len(r.run_requests) == min(1, per_tick[-1])  # a tick's new videos go in one batch run
            cursor = r.cursor
        assert per_tick == [2, 2, 1, 0]  # the rest waits for the next tick, nothing is lost
        assert len(instance.get_dynamic_partitions("videos")) == 5
    # a tick with more new videos than a batch asks for several batch runs
    (tmp_path / "home2").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home2")) as instance:
        workspace2 = WorkspaceResource(work_dir=str(tmp_path / "work2"))
        r = _tick(build_videos_sensor(str(videos), batch=2), instance, workspace2, None)
        assert [len(_requested(dg.SensorResult(run_requests=[q]), instance)) for q in r.run_requests] == [2, 2, 1]
        assert sorted(_requested(r, instance)) == sorted(instance.get_dynamic_partitions("videos"))
