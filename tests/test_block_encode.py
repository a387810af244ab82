"""Encoding on the fixed block grid (tokenizer.BLOCK_SECONDS, Tokenizer._encode_chunks): each block
of tokens is computed from its own samples plus the encoder's context, in shapes that depend only
on the file, so float32 tokens are bit-identical however the file is read (any chunk_seconds, or
streamed from disk), and equal a whole-file encode up to float rounding."""
import numpy as np
import pytest
import soundfile as sf
import torch

from tiny import tiny_config, tone
from vqcodec import tokenizer as tokenizer_module
from vqcodec.models.vqvae import VQVAE
from vqcodec.nn.encoder import Encoder
from vqcodec.tokenizer import Tokenizer

HOP = 64
BLOCK = 0.1  # seconds: 25 tokens, so a 2.3 s signal spans 23 blocks


def varied(seconds: float, seed: int) -> np.ndarray:
    """Noise and tone whose loudness and colour change every 2 ms: many different codes."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    env = np.repeat(rng.uniform(0.02, 0.6, n // 32 + 1), 32)[:n]
    noise = np.convolve(rng.standard_normal(n), rng.standard_normal(8) / 4, mode="same")
    return np.clip(env * (noise + tone(seconds, 170 + 50 * seed, seed=seed)[:n]), -1, 1).astype(np.float32)


def tiny_tokenizer(encoder_input: str = "wave", dtype=torch.float32, seed: int = 0) -> Tokenizer:
    """A random-init tiny tokenizer whose 64 codes are encoder outputs of speech-like input (so
    near ties between codes are common: the case chunk-dependent float32 rounding would flip)."""
    cfg = tiny_config()
    cfg.model.quantizer.codebook_size = 64
    if encoder_input == "logmel":
        cfg.model.encoder.num_strided, cfg.model.encoder.stride, cfg.model.encoder.widths = 3, 4, [8, 16, 16]
        cfg.model.encoder.input = "logmel"
    torch.manual_seed(seed)
    model = VQVAE(cfg.model, 1).eval()
    wav = varied(2.0, seed + 10)
    with torch.no_grad():
        z = model.encoder(torch.from_numpy(wav[: len(wav) // HOP * HOP]).view(1, -1))[0].T
        idx = torch.randperm(z.shape[0], generator=torch.Generator().manual_seed(seed))[:64]
        model.quantizer.codebook.data.copy_(z[idx])
    return Tokenizer(model.to(dtype), cfg)


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(tokenizer_module, "BLOCK_SECONDS", BLOCK)


@pytest.mark.parametrize("encoder_input", ["wave", "logmel"])
def test_float32_tokens_do_not_depend_on_chunking(small_blocks, tmp_path, encoder_input):
    tok = tiny_tokenizer(encoder_input)
    assert tok.block_tokens == 25 and next(tok.model.parameters()).dtype == torch.float32
    wav = varied(2.3, 1)[:-37]  # not whole hops, not whole blocks
    whole = tok.encode_utterance(wav, 16000, chunk_seconds=100).tokens
    assert len(whole) == -(-len(wav) // HOP) and len(whole) > 20 * tok.block_tokens
    assert len(np.unique(whole)) > 20
    for seconds in (0.01, 0.05, 0.1, 0.13, 0.2, 0.25, 0.31, 0.4, 0.7, 1.0, 2.2):
        np.testing.assert_array_equal(tok.encode_utterance(wav, 16000, chunk_seconds=seconds).tokens, whole)
    sf.write(str(tmp_path / "a.wav"), wav, 16000, subtype="FLOAT")
    for seconds in (0.07, 0.3, 100):  # streamed from disk, a read per chunk
        np.testing.assert_array_equal(tok.encode_file_utterance(tmp_path / "a.wav", chunk_seconds=seconds).tokens,
                                      whole)


@pytest.mark.parametrize("length", [1, HOP, 25 * HOP, 25 * HOP + 1, 3 * 25 * HOP - HOP, 3 * 25 * HOP,
                                    3 * 25 * HOP + 5])
def test_any_length_chunked_equals_whole(small_blocks, length):
    """Files shorter than a block, of exactly whole blocks, one sample or one token beyond them."""
    tok = tiny_tokenizer()
    wav = varied(1.0, 2)[:length]
    whole = tok.encode_utterance(wav, 16000, chunk_seconds=100).tokens
    assert len(whole) == -(-length // HOP)
    for seconds in (0.05, 0.1, 0.3):
        np.testing.assert_array_equal(tok.encode_utterance(wav, 16000, chunk_seconds=seconds).tokens, whole)


@pytest.mark.parametrize("encoder_input", ["wave", "logmel"])
def test_block_tokens_are_a_whole_file_encode(small_blocks, encoder_input):
    """In float64 (ties ~1e-9 times rarer) the block grid gives exactly the tokens of one encoder
    pass over the whole file: the context covers the receptive field, and the file's ends are
    seen as a whole-file encode sees them. In float32 (the codec's), nearly all tokens agree with it
    too: the codebook search re-ranks its candidates in float64. (This tiny model has near ties
    everywhere: a plain float32 argmin over one float32 pass differs from float64 on ~5%.)"""
    wav = varied(2.3, 3)[:-37]
    padded = np.zeros(-(-len(wav) // HOP) * HOP, dtype=np.float32)
    padded[:len(wav)] = wav
    tok64 = tiny_tokenizer(encoder_input, torch.float64)
    with torch.inference_mode():
        reference = tok64.model.encode(torch.from_numpy(padded).double()[None])[0].numpy()
    np.testing.assert_array_equal(tok64.encode_utterance(wav, 16000, chunk_seconds=0.3).tokens, reference)
    tok32 = tiny_tokenizer(encoder_input)
    agree = np.mean(tok32.encode_utterance(wav, 16000).tokens == reference)
    assert agree > 0.99


def test_wave_encoder_context_bounds_the_receptive_field_on_both_sides():
    """What the block grid relies on (tests/test_model.py checks the right side alone)."""
    enc = tiny_tokenizer(dtype=torch.float64).model.encoder
    x = torch.randn(1, HOP * 60, dtype=torch.float64)
    left, right = x.clone(), x.clone()
    left[0, :HOP * 30 - enc.context] += 1.0  # everything before token 30's context
    right[0, HOP * 30 + enc.context:] += 1.0  # everything after it
    with torch.no_grad():
        z = enc(x)
        assert torch.equal(z[..., 30], enc(left)[..., 30]) and torch.equal(z[..., 30], enc(right)[..., 30])
        assert not torch.equal(z[..., 30], enc(x + 1.0)[..., 30])


def test_block_size_is_fixed_by_the_code_not_the_chunk_length():
    tok = tiny_tokenizer()
    assert tok.block_tokens == int(tokenizer_module.BLOCK_SECONDS * 16000) // HOP
    assert isinstance(tok.model.encoder, Encoder) and tok.model.encoder.context % HOP == 0
