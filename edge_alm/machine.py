"""Who ran a benchmark: CPU, cores, memory, OS and onnxruntime, so results from different
boards can be put side by side."""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key = line.split(":")[0].strip().lower()
            if key in ("model name", "hardware", "cpu model", "processor") and ":" in line:
                value = line.split(":", 1)[1].strip()
                if value and not value.isdigit():
                    return value
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _board() -> str | None:
    """The board's name where the kernel publishes it (Raspberry Pi and most ARM boards)."""
    try:
        return Path("/proc/device-tree/model").read_text().strip("\x00\n ") or None
    except OSError:
        return None


def _memory_gb() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def machine_identity() -> dict:
    import onnxruntime as ort

    return {
        "host": socket.gethostname(),
        "board": _board(),
        "cpu": _cpu_model(),
        "arch": platform.machine(),
        "cores": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "providers": ort.get_available_providers(),
    }
