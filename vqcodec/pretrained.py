"""Shipped model names -> checkpoint files in pretrained/."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from .errors import VqcodecError

PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "pretrained"  # a clone / editable install
INSTALLED_DIR = Path(sys.prefix) / "share" / "vqcodec" / "pretrained"  # `pip install .` puts them here
NAMES = {"default": "vqcodec-real-ladder.pt", "default-prior": "vqcodec-real-ladder-prior.pt",
         # 62.5 frames/s x 4 residual codebooks: a bitrate ladder, 0.56 / 1.1 / 1.7 / 2.25 kbps (issue 22)
         "vqcodec-real-ladder": "vqcodec-real-ladder.pt", "vqcodec-real-ladder-prior": "vqcodec-real-ladder-prior.pt",
         # the default before it: 250 tokens/s, 2.25 kbps, fast and WaveNet decoders
         "vqcodec-real-v2": "vqcodec-real-v2.pt", "vqcodec-real-v2-prior": "vqcodec-real-v2-prior.pt",
         # 62.5 tokens/s + pitch stream, 0.88 kbps (recipes/real/lowrate.toml)
         "vqcodec-real-lowrate": "vqcodec-real-lowrate.pt", "vqcodec-real-lowrate-prior": "vqcodec-real-lowrate-prior.pt",
         # trained for voice conversion (issue 20; recipes/real/conversion): what `convert` uses by default
         "convert": "vqcodec-real-convert.pt", "vqcodec-real-convert": "vqcodec-real-convert.pt",
         # the previous model, kept loadable by name (and its .vqc files decodable)
         "vqcodec-synth-v1": "vqcodec-synth-v1.pt", "vqcodec-synth-v1-prior": "vqcodec-synth-v1-prior.pt"}


# the prior that entropy-codes each shipped model's tokens (what `encode --entropy` uses by default)
PRIORS = {"default": "default-prior", "vqcodec-real-ladder": "vqcodec-real-ladder-prior",
          "vqcodec-real-v2": "vqcodec-real-v2-prior",
          "vqcodec-real-lowrate": "vqcodec-real-lowrate-prior", "vqcodec-synth-v1": "vqcodec-synth-v1-prior"}
# the priors decode / info try, in order, for an entropy-coded file (each is loaded only if needed)
SHIPPED_PRIORS = ("default-prior", "vqcodec-real-v2-prior", "vqcodec-real-lowrate-prior")


def shipped_models() -> list[str]:
    """One name per shipped model file (priors left out), "default" first: the models `decode`
    tries, in this order, for a .vqc file when no model is named (each .vqc names its model's id)."""
    names, files = [], set()
    for name, file in NAMES.items():
        if not name.endswith("-prior") and file not in files:
            names.append(name)
            files.add(file)
    return names


def prior_of(model_name: str) -> str:
    """The shipped prior of a shipped model name; "default-prior" for anything else (a path)."""
    return PRIORS.get(str(model_name), "default-prior")


def search_dirs() -> list[Path]:
    """Where shipped models are looked for: $VQCODEC_PRETRAINED, the clone, the installed copy."""
    env = os.environ.get("VQCODEC_PRETRAINED")
    return ([Path(env)] if env else []) + [PRETRAINED_DIR, INSTALLED_DIR]


def resolve(name_or_path: str | os.PathLike) -> Path:
    """A shipped name ("default") or a path to a checkpoint file."""
    name = str(name_or_path)
    if name in NAMES:
        for base in search_dirs():
            if (base / NAMES[name]).exists():
                return base / NAMES[name]
        raise VqcodecError(f"the shipped model {name!r} ({NAMES[name]}) is missing from "
                           f"{' and '.join(map(str, search_dirs()))}; reinstall vqcodec from a full clone, "
                           "or pass --model PATH")
    path = Path(name)
    if not path.exists():
        raise VqcodecError(f"{path}: no such model (give a checkpoint path or one of: {', '.join(NAMES)})")
    if path.is_dir():
        path = path / "checkpoint.pt"
        if not path.exists():
            raise VqcodecError(f"{path.parent}: no checkpoint.pt in this folder")
    return path
