"""One dynamic partition per video; keys come from ``media.identity.partition_key``."""

import dagster as dg

videos_partitions = dg.DynamicPartitionsDefinition(name="videos")
