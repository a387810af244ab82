#!/usr/bin/env bash
# Issue 22's decoder-lever study (run once, short: STEPS=1500, recipes/real/README.md; the full study is open).
# Each lever alone against the current low-rate design (recipes/real/lowrate.toml), at equal steps,
# on the shipped low-rate tokenizer (frozen: train.stage = "fast"), every decoder trained from
# scratch, so the tokens, the voice vectors and the model id are the same in every row:
#   base      the low-rate fast decoder as configured
#   harmonic  + model.fast.excitation = "harmonic" (sine + noise source at the decoded F0)
#   source    + model.fast.excitation = "source": source-filter, the decoder's frames plus a per-bin gain
#             times the STFT of a phase-continuous harmonic source at the decoded F0
#   phase     + model.loss.phase_weight (APNet-style phase losses + STFT consistency)
#   nfft      + model.fast.n_fft = 2048 at the same hop (256)
#   ema       + train.ema_decay = 0.999 (scored on the averaged weights)
#   large     a larger decoder: 10 ConvNeXt blocks of 256 channels (base: 7 of 160)
#   gan       base's final checkpoint + GAN_STEPS more with model.loss.adversarial_weight (a
#             fine-tune, as a discriminator switched on at step 0 gives noise); control: base_more,
#             the same GAN_STEPS without it
# Then `vqcodec eval` of each on the real English set (40 files) and us3: PESQ-WB, STOI, mel distance,
# speaker similarity, harmonicity 1.5-4 kHz (original's beside it), and the training throughput
# (samples/s) from each run's last validation record. Resumable: run it again after an interruption.
#   bash recipes/real/decoder_study.sh                 # all
#   bash recipes/real/decoder_study.sh base harmonic   # some (gan needs base)
#   STEPS=2000 GAN_STEPS=500 PHASE_WEIGHT=0.3 bash recipes/real/decoder_study.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
bash recipes/real/corpora.sh
CFG=recipes/real/lowrate.toml
STEPS=${STEPS:-4000}
R=${R:-runs/decoder_study/steps$STEPS}
OUT=${OUT:-reports/decoder_study/steps$STEPS}
GAN_STEPS=${GAN_STEPS:-1000}
PHASE_WEIGHT=${PHASE_WEIGHT:-0.5}
GAN_WEIGHT=${GAN_WEIGHT:-1.0}
mkdir -p $R $OUT

# the shipped low-rate model without its fast decoder: every variant's decoder starts from scratch
[ -f $R/tokenizer.pt ] || vqcodec train export pretrained/vqcodec-real-lowrate.pt $R/tokenizer.pt --tokenizer-only

FAST="--set train.stage=fast --set train.steps=$STEPS --set train.init=$R/tokenizer.pt"
variant() {
  case "$1" in
    base)      echo "$FAST" ;;
    harmonic)  echo "$FAST --set model.fast.excitation=harmonic" ;;
    source)    echo "$FAST --set model.fast.excitation=source" ;;
    phase)     echo "$FAST --set model.loss.phase_weight=$PHASE_WEIGHT" ;;
    nfft)      echo "$FAST --set model.fast.n_fft=2048" ;;
    ema)       echo "$FAST --set train.ema_decay=0.999" ;;
    large)     echo "$FAST --set model.fast.blocks=10 --set model.fast.channels=256" ;;
    gan)       echo "--set train.stage=fast --set train.steps=$GAN_STEPS --set train.init=$R/base/checkpoint.pt" \
                    "--set train.lr=2e-4 --set train.lr_min=0 --set model.loss.adversarial_weight=$GAN_WEIGHT" ;;
    base_more) echo "--set train.stage=fast --set train.steps=$GAN_STEPS --set train.init=$R/base/checkpoint.pt" \
                    "--set train.lr=2e-4 --set train.lr_min=0" ;;
    *) echo "unknown variant $1" >&2; exit 2 ;;
  esac
}
names=("$@"); [ ${#names[@]} -gt 0 ] || names=(base source harmonic phase large nfft ema gan base_more)
for name in "${names[@]}"; do
  vqcodec train vqvae $CFG --set train.out_dir=$R/$name $(variant "$name") --resume 2>&1 | tee -a $R/$name.log
  vqcodec train export $R/$name/checkpoint.pt $R/$name.pt
  for set in real_eval/eval_en synth/eval_us3; do
    [ -f $OUT/$name/$(basename $set)/report.json ] || \
      vqcodec eval data/$set -m $R/$name.pt --limit 40 --baselines none -q -o $OUT/$name/$(basename $set)
  done
done

# one table: means per variant and set, and the training throughput
python - "$R" "$OUT" "${names[@]}" <<'PY'
import json, sys
from pathlib import Path
from vqcodec import checkpoint
runs, out, names = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
cols = ("pesq_wb", "stoi", "mel_distance", "speaker_similarity", "harmonicity", "harmonicity_original")
print(f"{'variant':10} {'set':8} " + " ".join(f"{c[:12]:>12}" for c in cols) + f" {'samples/s':>10}")
for name in names:
    rate = checkpoint.load(runs / name / "checkpoint.pt")["history"][-1].get("samples_per_s", float("nan"))
    for s in ("eval_en", "eval_us3"):
        report = json.loads((out / name / s / "report.json").read_text())
        for system in report["systems"].values():
            m = system["mean"]
            print(f"{name:10} {s:8} " + " ".join(f"{m.get(c) if m.get(c) is not None else float('nan'):12.3f}"
                                               for c in cols) + f" {rate:10.0f}")
PY
