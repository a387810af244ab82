"""The one config system: nested dataclasses, read from and written to TOML.

A checkpoint stores `Config.to_dict()`, so a model can always be rebuilt from its file.
Unknown keys are errors (a typo must not silently fall back to a default).
"""
from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .errors import ConfigError


@dataclass
class EncoderConfig:
    """Strided 1-D conv encoder. Downsampling = stride ** num_strided (64 by default)."""
    channels: int = 128          # hidden width of every conv
    num_strided: int = 6         # strided layers
    stride: int = 2
    kernel_size: int = 4         # window of each strided conv
    num_residual: int = 2        # non-strided residual blocks after the strided stack
    dim: int = 64                # output dimension D (= codebook vector size)
    widths: list = field(default_factory=list)  # per strided layer output widths ([] = `channels` each)
    activation: str = "relu"     # relu | gelu
    input: str = "wave"          # wave: strided convs on the waveform (the paper); logmel: log-mel frames
                                 # at the token hop (n_fft 4 x hop, 80 bands) -> k=3 convs (issue 14)
    normalize: bool = False      # logmel only: subtract each band's mean over the input (per utterance)


@dataclass
class QuantizerConfig:
    codebook_size: int = 512     # K
    beta: float = 0.25           # commitment weight
    ema: bool = True             # EMA codebook updates instead of the codebook loss
    decay: float = 0.99
    dead_code_steps: int = 200   # re-seed a code unused for this many steps (0: never)
    codebooks: int = 1           # residual codebooks per frame (RVQ, nn/quantizer.py): each quantizes what the
                                 # ones before left; a file may keep the first k (a bitrate ladder, encode --kbps)
    dropout: float = 0.0         # training only, codebooks > 1: the share of training items that use only their
                                 # first k codebooks, k uniform in 1..codebooks (quantizer dropout, SoundStream;
                                 # 1.0: every item), so one model decodes from any k


@dataclass
class WaveNetConfig:
    """One causal dilated stack; used by both the decoder (over mu-law samples) and the prior
    (over tokens)."""
    layers: int = 20
    dilation_cycle: int = 10     # dilations 1, 2, ..., 2**(cycle-1), repeated
    residual_channels: int = 64
    gate_channels: int = 128
    skip_channels: int = 256
    kernel_size: int = 2
    global_dim: int = 64         # speaker embedding size (0 disables global conditioning)


@dataclass
class VoiceConfig:
    """Voice encoder: log-mel of a whole utterance -> convs -> mean/std pooling -> `dim` values in
    [-1, 1], stored at 8 bits each in the .vqc header. dim 0: no voice vector (v1 models: the
    WaveNet is conditioned on a speaker table instead)."""
    dim: int = 0
    channels: int = 128
    n_mels: int = 80
    norm: str = "tanh"           # tanh: linear -> tanh (the shipped models: its outputs saturate at
                                 # 0/255 and stop learning); layernorm: linear -> LayerNorm -> tanh
    input: str = "logmel"        # logmel: learned convs over the utterance's log-mel; dvector: a frozen,
                                 # pretrained GE2E speaker encoder (resemblyzer's weights, carried in the
                                 # checkpoint) -> a learned MLP (nn/dvector.py)


@dataclass
class FastDecoderConfig:
    """Non-autoregressive decoder at the token rate: ConvNeXt blocks with voice-conditioned
    (adaptive) LayerNorm and an iSTFT head (log-magnitude + phase). blocks 0: none (v1 models)."""
    blocks: int = 0
    channels: int = 192
    mlp_ratio: int = 3
    kernel_size: int = 7
    n_fft: int = 256             # iSTFT size; the hop is the token hop. Larger (512, 1024) at the same
                                 # hop resolves low voices' harmonics (256 points: 62.5 Hz bins); only
                                 # the head and the chunk context grow, the network does not
    excitation: str = ""         # "": none; "harmonic" (needs [model.pitch]): the log-magnitude STFT of a
                                 # sine + noise source at the decoded F0 joins the input (issue 22)


