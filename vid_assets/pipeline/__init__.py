"""Dagster wiring: partitions, resources, assets, sensors. No video logic lives here."""
