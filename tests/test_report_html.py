"""The listening report (index.html) of `vqcodec eval` and `eval-convert`: built from a tiny eval
run, checked as HTML, as files on disk, and in headless Chromium (skipped when it is absent)."""
from __future__ import annotations

import functools
import http.server
import json
import shutil
import subprocess
import threading
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

from tiny import tiny_config, tone
from vqcodec import checkpoint
from vqcodec.audio import save
from vqcodec.cli import cli
from vqcodec.evaluation import baselines, html

SR = 16000
SPEAKERS = ["us1", "us2"]


class Page(HTMLParser):
    """What the tests look at: audio/img sources, table classes, headings, external references."""

    def __init__(self, text: str):
        super().__init__()
        self.audio: list[dict] = []
        self.img: list[str] = []
        self.tables: list[str] = []
        self.h3 = 0
        self.summary_rows: list[list[str]] = []
        self.external: list[str] = []
        self._table = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for k in ("src", "href"):
            if a.get(k) and (a[k].startswith(("http:", "https:", "//", "/", "file:"))):
                self.external.append(a[k])
        if tag == "audio":
            self.audio.append(a)
        elif tag == "img":
            self.img.append(a["src"])
        elif tag == "table":
            self._table = a.get("class", "")
            self.tables.append(self._table)
        elif tag == "h3":
            self.h3 += 1
        elif tag == "tr" and self._table == "summary":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.summary_rows.append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None


# --------------------------------------------------------------------------- a tiny eval run
@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """A random-init tiny VQ-VAE checkpoint with two speakers (sound quality is irrelevant here)."""
    from vqcodec.models.vqvae import VQVAE

    cfg = tiny_config()
    torch.manual_seed(0)
    model = VQVAE(cfg.model, len(SPEAKERS)).eval()
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    checkpoint.save(path, {"kind": "vqvae", "config": cfg.to_dict(), "meta": {"speakers": SPEAKERS},
                           "model": model.state_dict()})
    return str(path)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    for spk, freqs in {"us1": [150, 190], "us2": [230]}.items():
        for i, f in enumerate(freqs):
            save(root / spk / f"{spk}_{i}.wav", tone(0.6, f, seed=i), SR)
    return root


def _baselines() -> str:
    return "codec2-3200" if not baselines.available("codec2-3200") else "none"


