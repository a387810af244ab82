"""Classical low-bitrate codecs to compare against: codec2 (c2enc/c2dec) and Opus (opus-tools).

Every runner takes (wav, sr) and returns (decoded wav at 16 kHz, delay-compensated and cut to
the input's length, actual bits per second). Bits per second come from the encoded file's size
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
from .metrics import estimate_delay, shift

OUT_SR = 16000
CODEC2_SR = 8000
CODEC2_MODES = ("3200", "2400", "1600", "1400", "1300", "1200", "700C", "450")
OPUS_KBPS = (6, 8, 10, 12, 16, 24)

System = Callable[[np.ndarray, int], "tuple[np.ndarray, float]"]


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


def _finish(wav16: np.ndarray, decoded: np.ndarray, max_lag_s: float = 0.1) -> np.ndarray:
    lag = estimate_delay(wav16, decoded, OUT_SR, max_lag_s)
    return shift(decoded, lag, length=len(wav16)).astype(np.float32)


def _prepare(wav: np.ndarray, sr: int) -> np.ndarray:
    wav = np.asarray(wav, dtype=np.float32).reshape(-1)
    if len(wav) == 0:
        raise VqcodecError("cannot encode empty audio")
    return resample(wav, sr, OUT_SR)


def codec2(wav: np.ndarray, sr: int, mode: str = "3200") -> tuple[np.ndarray, float]:
    """Encode and decode with codec2 in `mode` (3200, 2400, ..., 700C, 450) at 8 kHz."""
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
    return _finish(wav16, resample(out8, CODEC2_SR, OUT_SR)), bps


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
    """Encode with `opusenc --bitrate kbps` (VBR, 20 ms frames) and decode with opusdec at 16 kHz."""
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
    return _finish(wav16, resample(out.mean(axis=1), out_sr, OUT_SR)), bps


def _make_codec2(mode: str) -> System:
    def run(wav, sr):
        return codec2(wav, sr, mode)
    run.__name__ = f"codec2_{mode}"
    return run


def _make_opus(kbps: int) -> System:
    def run(wav, sr):
        return opus(wav, sr, kbps)
    run.__name__ = f"opus_{kbps}k"
    return run


BASELINES: dict[str, System] = {
    **{f"codec2-{m}": _make_codec2(m) for m in CODEC2_MODES},
    **{f"opus-{k}k": _make_opus(k) for k in OPUS_KBPS},
}
DEFAULT_BASELINES = ("codec2-3200", "codec2-1200", "opus-6k", "opus-8k")


def canonical_name(name: str) -> str:
    """The registered spelling of `name` (case-insensitive: "OPUS-6K" -> "opus-6k")."""
    for key in BASELINES:
        if key.lower() == name.strip().lower():
            return key
    raise VqcodecError(f"unknown baseline {name!r} (known: {', '.join(BASELINES)})")


def get(name: str) -> System:
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


__all__ = ["codec2", "opus", "BASELINES", "DEFAULT_BASELINES", "get", "available", "canonical_name"]
