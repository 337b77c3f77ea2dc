"""Parts of the Dagster instance that dagster.yaml names: the batched SQLite event log on kept
engines, and the warm run launcher. Not definitions: they serve every code location of the instance."""
