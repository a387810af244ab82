#!/usr/bin/env bash
# Real recorded voices from Debian packages, rebuilt on this machine (nothing is redistributed):
#   data/real/        ~9.5 h, 127 voices, 11 packages (training)  + MANIFEST.tsv, README.md
#   data/real_eval/   asterisk-core-sounds-en-g722, one English voice (evaluation only, never trained on)
# Needs apt-get (download only, no install), dpkg-deb and ffmpeg (scripts/setup.sh --system).
# Resumable: finished packages are skipped; the .deb files are kept in $DEBS for a rebuild.
# Run from anywhere; paths are relative to the repository root.
set -euo pipefail
cd "$(dirname "$0")/../.."
DEBS=${DEBS:-data/debs}

vqcodec corpus real data/real --deb-dir "$DEBS" "$@"
vqcodec corpus real data/real_eval --eval --deb-dir "$DEBS"
vqcodec corpus info data/real | head -1
vqcodec corpus info data/real_eval/eval_en | head -1
