"""ONNX Runtime as a frame model's forward on the CPU (``runtime: auto``, the default, or ``onnxruntime``).

Why: on the 2-core AVX2 VM ONNX Runtime's kernels run the folded ResNet-50 at 1.1-1.2x and
EfficientNet-Lite0 at 1.3-1.5x PyTorch's images/s, outputs within 1e-6 of the largest
(``benchmarks/onnxrt.py``).

An export costs ~2 s a model, so the exported graph is cached, without its weights: its
initializers keep the state dict's names and each session gets the weights from memory
(``add_external_initializers``; ``add_initializer`` is ignored once ORT optimises the graph). One
cached graph thus serves every checkpoint of an architecture, random weights included, and the
cache holds kilobytes, not a second copy of each model. Every session is checked against PyTorch
on a probe before it is used; a graph that disagrees is dropped and the caller keeps PyTorch.

The exporter is torch's TorchScript one (``dynamo=False``): 2 s for ResNet-50 against the
``torch.export`` one's 14 s here, with no extra packages; torch is pinned, and an exporter that
fails only means the model runs in PyTorch.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sys
import threading
import uuid
import warnings
from pathlib import Path

import numpy as np
import torch

GRAPH_VERSION = 1  # bump when what is exported changes
_EMBEDDED_LIMIT = 1 << 16  # bytes of non-state-dict constants a shareable graph may carry


class OrtForward:
    """Called like the module it replaces: float32 ``[N, 3, S, S]`` -> ``[N, D]``.

    One pass at a time: ORT's CPU arena keeps (and never returns) the peak of what ran at once,
    so concurrent passes would grow it to their sum, while one pass already takes every core it
    is given. Even so the arena keeps one pass's buffers for the next: what batch runs want
    (without it EfficientNet-Lite0 makes 12 % fewer images/s here, ResNet-50 3 %), not what an
    idle service should hold; :meth:`without_arena` is the service's."""

    def __init__(self, session, weights: dict[str, np.ndarray], graph: bytes) -> None:
        self._session, self._weights = session, weights  # the session reads the weights' memory
        # what another session is made from: kilobytes, unless the graph holds its weights (not kept)
        self._graph = graph if weights else None
        self._input = session.get_inputs()[0].name
        self._lock = threading.Lock()

    @property
    def arena(self) -> bool:
        return self._session.get_session_options().enable_cpu_mem_arena

    def without_arena(self) -> OrtForward:
        """The same graph and weights in a session that returns each pass's buffers (a new
        session, ~0.1-0.3 s): for a long-lived service, whose memory should go back once idle.
        A graph that embeds its weights was not kept: that one stays as it is."""
        if not self.arena or self._graph is None:
            return self
        return _session(self._graph, list(self._weights), self._weights, arena=False)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        feed = {self._input: np.ascontiguousarray(x.detach().cpu().numpy())}
        with self._lock:
            (y, *_) = self._session.run(None, feed)
        return torch.from_numpy(y)


def onnx_forward(model: torch.nn.Module, probe: torch.Tensor, cache_dir: str | os.PathLike[str]) -> OrtForward:
    """``model`` (eval, on the CPU) as an ONNX Runtime session, its graph from ``cache_dir`` when an
    export of the same architecture is there (a cached graph that fails to load or to match is
    dropped and exported again). Raises when ONNX Runtime is missing, the export fails or the
    session's output on ``probe`` is not PyTorch's."""
    import onnxruntime  # noqa: F401  (the clear ImportError before an export is attempted)

    state = model.state_dict()
    weights = {k: v.detach().contiguous().numpy() for k, v in state.items()}
    check = probe.flip(-1)  # not the export's input: a graph that traced its output as a constant fails
    with torch.inference_mode():
        ref = model(check).float()
    path = Path(cache_dir) / f"{graph_key(model, probe, state)}.onnx"
    cached = _read(path)
    if cached is not None:
        try:
            return _checked(_session(*cached, weights), check, ref)
        except Exception:  # noqa: BLE001 - a stale or damaged entry: export again
            path.unlink(missing_ok=True)
    graph, names = _export(model, probe, set(weights))
    fwd = _checked(_session(graph, names, weights), check, ref)
    if names:  # a graph that embeds its weights is good for these weights only
        with contextlib.suppress(OSError):  # a read-only cache: the next load exports again
            _write(path, graph, names)
    return fwd


