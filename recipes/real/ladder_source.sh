#!/usr/bin/env bash
# Issue 22, item 3's combination: the trained ladder tokenizer (recipes/real/ladder.toml, frozen) with a
# pitch stream (lowrate.toml's: 32 levels, one per token, +0.31 kbps) and the source-filter fast decoder
# (model.fast.excitation = "source"), trained decoder-only in stage "fast" with quantizer dropout, so it
# decodes every ladder step: k codebooks + pitch = 0.88 / 1.44 / 2.0 / 2.56 kbps nominal.
# The pitch stream adds no weights to the tokenizer (YIN + a fixed quantizer), so the ladder's codes
# are unchanged; the model id changes (the pitch section is part of it), so its files are its own.
#   bash recipes/real/ladder_source.sh                       # STEPS=16000 (~45 min on one thread)
#   LADDER=pretrained/vqcodec-real-ladder.pt STEPS=4000 bash recipes/real/ladder_source.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
LADDER=${LADDER:-runs/real/ladder/checkpoint.pt}
R=${R:-runs/real/ladder_source}
STEPS=${STEPS:-16000}
mkdir -p $R
[ -f $R/tokenizer.pt ] || vqcodec train export $LADDER $R/tokenizer.pt --tokenizer-only
vqcodec train vqvae recipes/real/ladder.toml --set train.out_dir=$R/run --set train.stage=fast \
  --set train.steps=$STEPS --set train.init=$R/tokenizer.pt --set train.keep_every=4000 \
  --set model.pitch.levels=32 --set model.pitch.every=1 --set model.fast.excitation=source --resume
vqcodec train export $R/run/checkpoint.pt $R/ladder_source.pt
echo "wrote $R/ladder_source.pt"
