"""The Dagster CLI path users script against: `dg launch --assets '*' --partition KEY`."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vid_assets.cli import app
from vid_assets.media import VideoRef
from vid_assets.store import FeatureStore

REPO = Path(__file__).resolve().parents[1]


def test_dagster_asset_materialize_one_partition(tmp_path, media_dir):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copyfile(media_dir / "clip_b.mp4", videos / "clip_b.mp4")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "VID_ASSETS_DATA": str(tmp_path / "data"),
        "VID_ASSETS_VIDEOS": str(videos),
        "VID_ASSETS_DEVICE": "cpu",
    }
    bindir = Path(sys.executable).parent
    reg = subprocess.run(
        [bindir / "vid-assets", "register", str(videos)], env=env, capture_output=True, text=True, timeout=120
    )
    assert reg.returncode == 0, reg.stderr
    key = VideoRef.from_path(videos / "clip_b.mp4").key
    assert key in reg.stdout

    # the README's command (``dagster asset materialize`` is superseded by it in Dagster 1.13)
    cmd = [bindir / "dg", "launch", "-m", "vid_assets.definitions", "--assets", "*", "--partition", key]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "RUN_SUCCESS" in proc.stdout + proc.stderr and "SupersessionWarning" not in proc.stdout + proc.stderr

    store = FeatureStore(tmp_path / "data" / "features.zarr")
    assert store.list_videos() == [key]
    assert store.read_video(key).features.shape == (3, 1, 1280)


def test_step_processes_do_not_import_model_libraries_until_a_model_is_built():
    """Every Dagster step runs in a fresh process that imports the definitions; timm and torchvision
    (seconds to import) load only where a model is built, not for a label name (the storage step,
    the demo), and Dagster's beta warning is not printed."""
    code = (
        "import sys, vid_assets.definitions\n"
        "from vid_assets.extractors.labels import label_names\n"
        "assert label_names('imagenet-1k')[0] == 'tench' and label_names('kinetics-400')[0] == 'abseiling'\n"
        "print(sorted(m for m in ('timm', 'torchvision') if m in sys.modules))\n"
        "from vid_assets.extractors import create_extractor\n"
        "create_extractor('timm:resnet18', pretrained=False)\n"
        "print(sorted(m for m in ('timm', 'torchvision') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["[]", "['timm', 'torchvision']"]
    assert "BetaWarning" not in proc.stderr


def test_local_executor_start_method(monkeypatch):
    from vid_assets.defs.build import build_definitions, local_executor

    assert build_definitions().executor.name == "in_process"  # a run is one process by default
    monkeypatch.setenv("VID_ASSETS_EXECUTOR", "multiprocess")
    assert build_definitions().executor.name == "multiprocess_forkserver"
    monkeypatch.setenv("VID_ASSETS_STEP_START", "spawn")
    assert build_definitions().executor.name == "multiprocess_spawn"
    monkeypatch.setenv("VID_ASSETS_STEP_START", "fork")
    with pytest.raises(ValueError, match="forkserver or spawn, not 'fork'"):
        local_executor()


def test_extractors_command_lists_names_and_describes_one(tmp_path):
    """`vid-assets extractors` as a user types it: the names with what they take (no weights
    loaded), then one model built from local files, then a typo answered with the close match."""
    import json

    from vid_assets_tests.helpers import TINY_VIT, save_tiny_timm

    exe = Path(sys.executable).parent / "vid-assets"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    listing = subprocess.run([exe, "extractors", "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0, listing.stderr
    rows = {r["name"]: r for r in json.loads(listing.stdout)["extractors"]}
    assert rows["r3d_18"] == {
        "name": "r3d_18",
        "stands_for": "",
        "kind": "clip",
        "num_frames": 16,
        "size": 112,
        "resize": 128,
    }
    # short names, answered offline from timm's own configs
    assert rows["dinov2-large"]["stands_for"] == "hf-hub:timm/vit_large_patch14_dinov2.lvd142m"
    assert (rows["dinov2-large"]["size"], rows["clip-vit-b32"]["size"]) == (518, 224)
    assert {"dinov2-small", "dinov2-base", "dinov2-giant", "clip-vit-l14", "siglip-base"} <= set(rows)
    assert {"hf-hub:", "local-dir:", "timm:", "tv:"} <= set(json.loads(listing.stdout)["prefixes"])

    save_tiny_timm(tmp_path / "tiny_clip", "vit_base_patch32_clip_224.openai", **TINY_VIT)
    name = f"local-dir:{tmp_path / 'tiny_clip'}"
    # the same command in this process from here on: a fresh interpreter per call only repeats
    # importing torch and timm (~8 s each on 2 cores), which the listing above already paid
    cli = CliRunner()
    one = cli.invoke(app, ["extractors", name])
    assert one.exit_code == 0, one.output
    assert "512-d, its head's output" in one.stdout and "64 px crop of a 71 px short side" in one.stdout
    pooled = cli.invoke(app, ["extractors", name, "--output", "pooled", "--json"])
    assert json.loads(pooled.stdout)["dim"] == 64

    # factory arguments from the command line: a random-weights baseline needs no Python
    random = cli.invoke(app, ["extractors", "timm:resnet18", "--arg", "pretrained=false", "--json"])
    assert random.exit_code == 0, random.output
    assert json.loads(random.stdout)["id"] == "timm/resnet18@random-init"

    typo = cli.invoke(app, ["extractors", "efficientnet_lit"])
    assert typo.exit_code == 1 and "Did you mean 'efficientnet_lite0'" in typo.stderr


def test_register_run_materializes_the_folder_in_batch_runs(tmp_path, media_dir, monkeypatch):
    """``vid-assets register FOLDER --run``: the new videos as range runs of VID_ASSETS_BATCH
    videos in the instance's history, a bad video failed with its reason and left out next time."""
    import dagster as dg

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(3):
        (videos / f"v{i}.mp4").write_bytes((media_dir / "clip_a.mp4").read_bytes() + bytes([i]))
    shutil.copyfile(media_dir / "not_a_video.mp4", videos / "bad.mp4")
    for p in videos.iterdir():  # older than the settle time that skips files still being copied
        os.utime(p, (p.stat().st_mtime - 60, p.stat().st_mtime - 60))
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "VID_ASSETS_DATA": str(tmp_path / "data"),
        "VID_ASSETS_DEVICE": "cpu",
        "VID_ASSETS_BATCH": "2",
    }
    cmd = [Path(sys.executable).parent / "vid-assets", "register", str(videos), "--run"]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 1, first.stdout + first.stderr
    bad = VideoRef.from_path(videos / "bad.mp4").key
    good = sorted(VideoRef.from_path(videos / f"v{i}.mp4").key for i in range(3))
    assert "3 stored, 1 failed, 0 already up to date" in first.stdout
    assert "3/4" in first.stdout  # the bar's last count
    assert f"failed {bad}: decode: not a readable video container" in first.stdout
    assert "Traceback" not in first.stdout + first.stderr and "Stack Trace" not in first.stdout + first.stderr

    assert FeatureStore(tmp_path / "data" / "features.zarr").list_videos() == good
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        assert len(runs) == 2 and all(r.job_name == "embed_videos" for r in runs)  # 4 videos, 2 a run
        assert sorted(instance.get_materialized_partitions(dg.AssetKey("stored_features"))) == good

    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "0 stored, 0 failed, 3 already up to date; runs: none" in again.stdout
    assert f"failed before, not retried (--retry-failed) {bad}" in again.stdout

    # another sampling plan makes every stored video stale: they are run again, with the failed
    # one taken back (--retry-failed) and a run config as `dagster job execute -c` takes it (here
    # the terminal logger set back to errors, so the failure's step event shows)
    sets = tmp_path / "sets.yaml"
    sets.write_text("sets:\n  default:\n    sampling: {fps: 1.0}\n")
    config = tmp_path / "run.yaml"
    config.write_text("loggers:\n  console:\n    config:\n      log_level: ERROR\n")
    retry = subprocess.run(
        [*cmd, "--retry-failed", "-c", str(config)],
        env={**env, "VID_ASSETS_SETS": str(sets)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert retry.returncode == 1 and "3 stored, 1 failed, 0 already up to date" in retry.stdout, retry.stdout
    assert "STEP_FAILURE" in retry.stdout + retry.stderr


def test_register_run_plans_runs_over_consecutive_partitions():
    from vid_assets.defs.videos.local_runs import plan_batches

    everything = ["a", "b", "c", "d", "e"]
    assert plan_batches(["e", "a", "b", "d"], everything, 2) == [["a", "b"], ["d", "e"]]
    assert plan_batches(["a", "b", "c"], everything, 2) == [["a", "b"], ["c"]]
    assert plan_batches(["a", "c", "e"], everything, 8) == [["a"], ["c"], ["e"]]


EXIT_PROBE = """
import atexit, sys, threading, time
from pathlib import Path

out = Path(sys.argv[1])
atexit.register(lambda: (out / "atexit").write_text("ran"))  # as logging's flush or a finalizer would
def late():
    time.sleep(0.3)
    (out / "thread").write_text("joined")
threading.Thread(target=late).start()  # not a daemon: Python waits for it, and so must main()
sys.argv = ["vid-assets", *sys.argv[2:]]
from vid_assets.cli import main
main()
(out / "after").write_text("main() returned")  # never: main() ends the process
"""


@pytest.mark.parametrize(("argv", "code"), [(["--help"], 0), (["no-such-command"], 2), (["extractors", "no:such"], 1)])
def test_the_command_exits_with_its_code_after_what_python_would_run_at_exit(tmp_path, argv, code):
    """``vid-assets`` skips the interpreter's teardown (``cli.main``), not what a command leaves to
    its end: its exit code, joined threads, exit handlers and all of its output."""
    proc = subprocess.run(
        [sys.executable, "-c", EXIT_PROBE, str(tmp_path), *argv], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == code, proc.stderr
    assert (tmp_path / "atexit").read_text() == "ran"
    assert (tmp_path / "thread").read_text() == "joined"
    assert not (tmp_path / "after").exists()
    if code == 0:  # piped, so block-buffered: the last line of the help got out all the same
        assert "Usage: vid-assets" in proc.stdout and proc.stdout.rstrip().endswith("╯")
    else:
        assert proc.stderr.strip()
