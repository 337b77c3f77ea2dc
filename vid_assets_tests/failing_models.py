"""Extractors that fail the way real ones do, for tests of what a failure leaves behind."""

from vid_assets.extractors import create_extractor


def oom_on_bright(**kwargs):
    """The default model, raising CUDA's out-of-memory error on a pass of very bright frames."""
    ext = create_extractor("efficientnet_lite0", **kwargs)
    forward = ext._forward

    def guarded(x):
        if x.float().mean() > 0.9:  # white frames normalise to ~1 (Lite0: mean 0.5, std 0.5)
            raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return forward(x)

    ext._forward = guarded
    return ext