@dataclass
class LossConfig:
    """Spectral losses of the fast decoder (tokenizer training stage)."""
    stft_resolutions: list = field(default_factory=lambda: [[256, 64], [512, 128], [1024, 256], [2048, 512]])
    mel_weight: float = 2.0
    stft_weight: float = 1.0
    phase_weight: float = 0.0    # > 0: APNet-style phase losses on the fast decoder's own STFT frames
                                 # (anti-wrapped instantaneous phase, group delay, instantaneous frequency,
                                 # STFT consistency), their sum x weight added (issue 22)
    adversarial_weight: float = 0.0  # > 0: a multi-resolution STFT discriminator (training-only) and
                                 # feature matching; its LSGAN loss x weight and 2 x weight x feature
                                 # matching join the fast decoder's loss (a fine-tune: train.stage = "fast")


@dataclass
class InvarianceConfig:
    """Training-only pushes towards speaker-independent tokens (nn/perturb.py). Both off by default;
    neither changes inference, so neither enters the model id (the weights they shape do)."""
    warp: float = 0.0            # > 0: stage-auto encoder inputs frequency-warped by a factor
                                 # log-uniform in [1/(1+warp), 1+warp] (VTLP); the target stays the original
    adversary_weight: float = 0.0  # > 0: speaker classifier on z_e; the encoder gets -weight x its gradient
    voice_speaker_weight: float = 0.0  # > 0: a speaker classifier on the voice vector, its loss x weight
                                 # added: the vector must tell the training voices apart
    # Speaker perturbation of the encoder's analysis input (log-mel encoders; issue 20): per crop a
    # random formant shift, an independent pitch shift and a random EQ; the target stays the clean crop.
    formant_shift: float = 0.0   # > 0: spectral envelope scaled by a ratio log-uniform in [1/(1+x), 1+x]
    pitch_shift: float = 0.0     # > 0: harmonic fine structure (F0) scaled likewise, independently
    eq_db: float = 0.0           # > 0: random parametric EQ, bells of +-eq_db dB and shelves of +-eq_db/2
    eq_peaks: int = 4            # bells per EQ curve
    consistency_weight: float = 0.0  # > 0: mean squared distance between z_e of two perturbations of
                                 # the same crop, x weight, added to the loss (needs a perturbation)


@dataclass
class PitchConfig:
    """The pitch stream (nn/pitch.py): a coarse F0 contour the fast decoder gets apart from the
    tokens, so the tokens need not carry the excitation. levels 0: none (the shipped v2 models)."""
    levels: int = 0              # values per pitch frame: 0 = unvoiced, levels - 1 semitone steps
    every: int = 4               # tokens per pitch value (4 at 250 tokens/s: 62.5 values/s)
    semitones: float = 12.0      # the steps span +-semitones around the utterance's median F0
    f0_min: float = 50.0
    f0_max: float = 500.0


