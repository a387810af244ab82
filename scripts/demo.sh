#!/usr/bin/env bash
# Fresh machine -> encode, decode and voice-convert the shipped example with the shipped model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p demo_out
ex=pretrained/examples/example.wav
echo "== encode $ex (16 kHz speech; the model never heard this voice or sentence)"
vqcodec encode "$ex" -o demo_out/example.vqc -f
vqcodec info demo_out/example.vqc
echo "== decode with the WaveNet decoder"
vqcodec decode demo_out/example.vqc -o demo_out/example_decoded.wav -f
echo "== voice conversion: the same tokens in another voice"
vqcodec convert "$ex" --speaker us2_low -o demo_out/example_as_us2_low.wav -f
echo "== babble: the prior invents 4 s of tokens, the decoder voices them"
vqcodec sample -o demo_out/babble_us2.wav --seconds 4 --speaker us2 --seed 0 -f
echo "== done: listen to demo_out/example_decoded.wav, demo_out/example_as_us2_low.wav and demo_out/babble_us2.wav"
