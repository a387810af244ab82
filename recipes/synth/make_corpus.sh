#!/usr/bin/env bash
# Make the offline synthetic corpora under data/synth/ (override with DATA=...):
#   train      HOURS (default 1) of the 8 default speakers (us1 us2 en1 + pitch/rate/vocal-tract
#              variants), training sentences only                        (~35 s on 2 cores)
#   eval_text  the training speakers reading held-out sentences no training utterance uses
#   eval_us3   mbrola us3, a voice never used for training, on held-out sentences
# Resumable and deterministic for SEED. Needs espeak-ng, mbrola, mbrola-us1/us2/en1/us3
# (bash scripts/setup.sh --system installs them).
set -euo pipefail
DATA=${DATA:-data/synth}
HOURS=${HOURS:-1}
SEED=${SEED:-0}
JOBS=${JOBS:-$(nproc)}

vqcodec corpus synth "$DATA/train" --hours "$HOURS" --seed "$SEED" --jobs "$JOBS"
vqcodec corpus synth "$DATA/eval_text" --hours 0.06 --text heldout --seed "$SEED" --jobs "$JOBS"
vqcodec corpus synth "$DATA/eval_us3" --hours 0.03 --voices us3 --text heldout --seed "$SEED" --jobs "$JOBS"
vqcodec corpus info "$DATA/train"