@dataclass
class ModelConfig:
    sample_rate: int = 16000
    mulaw_channels: int = 256
    level_rms: float = 0.0       # > 0: each file is scaled to this RMS before encoding, the gain is kept
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    quantizer: QuantizerConfig = field(default_factory=QuantizerConfig)
    voice: VoiceConfig = field(default_factory=VoiceConfig)
    fast: FastDecoderConfig = field(default_factory=FastDecoderConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    decoder: WaveNetConfig = field(default_factory=WaveNetConfig)
    invariance: InvarianceConfig = field(default_factory=InvarianceConfig)
    pitch: PitchConfig = field(default_factory=PitchConfig)

    @property
    def hop(self) -> int:
        return self.encoder.stride ** self.encoder.num_strided


@dataclass
class PriorConfig:
    wavenet: WaveNetConfig = field(default_factory=lambda: WaveNetConfig(
        layers=20, dilation_cycle=10, residual_channels=64, gate_channels=128, skip_channels=256))
    speaker_conditioned: bool = True
    vqvae: str = ""              # path of the VQ-VAE checkpoint the prior's tokens come from


@dataclass
class DataConfig:
    corpus: str = "folders"      # folders | vctk | librispeech (VQ-VAE); tokens (prior: .vqc tree)
    root: str = ""
    extra_roots: list = field(default_factory=list)  # more `folders` corpora mixed in (by hours)
    voice_seconds: float = 1.5   # reference crop (another utterance of the speaker) for the voice vector
    vctk_mic: str = "mic1"
    window_seconds: float = 1.0  # training crop length (prior: 2.56 s as in the paper)
    valid_fraction: float = 0.05
    test_fraction: float = 0.05
    holdout_speakers: list[str] = field(default_factory=list)  # whole speakers never used (test)
    valid_speakers: list = field(default_factory=list)  # whole speakers used only for validation
    cache_dir: str = ""          # preprocessed arrays; "" = <out_dir>/cache
    max_utterances: int = 0      # 0 = all
    seed: int = 0
    pseudo_speakers: list = field(default_factory=list)  # VQ-VAE training: warp factors, e.g. [0.85, 1.18]:
                                 # each training speaker also appears once per factor as a new speaker whose
                                 # audio (target, encoder input and reference) is frequency-warped by it
    pseudo_utterances: int = 20  # utterances per speaker that make each pseudo-speaker


@dataclass
class TrainConfig:
    out_dir: str = "runs/vqvae"
    steps: int = 100000
    batch_size: int = 16
    lr: float = 4e-4
    betas: list = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0
    lr_min: float = 0.0          # cosine decay to this; 0 disables decay
    grad_clip: float = 1.0
    num_workers: int = 0
    checkpoint_every: int = 500
    keep_every: int = 0          # > 0: also keep a copy checkpoint-STEP.pt every N steps (a short study's curve)
    valid_every: int = 500
    valid_batches: int = 8
    log_every: int = 10
    seed: int = 0
    device: str = "auto"         # auto | cpu | cuda
    stage: str = "auto"          # auto: everything the model trains jointly (v1: VQ-VAE + WaveNet;
                                 # v2: tokenizer + voice + fast decoder); wavenet: tokenizer frozen,
                                 # WaveNet trained; fast: tokenizer frozen, fast decoder trained further
    init: str = ""               # checkpoint whose weights start the run (stages wavenet, fast: the v2 codec)
    quality_every: int = 0       # decode held-out clips every N steps, log PESQ/STOI/mel (0: never)
    quality_clips: int = 4
    threads: int = 0             # torch threads (0: torch's default)
    ema_decay: float = 0.0       # > 0: an exponential moving average of the trained weights (e.g. 0.999),
                                 # kept in the checkpoint; validation, the quality monitor and `export` use it


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    prior: PriorConfig = field(default_factory=PriorConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Config":
        return _build(cls, d, "")

    def to_toml(self, path: str | os.PathLike) -> None:
        import tomli_w

        from .files import atomic_path

        with atomic_path(path) as tmp:
            tmp.write_text(tomli_w.dumps(self.to_dict()))


def load_config(path: str | os.PathLike, overrides: list[str] | None = None) -> Config:
    """Read a TOML config; `overrides` are "section.key=value" strings (value parsed as TOML)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    for item in overrides or []:
        apply_override(data, item)
    return Config.from_dict(data)


def apply_override(data: dict, item: str) -> None:
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like section.key=value")
    key, value = item.split("=", 1)
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value  # bare strings need no quotes on the command line
    node = data
    parts = key.strip().split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {item!r}: {p!r} is a value, not a section")
    node[parts[-1]] = parsed


def _build(cls, d: Any, where: str):
    if not isinstance(d, dict):
        raise ConfigError(f"config section [{where or 'top'}] must be a table")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(d) - set(fields)
    if unknown:
        raise ConfigError(f"unknown config key(s) in [{where or 'top'}]: {', '.join(sorted(unknown))}")
    kwargs = {}
    for name, value in d.items():
        sub = _dataclass_for(cls, name)
        if sub is not None:
            kwargs[name] = _build(sub, value, f"{where}.{name}".strip("."))
        else:
            kwargs[name] = _checked(value, fields[name], f"{where}.{name}".strip("."))
    return cls(**kwargs)


def _checked(value: Any, f: dataclasses.Field, where: str) -> Any:
    """The value, if its type matches the field's default (ints are accepted for floats)."""
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
    expected = type(default)
    ok = (isinstance(value, expected) and not (expected is int and isinstance(value, bool))) or \
         (expected is float and isinstance(value, int) and not isinstance(value, bool))
    if not ok:
        raise ConfigError(f"config {where} = {value!r}: expected {expected.__name__}")
    return float(value) if expected is float else value


def _dataclass_for(cls, name: str):
    default = next(f for f in dataclasses.fields(cls) if f.name == name)
    if default.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        value = default.default_factory()  # type: ignore[misc]
        if dataclasses.is_dataclass(value):
            return type(value)
    return None
