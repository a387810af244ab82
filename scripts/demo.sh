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
echo "== decode (the fast decoder): the file's own voice and level"
vqcodec decode demo_out/example.vqc -o demo_out/example_decoded.wav -f
echo "== a lower step of the bitrate ladder: 2 of the 4 codebooks, 1.1 kbps"
vqcodec encode "$ex" --kbps 1.1 -o demo_out/example_1k.vqc -f
vqcodec decode demo_out/example_1k.vqc -o demo_out/example_1k.wav -f
echo "== the previous default (vqcodec-real-v2) through the paper's WaveNet decoder (sampled, slower)"
vqcodec encode "$ex" -m vqcodec-real-v2 -o demo_out/example_v2.vqc -f
vqcodec decode demo_out/example_v2.vqc -o demo_out/example_wavenet.wav --decoder wavenet -f
echo "== voice conversion (the conversion model, vqcodec-real-convert): the input in the voice of a reference recording"
vqcodec convert "$ex" --like "$ref" -o demo_out/example_like_reference.wav -f
echo "== the low-rate model: 62.5 tokens/s + a pitch stream, entropy-coded with its own prior (~1 kbps)"
vqcodec encode "$ex" -m vqcodec-real-lowrate --entropy -o demo_out/example_lowrate.vqc -f
vqcodec decode demo_out/example_lowrate.vqc -m vqcodec-real-lowrate -o demo_out/example_lowrate.wav -f
echo "== babble: the prior invents 4 s of tokens, the decoder voices them"
vqcodec sample -o demo_out/babble.wav --seconds 4 --seed 0 -f
echo "== done: listen to demo_out/example_decoded.wav, example_1k.wav, example_wavenet.wav, example_like_reference.wav, example_lowrate.wav and babble.wav"
