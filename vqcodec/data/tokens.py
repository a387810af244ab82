"""Token corpora for the prior: a tree of .vqc files written by `vqcodec encode CORPUS -o TOKENS`."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .. import codes
from ..errors import VqcodecError
from ..files import walk


def load_token_corpus(root: str | os.PathLike, expect_model_id: str | None = None
                      ) -> list[tuple[str, str, np.ndarray]]:
    """(utterance id, speaker, tokens) for every .vqc under root, sorted by path. The speaker is
    the one recorded in the file, else the first folder level under root. Files of another model
    are refused (their tokens index another codebook). Files of a bitrate-ladder model give their
    first codebook: what the prior models (the entropy coder packs the others)."""
    root = Path(root)
    if not root.is_dir():
        raise VqcodecError(f"{root}: no such token directory (make one with `vqcodec encode CORPUS -o {root}`)")
    files = walk(root, (codes.SUFFIX,))
    if not files:
        raise VqcodecError(f"{root}: no .vqc files (make them with `vqcodec encode CORPUS -o {root}`)")
    out = []
    for f in files:
        tf = codes.read(f)
        if expect_model_id is not None and tf.model_id.lower() != expect_model_id.lower():
            raise VqcodecError(f"{f}: tokens of VQ-VAE model {tf.model_id}, but the prior is for model "
                               f"{expect_model_id} ([prior] vqvae): their codebooks differ; encode the "
                               f"corpus with that model (`vqcodec encode CORPUS -o {root} --model ...`)")
        rel = f.relative_to(root)
        speaker = tf.speaker or (rel.parts[0] if len(rel.parts) > 1 else "")
        out.append((str(rel.with_suffix("")), speaker, tf.tokens if tf.codebooks == 1 else tf.tokens[:, 0].copy()))
    return out
