"""Shipped model names -> checkpoint files in pretrained/."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import VqcodecError

PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "pretrained"
NAMES = {"default": "vqcodec-synth-v1.pt", "default-prior": "vqcodec-synth-v1-prior.pt"}


def resolve(name_or_path: str | os.PathLike) -> Path:
    """A shipped name ("default") or a path to a checkpoint file."""
    name = str(name_or_path)
    if name in NAMES:
        for base in (Path(os.environ.get("VQCODEC_PRETRAINED", PRETRAINED_DIR)), PRETRAINED_DIR):
            if (base / NAMES[name]).exists():
                return base / NAMES[name]
        raise VqcodecError(f"the shipped model {name!r} ({NAMES[name]}) is missing from {PRETRAINED_DIR}; "
                           "reinstall vqcodec from a full clone, or pass --model PATH")
    path = Path(name)
    if not path.exists():
        raise VqcodecError(f"{path}: no such model (give a checkpoint path or one of: {', '.join(NAMES)})")
    if path.is_dir():
        path = path / "checkpoint.pt"
        if not path.exists():
            raise VqcodecError(f"{path.parent}: no checkpoint.pt in this folder")
    return path
