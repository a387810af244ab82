"""Helpers the bench scripts share (run as `python bench/X.py`, so this folder is on sys.path)."""
from __future__ import annotations

import os
import resource


def load_avg() -> str:
    """The 1, 5 and 15 minute load averages, for the record of how busy the machine was."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def cpu_children() -> float:
    """CPU seconds (user + system) used so far by finished child processes."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime
