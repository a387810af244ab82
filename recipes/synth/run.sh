#!/usr/bin/env bash
# The shipped model, end to end, on the offline synthetic corpus. Run from the repository root.
# Every step is resumable: run it again after an interruption.
set -euo pipefail
cd "$(dirname "$0")/../.."
R=runs/synth

bash recipes/synth/make_corpus.sh                                   # data/synth/{train,eval_text,eval_us3}
vqcodec train vqvae recipes/synth/config.toml --resume              # -> $R/vqvae/checkpoint.pt
vqcodec encode-corpus recipes/synth/config.toml -o data/synth/tokens --model $R/vqvae/checkpoint.pt --skip-existing
vqcodec train prior recipes/synth/prior.toml --resume               # -> $R/prior/checkpoint.pt
vqcodec train export $R/vqvae/checkpoint.pt $R/vqcodec-synth.pt
vqcodec train export $R/prior/checkpoint.pt $R/vqcodec-synth-prior.pt

M="--model $R/vqcodec-synth.pt"
vqcodec eval data/synth/eval_us3 $M -o reports/synth/eval_us3 --baselines codec2-3200,codec2-1200,opus-6k
vqcodec eval data/synth/eval_text $M -o reports/synth/eval_text --baselines codec2-3200,codec2-1200,opus-6k
vqcodec eval-convert data/synth/eval_text $M --to us2_low -o reports/synth/convert
vqcodec analyze phonemes data/synth/eval_text $M -o reports/synth/phonemes
echo "to ship: cp $R/vqcodec-synth.pt pretrained/vqcodec-synth-v1.pt; cp $R/vqcodec-synth-prior.pt pretrained/vqcodec-synth-v1-prior.pt"
