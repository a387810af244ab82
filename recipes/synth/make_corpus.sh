#!/usr/bin/env bash
# Make the offline synthetic corpora under data/ (override with DATA=...):
#   data/synth       training corpus: HOURS (default 1) of the default voices
#                    (us1 us2 en1 + pitch/rate/vocal-tract variants), training sentences only
#   data/synth_eval  held-out evaluation set:
#                      us3 (an mbrola voice never used for training) on held-out sentences, and
#                      the training voices on held-out sentences no training utterance uses
# Both are resumable and deterministic for SEED. Needs espeak-ng, mbrola, mbrola-us1/us2/en1/us3.
set -euo pipefail
DATA=${DATA:-data}
HOURS=${HOURS:-1}
EVAL_HOURS=${EVAL_HOURS:-0.1}
SEED=${SEED:-0}
JOBS=${JOBS:-$(nproc)}

vqcodec corpus synth "$DATA/synth" --hours "$HOURS" --seed "$SEED" --jobs "$JOBS"
vqcodec corpus synth "$DATA/synth_eval" --hours "$EVAL_HOURS" --voices us3 --text heldout \
    --seed "$SEED" --jobs "$JOBS"
vqcodec corpus synth "$DATA/synth_eval" --hours "$EVAL_HOURS" --text heldout \
    --seed "$SEED" --jobs "$JOBS"
vqcodec corpus info "$DATA/synth"
vqcodec corpus info "$DATA/synth_eval"
