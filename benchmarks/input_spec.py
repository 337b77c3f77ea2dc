"""What fitting clips to a model costs a Dagster step: ``input_spec(name)`` (declared, from configs)
vs building the extractor on the CPU (random init, the fallback), each in a fresh process, as a
step process would pay it once per run.

    python benchmarks/input_spec.py --json out.json [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

from vid_assets.devtools.host import describe_host

NAMES = {
    "efficientnet_lite0": {},
    "r3d_18": {"weights": None},
    "tv:resnet50": {"weights": None},
    "timm:vit_base_patch16_224": {"pretrained": False},
}

CHILD = """
import json, sys, time
t0 = time.perf_counter()
from vid_assets.extractors import create_extractor, input_spec
t1 = time.perf_counter()
name, kwargs, build = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3] == "build"
spec = create_extractor(name, device="cpu", **kwargs).input_spec if build else input_spec(name)
t2 = time.perf_counter()
heavy = sorted(m for m in ("timm", "torchvision") if m in sys.modules)
print(json.dumps({"import_s": t1 - t0, "s": t2 - t1, "spec": list(spec.__dict__.values()), "imports": heavy}))
"""


def once(name: str, kwargs: dict, build: bool) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    argv = [sys.executable, "-c", CHILD, name, json.dumps(kwargs), "build" if build else "spec"]
    return json.loads(subprocess.run(argv, capture_output=True, text=True, check=True, env=env).stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    rows = []
    for name, kwargs in NAMES.items():
        spec = [once(name, kwargs, False) for _ in range(args.repeat)]
        built = [once(name, kwargs, True) for _ in range(args.repeat)]
        assert spec[0]["spec"] == built[0]["spec"], (name, spec[0]["spec"], built[0]["spec"])
        rows.append(
            {
                "name": name,
                "spec": spec[0]["spec"],
                "declared_s": statistics.median(r["s"] for r in spec),
                "declared_imports": spec[0]["imports"],
                "build_s": statistics.median(r["s"] for r in built),
                "package_import_s": statistics.median(r["import_s"] for r in spec + built),
            }
        )
    print(f"{'name':<28} {'spec (kind, T, size, resize)':<30} {'declared':>9} {'imports':<22} {'build':>8}")
    for r in rows:
        imports = ",".join(r["declared_imports"]) or "-"
        spec = str(tuple(r["spec"]))
        print(f"{r['name']:<28} {spec:<30} {r['declared_s']:>8.2f}s {imports:<22} {r['build_s']:>7.2f}s")
    print(f"(importing vid_assets.extractors itself: {statistics.median(r['package_import_s'] for r in rows):.2f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"host": describe_host(), "repeat": args.repeat, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
