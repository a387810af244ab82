"""Classical low-bitrate codecs to compare against: codec2 (c2enc/c2dec) and Opus (opus-tools).

Each registered baseline is a `Baseline`: called with (wav, sr) it returns (decoded wav at 16 kHz
as the tools wrote it, cut or padded to the input's length, actual bits per second), and its
`delay_samples` is the delay of that chain (resampling included), measured once per system on
probe signals (`measure_delay`), never per file. The evaluation report removes that delay before
scoring. `codec2()` and `opus()` return delay-compensated output. Bits per second come from the encoded file's size
divided by the input's duration; for Opus the two one-off Ogg header pages (OpusHead, OpusTags)
are left out, as the .vqc bitrate leaves out its header, but Ogg page overhead is counted.
A missing tool raises MissingToolError naming the Debian package to install.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

from ..audio import resample
from ..errors import MissingToolError, VqcodecError
from .metrics import envelope_delay, shift

OUT_SR = 16000
CODEC2_SR = 8000
CODEC2_MODES = ("3200", "2400", "1600", "1400", "1300", "1200", "700C", "450")
OPUS_KBPS = (6, 8, 10, 12, 16, 24)

def _need(tools: tuple[str, ...], package: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise MissingToolError(f"{', '.join(missing)} not found: install it with "
                               f"`apt-get install {package}`")


def _run(cmd: list[str]) -> None:
    try:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except subprocess.CalledProcessError as e:
        err = (e.stderr or b"").decode(errors="replace").strip().splitlines()
        raise VqcodecError(f"{cmd[0]} failed (exit {e.returncode}): {err[-1] if err else ''}") from None


def _to_int16(wav: np.ndarray) -> np.ndarray:
    return (np.clip(wav, -1.0, 1.0) * 32767.0).round().astype("<i2")


def _fit(decoded: np.ndarray, length: int) -> np.ndarray:
    return shift(decoded, 0, length=length).astype(np.float32)


def _prepare(wav: np.ndarray, sr: int) -> np.ndarray:
    wav = np.asarray(wav, dtype=np.float32).reshape(-1)
    if len(wav) == 0:
        raise VqcodecError("cannot encode empty audio")
    return resample(wav, sr, OUT_SR)


def codec2(wav: np.ndarray, sr: int, mode: str = "3200") -> tuple[np.ndarray, float]:
    """Encode and decode with codec2 in `mode` (3200, 2400, ..., 700C, 450) at 8 kHz; the output
    is compensated by the mode's measured delay."""
    return get(f"codec2-{str(mode).upper()}").compensated(wav, sr)


def _codec2_raw(wav: np.ndarray, sr: int, mode: str = "3200") -> tuple[np.ndarray, float]:
    mode = str(mode).upper()
    if mode not in CODEC2_MODES:
        raise VqcodecError(f"unknown codec2 mode {mode!r} (known: {', '.join(CODEC2_MODES)})")
    _need(("c2enc", "c2dec"), "codec2")
    wav16 = _prepare(wav, sr)
    wav8 = resample(wav16, OUT_SR, CODEC2_SR)
    with tempfile.TemporaryDirectory(prefix="vqcodec-c2-") as d:
        d = Path(d)
        _to_int16(wav8).tofile(d / "in.raw")
        _run(["c2enc", mode, str(d / "in.raw"), str(d / "enc.bit")])  # .bit: headerless
        _run(["c2dec", mode, str(d / "enc.bit"), str(d / "out.raw")])
        nbytes = (d / "enc.bit").stat().st_size
        out8 = np.fromfile(d / "out.raw", dtype="<i2").astype(np.float32) / 32768.0
    bps = nbytes * 8 / (len(wav8) / CODEC2_SR)
    return _fit(resample(out8, CODEC2_SR, OUT_SR), len(wav16)), bps


def _ogg_pages(data: bytes) -> list[int]:
    """Sizes of the Ogg pages in `data`."""
    sizes, off = [], 0
    while off + 27 <= len(data) and data[off:off + 4] == b"OggS":
        nseg = data[off + 26]
        size = 27 + nseg + sum(data[off + 27: off + 27 + nseg])
        sizes.append(size)
        off += size
    return sizes


def opus(wav: np.ndarray, sr: int, kbps: float = 6) -> tuple[np.ndarray, float]:
    """Encode with `opusenc --bitrate kbps` (VBR, 20 ms frames) and decode with opusdec at 16 kHz
    (opusdec drops the encoder's pre-skip, so the measured delay is ~0)."""
    if kbps in OPUS_KBPS:
        return get(f"opus-{kbps:g}k").compensated(wav, sr)
    system = Baseline(f"opus-{kbps:g}k", lambda w, r: _opus_raw(w, r, kbps))
    return system.compensated(wav, sr)


