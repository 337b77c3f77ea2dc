"""The one Definitions object Dagster loads (``dagster dev -m vid_assets.definitions``)."""

from vid_assets.defs.build import build_definitions

defs = build_definitions()
