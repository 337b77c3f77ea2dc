"""The videos domain: partitions, the per-video assets, their run step, sensors and progress."""
