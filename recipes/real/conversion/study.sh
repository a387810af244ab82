#!/usr/bin/env bash
# Issue 20's short-run study: four variants of recipes/real/conversion/config.toml, 2000 steps each
# (checkpoints kept every 500 steps), two at a time on one thread each. Then score every kept
# checkpoint with score.py. Runs from the repository root:
#   bash recipes/real/conversion/study.sh            # all four
#   bash recipes/real/conversion/study.sh none perturb   # some
#   bash recipes/real/conversion/study.sh pseudo         # the fifth: more voices (pseudo-speakers)
set -euo pipefail
cd "$(dirname "$0")/../../.."
bash recipes/real/corpora.sh
CFG=recipes/real/conversion/config.toml
OFF="--set model.invariance.formant_shift=0 --set model.invariance.pitch_shift=0 --set model.invariance.eq_db=0"
LEARNED="--set model.voice.input=logmel"
NOCONS="--set model.invariance.consistency_weight=0"
NOPSEUDO="--set data.pseudo_speakers=[]"
variant() {
  echo -n "--set train.steps=2000 "
  case "$1" in
    none)        echo "$OFF $LEARNED $NOCONS $NOPSEUDO" ;;                 # the low-rate design as shipped
    perturb)     echo "$LEARNED $NOCONS $NOPSEUDO" ;;                      # + speaker-perturbed encoder input
    consistency) echo "$LEARNED $NOPSEUDO --set model.invariance.consistency_weight=0.5" ;;  # + invariance loss
    dvector)     echo "$NOCONS $NOPSEUDO" ;;                               # perturb + pretrained d-vector voice input
    pseudo)      echo "$NOCONS" ;;                                         # dvector + 264 pseudo-speakers (the config)
    *) echo "unknown variant $1" >&2; exit 2 ;;
  esac
}
names=("$@"); [ ${#names[@]} -gt 0 ] || names=(none perturb consistency dvector)
run() { vqcodec train vqvae $CFG --set train.out_dir=runs/conv/$1 $(variant "$1") --resume > runs/conv/$1.log 2>&1; }
mkdir -p runs/conv
for ((i = 0; i < ${#names[@]}; i += 2)); do
  run "${names[i]}" &
  [ $((i + 1)) -lt ${#names[@]} ] && run "${names[i + 1]}" &
  wait
done
