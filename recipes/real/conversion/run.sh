#!/usr/bin/env bash
# The conversion model end to end (vqcodec-real-convert, issue 20): the corpora -> the low-rate
# design trained for conversion (speaker-perturbed encoder input + d-vector voice input +
# pseudo-speakers; recipes/real/conversion/config.toml) -> export -> conversion and codec evaluations.
# Every step is resumable: run it again after an interruption (a lost runs/ folder restarts it;
# the exported weights in pretrained/ are what a later session continues from: see the model card).
set -euo pipefail
cd "$(dirname "$0")/../../.."
R=runs/conv

bash recipes/real/corpora.sh
bash recipes/real/conversion/study.sh pseudo                              # 2000 steps (the study's run)
vqcodec train vqvae recipes/real/conversion/config.toml --resume         # resumed to 8000, ~25 min, one thread
vqcodec train export $R/pseudo/checkpoint.pt $R/vqcodec-real-convert.pt

M="-m $R/vqcodec-real-convert.pt"
python recipes/real/conversion/score.py $R/vqcodec-real-convert.pt --align          # the study's row
vqcodec eval-convert data/synth/eval_us3 --like-refs data/convert_refs --limit 10 $M -o reports/convert/convert_like
vqcodec eval data/real_eval/eval_en $M --limit 40 --baselines codec2-1200 -o reports/convert/eval_en
echo "to ship: cp $R/vqcodec-real-convert.pt pretrained/"