@pytest.fixture(scope="module")
def eval_dir(tmp_path_factory, model_path, data_dir):
    out = tmp_path_factory.mktemp("eval") / "report"
    res = CliRunner().invoke(cli, ["eval", "-m", model_path, str(data_dir), "--baselines", _baselines(),
                                   "--listen", "2", "-q", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "index.html" in res.output
    return out


def _check_links(folder: Path, page: Page) -> None:
    """Every player and image is a relative link to a file inside the report folder."""
    assert page.external == []
    for src in [a["src"] for a in page.audio] + page.img:
        target = (folder / src).resolve()
        assert target.is_file(), src
        assert folder.resolve() in target.parents


def test_eval_page_has_the_table_and_players_for_the_listened_files(eval_dir):
    text = (eval_dir / "index.html").read_text()
    page = Page(text)
    report = json.loads((eval_dir / "report.json").read_text())
    systems = list(report["systems"])

    # summary: one row per system, every file counted (not only the 2 listened ones)
    assert page.tables[0] == "summary"
    header, *rows = page.summary_rows
    assert header[:3] == ["system", "files", "PESQ-WB"] and "kbps" in header and "lag ms" in header
    assert [r[0] for r in rows] == systems
    assert all(r[1] == "3" for r in rows)
    pesq = header.index("PESQ-WB")
    assert [r[pesq] for r in rows] == [f"{s['mean']['pesq_wb']:.2f}" for s in report["systems"].values()]

    # listening blocks: the first 2 files, original + each system, each with a spectrogram
    assert page.h3 == 2
    assert len(page.audio) == 2 * (1 + len(systems))
    assert len(page.img) == 1 + 2 * (1 + len(systems))  # + the colour-scale legend
    assert all("controls" in a for a in page.audio)
    _check_links(eval_dir, page)
    assert "<script src" not in text and "<link rel='stylesheet'" not in text

    # the original as heard = the input file; the systems' wavs at the evaluation rate
    first = report["files"][0]
    orig, sr = sf.read(eval_dir / page.audio[0]["src"], dtype="float32")
    src, _ = sf.read(first, dtype="float32")
    assert sr == SR and np.abs(orig - src).max() < 1e-3
    for a in page.audio[1:1 + len(systems)]:
        out, sr = sf.read(eval_dir / a["src"], dtype="float32")
        assert sr == SR and abs(len(out) - len(src)) < SR // 10 and np.abs(out).max() > 0


def test_listen_zero_keeps_the_tables_and_no_audio(model_path, data_dir, tmp_path):
    res = CliRunner().invoke(cli, ["eval", "-m", model_path, str(data_dir), "--baselines", "none",
                                   "--listen", "0", "-q", "-o", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    page = Page((tmp_path / "r" / "index.html").read_text())
    assert page.audio == [] and page.h3 == 0 and page.tables == ["summary"]
    assert len(page.summary_rows) == 2 and page.summary_rows[1][1] == "3"
    assert not list((tmp_path / "r").rglob("*.wav"))


def test_listen_rejects_a_negative_count(model_path, data_dir, tmp_path):
    res = CliRunner().invoke(cli, ["eval", "-m", model_path, str(data_dir), "--listen", "-1", "-o",
                                   str(tmp_path / "r")])
    assert res.exit_code == 2 and "--listen" in res.output and not (tmp_path / "r").exists()


# --------------------------------------------------------------------------- spectrograms
def _fake_report(f: str, systems: dict[str, float]) -> dict:
    return {"sample_rate": SR, "num_files": 1, "files": [f], "notes": [],
            "systems": {n: {"skipped": None, "num_files": 1, "lag_ms": lag,
                            "mean": {"pesq_wb": 2.0, "stoi": 0.9, "mel_distance": 0.3, "bitrate_bps": 3000.0},
                            "per_file": [{"file": f, "lag_ms": lag, "pesq_wb": 2.0, "stoi": 0.9,
                                          "mel_distance": 0.3, "bitrate_bps": 3000.0}]}
                        for n, lag in systems.items()}}


def test_summary_shows_the_columns_the_report_has(tmp_path):
    """Columns follow the report: speaker similarity appears when eval measured it; a skipped
    system says why; the best value of a column is bold."""
    f = str(tmp_path / "clip.wav")
    rec = {n: html.Recorder(lambda w, sr: (w, 1000.0), [f]) for n in ("a", "b")}
    rep = _fake_report(f, {"a": 0.0, "b": 0.0})
    html.write_eval_page(tmp_path / "r1", rep, rec, 0, SR)
    assert "speaker sim" not in Page((tmp_path / "r1" / "index.html").read_text()).summary_rows[0]

    rep["systems"]["a"]["mean"]["speaker_similarity"] = 0.8
    rep["systems"]["b"]["mean"]["speaker_similarity"] = 0.6
    rep["systems"]["c"] = {"skipped": "frobnicator not found", "num_files": 0, "mean": {}, "per_file": []}
    html.write_eval_page(tmp_path / "r2", rep, rec, 0, SR)
    text = (tmp_path / "r2" / "index.html").read_text()
    header, a, b, c = Page(text).summary_rows
    col = header.index("speaker sim")
    assert (a[col], b[col]) == ("0.800", "0.600")
    assert "<td class='best'>0.800</td>" in text
    assert c[0] == "c" and "skipped: frobnicator not found" in c


def _png(path: Path) -> np.ndarray:
    import matplotlib.pyplot as plt

    return plt.imread(path)[..., :3]


def test_spectrograms_are_time_aligned_and_share_one_colour_scale(tmp_path):
    """A copy delayed by 30 ms (and scored with that lag) draws the original's picture; a copy
    6 dB quieter draws a darker one (one colour scale, not one per image)."""
    rng = np.random.default_rng(0)
    wav = (tone(1.0, 180) * np.repeat(rng.uniform(0.1, 1, 20), 800)).astype(np.float32)  # bursts
    delay = 480
    systems = {"late": (lambda w, sr: (np.concatenate([np.zeros(delay, np.float32), w])[:len(w)], 1000.0), 30.0),
               "late-unaligned": (lambda w, sr: (np.concatenate([np.zeros(delay, np.float32), w])[:len(w)], 1000.0), 0.0),
               "quiet": (lambda w, sr: (0.5 * w, 1000.0), 0.0)}
    f = str(tmp_path / "clip.wav")
    recorders = {n: html.Recorder(fn, [f]) for n, (fn, _) in systems.items()}
    for r in recorders.values():
        r(wav, SR, source=f)
    html.write_eval_page(tmp_path / "r", _fake_report(f, {n: lag for n, (_, lag) in systems.items()}),
                         recorders, 1, SR)
    folder = tmp_path / "r" / "listen" / "01-clip"
    orig, late, unaligned, quiet = (_png(folder / f"{n}.png") for n in
                                    ("original", "late", "late-unaligned", "quiet"))
    assert orig.shape == late.shape == quiet.shape == unaligned.shape  # same length: same width
    cols = orig.shape[1] - 4  # the aligned copy ends in 30 ms of padding
    assert np.abs(late[:, :cols] - orig[:, :cols]).mean() < 0.01
    assert np.abs(unaligned[:, :cols] - orig[:, :cols]).mean() > 3 * np.abs(late[:, :cols] - orig[:, :cols]).mean()
    assert quiet.mean() < orig.mean() - 0.02
    # the played file is the output as the system made it (not shifted)
    played, _ = sf.read(folder / "late.wav", dtype="float32")
    assert np.abs(played[:delay]).max() == 0 and np.abs(played[delay:delay + 100]).max() > 0


def test_a_failed_page_leaves_the_previous_report(tmp_path, monkeypatch):
    f = str(tmp_path / "clip.wav")
    rec = {"x": html.Recorder(lambda w, sr: (w, 1000.0), [f])}
    rec["x"](tone(0.3), SR, source=f)
    out = tmp_path / "r"
    html.write_eval_page(out, _fake_report(f, {"x": 0.0}), rec, 1, SR)
    before = (out / "index.html").read_text()
    wavs = sorted(p.relative_to(out) for p in out.rglob("*.wav"))

    def boom(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(html, "_spectrogram", boom)
    from vqcodec.errors import VqcodecError
    with pytest.raises(VqcodecError, match="cannot write the listening report.*No space left"):
        html.write_eval_page(out, _fake_report(f, {"x": 0.0, "y": 0.0}), rec, 1, SR)
    assert (out / "index.html").read_text() == before
    assert sorted(p.relative_to(out) for p in out.rglob("*.wav")) == wavs
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # no temporary folder left


# --------------------------------------------------------------------------- eval-convert
def test_eval_convert_page(model_path, data_dir, tmp_path):
    pytest.importorskip("resemblyzer")
    pytest.importorskip("webrtcvad")
    out = tmp_path / "conv"
    res = CliRunner().invoke(cli, ["eval-convert", "-m", model_path, str(data_dir), "--to", "us2",
                                   "--listen", "1", "-q", "-o", str(out)])
    assert res.exit_code == 0, res.output
    page = Page((out / "index.html").read_text())
    report = json.loads((out / "convert.json").read_text())
    assert page.tables[0] == "summary" and page.h3 == 1
    labels = [r[0] for r in page.summary_rows[1:]]
    assert labels[0].startswith("converted vs target")
    assert page.summary_rows[1][1] == f"{report['mean']['sim_target']:.3f}"
    srcs = [a["src"] for a in page.audio]
    assert len(srcs) == 3 and "reference" in srcs[1] and "converted" in srcs[2]
    _check_links(out, page)
    ref, _ = sf.read(out / srcs[1], dtype="float32")
    real, _ = sf.read(data_dir / "us2" / "us2_0.wav", dtype="float32")
    assert np.abs(ref - real).max() < 1e-3  # the reference voice is a real utterance of the target


# --------------------------------------------------------------------------- in a real browser
def _chromium() -> str | None:
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(n)), None)


class _LoggingHandler(http.server.SimpleHTTPRequestHandler):
    log: list[tuple[str, int]] = []

    def log_request(self, code="-", size="-"):
        self.log.append((self.path, int(code)))

    def log_message(self, *args):  # quiet
        pass


def test_page_in_headless_chromium(eval_dir, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium not installed (apt-get install chromium; scripts/setup.sh --system installs it)")
    log: list[tuple[str, int]] = []
    handler = type("Handler", (_LoggingHandler,), {"log": log})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(handler, directory=str(eval_dir)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/index.html"
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--no-first-run", "--mute-audio", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
              "--virtual-time-budget=10000"]
    shot = tmp_path / "page.png"
    try:
        dom = subprocess.run(common + ["--dump-dom", url], capture_output=True, text=True, timeout=120)
        shooting = subprocess.run(common + ["--window-size=1280,900", f"--screenshot={shot}", url],
                                  capture_output=True, text=True, timeout=120)
    finally:
        server.shutdown()
        server.server_close()
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert shooting.returncode == 0, shooting.stderr[-2000:]

    page = Page(dom.stdout)
    assert page.tables[0] == "summary" and len(page.summary_rows) >= 2
    assert len(page.audio) == 2 * (len(page.summary_rows) - 1 + 1)
    # the browser itself loaded every player's file (the page's script marks each one)
    assert [a.get("data-state") for a in page.audio] == ["loaded"] * len(page.audio)
    # ... and the server saw each one fetched with 200, and no request went unanswered
    fetched = {p.lstrip("/") for p, code in log if code == 200}
    assert {a["src"] for a in page.audio} <= fetched
    assert set(page.img) <= fetched
    assert [(p, c) for p, c in log if c >= 400] == []

    import matplotlib.pyplot as plt

    img = plt.imread(shot)
    assert img.shape[:2] == (900, 1280)
    assert img[..., :3].std() > 0.05  # not a blank page
