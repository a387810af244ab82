#!/usr/bin/env bash
# VQ-VAE and prior on librispeech. Set [data] root in recipes/librispeech/config.toml first. Resumable.
# Several GPUs: NPROC=4 bash recipes/librispeech/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
R=runs/librispeech
NPROC=${NPROC:-1}
if [ "$NPROC" -gt 1 ]; then TRAIN="torchrun --standalone --nproc_per_node $NPROC -m vqcodec train"; else TRAIN="vqcodec train"; fi

$TRAIN vqvae recipes/librispeech/config.toml --resume
vqcodec encode-corpus recipes/librispeech/config.toml -o data/librispeech/tokens --model $R/vqvae/checkpoint.pt --skip-existing
$TRAIN prior recipes/librispeech/prior.toml --resume
vqcodec train export $R/vqvae/checkpoint.pt $R/vqcodec-librispeech.pt
vqcodec train export $R/prior/checkpoint.pt $R/vqcodec-librispeech-prior.pt
