#!/usr/bin/env bash
# VQ-VAE and prior on vctk. Set [data] root in recipes/vctk/config.toml first. Resumable.
# Several GPUs: NPROC=4 bash recipes/vctk/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
R=runs/vctk
NPROC=${NPROC:-1}
if [ "$NPROC" -gt 1 ]; then TRAIN="torchrun --standalone --nproc_per_node $NPROC -m vqcodec train"; else TRAIN="vqcodec train"; fi

$TRAIN vqvae recipes/vctk/config.toml --resume
vqcodec encode-corpus recipes/vctk/config.toml -o data/vctk/tokens --model $R/vqvae/checkpoint.pt --skip-existing
$TRAIN prior recipes/vctk/prior.toml --resume
vqcodec train export $R/vqvae/checkpoint.pt $R/vqcodec-vctk.pt
vqcodec train export $R/prior/checkpoint.pt $R/vqcodec-vctk-prior.pt
