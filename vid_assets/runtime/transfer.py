"""Host -> accelerator copies that overlap compute.

A copy issued on the compute stream waits for the kernels queued before it, so the next batch's
pixels would only start moving once the current batch's model pass ends. ``upload`` issues it on a
side stream instead (the copy engine runs beside the kernels) and makes the compute stream wait for
it, so with one batch queued ahead (``extractors.iter_pipelined``) the transfer is hidden.
"""

from __future__ import annotations

import torch

_copy_streams: dict[torch.device, torch.cuda.Stream] = {}


def upload(t: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """``t`` on ``device``; page-locked host tensors go to CUDA on a side stream (see module doc)."""
    device = torch.device(device)
    if device.type != "cuda" or t.device.type != "cpu" or not t.is_pinned():
        return t.to(device, non_blocking=True)
    if device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    stream = _copy_streams.get(device)
    if stream is None:
        stream = _copy_streams[device] = torch.cuda.Stream(device)
    compute = torch.cuda.current_stream(device)
    with torch.cuda.stream(stream):
        out = t.to(device, non_blocking=True)
    compute.wait_stream(stream)
    out.record_stream(compute)  # its memory belongs to the copy stream's pool: keep it until used
    return out
