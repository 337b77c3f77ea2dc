"""``vid-assets`` command line: one module per concern, each adding its commands to ``app``.

- ``deployment``: demo, register, status, gc, summary (the Dagster deployment's data)
- ``extract``: features for files or URLs on the engine, no Dagster needed
- ``datasets``: feature sets, exports for the old scripts, publishing to the Hub
- ``models``: what an extractor takes and gives, what a video holds
- ``serving``: the prediction service
"""

# isort: off
# the order of these imports is the order of the commands in --help
from vid_assets.cli import deployment, extract, datasets, models, serving  # noqa: F401 - they register the commands
from vid_assets.cli.options import app

# isort: on

__all__ = ["app"]
