"""A writer killed at each step of replacing a stored video (``os._exit`` in a subprocess, the
way a SIGKILL or a power cut stops it): the store never loses the video, and says which copy it has."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vid_assets.store import FeatureStore
from vid_assets.store.atomic import STAGING, TRASH

WRITER = """
import os, sys, numpy as np
import vid_assets.store.atomic as atomic
from vid_assets.store import FeatureStore

crash_after = int(sys.argv[2])  # renames done before the process dies (-1: during the write)
real, calls = os.replace, [0]

def replace(a, b):
    real(a, b)
    calls[0] += 1
    if calls[0] == crash_after:
        os._exit(9)

atomic.os.replace = replace
store = FeatureStore(sys.argv[1])
with atomic.atomic_dir(store.video_path("v"), store.root) as tmp:
    (tmp / "version").write_text("new")
    if crash_after == -1:
        os._exit(9)
"""


def _write_old(root: Path) -> None:
    store = FeatureStore(root)
    from vid_assets.store.atomic import atomic_dir

    with atomic_dir(store.video_path("v"), store.root) as tmp:
        (tmp / "version").write_text("old")


def _age(root: Path, seconds: float = 60.0) -> None:
    """Time passes: what the dead writer left is older than a live writer's swap can be."""
    t = time.time() - seconds
    for p in (root / STAGING).iterdir():
        os.utime(p, (t, t))


@pytest.mark.parametrize(("crash_after", "expected"), [(-1, "old"), (1, "new"), (2, "new"), (3, "new")])
def test_a_writer_killed_at_any_step_of_a_replace_loses_nothing(tmp_path, crash_after, expected):
    """Renames: 1 the complete copy marked ready, 2 the old copy aside, 3 the new one in place.
    Before: dying after the old copy went aside left no video at all."""
    root = tmp_path / "store"
    _write_old(root)
    out = subprocess.run([sys.executable, "-c", WRITER, str(root), str(crash_after)], capture_output=True, text=True)
    assert out.returncode == 9, out.stderr
    _age(root)
    store = FeatureStore(root)  # opening the store finishes an interrupted swap
    assert (store.video_path("v") / "version").read_text() == expected
    from vid_assets.store.atomic import collect

    collect(root)  # `vid-assets gc`: nothing left behind
    assert not list((root / STAGING).iterdir())
    assert not (root / TRASH).exists() or not list((root / TRASH).iterdir())
    assert (store.video_path("v") / "version").read_text() == expected


def test_a_fresh_ready_copy_is_left_to_its_live_writer(tmp_path):
    """Recovery never races a live writer: a copy marked ready a moment ago is not touched."""
    root = tmp_path / "store"
    _write_old(root)
    out = subprocess.run([sys.executable, "-c", WRITER, str(root), "1"], capture_output=True, text=True)
    assert out.returncode == 9
    FeatureStore(root)
    assert (FeatureStore(root).video_path("v") / "version").read_text() == "old"
    assert [p.suffix for p in sorted((root / STAGING).iterdir())] == [".ready", ".target"]
