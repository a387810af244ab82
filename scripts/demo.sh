#!/usr/bin/env bash
# Fresh machine -> encode, decode and voice-convert the shipped example with the shipped model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p demo_out
ex=pretrained/examples/example.wav
ref=pretrained/examples/reference_espeak_f4.wav
echo "== encode $ex (16 kHz speech; the model never heard this voice or sentence)"
vqcodec encode "$ex" -o demo_out/example.vqc -f
vqcodec info demo_out/example.vqc
echo "== decode with the fast decoder (default): the file's own voice and level"
vqcodec decode demo_out/example.vqc -o demo_out/example_decoded.wav -f
echo "== the same tokens through the paper's WaveNet decoder (sampled, slower)"
vqcodec decode demo_out/example.vqc -o demo_out/example_wavenet.wav --decoder wavenet -f
echo "== voice conversion (the conversion model, vqcodec-real-convert): the input in the voice of a reference recording"
vqcodec convert "$ex" --like "$ref" -o demo_out/example_like_reference.wav -f
echo "== the low-rate model: 62.5 tokens/s + a pitch stream, entropy-coded with its own prior (~1 kbps)"
vqcodec encode "$ex" -m vqcodec-real-lowrate --entropy -o demo_out/example_lowrate.vqc -f
vqcodec decode demo_out/example_lowrate.vqc -m vqcodec-real-lowrate -o demo_out/example_lowrate.wav -f
echo "== babble: the prior invents 4 s of tokens, the decoder voices them"
vqcodec sample -o demo_out/babble.wav --seconds 4 --seed 0 -f
echo "== done: listen to demo_out/example_decoded.wav, example_wavenet.wav, example_like_reference.wav, example_lowrate.wav and babble.wav"