def _opus_raw(wav: np.ndarray, sr: int, kbps: float = 6) -> tuple[np.ndarray, float]:
    _need(("opusenc", "opusdec"), "opus-tools")
    wav16 = _prepare(wav, sr)
    with tempfile.TemporaryDirectory(prefix="vqcodec-opus-") as d:
        d = Path(d)
        sf.write(str(d / "in.wav"), np.clip(wav16, -1, 1), OUT_SR, subtype="PCM_16")
        _run(["opusenc", "--quiet", "--bitrate", f"{kbps:g}", str(d / "in.wav"), str(d / "enc.opus")])
        _run(["opusdec", "--quiet", "--rate", str(OUT_SR), str(d / "enc.opus"), str(d / "out.wav")])
        data = (d / "enc.opus").read_bytes()
        out, out_sr = sf.read(str(d / "out.wav"), dtype="float32", always_2d=True)
    pages = _ogg_pages(data)
    nbytes = len(data) - sum(pages[:2]) if len(pages) > 2 else len(data)
    bps = nbytes * 8 / (len(wav16) / OUT_SR)
    return _fit(resample(out.mean(axis=1), out_sr, OUT_SR), len(wav16)), bps


def probe_signal(seed: int = 0, seconds: float = 4.0, sr: int = OUT_SR) -> np.ndarray:
    """A speech-like probe for measuring a codec's delay: a glottal pulse train (f0 gliding 77-143
    Hz) through three vowel resonances, gated into voiced bursts of random length (60-200 ms)
    separated by silences of random length, so its energy envelope has sharp, aperiodic onsets
    that any speech codec reproduces even when it does not keep the waveform's phase."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    phase = np.cumsum(110.0 * (1 + 0.3 * np.sin(2 * np.pi * 0.5 * t))) / sr
    x = np.zeros(len(t))
    x[1:][np.diff(np.floor(phase)) > 0] = 1.0
    for freq, bw in ((700, 100), (1200, 120), (2600, 200)):
        r, th = np.exp(-np.pi * bw / sr), 2 * np.pi * freq / sr
        x = lfilter([1.0], [1.0, -2 * r * np.cos(th), r * r], x)
    gate, pos, on = np.zeros(len(t)), 0, False
    while pos < len(t):
        n = int(rng.uniform(0.06, 0.2) * sr)
        gate[pos:pos + n] = float(on)
        on, pos = not on, pos + n
    window = np.hanning(int(0.005 * sr) + 1)
    gate = np.convolve(gate, window / window.sum(), mode="same")
    x *= gate
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


class Baseline:
    """A classical codec as an evaluation system (see the module docstring).

    `delay_samples` is measured the first time it is read: the median, over four probe signals
    (`probe_signal`), of `envelope_delay` between probe and decoded probe. One number per system,
    the same for every file: for codec2 a per-file waveform cross-correlation wandered by tens of
    ms because codec2 does not keep phase."""

    PROBES = 4

    def __init__(self, name: str, run: Callable[[np.ndarray, int], tuple[np.ndarray, float]]):
        self.name = name
        self._run = run
        self._delay: int | None = None
        self.__name__ = name.replace("-", "_")

    def __call__(self, wav: np.ndarray, sr: int) -> tuple[np.ndarray, float]:
        return self._run(wav, sr)

    @property
    def delay_samples(self) -> int:
        """Delay of the decoded output at 16 kHz, in samples (measured once)."""
        if self._delay is None:
            lags = []
            for seed in range(self.PROBES):
                probe = probe_signal(seed)
                out, _ = self._run(probe, OUT_SR)
                lags.append(envelope_delay(probe, out, OUT_SR))
            self._delay = int(np.median(lags))
        return self._delay

    @property
    def delay_ms(self) -> float:
        return 1000.0 * self.delay_samples / OUT_SR

    def compensated(self, wav: np.ndarray, sr: int) -> tuple[np.ndarray, float]:
        """Like calling the system, with its delay removed (output still as long as the input)."""
        out, bps = self._run(wav, sr)
        return shift(out, self.delay_samples, length=len(out)), bps

    def __repr__(self) -> str:
        return f"Baseline({self.name!r})"


def _codec2_system(mode: str) -> Baseline:
    return Baseline(f"codec2-{mode}", lambda wav, sr: _codec2_raw(wav, sr, mode))


def _opus_system(kbps: int) -> Baseline:
    return Baseline(f"opus-{kbps}k", lambda wav, sr: _opus_raw(wav, sr, kbps))


BASELINES: dict[str, Baseline] = {
    **{f"codec2-{m}": _codec2_system(m) for m in CODEC2_MODES},
    **{f"opus-{k}k": _opus_system(k) for k in OPUS_KBPS},
}
DEFAULT_BASELINES = ("codec2-3200", "codec2-1200", "opus-6k", "opus-8k")


def canonical_name(name: str) -> str:
    """The registered spelling of `name` (case-insensitive: "OPUS-6K" -> "opus-6k")."""
    for key in BASELINES:
        if key.lower() == name.strip().lower():
            return key
    raise VqcodecError(f"unknown baseline {name!r} (known: {', '.join(BASELINES)})")


def get(name: str) -> Baseline:
    """The runner registered under `name` (e.g. "codec2-700C", "opus-6k"); case-insensitive."""
    return BASELINES[canonical_name(name)]


def available(name: str) -> str | None:
    """None if the tools `name` needs are installed, else the reason it cannot run."""
    tools = (("c2enc", "c2dec"), "codec2") if name.lower().startswith("codec2") else \
        (("opusenc", "opusdec"), "opus-tools")
    try:
        _need(*tools)
    except MissingToolError as e:
        return str(e)
    return None


__all__ = ["codec2", "opus", "Baseline", "probe_signal", "BASELINES", "DEFAULT_BASELINES", "get", "available", "canonical_name"]
