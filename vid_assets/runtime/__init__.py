"""Process-level helpers the engine, loader and service share: background prefetch, host->device
copies, allocator tuning and which GPU a process takes."""
