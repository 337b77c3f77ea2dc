"""What machine a benchmark ran on, for its JSON: the same model and code ran at 116 img/s on one
2-core VM and 250 on another, so a number without its CPU says little."""

from __future__ import annotations

import os
import platform


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_host() -> dict:
    return {"cpu_model": cpu_model(), "cpu_count": os.cpu_count(), "machine": platform.machine()}
