#!/bin/bash
# Extract a folder's features on a SLURM cluster: an array of tasks, each taking its share of the
# videos (--shard I/N), all writing into the deployment's store for one feature set and reporting
# each stored video to its Dagster instance, so `vid-assets status` and the UI count them.
#
#   sbatch --array=0-7 deploy/slurm/extract_array.sh /data/videos dinov2_frames
#
# The environment carries the deployment: DAGSTER_HOME (an instance every node reaches: Postgres
# for many nodes, see deploy/), VID_ASSETS_STORE / VID_ASSETS_WORK on shared storage, and
# VID_ASSETS_SETS naming the set's YAML. A task that dies leaves no half-written video (each one
# appears by an atomic rename); resubmitting the array skips what is already stored.
#SBATCH --job-name=vid-assets-extract
#SBATCH --output=vid-assets-extract-%A_%a.out
#SBATCH --cpus-per-task=2
set -euo pipefail
VIDEOS=${1:?usage: sbatch --array=0-N extract_array.sh VIDEOS [SET]}
SET=${2:-default}
exec vid-assets extract "$VIDEOS" --set "$SET" \
    --shard "${SLURM_ARRAY_TASK_ID}/${SLURM_ARRAY_TASK_COUNT}" --device "${VID_ASSETS_DEVICE:-auto}"
