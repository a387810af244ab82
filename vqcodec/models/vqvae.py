"""The VQ-VAE: a tokenizer and the decoders trained on its tokens.

    TOKENIZER   wav (B, T) --Encoder--> z_e (B, D, T/hop) --VQ--> codes (B, T/hop)
                (model.quantizer.codebooks = N > 1: residual VQ --> codes (B, T/hop, N); nn/quantizer.py)
                reference wav --VoiceEncoder--> voice (B, V)                       [v2]
    DECODERS    (one interface: codes + voice/speaker -> wav)
      fast      z_q + voice --FastDecoder (ConvNeXt, iSTFT)--> wav, deterministic  [v2, default]
      wavenet   z_q --conditioning convs--> local; mu-law(wav) + local + (voice | speaker id)
                --WaveNet--> logits (B, 256, T), sampled sample by sample         [the paper's]

v1 models (the paper's set-up) have no voice encoder and no fast decoder: their WaveNet is
conditioned on a speaker table, and training trains everything jointly. v2 models train in two
stages (train.stage): "auto" trains tokenizer + voice encoder + fast decoder with spectral losses;
"wavenet" freezes those and trains the WaveNet decoder on the frozen tokens and voice vectors;
"fast" freezes the tokenizer and voice encoder and goes on training the fast decoder alone (more
decoder training that keeps the tokenizer id, so .vqc files, the WaveNet and the prior stay valid).

`model.invariance` adds training-only pushes towards speaker-independent tokens (nn/perturb.py):
a frequency warp of the encoder input and a speaker adversary on z_e. The adversary's weights live
in the state dict (so training checkpoints resume) but inference never uses them.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..audio import mulaw_encode
from ..config import ModelConfig
from ..nn.encoder import Encoder
from ..nn.discriminator import MultiResolutionDiscriminator
from ..nn.fast_decoder import FastDecoder
from ..nn.perturb import SpeakerAdversary, SpeakerPerturbation, frequency_warp, random_warp_factors
from ..nn.pitch import NUM_FEATURES as PITCH_FEATURES, PitchQuantizer, pitch_features, yin_f0
from ..nn.quantizer import make_quantizer
from ..nn.spectral import SpectralLoss
from ..nn.voice import VoiceEncoder
from ..nn.wavenet import WaveNet

CONDITIONING_CHANNELS = 128
DECODERS = ("fast", "wavenet")
# state-dict prefixes no decoder or tokenizer needs
TRAINING_ONLY = ("speaker_adversary.", "voice_classifier.", "fast_discriminator.")


class ConditioningNet(nn.Module):
    """Two non-causal k=3 convs over the codebook vectors at the token rate: each token's
    conditioning sees its neighbours (the decoder needs more than a single 4 ms frame)."""

    def __init__(self, dim: int, channels: int = CONDITIONING_CHANNELS):
        super().__init__()
        self.conv1 = nn.Conv1d(dim, channels, 3, padding=1)
        self.conv2 = nn.Conv1d(channels, channels, 3, padding=1)

    context = 2  # tokens of context each side

    def forward(self, z_q):
        return F.relu(self.conv2(F.relu(self.conv1(z_q))))


class VQVAE(nn.Module):
    def __init__(self, cfg: ModelConfig, num_speakers: int):
        super().__init__()
        self.cfg = cfg
        self.num_speakers = num_speakers
        self.encoder = Encoder(cfg.encoder, cfg.sample_rate)
        self.quantizer = make_quantizer(cfg.quantizer, cfg.encoder.dim)
        self.voice_encoder = VoiceEncoder(cfg.voice, cfg.sample_rate) if cfg.voice.dim else None
        self.pitch_quantizer = PitchQuantizer(cfg.pitch.levels, cfg.pitch.semitones) if cfg.pitch.levels else None
        if self.pitch_quantizer is not None and not cfg.fast.blocks:
            raise ValueError("model.pitch needs the fast decoder (model.fast.blocks > 0)")
        self.fast_decoder = (FastDecoder(cfg.fast, cfg.encoder.dim, cfg.voice.dim, cfg.hop,
                                         PITCH_FEATURES if cfg.pitch.levels else 0, cfg.sample_rate)
                             if cfg.fast.blocks else None)
        self.spectral_loss = (SpectralLoss(cfg.loss.stft_resolutions, cfg.sample_rate, cfg.loss.mel_weight,
                                           cfg.loss.stft_weight, cfg.loss.phase_weight, (cfg.fast.n_fft, cfg.hop))
                              if self.fast_decoder is not None else None)
        if cfg.fast.excitation == "source" and cfg.loss.phase_weight > 0:
            raise ValueError("model.loss.phase_weight trains the head's own phase; with excitation = 'source' "
                             "the output's phase is mostly the source's: use one or the other")
        if cfg.loss.adversarial_weight < 0 or (cfg.loss.adversarial_weight > 0 and self.fast_decoder is None):
            raise ValueError("model.loss.adversarial_weight must be >= 0 and needs the fast decoder")
        # training-only (issue 22): the fast decoder's discriminator; train.py steps it with its own optimizer
        self.fast_discriminator = MultiResolutionDiscriminator() if cfg.loss.adversarial_weight > 0 else None
        if cfg.decoder.layers:
            self.conditioning = ConditioningNet(cfg.encoder.dim)
            self.decoder = WaveNet(cfg.decoder, num_classes=cfg.mulaw_channels,
                                   local_channels=CONDITIONING_CHANNELS, upsample=cfg.hop,
                                   num_global=0 if cfg.voice.dim else num_speakers,
                                   global_vector_dim=cfg.voice.dim)
        else:
            self.conditioning = self.decoder = None
        inv = cfg.invariance
        if inv.warp < 0 or inv.adversary_weight < 0:
            raise ValueError("model.invariance.warp and adversary_weight must be >= 0 (0: off)")
        self.perturbation = SpeakerPerturbation(inv.formant_shift, inv.pitch_shift, inv.eq_db, inv.eq_peaks,
                                                cfg.sample_rate)
        if min(inv.formant_shift, inv.pitch_shift, inv.eq_db, inv.consistency_weight) < 0 or inv.eq_peaks < 0:
            raise ValueError("model.invariance perturbation settings must be >= 0 (0: off)")
        if self.perturbation.enabled and cfg.encoder.input != "logmel":
            raise ValueError("model.invariance formant_shift / pitch_shift / eq_db perturb the log-mel encoder "
                             "input: they need model.encoder.input = 'logmel' (use `warp` for waveform encoders)")
        if inv.consistency_weight > 0 and not self.perturbation.enabled:
            raise ValueError("model.invariance.consistency_weight compares two perturbations: set formant_shift, "
                             "pitch_shift or eq_db")
        self.speaker_adversary = (SpeakerAdversary(cfg.encoder.dim, num_speakers, inv.adversary_weight)
                                  if inv.adversary_weight > 0 else None)
        if inv.voice_speaker_weight < 0 or (inv.voice_speaker_weight > 0 and not cfg.voice.dim):
            raise ValueError("model.invariance.voice_speaker_weight must be >= 0 and needs a voice encoder")
        # training-only: which training voice a voice vector belongs to (a linear classifier)
        self.voice_classifier = (nn.Linear(cfg.voice.dim, num_speakers)
                                 if inv.voice_speaker_weight > 0 else None)
        self.stage = "auto"

    # ------------------------------------------------------------------ facts
    @property
    def hop(self) -> int:
        return self.cfg.hop

    @property
    def decoders(self) -> list[str]:
        """Names of the decoders this model has, default first."""
        return [name for name, part in (("fast", self.fast_decoder), ("wavenet", self.decoder))
                if part is not None]

    @property
    def tokenizer_parts(self) -> list[nn.Module]:
        return [m for m in (self.encoder, self.quantizer, self.voice_encoder) if m is not None]

    # ------------------------------------------------------------------ tokenizer
    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """wav (B, T), T a multiple of the hop -> codes (B, T / hop), or (B, T / hop, N) with N codebooks."""
        z_e = self.encoder(wav)
        B, D, T = z_e.shape
        return self.quantizer.nearest(z_e.transpose(1, 2).reshape(-1, D)).reshape(B, T, -1).squeeze(-1)

    def voice(self, wav: torch.Tensor) -> torch.Tensor:
        """Voice vectors (B, V) on the 8-bit grid of level-normalised utterances (B, T)."""
        if self.voice_encoder is None:
            raise ValueError("this model has no voice encoder (a v1 model: use a named speaker)")
        return self.voice_encoder(wav)

    @property
    def has_pitch(self) -> bool:
        return self.pitch_quantizer is not None

    @property
    def pitch_hop(self) -> int:
        """Audio samples per pitch value."""
        return self.cfg.pitch.every * self.hop

    def f0(self, wav: torch.Tensor) -> torch.Tensor:
        """F0 in Hz (B, ceil(T / pitch_hop)) of level-normalised wav (B, T), 0 where unvoiced."""
        p = self.cfg.pitch
        return yin_f0(wav, self.cfg.sample_rate, self.pitch_hop, p.f0_min, p.f0_max)

    def pitch(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The pitch stream of level-normalised wav (B, T): levels (B, P) and median F0 (B,) in Hz."""
        return self.pitch_of_f0(self.f0(wav))

    def pitch_of_f0(self, f0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """F0 (B, P) in Hz -> the pitch stream: levels (B, P) and median F0 (B,)."""
        if not self.has_pitch:
            raise ValueError("this model has no pitch stream")
        median = PitchQuantizer.median(f0)
        return self.pitch_quantizer.quantize(f0, median), median

    # ------------------------------------------------------------------ decoders
    def local_conditioning(self, codes: torch.Tensor) -> torch.Tensor:
        return self.conditioning(self.quantizer.lookup(codes))

    def decode_fast(self, codes: torch.Tensor, voice: torch.Tensor | None,
                    pitch_features: torch.Tensor | None = None, phase0: torch.Tensor | None = None) -> torch.Tensor:
        """codes (B, T) (or (B, T, k): the first k codebooks) + voice (B, V) -> wav (B, T * hop),
        deterministic. Models with a pitch stream also take its features (B, F, T) (`pitch_input`);
        a source-filter decoder the source's phase per token when this is a chunk of a longer
        sequence (`FastDecoder.source_phase`)."""
        if self.fast_decoder is None:
            raise ValueError("this model has no fast decoder")
        return self.fast_decoder(self.quantizer.lookup(codes), voice, pitch_features, phase0)

    def pitch_input(self, pitch, num_tokens: int) -> torch.Tensor:
        """The fast decoder's pitch features (B, F, num_tokens) from (levels, median F0)."""
        if not self.has_pitch:
            raise ValueError("this model has no pitch stream")
        if pitch is None:
            raise ValueError("this model's fast decoder needs the pitch stream (levels, median F0)")
        levels, median = pitch
        f0 = self.pitch_quantizer.dequantize(levels, median.to(levels.device).float())
        return pitch_features(f0, self.cfg.pitch.every, num_tokens)

    # ------------------------------------------------------------------ training
    def set_stage(self, stage: str) -> None:
        """'auto', 'wavenet' or 'fast' (see the module docstring): freezes what the stage does not train."""
        if stage not in ("auto", "wavenet", "fast"):
            raise ValueError(f"unknown training stage {stage!r}")
        if stage == "wavenet" and (self.decoder is None or self.fast_decoder is None):
            raise ValueError("stage 'wavenet' needs a v2 model with both a fast and a WaveNet decoder")
        if stage == "fast" and self.fast_decoder is None:
            raise ValueError("stage 'fast' needs a v2 model with a fast decoder")
        self.stage = stage
        for part in self._frozen_parts():
            part.requires_grad_(False)

    def _frozen_parts(self) -> list[nn.Module]:
        """What the current stage does not train: the tokenizer (and voice encoder) in both later
        stages; in 'wavenet' also the fast decoder, in 'fast' also the WaveNet."""
        if self.stage == "auto":
            return []
        others = [self.fast_decoder] if self.stage == "wavenet" else [self.conditioning, self.decoder]
        if self.stage == "wavenet":
            others.append(self.fast_discriminator)
        return [m for m in self.tokenizer_parts + others + [self.speaker_adversary, self.voice_classifier]
                if m is not None]

    def train(self, mode: bool = True):
        super().train(mode)
        for part in self._frozen_parts():  # a frozen tokenizer keeps its codebook (no EMA updates)
            part.eval()
        return self

    def forward(self, wav: torch.Tensor, speakers: torch.Tensor,
                reference: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Training pass. wav (B, T) in [-1, 1], T a multiple of the hop; speakers (B,) ids;
        reference (B, T') another utterance of each speaker (for the voice vector); for a voice encoder
        on d-vectors (voice.input = "dvector"), that utterance's d-vector (B, 256) instead."""
        voice = None
        if self.voice_encoder is not None:
            if reference is None:
                raise ValueError("a model with a voice encoder trains with reference crops")
            voice = (self.voice_encoder.from_dvector(reference) if self.voice_encoder.takes_dvector
                     else self.voice_encoder(reference))
        pitch = None
        if self.has_pitch and self.stage in ("auto", "fast"):
            with torch.no_grad():  # from the original crop (the encoder may see a warped one)
                pitch = self.pitch_input(self.pitch(wav), wav.shape[1] // self.hop)
        keep = self._codebooks_kept(wav.shape[0])
        if self.fast_decoder is not None and self.stage == "auto":
            z_e = self._encode_perturbed(wav)
            vq = self.quantizer(z_e, keep)
            spec = self._fast_losses(vq.quantized, voice, pitch, wav)  # the target is always the clean crop
            out = self._with_adversary({**spec, "loss": spec["loss"] + vq.loss,
                                        "commitment": vq.commitment, "perplexity": vq.perplexity,
                                        "codes": vq.codes}, z_e, speakers)
            out = self._with_consistency(out, wav, z_e)
            return self._with_voice_classifier(out, voice, speakers)
        if self.stage == "fast":
            with torch.no_grad():
                z_q = self.quantizer.lookup(self.encode(wav), keep)
            return self._fast_losses(z_q, voice.detach(), pitch, wav)
        if self.stage == "wavenet":
            with torch.no_grad():
                z_q = self.quantizer.lookup(self.encode(wav), keep)
                voice = voice.detach()
            vq_loss = None
        else:
            z_e = self.encoder(self._encoder_input(wav))
            vq = self.quantizer(z_e, keep)
            z_q, vq_loss = vq.quantized, vq
        target = mulaw_encode(wav, self.cfg.mulaw_channels)
        logits = self.decoder(target, self.conditioning(z_q), voice if voice is not None else speakers)
        ce = F.cross_entropy(logits, target)
        if vq_loss is None:
            return {"loss": ce, "ce": ce}
        return self._with_adversary({"loss": ce + vq_loss.loss, "ce": ce, "commitment": vq_loss.commitment,
                                     "perplexity": vq_loss.perplexity, "codes": vq_loss.codes}, z_e, speakers)

    def _codebooks_kept(self, batch: int) -> torch.Tensor | None:
        """Quantizer dropout: codebooks each training item uses (B,), or None (all: one codebook, no
        dropout, or not training). Every stage draws it, so the decoders learn every ladder step."""
        if not (self.training and self.cfg.quantizer.dropout > 0):
            return None
        return self.quantizer.draw_keep(batch).to(self.quantizer.codebook.device)

    def _fast_losses(self, z_q: torch.Tensor, voice, pitch, wav: torch.Tensor) -> dict[str, torch.Tensor]:
        """The fast decoder's losses against the crop wav: spectral (+ phase, model.loss.phase_weight);
        while training with a discriminator also adversarial_weight x ("adv" + 2 "fm"), and the crops
        the discriminator step needs ("real", "fake": not scalars, so never logged)."""
        frames = self.fast_decoder.frames(z_q, voice, pitch)
        pred = self.fast_decoder.synthesize(*frames)
        out = self.spectral_loss(pred, wav, frames[:2])
        if self.fast_discriminator is None or not self.training:
            return out
        gan = self.fast_discriminator.generator_loss(wav, pred)
        loss = out["loss"] + self.cfg.loss.adversarial_weight * (gan["adv"] + 2 * gan["fm"])
        return {**out, **gan, "loss": loss, "real": wav, "fake": pred.detach()}

    @property
    def discriminator(self) -> nn.Module | None:
        """The training-only discriminator train.py steps after each generator step (None: none)."""
        return self.fast_discriminator if self.stage != "wavenet" else None

    def discriminator_loss(self, out: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """The discriminator's loss on a training step's crops (`forward`'s "real", "fake"); None when
        that step had none."""
        if self.discriminator is None or "fake" not in out:
            return None
        return self.fast_discriminator.discriminator_loss(out["real"], out["fake"])

    def _encode_perturbed(self, wav: torch.Tensor) -> torch.Tensor:
        """z_e of the crop as the encoder sees it in training: warped (`warp`) and/or with a random
        speaker perturbation of its log-magnitude spectrum (formant, pitch, EQ); at eval, clean."""
        perturb = self.perturbation if (self.training and self.perturbation.enabled) else None
        return self.encoder(self._encoder_input(wav), perturb=perturb)

    def _with_consistency(self, out: dict[str, torch.Tensor], wav: torch.Tensor,
                          z_e: torch.Tensor) -> dict[str, torch.Tensor]:
        """Adds consistency_weight x the mean squared distance between z_e and the z_e of a second,
        independent perturbation of the same crop ("consistency")."""
        weight = self.cfg.invariance.consistency_weight
        if not (weight > 0 and self.training):
            return out
        dist = F.mse_loss(z_e, self._encode_perturbed(wav))
        return {**out, "loss": out["loss"] + weight * dist, "consistency": dist}

    def _encoder_input(self, wav: torch.Tensor) -> torch.Tensor:
        """The crop the encoder sees: frequency-warped while training with invariance.warp > 0
        (the losses still compare with the original crop)."""
        warp = self.cfg.invariance.warp
        if not (self.training and warp > 0):
            return wav
        return frequency_warp(wav, random_warp_factors(wav.shape[0], warp).to(wav.device))

    def _with_voice_classifier(self, out: dict[str, torch.Tensor], voice: torch.Tensor,
                               speakers: torch.Tensor) -> dict[str, torch.Tensor]:
        """Adds the voice classifier's cross-entropy x weight to the loss ("voice_ce", "voice_acc")."""
        if self.voice_classifier is None:
            return out
        logits = self.voice_classifier(voice)
        ce = F.cross_entropy(logits, speakers)
        return {**out, "loss": out["loss"] + self.cfg.invariance.voice_speaker_weight * ce, "voice_ce": ce,
                "voice_acc": (logits.argmax(-1) == speakers).float().mean()}

    def _with_adversary(self, out: dict[str, torch.Tensor], z_e: torch.Tensor,
                        speakers: torch.Tensor) -> dict[str, torch.Tensor]:
        """Adds the speaker adversary's cross-entropy ("adv") and accuracy ("spk_acc"). Its gradient
        joins the loss, its value does not: "loss" stays comparable with runs without it."""
        if self.speaker_adversary is None:
            return out
        adv = self.speaker_adversary(z_e, speakers)
        return {**out, "loss": out["loss"] + (adv["adv"] - adv["adv"].detach()), **adv}
