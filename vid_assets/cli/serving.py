"""``vid-assets serve``: per-clip predictions as Server-Sent Events (``vid_assets/serve/app.py``)."""

from __future__ import annotations

from typing import Annotated

import typer

from vid_assets.cli.options import (
    Args,
    Output,
    app,
    feature_set,
    parse_args,
    plan_options,
    set_option,
)


def _opt(kind, help: str):
    return Annotated[kind, typer.Option(help=help)]


Host = _opt(str, "Interface to bind.")
Port = _opt(int, "TCP port.")
ExtractorName = _opt(str, "Extractor name (as in the pipeline's resource).")
DeviceName = _opt(str, "auto (cuda > mps > cpu), cpu, cuda ...")
BatchSize = _opt(int, "Images per forward pass (0 = probe).")
MaxUploadMb = _opt(float, "Largest accepted upload.")
MaxDuration = _opt(float, "Longest accepted video / live stream (s).")
MaxStreams = _opt(int, "Concurrent predictions; more get 429.")
Budget = _opt(float, "Wall-time budget per request (s).")
MaxWaitMs = _opt(float, "Dynamic batching: longest wait for other clips.")
AllowHost = _opt(list[str] | None, "Host GET /v1/predict?url= may pull from (repeat; '*.example.com').")


@app.command(rich_help_panel="Serving")
@plan_options
def serve(
    host: Host = "127.0.0.1",
    port: Port = 8000,
    extractor: ExtractorName = "",
    device: DeviceName = "",
    batch_size: BatchSize = 0,
    output: Output = "auto",
    arg: Args = None,
    set_name: Annotated[str | None, set_option("serve its model, args and plan")] = None,
    max_upload_mb: MaxUploadMb = 1024,
    max_duration: MaxDuration = 1800,
    max_streams: MaxStreams = 8,
    budget: Budget = 600,
    max_wait_ms: MaxWaitMs = 5,
    allow_host: AllowHost = None,
    plan: dict | None = None,
):
    """Serve per-clip predictions as Server-Sent Events (see vid_assets/serve/app.py)."""
    from vid_assets import settings
    from vid_assets.extractors import DEFAULT_EXTRACTOR
    from vid_assets.extractors.loading import load_extractor
    from vid_assets.fit import fit_config
    from vid_assets.serve import Limits, Predictor
    from vid_assets.serve.app import serve as run_server

    device = device or settings.device()
    if set_name is not None:  # exactly what the set's assets compute
        _, fset = feature_set(set_name)
        ext = fset.load(device=device, batch_size=batch_size)
        config = fset.config(ext)
    else:  # every plan the assets take, fitted to the model by the same function (vid_assets/fit.py)
        ext = load_extractor(
            extractor or DEFAULT_EXTRACTOR, device=device, batch_size=batch_size, output=output, args=parse_args(arg)
        )
        config = fit_config(ext, **plan)
    limits = Limits(
        max_upload_bytes=int(max_upload_mb * (1 << 20)),
        max_duration_s=max_duration,
        max_streams=max_streams,
        request_budget_s=budget,
    )
    typer.echo(f"vid-assets serve: {ext.id} on {ext.device}, http://{host}:{port}/", err=True)
    predictor = Predictor(ext, config, max_wait_s=max_wait_ms / 1000)
    run_server(predictor, host=host, port=port, limits=limits, allow_hosts=tuple(allow_host or ()))
