"""Cost per training step of issue 20's conversion levers, each against the plain low-rate design
measured in the same run (recipes/real/conversion/config.toml and the study's variants).

    python bench/conversion_train_cost.py                 # ~1 minute
    python bench/conversion_train_cost.py --steps 20 --threads 1

Rows: none (the low-rate model as shipped), perturb (+ speaker-perturbed encoder input: formant,
pitch, EQ on the log-magnitude STFT), consistency (+ a second perturbed encoder pass and its loss),
dvector (perturb + the voice vector from a precomputed d-vector: the reference crop's learned
voice encoder pass is replaced by a small MLP; the d-vector table is computed once per corpus, not
per step), pseudo (dvector + pseudo-speakers: their crops frequency-warped per step), shipped
(the config as it is: dvector + consistency). Steps are timed alternately in rounds, so load changes hit every row alike.
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
from train_throughput import measure  # noqa: E402

from vqcodec.config import load_config  # noqa: E402


def variants(cfg):
    """The study's variants (recipes/real/conversion/study.sh) and the shipped config as it is."""
    assert cfg.model.invariance.formant_shift > 0, "the config should have the perturbation on"
    out = {}
    for name in ("none", "perturb", "consistency", "dvector", "pseudo", "shipped"):
        c = copy.deepcopy(cfg)
        inv = c.model.invariance
        if name == "none":
            inv.formant_shift = inv.pitch_shift = inv.eq_db = 0.0
        if name in ("none", "perturb", "consistency"):
            c.model.voice.input = "logmel"
        if name != "shipped":
            inv.consistency_weight = 0.5 if name == "consistency" else 0.0
        if name == "pseudo":
            c.data.pseudo_speakers = [0.85, 1.18]
        out[name] = c
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "recipes/real/conversion/config.toml"))
    ap.add_argument("--steps", type=int, default=10, help="timed steps per variant and round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    rows = {name: [] for name in variants(cfg)}
    with tempfile.TemporaryDirectory() as cache:  # the d-vector tables' cache, removed after
        cfg.data.cache_dir = cfg.train.out_dir = cache
        time_rounds(cfg, rows, args)
    report_rows(cfg, rows, "none")


def time_rounds(cfg, rows: dict, args) -> None:
    print(f"config {args.config}: batch {cfg.train.batch_size} x {cfg.data.window_seconds} s crops, "
          f"{args.threads} thread(s), {args.rounds} rounds x {args.steps} steps; load before: {load_avg()}")
    for _ in range(args.rounds):
        for name, c in variants(cfg).items():
            rows[name].append(measure(c, torch.device("cpu"), args.steps, 1)["s_per_step"])


def report_rows(cfg, rows: dict, baseline: str) -> None:
    """Best seconds per step of each variant, its ratio to `baseline`'s, and audio seconds per second."""
    base = min(rows[baseline])
    print(f"{'variant':<12} {'s/step':>7} {'x ' + baseline:>7} {'audio s/s':>9}")
    for name, times in rows.items():
        t = min(times)
        print(f"{name:<12} {t:>7.3f} {t / base:>7.2f} {cfg.train.batch_size * cfg.data.window_seconds / t:>9.1f}")
    print(f"load after: {load_avg()}")


if __name__ == "__main__":
    t0 = time.time()
    main()
    print(f"({time.time() - t0:.0f} s)")
