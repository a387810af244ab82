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

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import load_avg  # noqa: E402
from conversion_train_cost import report_rows  # noqa: E402
from train_throughput import measure  # noqa: E402

from vqcodec.config import load_config  # noqa: E402


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
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "recipes/real/lowrate.toml"))
    ap.add_argument("--steps", type=int, default=10, help="timed steps per variant and round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    print(f"config {args.config} (stage fast): batch {cfg.train.batch_size} x {cfg.data.window_seconds} s crops, "
          f"{args.threads} thread(s), {args.rounds} rounds x {args.steps} steps; load before: {load_avg()}")
    rows = {name: [] for name in variants(cfg)}
    with tempfile.TemporaryDirectory() as tmp:
        cfg.data.cache_dir = cfg.train.out_dir = tmp
        for _ in range(args.rounds):
            for name, c in variants(cfg).items():
                rows[name].append(measure(c, torch.device("cpu"), args.steps, 1)["s_per_step"])
    report_rows(cfg, rows, "base")


if __name__ == "__main__":
    t0 = time.time()
    main()
    print(f"({time.time() - t0:.0f} s)")
