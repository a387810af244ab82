"""What the fast decoder takes from the pitch stream and from the voice vector (issue 14).

    python recipes/real/invariance/probe_decoder.py -m runs/inv/lm_voice_warp/checkpoint.pt \
        --refs data/convert_refs --sources data/synth/eval_us3

Prints, for a model with a pitch stream: the median F0 asked of the decoder (the first source's own
median x 0.5 / 1 / 1.5 / 2) against the median F0 of what it produced. For any v2 model: the cosine
between the voice vectors of the reference voices (a collapsed voice encoder gives 1.00 everywhere),
and, for the first sources, the resemblyzer similarity of each decode in a reference's voice to the
decode in the source's own voice (near 1: the voice vector barely changes the voice).
"""
from __future__ import annotations

import argparse

import numpy as np
import soundfile as sf
import torch

from vqcodec.api import load_model
from vqcodec.evaluation import metrics, report
from vqcodec.nn import voice as voice_codec


def unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("--refs", required=True, help="REF_DIR/VOICE/*.wav, as eval-convert --like-refs")
    ap.add_argument("--sources", required=True, help="folder of source wavs")
    ap.add_argument("--limit", type=int, default=2, help="sources to decode in every voice")
    args = ap.parse_args()
    torch.set_num_threads(1)
    codec = load_model(args.model)
    sources = [p for p, _ in report.collect_files(args.sources, args.limit)]
    targets = report.target_voices(args.refs, 10.0)
    if codec.has_pitch:
        tf = codec.encode_file_utterance(sources[0])
        for factor in (0.5, 1.0, 1.5, 2.0):
            out = codec.decode_file(tf, f0_median=tf.f0_median * factor)
            print(f"median F0 asked {tf.f0_median * factor:6.1f} Hz, produced {codec.median_f0_of(out, codec.sample_rate):6.1f} Hz")
    voices = {t.name: codec.voice_of(t.reference, report.SAMPLE_RATE) for t in targets}
    medians = {t.name: codec.median_f0_of(t.reference, report.SAMPLE_RATE) if codec.has_pitch else None
               for t in targets}
    vecs = {k: voice_codec.from_bytes(v) for k, v in voices.items()}
    print("voice vector cosines:")
    for a in vecs:
        row = [float(torch.nn.functional.cosine_similarity(vecs[a], vecs[b], dim=0)) for b in vecs]
        print(f"  {a:12s} " + " ".join(f"{c:5.2f}" for c in row))
    for path in sources:
        tf = codec.encode_utterance(sf.read(path, dtype="float32")[0], report.SAMPLE_RATE)
        own = unit(metrics.speaker_embedding(codec.decode_file(tf), codec.sample_rate))
        sims = {name: float(unit(metrics.speaker_embedding(
            codec.decode_file(tf, voice=voices[name], f0_median=medians[name]), codec.sample_rate)) @ own)
            for name in voices}
        print(f"{path.name}: similarity to its own-voice decode, decoded as " +
              ", ".join(f"{k} {v:.3f}" for k, v in sims.items()))


if __name__ == "__main__":
    main()
