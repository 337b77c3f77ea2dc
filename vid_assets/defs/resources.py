"""Dagster resources: configuration once, objects from the library layer."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from vid_assets import settings
from vid_assets.extractors import DEFAULT_EXTRACTOR, Extractor, InputSpec, input_spec
from vid_assets.feature_sets import FeatureSet
from vid_assets.fit import PipelineConfig, fit_config
from vid_assets.media import VideoCatalog
from vid_assets.store import ArtifactStore, FeatureStore, open_store
from vid_assets.store.remote import is_url


class WorkspaceResource(dg.ConfigurableResource):
    """Where intermediate arrays and the partition -> source catalog live (configured once)."""

    work_dir: str = Field(default=settings.work_dir(), description="Intermediate arrays root.")
    keep_intermediates: bool = Field(
        default=settings.keep_intermediates(),
        description="Keep a video's frames / clips / embeddings after it is stored (default: deleted;"
        " env VID_ASSETS_KEEP_INTERMEDIATES=1). Runs of the whole chain write none in the first place.",
    )

    def artifacts(self, fset: FeatureSet | None = None) -> ArtifactStore:
        """Kept intermediates; each feature set its own (their frames and clips differ)."""
        if fset is None or fset.is_default:
            return ArtifactStore(Path(self.work_dir) / "artifacts")
        return ArtifactStore(Path(self.work_dir) / "sets" / fset.name / "artifacts")

    def feed_options(self) -> dict:
        """Decoder settings for the engine (``VID_ASSETS_DECODE_WORKERS`` overrides the host's default)."""
        workers = settings.decode_workers()
        return {} if workers is None else {"num_workers": workers}

    def catalog(self) -> VideoCatalog:
        return VideoCatalog(Path(self.work_dir) / "catalog")


class FeatureStoreResource(dg.ConfigurableResource):
    """The Zarr v3 feature store readers and the Hub publisher use."""

    root: str = Field(default=settings.store_dir())
    compression_level: int = Field(default=5, ge=0, le=9, description="Blosc zstd level.")
    chunk_clips: int = Field(default=256, ge=1, description="Clips per chunk along axis 0.")
    dtype: str = Field(default="float16", description="Stored feature dtype: float16 or bfloat16.")

    train_chunk_rows: int = Field(default=1024, ge=1, description="Training view rows per chunk (~ a batch).")

    def store(self, fset: FeatureSet | None = None) -> FeatureStore:
        """The store of a feature set (its own group, dtype and compression), or of the default
        set; ``root`` may be a folder or an object-store URL (``s3://bucket/features.zarr``)."""
        if fset is None or fset.is_default:
            return open_store(
                self.root, compression_level=self.compression_level, chunk_clips=self.chunk_clips, dtype=self.dtype
            )
        return open_store(
            fset.store_root(self.root),
            compression_level=fset.compression_level,
            chunk_clips=self.chunk_clips,
            dtype=fset.dtype,
        )

    def training_view_path(self, fset: FeatureSet | None = None) -> str:
        """Next to the store; a store on an object store gets its view in the data folder (the
        view is rewritten in place, which wants a local file system)."""
        suffix = "" if fset is None or fset.is_default else f"_{fset.name}"
        if is_url(self.root):
            stem = self.root.rstrip("/").rsplit("/", 1)[-1].removesuffix(".zarr")
            return str(Path(settings.data_dir()) / f"{stem}{suffix}_training.zarr")
        root = Path(self.root)
        return str(root.with_name(f"{root.stem}{suffix}_training.zarr"))


class SamplingResource(dg.ConfigurableResource):
    """Sampling plan and clip spec of the default feature set (other sets declare theirs in YAML,
    see ``vid_assets.feature_sets``). Both are part of the code version of every downstream asset;
    a run whose config changes them is refused (it would mix features of two plans in one set):
    declare another set instead. ``decode_time_budget_s`` may change per run.

    ``short_side``, ``frames_per_clip``, ``stride`` and ``crop_size`` at 0 fit the configured
    extractor (its ``input_spec``, read from the model's config without loading weights): the
    default EfficientNet-Lite0 gets 256-px frames, 2-frame clips and 224-px crops; ``r3d_18`` gets
    128-px frames and 16-frame clips of 112-px crops. Set them to override.
    """

    mode: str = Field(default="fps", description="fps | every_n | segments | keyframes (see media/plan.py).")
    fps: float = Field(default=2.0, gt=0, description="fps mode: frames sampled per second of video.")
    every_n_frames: int = Field(default=1, ge=1, description="every_n mode: keep every n-th frame.")
    segment_s: float = Field(default=5.0, gt=0, description="segments mode: segment length in seconds.")
    frames_per_segment: int = Field(default=20, ge=1, description="segments mode: frames per segment.")
    max_segments: int = Field(default=0, ge=0, description="segments mode: cap, spread uniformly (0 = all).")
    start_s: float = Field(default=0.0, ge=0, description="Trim: start time.")
    end_s: float = Field(default=0.0, ge=0, description="Trim: end time (0 = to the end).")
    short_side: int = Field(
        default=0,
        ge=0,
        description="Frames are resized to this short side (antialiased bilinear, as torchvision);"
        " 0 = the extractor's own eval resize (256 for 224-px ImageNet models).",
    )
    frames_per_clip: int = Field(
        default=0,
        ge=0,
        description="0 = the extractor's clip length (image models: 2, or one whole segment in segments mode).",
    )
    stride: int = Field(default=0, ge=0, description="Sampled frames between clip starts (0 = the clip length).")
    crop_size: int = Field(default=0, ge=0, description="0 = the extractor's input size.")
    crop: str = Field(default="center", description="center | five | ten | random (per-clip, seeded).")
    crop_reduce: str = Field(default="none", description="none: one feature row per crop; mean: average crops.")
    seed: int = Field(default=0, description="Seed for random crops (drawn once per clip, or per segment).")
    top_k: int = Field(default=5, ge=1, le=100)
    decode_time_budget_s: float = Field(default=600.0, gt=0, description="Per-video decode time limit.")

    def fits_model(self) -> bool:
        """Whether any field is 0, i.e. left to the extractor's input spec."""
        return not all((self.short_side, self.frames_per_clip, self.stride, self.crop_size))

    def config(self, fit: ExtractorResource | InputSpec | None = None) -> PipelineConfig:
        """The plan and clip spec, 0-fields fitted to ``fit`` (an extractor resource or an input
        spec; None: the default extractor). The spec is only looked up when a field needs it."""
        if not self.fits_model():
            spec = InputSpec()  # every size is set: nothing to look up
        elif isinstance(fit, InputSpec):
            spec = fit
        else:
            spec = input_spec(fit.name if fit is not None else DEFAULT_EXTRACTOR)
        return fit_config(spec, **self.model_dump(exclude={"decode_time_budget_s"}))


class ExtractorResource(dg.ConfigurableResource):
    """The default feature set's extractor, and how every set's model runs (``device``,
    ``batch_size``, ``compile``, ``runtime``: these may change per run). ``name``, ``precision``, ``output``
    and ``text_model`` decide what the features are: a run that changes them is refused; other
    models are other feature sets (``vid_assets.feature_sets``). Models load once per process."""

    name: str = Field(
        default=DEFAULT_EXTRACTOR,
        description="Registered name, timm:<arch>, hf-hub:<repo>, local-dir:<path>, tv:<model> or module:factory.",
    )
    device: str = Field(default=settings.device(), description="auto (cuda > mps > cpu), cpu, cuda, ...")
    batch_size: int = Field(default=0, ge=0, description="Images per forward pass; 0 = probe device memory (cap 512).")
    precision: str = Field(default="auto", description="auto (bf16 autocast on CUDA) | fp32 | bf16 | fp16.")
    compile: bool = Field(
        default=False,
        description="torch.compile the model: ~25 s once per process, then +14 % on the 2-core CPU VM (EfficientNet-Lite0); worth it for long runs.",
    )
    runtime: str = Field(
        default=settings.runtime(),
        description="torch | auto | onnxruntime: ONNX Runtime runs fp32 frame models on the CPU (1.1-1.5x images/s on the 2-core VM; the graph is exported once and cached, checked against PyTorch at every load); auto takes it where it applies, PyTorch elsewhere. Default: VID_ASSETS_RUNTIME, else auto.",
    )
    output: str = Field(
        default="auto",
        description="auto | pooled | head: the features are the backbone's pooled ones or the head's output; auto = head for CLIP image towers (their projection into the image-text space), pooled otherwise.",
    )
    text_model: str = Field(default="all-minilm-l6-v2", description="Embeds captions given by a manifest.")

    def load(self, log=None, fset: FeatureSet | None = None) -> Extractor:
        """The model of ``fset`` (default: this resource's own), run on this resource's device,
        batch size and compile setting; loaded once per process. Logs each real load."""
        import time

        from vid_assets.extractors.registry import loads_so_far

        fset = fset or default_set(extractor=self)
        before, t0 = loads_so_far(), time.perf_counter()
        ext = fset.load(device=self.device, batch_size=self.batch_size, compile=self.compile, runtime=self.runtime)
        if log is not None and loads_so_far() > before:
            log.info(f"vid_assets: loaded extractor {ext.id} on {ext.device} in {time.perf_counter() - t0:.2f} s")
        return ext


class HubResource(dg.ConfigurableResource):
    """Where the dataset is published. With no ``repo_id`` it mirrors the repo into ``target_dir``
    (the offline default the demo uses); ``dry_run`` plans and writes the commit's files only.
    The token comes from ``token`` (set it from the environment: ``{env: HF_TOKEN}``) or HF_TOKEN;
    it is never logged or put in metadata."""

    repo_id: str = Field(default="", description="Hub dataset repo, e.g. my-org/my-video-features.")
    target_dir: str = Field(default=str(Path(settings.data_dir()) / "hub_dataset"), description="Local mirror.")
    private: bool = Field(default=True)
    revision: str = Field(default="", description="Branch to commit to (default: main).")
    dry_run: bool = Field(default=False)
    dry_run_dir: str = Field(default=str(Path(settings.data_dir()) / "hub_dry_run"))
    license: str = Field(default="other", description="License field of the dataset card.")
    token: str | None = Field(default=None, description="Hugging Face token (write). Prefer {env: HF_TOKEN}.")
    publish_every_n_videos: int = Field(default=100, ge=1, description="Sensor: publish after this many new videos.")


# What may change per run without changing the features (everything else is the feature set's).
RUNTIME_FIELDS = {
    "sampling": {"decode_time_budget_s"},
    "extractor": {"device", "batch_size", "compile", "runtime"},
    "feature_store": {"root", "chunk_clips", "train_chunk_rows"},
}


def feature_fields(resource: dg.ConfigurableResource, kind: str) -> dict:
    """The fields of a ``sampling``, ``extractor`` or ``feature_store`` resource that decide features."""
    return {k: v for k, v in resource.model_dump().items() if k not in RUNTIME_FIELDS[kind]}


def refuse_feature_overrides(fset: FeatureSet, baseline: dict, *resources: dg.ConfigurableResource) -> None:
    """Fail the run before any work when its config changes what a set's features are: its rows
    would mix with the set's stored ones and nothing would say so (status, staleness, the view).
    ``baseline``: each resource as the deployment defines it; runtime fields may differ."""
    changes = []
    for resource in resources:
        kind = {"SamplingResource": "sampling", "ExtractorResource": "extractor"}.get(
            type(resource).__name__, "feature_store"
        )
        if kind not in baseline:
            continue
        now, was = feature_fields(resource, kind), baseline[kind]
        changes += [f"{kind}.{k}: {was.get(k)!r} -> {v!r}" for k, v in now.items() if was.get(k) != v]
    if changes:
        raise dg.Failure(
            description=(
                f"this run's config changes what the features of set {fset.name!r} are ({'; '.join(changes)}). "
                "Features from another plan, model or precision would mix with the set's stored ones, so they "
                "must be their own feature set: declare one in a feature-sets YAML (VID_ASSETS_SETS; see the "
                "README's 'Feature sets'). Per run you may change device, batch_size, compile, runtime, "
                "decode_time_budget_s and the store root."
            ),
            allow_retries=False,
        )


def default_set(
    sampling: SamplingResource | None = None,
    extractor: ExtractorResource | None = None,
    store: FeatureStoreResource | None = None,
) -> FeatureSet:
    """The default feature set as these resources describe it (``build_definitions(sampling=...,
    extractor=...)`` and ``dagster.yaml``-era deployments keep working)."""
    sampling, extractor, store = sampling or SamplingResource(), extractor or ExtractorResource(), store
    fields = sampling.model_dump(exclude={"decode_time_budget_s"}, exclude_defaults=True)
    return FeatureSet.from_dict(
        "default",
        {
            "extractor": extractor.name,
            "sampling": fields,
            "precision": extractor.precision,
            "output": extractor.output,
            "text_model": extractor.text_model,
            **({"store": {"dtype": store.dtype, "compression_level": store.compression_level}} if store else {}),
        },
    )
