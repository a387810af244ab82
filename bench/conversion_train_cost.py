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

import copy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from train_throughput import cost_per_step_main  # noqa: E402



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
    cost_per_step_main(__doc__, ROOT / "recipes/real/conversion/config.toml", variants, "none")


if __name__ == "__main__":
    main()
