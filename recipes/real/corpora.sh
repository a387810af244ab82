#!/usr/bin/env bash
# The corpora the real-voice recipes train and evaluate on, each built once (run.sh, run_lowrate.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -f data/real/MANIFEST.tsv ] || vqcodec corpus real data/real --deb-dir data/debs
[ -d data/real_eval/eval_en ] || vqcodec corpus real data/real_eval --eval --deb-dir data/debs
[ -d data/synth/train ] || vqcodec corpus synth data/synth/train --hours 1
[ -d data/synth/eval_us3 ] || vqcodec corpus synth data/synth/eval_us3 --hours 0.03 --voices us3 --text heldout
# voice conversion (issue 20): four voices no model heard, each reading the same 12 held-out sentences
[ -d data/parallel ] || vqcodec corpus synth data/parallel --parallel 12 --text heldout --voices us3,esp_m3,esp_f2,esp_gb_m7
[ -d data/synth/eval_unseen ] || vqcodec corpus synth data/synth/eval_unseen --hours 0.1 --voices us3,esp_m3,esp_f2,esp_gb_m7 --text heldout
if [ ! -d data/convert_refs ]; then   # real references: the real English voice and three espeak-ng voices
  mkdir -p data/convert_refs && cp -r data/real_eval/eval_en/ast_en data/convert_refs/
  for v in esp_m3 esp_f2 esp_gb_m7; do cp -r data/synth/eval_unseen/$v data/convert_refs/; done
fi
