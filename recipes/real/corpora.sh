#!/usr/bin/env bash
# The corpora the real-voice recipes train and evaluate on, each built once (run.sh, run_lowrate.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -f data/real/MANIFEST.tsv ] || vqcodec corpus real data/real --deb-dir data/debs
[ -d data/real_eval/eval_en ] || vqcodec corpus real data/real_eval --eval --deb-dir data/debs
[ -d data/synth/train ] || vqcodec corpus synth data/synth/train --hours 1
[ -d data/synth/eval_us3 ] || vqcodec corpus synth data/synth/eval_us3 --hours 0.03 --voices us3 --text heldout
