"""What a timm extractor's input spec costs each Dagster step: the forkserver importing timm once
per run (``spec_imports``) vs every step process importing it when it loads the definitions.

A user's definitions module names ``local-dir:<tiny ViT saved with timm>`` (weights offline);
one video runs through the four per-video assets with ``dagster asset materialize`` (the real
CLI, forkserver executor), the two variants alternating. Prints a table and writes JSON.

    python benchmarks/step_imports.py --json out.json [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vid_assets.devtools.host import describe_host

DEFS = """
import os
from vid_assets.defs.build import build_definitions, local_executor
from vid_assets.defs.resources import ExtractorResource

executor = local_executor(preload=()) if os.environ.get("BENCH_PRELOAD") == "0" else None
defs = build_definitions(extractor=ExtractorResource(name="local-dir:" + os.environ["BENCH_MODEL"]), executor=executor)
"""

ASSETS = "decoded_frames,clip_tensors,clip_embeddings,stored_features"


def setup(root: Path) -> tuple[dict, str]:
    import dagster as dg
    import timm
    from timm.models import save_for_hf

    from vid_assets.demo import register_videos
    from vid_assets.samples import write_synthetic_video

    model = root / "tiny_vit"
    net = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=64, num_classes=10)
    save_for_hf(net, str(model), safe_serialization=True, model_args={"img_size": 64, "num_classes": 10})
    (root / "bench_defs.py").write_text(DEFS)
    videos = root / "data" / "videos"
    videos.mkdir(parents=True)
    write_synthetic_video(videos / "clip.mp4", seconds=4, size=(320, 240), fps=30)
    home = root / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "VID_ASSETS_DATA": str(root / "data"),
        "BENCH_MODEL": str(model),
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    os.environ.update({k: env[k] for k in ("DAGSTER_HOME", "VID_ASSETS_DATA", "BENCH_MODEL")})
    sys.path.insert(0, str(root))
    from bench_defs import defs

    with dg.DagsterInstance.get() as instance:
        (key,) = [r.key for r in register_videos(instance, defs, [videos / "clip.mp4"])]
    return env, key


def run_once(env: dict, key: str, preload: bool) -> dict:
    import dagster as dg

    argv = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "bench_defs"]
    argv += ["--select", ASSETS, "--partition", key]
    t0 = time.perf_counter()
    subprocess.run(argv, env={**env, "BENCH_PRELOAD": "1" if preload else "0"}, check=True, capture_output=True)
    wall = time.perf_counter() - t0
    with dg.DagsterInstance.get() as instance:
        run = instance.get_runs(limit=1)[0]
        assert run.is_success, run.status
        steps = {s.step_key: s.end_time - s.start_time for s in instance.get_run_step_stats(run.run_id)}
    return {"preload": preload, "wall_s": wall, "steps_s": steps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env, key = setup(Path(tmp))
        runs = []
        for r in range(args.rounds):
            for preload in (False, True) if r % 2 == 0 else (True, False):
                runs.append(run_once(env, key, preload))
                print(f"round {r} preload={preload}: {runs[-1]['wall_s']:.1f} s", flush=True)
    table = []
    for preload in (False, True):
        mine = [x for x in runs if x["preload"] == preload]
        steps = sorted(mine[0]["steps_s"])
        table.append(
            {
                "variant": "forkserver imports timm" if preload else "each step imports timm",
                "wall_s": statistics.median(x["wall_s"] for x in mine),
                "steps_s": {s: statistics.median(x["steps_s"][s] for x in mine) for s in steps},
            }
        )
    print(f"\n| variant | run wall s | {' | '.join(table[0]['steps_s'])} |")
    print("| --- | ---: |" + " ---: |" * len(table[0]["steps_s"]))
    for row in table:
        cells = " | ".join(f"{v:.1f}" for v in row["steps_s"].values())
        print(f"| {row['variant']} | {row['wall_s']:.1f} | {cells} |")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"host": describe_host(), "rounds": args.rounds, "table": table, "runs": runs}, indent=1)
        )


if __name__ == "__main__":
    main()
