"""Checkpoints: one dict of tensors and plain data, written atomically, read with weights_only=True
(never unpickles code).

    {"format": "vqcodec", "version": 1, "kind": "vqvae" | "prior",
     "config": Config.to_dict(), "meta": {"speakers": [...], ...}, "model": state_dict,
     # training checkpoints only:
     "step": int, "optimizer": state_dict, "rng": {"torch": ByteTensor, "cuda": [...]},
     "disc_optimizer": state_dict (a fast-decoder discriminator), "ema": {param name: tensor} (train.ema_decay),
     "history": [{"step": ..., "valid_loss": ...}, ...]}
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

import torch

from .config import Config
from .errors import VqcodecError
from .files import atomic_path

FORMAT_VERSION = 1


def save(path: str | os.PathLike, state: dict[str, Any]) -> None:
    state = {"format": "vqcodec", "version": FORMAT_VERSION, **state}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise VqcodecError(f"{path}: no such checkpoint")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for a bad file
        raise VqcodecError(f"{path}: not a vqcodec checkpoint ({str(e).splitlines()[0][:120]})") from None
    if not isinstance(state, dict) or state.get("format") != "vqcodec":
        raise VqcodecError(f"{path}: not a vqcodec checkpoint")
    if state.get("version", 0) > FORMAT_VERSION:
        raise VqcodecError(f"{path}: checkpoint version {state['version']} is newer than this vqcodec "
                           f"supports ({FORMAT_VERSION}); upgrade vqcodec")
    return state


def config_of(state: dict[str, Any]) -> Config:
    return Config.from_dict(state["config"])


DECODER_PREFIXES = ("fast_decoder.", "fast_discriminator.")  # what `export(tokenizer_only=True)` leaves out


def export(src: str | os.PathLike, dst: str | os.PathLike, tokenizer_only: bool = False) -> None:
    """Strip optimizer and RNG state: what ships in pretrained/. A run with a weight EMA
    (train.ema_decay) ships the averaged weights of the parameters it trained. tokenizer_only: also
    leave out the fast decoder (and its discriminator) and the training history: the start of a new
    decoder trained on the frozen tokenizer (`train.init` with `train.stage = "fast"`)."""
    state = load(src)
    keep = {k: state[k] for k in ("kind", "config", "meta", "model", "step", "history") if k in state}
    if "ema" in state:
        keep["model"] = {**state["model"], **state["ema"]}
    if tokenizer_only:
        keep = {k: v for k, v in keep.items() if k not in ("step", "history")}
        keep["model"] = {k: v for k, v in keep["model"].items() if not k.startswith(DECODER_PREFIXES)}
    save(dst, keep)


_V2_MODEL_KEYS = ("level_rms", "voice", "fast", "loss", "pitch")
_TRAINING_ONLY_MODEL_KEYS = ("invariance",)  # shape the weights (hashed), not how tokens are computed
_V2_ENCODER_KEYS = ("widths", "activation")
# keys added after models were shipped: left out of the hash at their defaults (old ids kept)
_LATER_DEFAULTS = {"encoder": {"input": "wave", "normalize": False}, "voice": {"norm": "tanh", "input": "logmel"},
                   "quantizer": {"codebooks": 1}}
_TRAINING_ONLY_KEYS = {"quantizer": ("dropout",)}  # how a model trains, not how it makes tokens: never hashed
_CODEBOOK = re.compile(r"(^|\.)quantizer\.(stages\.\d+\.)?codebook$")  # one codebook, or each residual one


def model_id(state_dict: dict[str, torch.Tensor], config: dict) -> str:
    """16 hex chars identifying a model's TOKENIZER: a .vqc file names the tokenizer whose tokens
    it holds, and any decoder trained on that tokenizer decodes it.

    v1 models (no voice encoder, no fast decoder): the hash of the whole model config (without the
    keys v2 added, so ids of v1 files never change) and the codebook, as v1 computed it.
    v2 models: the hash of what defines the tokens and the voice vector only (level, encoder,
    quantizer, voice and (when on) pitch configs; encoder, codebook and voice-encoder weights), so training another
    decoder on the frozen tokenizer keeps the id. Training-only settings (model.invariance,
    model.quantizer.dropout) never enter it; residual codebooks (codebooks > 1) do, all of them."""
    is_v2 = config.get("voice", {}).get("dim", 0) or config.get("fast", {}).get("blocks", 0)
    config = {**config, **{section: {k: v for k, v in config[section].items()
                                     if not (k in defaults and v == defaults[k])
                                     and k not in _TRAINING_ONLY_KEYS.get(section, ())}
                           for section, defaults in _LATER_DEFAULTS.items() if section in config}}
    if not is_v2:
        config = {k: v for k, v in config.items() if k not in _V2_MODEL_KEYS + _TRAINING_ONLY_MODEL_KEYS}
        config["encoder"] = {k: v for k, v in config["encoder"].items() if k not in _V2_ENCODER_KEYS}
        h = hashlib.sha256(repr(sorted(_flatten(config))).encode())
        keys = sorted(k for k in state_dict if _CODEBOOK.search(k))
    else:
        pitch = config.get("pitch", {})
        config = {k: config[k] for k in ("sample_rate", "level_rms", "encoder", "quantizer", "voice")}
        if pitch.get("levels", 0):  # the pitch stream is part of what a file holds (ids without it unchanged)
            config["pitch"] = pitch
        h = hashlib.sha256(b"vqcodec-tokenizer-v2" + repr(sorted(_flatten(config))).encode())
        keys = sorted(k for k in state_dict if _CODEBOOK.search(k)
                      or k.startswith(("encoder.", "voice_encoder.")))
    for key in keys:
        h.update(state_dict[key].detach().cpu().float().numpy().tobytes())
    return h.hexdigest()[:16]


def _flatten(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flatten(v, f"{prefix}{k}.")
        else:
            yield (f"{prefix}{k}", repr(v))
