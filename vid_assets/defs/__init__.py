"""Dagster wiring, one folder per domain: what a concern's assets, sensors and checks are, found
by its folder's name. No video logic lives here (that is the library: media, clips, extractors,
store, engine).

- ``videos/``: the per-video partitions, the four chained assets of each feature set, the run
  step that streams a batch of videos through the engine, its per-video events, the sensors that
  find new videos and resume failed ones, and the progress report.
- ``dataset/``: each set's training view and the Hugging Face dataset, and the publish sensor.
- ``resources.py``: the configurable parts the Launchpad shows (paths, model, plan, Hub).
- ``build.py``: ``build_definitions``, which ``vid_assets/definitions.py`` calls.

Kept light on purpose: importing a domain module must not import the rest.
"""
