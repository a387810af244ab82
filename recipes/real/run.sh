#!/usr/bin/env bash
# The v2 model end to end: real voices + synthetic corpus -> tokenizer + voice + fast decoder ->
# WaveNet on the frozen tokens -> prior on the tokens -> eval on the real English set.
# Every step is resumable: run it again after an interruption. Runs unchanged on CPU and GPU.
set -euo pipefail
cd "$(dirname "$0")/../.."
R=runs/real

bash recipes/real/corpora.sh

# stage 1: tokenizer + voice encoder + fast decoder, spectral losses, quality logged as it trains
vqcodec train vqvae recipes/real/config.toml --resume
# stage 2: the paper's WaveNet decoder on the frozen tokenizer (same [model], other [train] values)
vqcodec train vqvae recipes/real/config.toml --resume --set train.stage=wavenet \
  --set train.init=$R/codec/checkpoint.pt --set train.out_dir=$R/wavenet --set train.steps=${WAVENET_STEPS:-1200} \
  --set data.window_seconds=0.25 --set train.batch_size=8 --set train.quality_every=0 --set train.lr=2e-3
# stage 3: the prior on the frozen tokens
vqcodec encode-corpus recipes/real/config.toml -o data/real_tokens --model $R/codec/checkpoint.pt --skip-existing \
  --max-per-speaker 80   # speaker-balanced: 5,150 utterances, 2.6 h
vqcodec train prior recipes/real/prior.toml --resume
vqcodec train export $R/wavenet/checkpoint.pt $R/vqcodec-real-v2.pt
vqcodec train export $R/prior/checkpoint.pt $R/vqcodec-real-v2-prior.pt

M="--model $R/vqcodec-real-v2.pt"
vqcodec eval data/real_eval/eval_en $M -o reports/real/eval_en --baselines codec2-3200,codec2-1200,opus-6k
vqcodec eval data/synth/eval_us3 $M -o reports/real/eval_us3 --baselines codec2-3200,codec2-1200,opus-6k
echo "to ship: cp $R/vqcodec-real-v2.pt pretrained/; cp $R/vqcodec-real-v2-prior.pt pretrained/"
