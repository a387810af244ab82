#!/usr/bin/env bash
# The low-rate model end to end (vqcodec-real-lowrate): the corpora of run.sh -> log-mel tokenizer at
# 62.5 tokens/s + pitch stream + voice + fast decoder -> prior on its tokens -> eval on real English.
# Every step is resumable: run it again after an interruption. Runs unchanged on CPU and GPU.
set -euo pipefail
cd "$(dirname "$0")/../.."
R=runs/real

bash recipes/real/corpora.sh

vqcodec train vqvae recipes/real/lowrate.toml --resume                      # 9000 steps, ~42 min on 2 CPU cores
vqcodec encode-corpus recipes/real/lowrate.toml -o data/lowrate_tokens --model $R/lowrate2/checkpoint.pt \
  --skip-existing --max-per-speaker 80
vqcodec train prior recipes/real/lowrate_prior.toml --resume                # 2500 steps, ~19 min
vqcodec train export $R/lowrate2/checkpoint.pt $R/vqcodec-real-lowrate.pt
vqcodec train export $R/lowrate_prior/checkpoint.pt $R/vqcodec-real-lowrate-prior.pt

M="--model $R/vqcodec-real-lowrate.pt"
vqcodec eval data/real_eval/eval_en $M --limit 40 --baselines codec2-1200 -o reports/lowrate/eval_en
vqcodec eval data/synth/eval_us3 $M --baselines codec2-1200 -o reports/lowrate/eval_us3
echo "to ship: cp $R/vqcodec-real-lowrate.pt $R/vqcodec-real-lowrate-prior.pt pretrained/"
