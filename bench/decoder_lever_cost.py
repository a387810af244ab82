"""Cost per training step of issue 22's decoder levers (recipes/real/decoder_study.sh), each against
the study's base (the low-rate fast decoder, stage "fast": the tokenizer frozen) in the same run.

    python bench/decoder_lever_cost.py                     # ~2 minutes, one thread
    python bench/decoder_lever_cost.py --steps 20 --rounds 3

Rows: base, source (source-filter: + a gain head and the harmonic source's STFT), harmonic (the
source's log spectrum as input features), phase (+ the APNet phase losses: two STFTs and an
iSTFT), nfft (n_fft 2048 at hop 256), large (10 blocks of 256 channels), gan (+ the discriminator's
generator and discriminator steps). Weight EMA adds one parameter copy per step (not timed).
Steps are timed alternately in rounds, so load changes hit every row alike.
"""
from __future__ import annotations

import copy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from train_throughput import cost_per_step_main  # noqa: E402



def variants(cfg):
    """decoder_study.sh's variants of the low-rate config, in stage "fast"."""
    cfg = copy.deepcopy(cfg)
    cfg.train.stage = "fast"
    out = {}
    for name in ("base", "source", "harmonic", "phase", "nfft", "large", "gan"):
        c = copy.deepcopy(cfg)
        if name in ("source", "harmonic"):
            c.model.fast.excitation = name
        elif name == "phase":
            c.model.loss.phase_weight = 0.5
        elif name == "nfft":
            c.model.fast.n_fft = 2048
        elif name == "large":
            c.model.fast.blocks, c.model.fast.channels = 10, 256
        elif name == "gan":
            c.model.loss.adversarial_weight = 1.0
        out[name] = c
    return out


def main():
    cost_per_step_main(__doc__, ROOT / "recipes/real/lowrate.toml", variants, "base")


if __name__ == "__main__":
    main()
