"""Issue 22's measurement: harmonicity 1.5-4 kHz in eval (how periodic the upper band is at the
original's pitch), the original's own beside each system."""
import numpy as np

from vqcodec.evaluation import metrics, report

SR = 16000


def tone(f0=140.0, seconds=1.0):
    t = np.arange(int(seconds * SR)) / SR
    return (0.05 * sum(np.sin(2 * np.pi * f0 * h * t) for h in range(1, 28))).astype(np.float32)


def test_harmonic_band_periodic_vs_noise():
    x = tone()
    noise = np.random.default_rng(0).standard_normal(len(x)).astype(np.float32) * 0.05
    assert metrics.harmonicity(x, x) > 0.95
    assert abs(metrics.harmonicity(x, noise)) < 0.1
    # low harmonics kept, the band above 1.5 kHz replaced by noise: low harmonicity though the energy is there
    spec, nspec = np.fft.rfft(x), np.fft.rfft(noise)
    f = np.fft.rfftfreq(len(x), 1 / SR)
    smeared = np.fft.irfft(np.where(f > 1500, nspec * np.abs(spec).mean() / np.abs(nspec).mean(), spec), n=len(x))
    assert metrics.harmonicity(x, smeared.astype(np.float32)) < 0.2
    assert metrics.harmonicity(noise, noise) is None or abs(metrics.harmonicity(noise, noise)) < 0.2  # unvoiced


def test_score_reports_harmonicity_and_the_originals():
    x = tone()
    s = report.score(x, x * 0.5, SR)
    assert s["harmonicity"] > 0.95 and s["harmonicity_original"] > 0.95
    assert "harmonicity" in report.COLUMNS and "harmonicity_original" in report.COLUMNS
