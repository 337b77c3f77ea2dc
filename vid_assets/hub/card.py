"""The dataset card: the README the Hub shows, with its YAML configs, counts and checksums."""

from __future__ import annotations

import json
from pathlib import Path

from vid_assets.hub.layout import CLIP_COLUMNS, VIDEOS, plan_description


def write_card(manifest: dict, repo_id: str | None, license: str, path: Path) -> None:
    from huggingface_hub import DatasetCard, DatasetCardData

    total_clips = manifest["num_clips"]
    data = DatasetCardData(
        license=license,
        pretty_name=f"vid_assets features ({manifest['extractor']})",
        tags=["video", "embeddings", "vid_assets"],
        size_categories=_size_category(total_clips),
        configs=[
            {"config_name": "clips", "data_files": [{"split": "train", "path": "data/*.parquet"}], "default": True},
            {"config_name": "videos", "data_files": [{"split": "train", "path": VIDEOS}]},
        ],
    )
    name = repo_id or "<user>/<dataset>"
    plan = manifest["sampling_plan"]
    checks = "\n".join(f"| `{p}` | `{h}` |" for p, h in sorted(manifest["sha256"].items()))
    content = f"""---
{data.to_yaml()}
---

# Video features: {manifest["extractor"]}

Per-clip embeddings extracted with [vid_assets](https://github.com/) from
{manifest["num_videos"]:,} videos ({total_clips:,} clips).

| | |
| --- | --- |
| extractor | `{manifest["extractor"]}` |
| feature dim / dtype | {manifest["dim"]} / float32 (stored as float16 upstream) |
| features | {_OUTPUTS.get(manifest.get("output", "pooled"), manifest.get("output"))} |
| sampling plan | `{json.dumps(plan, sort_keys=True)}` ({plan_description(plan)}) |
| clip spec / crops | `{json.dumps(manifest["clip_spec"], sort_keys=True)}` (crops averaged per clip) |
| videos / clips | {manifest["num_videos"]:,} / {total_clips:,} |

## Load

```python
from datasets import load_dataset
clips = load_dataset("{name}", "clips", split="train")     # {", ".join(manifest.get("columns", CLIP_COLUMNS))}
videos = load_dataset("{name}", "videos", split="train")   # one row per video
```

```python
import pandas as pd
df = pd.read_parquet("hf://datasets/{name}/data/")
```

The Zarr training view (`vid_assets.loader.ClipDataset`) reads local copies or any fsspec URL,
including `hf://datasets/{name}/...` through huggingface_hub's filesystem.

## Files and checksums (sha256)

| file | sha256 |
| --- | --- |
{checks}
"""
    DatasetCard(content).save(path)


_OUTPUTS = {
    "pooled": "the model's pooled features (before any classifier)",
    "head": "the model head's output (for a CLIP image tower: its projection into the image-text space)",
}


def _size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return label
    return "1M<n<10M"
