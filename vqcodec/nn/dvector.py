"""A pretrained GE2E speaker encoder (d-vector) as the voice path's input (issue 20).

Our own voice encoder learns the voice -> timbre mapping from ~130 training voices, too few to
place a voice it never heard. The GE2E d-vector of resemblyzer (Wan et al. 2018; trained on
thousands of speakers) generalises to unheard voices; `model.voice.input = "dvector"` feeds it to
a small learned MLP that makes the voice vector.

Why our own module and not `resemblyzer.VoiceEncoder`: the network is the same (40-band mel power
spectrogram, 25 ms / 10 ms frames -> 3-layer LSTM 256 -> linear 256 -> ReLU -> L2 norm) and its
weights are resemblyzer's, copied once into our checkpoint (so a shipped model needs no
resemblyzer, librosa or webrtcvad to encode), but it runs batched in torch on the training device
and computes its mel with our filterbank (`spectral.mel_filterbank`, equal to librosa's), where
resemblyzer works one numpy utterance at a time through librosa. tests/test_voice_conversion.py checks
that mel and embeddings equal resemblyzer's.

resemblyzer's speaker similarity is also what `eval-convert` reports; a model that takes the
d-vector as input is therefore partly scored by its own input, and eval-convert reports two checks
that do not use it (the parallel-data distance and an MFCC speaker classifier). The d-vector is
never a training loss.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .spectral import mel_filterbank

DIM = 256
N_MELS = 40
N_FFT = 400            # 25 ms at 16 kHz
HOP = 160              # 10 ms
PARTIAL_FRAMES = 160   # 1.6 s windows, as GE2E was trained on
PARTIAL_STEP = 80      # 50% overlap
LEVEL_RMS = 10 ** (-30 / 20)  # resemblyzer normalises to -30 dBFS before embedding


def resemblyzer_weights() -> Path:
    """The weights file that ships inside the resemblyzer wheel (its location, without importing
    resemblyzer: importing it pulls librosa and webrtcvad)."""
    import importlib.util

    from ..errors import MissingToolError

    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise MissingToolError("a d-vector voice model trains from resemblyzer's speaker encoder: "
                               "pip install webrtcvad-wheels && pip install resemblyzer --no-deps")
    path = Path(list(spec.submodule_search_locations)[0]) / "pretrained.pt"
    if not path.is_file():
        raise MissingToolError(f"resemblyzer is installed but its weights are missing: {path}")
    return path


class SpeakerEmbedder(nn.Module):
    """wav (B, T) at 16 kHz -> d-vectors (B, 256), unit length. Frozen: never trained here."""

    def __init__(self, sample_rate: int = 16000):
        super().__init__()
        if sample_rate != 16000:
            raise ValueError("the GE2E speaker encoder works at 16 kHz")
        self.lstm = nn.LSTM(N_MELS, DIM, 3, batch_first=True)
        self.linear = nn.Linear(DIM, DIM)
        self.register_buffer("fb", torch.from_numpy(mel_filterbank(sample_rate, N_FFT, N_MELS)), persistent=False)
        self.requires_grad_(False)

    def load_pretrained(self, path: str | Path | None = None) -> None:
        """Copies resemblyzer's weights in (training a new model; a checkpoint carries them after)."""
        state = torch.load(path or resemblyzer_weights(), map_location="cpu", weights_only=True)
        self.load_state_dict({k: v for k, v in state["model_state"].items()
                              if k.startswith(("lstm.", "linear."))})

    def mel(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, T) -> mel power spectrogram (B, frames, 40), framed as librosa.feature.melspectrogram
        (centred, zero padding, Hann window, Slaney bands)."""
        window = torch.hann_window(N_FFT, device=wav.device, dtype=wav.dtype)
        spec = torch.stft(wav, N_FFT, HOP, window=window, center=True, pad_mode="constant", return_complex=True)
        return torch.matmul(self.fb.to(wav.dtype), spec.abs() ** 2).transpose(1, 2)

    def embed_frames(self, mels: torch.Tensor) -> torch.Tensor:
        """(B, frames, 40) -> (B, 256): the final LSTM state of the last layer, linear, ReLU, L2 norm."""
        _, (hidden, _) = self.lstm(mels)
        e = F.relu(self.linear(hidden[-1]))
        return e / e.norm(dim=1, keepdim=True).clamp_min(1e-8)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """wav (B, T) -> (B, 256): each item scaled to -30 dBFS, embedded in 1.6 s windows with 50%
        overlap (one shorter window for short items), the windows' mean, L2-normalised."""
        wav = wav * (LEVEL_RMS / wav.pow(2).mean(-1, keepdim=True).sqrt().clamp_min(1e-6))
        mels = self.mel(wav)
        n = mels.shape[1]
        if n <= PARTIAL_FRAMES:
            return self.embed_frames(mels)
        starts = list(range(0, n - PARTIAL_FRAMES + 1, PARTIAL_STEP))
        parts = torch.stack([mels[:, s:s + PARTIAL_FRAMES] for s in starts], 1)   # (B, P, 160, 40)
        e = self.embed_frames(parts.flatten(0, 1)).view(mels.shape[0], len(starts), DIM).mean(1)
        return e / e.norm(dim=1, keepdim=True).clamp_min(1e-8)
