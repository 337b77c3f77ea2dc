"""Which GPU a process takes on a multi-GPU host: real processes, real lock files.

No CUDA here, so the device ids are given; the claim is the same code ``resolve_device("auto")``
runs when ``torch.cuda.device_count() > 1`` (exercised on real GPUs by ``test_cuda.py``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter

import pytest
import torch

from vid_assets.extractors import resolve_device
from vid_assets.runtime.devices import claim_device, visible_cuda_ids

HOLDER = """
import sys
from vid_assets.runtime.devices import claim_device
print(claim_device(sys.argv[2].split(","), sys.argv[1]), flush=True)
sys.stdin.readline()  # hold the claim until told to go
"""


def _holder(lock_dir, ids: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock_dir), ids],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _stop(procs):
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=30)


def test_processes_take_free_devices_first_then_share_evenly_and_a_crash_frees_its_device(tmp_path):
    procs = []
    try:
        got = []
        for _ in range(5):  # one after another: each sees the claims before it
            procs.append(_holder(tmp_path, "0,1,2"))
            got.append(int(procs[-1].stdout.readline()))
        assert got == [0, 1, 2, 0, 1]  # every device once before any is shared
        procs[1].send_signal(signal.SIGKILL)  # a crashed step: the OS drops its lock
        procs[1].wait(timeout=30)
        procs.append(_holder(tmp_path, "0,1,2"))
        assert int(procs[-1].stdout.readline()) == 1  # the crashed process's place, free again
        procs.append(_holder(tmp_path, "0,1,2"))
        assert int(procs[-1].stdout.readline()) == 2  # then the device held once
    finally:
        _stop(procs)


def test_processes_starting_together_each_get_their_own_device(tmp_path):
    procs = [_holder(tmp_path, "GPU-aaaa,GPU-bbbb") for _ in range(4)]
    try:
        counts = Counter(int(p.stdout.readline()) for p in procs)
        assert counts == {0: 2, 1: 2}
    finally:
        _stop(procs)


def test_a_process_keeps_its_device_and_its_forked_children_share_it(tmp_path):
    first = claim_device(["0", "1"], tmp_path)
    assert claim_device(["0", "1"], tmp_path) == first
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # a DataLoader worker forked from the step: same device, no second claim
        os.write(write, str(claim_device(["0", "1"], tmp_path)).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    assert int(os.read(read, 8)) == first
    other = _holder(tmp_path, "0,1")  # another process sees this one's claim
    try:
        assert int(other.stdout.readline()) == 1 - first
    finally:
        _stop([other])


def test_devices_are_named_as_cuda_visible_devices_names_them(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3, 5")
    assert visible_cuda_ids(2) == ["3", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-1f2e,GPU-9a8b")
    assert visible_cuda_ids(2) == ["GPU-1f2e", "GPU-9a8b"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert visible_cuda_ids(3) == ["0", "1", "2"]
    with pytest.raises(ValueError):
        claim_device([])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only host's answer")
def test_auto_on_a_host_without_gpus_is_the_cpu_and_claims_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("VID_ASSETS_DEVICE_LOCKS", str(tmp_path / "locks"))
    assert resolve_device("auto") == torch.device("cpu")
    assert not (tmp_path / "locks").exists()