def _checked(fwd: OrtForward, x: torch.Tensor, ref: torch.Tensor) -> OrtForward:
    got = fwd(x)
    bound = 1e-4 * max(1.0, float(ref.abs().max()))
    if got.shape != ref.shape or not torch.allclose(got, ref, rtol=1e-3, atol=bound):
        err = float((got - ref).abs().max()) if got.shape == ref.shape else f"shape {tuple(got.shape)}"
        raise RuntimeError(f"the ONNX graph disagrees with PyTorch on a probe ({err} against {bound:.2g})")
    return fwd


def graph_key(model: torch.nn.Module, probe: torch.Tensor, state: dict[str, torch.Tensor]) -> str:
    """What the exported graph depends on except the weights' values: the architecture as printed,
    every state-dict entry's name, shape and dtype, the input's size and the versions involved."""
    import onnxruntime

    top = sys.modules.get(type(model).__module__.split(".")[0])
    h = hashlib.sha256(f"{GRAPH_VERSION} {torch.__version__} {onnxruntime.__version__}".encode())
    h.update(f"{type(model).__module__}.{type(model).__qualname__} {getattr(top, '__version__', '')}".encode())
    h.update(f"{tuple(probe.shape[1:])} {probe.dtype}\n{model!r}".encode())
    for k, v in state.items():
        h.update(f"{k}:{tuple(v.shape)}:{v.dtype};".encode())
    return h.hexdigest()[:32]


def _export(model: torch.nn.Module, probe: torch.Tensor, state: set[str]) -> tuple[bytes, list[str]]:
    """The graph with its state-dict initializers marked external (no data), and their names."""
    import onnx
    from onnx.external_data_helper import set_external_data

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
        torch.onnx.export(
            model,
            (probe,),
            buf,
            dynamo=False,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "n"}, "y": {0: "n"}},
            do_constant_folding=False,  # parameters stay initializers under their own names
        )
    proto = onnx.load_from_string(buf.getvalue())
    if sum(t.ByteSize() for t in proto.graph.initializer if t.name not in state) > _EMBEDDED_LIMIT:
        return buf.getvalue(), []  # weights under other names: a graph for these weights only
    names = []
    for t in proto.graph.initializer:
        if t.name in state:
            set_external_data(t, location="in-memory")  # never read: the session is given the data
            t.data_location = onnx.TensorProto.EXTERNAL
            t.ClearField("raw_data")
            names.append(t.name)
    return proto.SerializeToString(), names


def _session(graph: bytes, names: list[str], weights: dict[str, np.ndarray], arena: bool = True) -> OrtForward:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()  # the cores torch would use, no more
    opts.inter_op_num_threads = 1
    opts.enable_cpu_mem_arena = arena
    # idle pool threads sleep instead of spinning: alone the same images/s, beside other work (the
    # daemon, decode, another run or test) ~5 % more for EfficientNet-Lite0, and no core taken from it
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if names:
        opts.add_external_initializers(names, [ort.OrtValue.ortvalue_from_numpy(weights[n]) for n in names])
    session = ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])
    return OrtForward(session, {n: weights[n] for n in names}, graph)


def _read(path: Path) -> tuple[bytes, list[str]] | None:
    try:
        return path.read_bytes(), json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return None


def _write(path: Path, graph: bytes, names: list[str]) -> None:
    """Names first, graph last, each by rename: a reader that finds the graph finds its names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for target, data in ((path.with_suffix(".json"), json.dumps(names).encode()), (path, graph)):
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}")
        tmp.write_bytes(data)
        os.replace(tmp, target)
