"""Entropy coding of token streams: the prior's next-token distributions drive a range coder.

The prior (a WaveNet over tokens) predicts each token from the ones before it; coding the tokens
with its probabilities shrinks the content stream of a `.vqc` with no change to the tokens (hence
none to the audio): on the real English evaluation files, 6.0 bits/token against the 9 a bit-packed
stream spends (3.8 on held-out utterances of the prior's training voices; docs/benchmarks.md).

The file format (codes.py) takes an `EntropyCoder` given to it and this module takes a loaded prior
(`EntropyCoder.from_prior`): neither loads models; `api.coder_for_priors` finds a file's prior by id.

Bounded decoding: the format caps the tokens a payload may hold and the prior steps its chunking
may take (`codes.entropy_layout_problem`); `decode` allocates nothing for the count it is told, and
since P bytes cannot hold tokens whose probabilities multiply to less than 2**-(8P) (give or take the
coder's state, `SLACK_BITS`), it stops as soon as the tokens decoded so far carry more information
than that: a garbage payload is refused after about as many tokens as its bits could hold.

Coder: `constriction`'s range coder (`constriction.stream.queue`, PyPI). It is maintained, ships
wheels, takes a *batch* of categorical distributions per call (so one Python call codes one step of
all chunks), and a queue coder decodes in the order it encoded, which the step-by-step decoder
needs. `torchac` was the other candidate: it codes from CDF tensors built for the whole sequence up
front (the decoder cannot have them: they depend on the tokens being decoded) and has had no
release since 2020.

Exactness. The decoder can only rebuild a token's distribution once it has decoded the tokens
before it, so both sides compute the distributions the same way, step by step:

* the prior's cached incremental path (`WaveNet.init_state` / `step`, the one
  `generate.sample_stream` uses), never the teacher-forced parallel pass, whose float rounding
  differs;
* the same batch layout: the stream is cut into chunks of `chunk` tokens, each coded from an empty
  prior state; up to `batch` chunks are stepped together as one batch (a round), rounds in file
  order; a chunk that has ended keeps being fed token 0 so the batch shape never changes. Both
  numbers are stored in the file header;
* at one torch thread (`one_thread`), so a matrix product sums in the same order whatever the
  caller's thread count;
* the float32 logits are turned into an integer frequency table in float64 (`frequencies`):
  total `TOTAL`, every symbol >= 1, the remainder on the most probable symbol. The coder sees
  these integers (as exact float64 values), never the raw floats.

Symbols enter the single range-coded stream round by round, step by step, chunk by chunk. The file
also stores a CRC32 of the tokens themselves (codes.py), so a decoder whose tables differ from the
encoder's (another prior, or float kernels of another machine giving other logits) reports an
error instead of returning other tokens.

Speed: one prior step costs about the same for 1 or 64 streams on a CPU, so a file is coded in
~chunk steps per 64 chunks: a 3.5 s file (7 chunks of 128) decodes at ~20x real time on 2 busy
cores, a minute at ~70x; a file shorter than one chunk is one stream (bench/entropy_speed.py,
docs/benchmarks.md).
"""
from __future__ import annotations

import contextlib
import hashlib
import math
from typing import Callable, Iterator

import numpy as np
import torch
from tqdm import tqdm

from .codes import entropy_layout_problem
from .errors import FormatError, MissingToolError

TOTAL = 1 << 20     # every frequency table sums to this
# Tokens per independently coded chunk (0.51 s at 250 tokens/s). Measured with the shipped prior on
# 64 held-out utterances (docs/benchmarks.md): chunks of 256 / 128 / 64 / 32 cost 4.473 / 4.486 /
# 4.525 / 4.600 bits per token, and 128 codes a 3.5 s file twice as fast as 256 (7 parallel streams).
CHUNK = 128
BATCH = 64          # chunks stepped together; bounds memory (state ~0.25 MB per chunk for the v1 prior)
MAX_CLASSES = TOTAL >> 4  # K at most TOTAL/16: the "every symbol >= 1" floor then costs < 1/16 of the mass
# Bits a range-coded payload may fall short of the information its symbols carry: the decoder's
# 64-bit state plus a word. constriction re-quantizes each table to 2**24, which can make a
# symbol dearer by at most K / 2**24 / ln 2 bits: allowed for separately (in `decode`).
SLACK_BITS = 96


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch at one intra-op thread, restoring the caller's setting afterwards: the frequency
    tables must not depend on how many threads split a matrix product."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def frequencies(logits: torch.Tensor | np.ndarray) -> np.ndarray:
    """(B, K) logits -> (B, K) int64 frequency tables, each summing to TOTAL with every entry >= 1.

    Softmax in float64 from the float32 logits; floor(p * (TOTAL - K)) + 1 per symbol, and what
    the floors left over goes to the most probable symbol (first one on ties)."""
    x = np.asarray(logits.detach().cpu().numpy() if isinstance(logits, torch.Tensor) else logits,
                   dtype=np.float64)
    B, K = x.shape
    if not np.isfinite(x).all():
        raise FormatError("the prior produced non-finite logits; it cannot code tokens")
    top = x.argmax(axis=1)
    e = np.exp(x - x[np.arange(B), top][:, None])
    p = e / e.sum(axis=1, keepdims=True)
    freq = np.floor(p * (TOTAL - K)).astype(np.int64) + 1
    freq[np.arange(B), top] += TOTAL - freq.sum(axis=1)
    return freq


def prior_id(model: torch.nn.Module, config: dict | None = None) -> str:
    """16 hex chars naming a prior by all its weights (and config): any change to the weights
    changes the probabilities, so a file names exactly the prior that can decode it."""
    h = hashlib.sha256(repr(sorted((config or {}).items())).encode())
    for name, value in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _constriction():
    try:
        import constriction
    except ImportError:
        raise MissingToolError("entropy-coded token files need the 'constriction' package "
                               "(pip install constriction)") from None
    return constriction


class EntropyCoder:
    """Codes token streams with an autoregressive model's step-by-step distributions.

    net: the model, with the cached incremental interface of `vqcodec.nn.wavenet.WaveNet`:
      `net.num_classes`, `state = net.init_state(batch_size, None, global_ids)`,
      `logits = net.step(state)` (B, K) for the next position, `state.feed(x)` with the tokens
      taken there.
    prior_id: 16 hex chars stored in each file (see `prior_id`); reading a file looks the coder
      up by it.
    tokenizer_id: when given, only token files of this tokenizer (`TokenFile.model_id`) are coded.
    condition: None for an unconditioned prior, else header -> the global conditioning of one
      stream: an int id (e.g. the speaker index) or a 1-D float tensor (e.g. a voice vector),
      repeated over the batch. It sees the file's header fields only (speaker, voice, gain...),
      so the decoder computes the same value.

    `codes.to_bytes(tf, coder=coder)` and `codes.from_bytes(data, coder_for=...)` call
    `encode` / `decode`; users rarely need them directly.
    """

    def __init__(self, net, prior_id: str, tokenizer_id: str | None = None,
                 condition: Callable[[object], int | torch.Tensor | None] | None = None,
                 chunk: int = CHUNK, batch: int = BATCH):
        if not (isinstance(prior_id, str) and len(prior_id) == 16 and _is_hex(prior_id)):
            raise ValueError(f"prior id must be 16 hex characters, got {prior_id!r}")
        problem = entropy_layout_problem(0, chunk, batch)  # the ranges the file format allows
        if problem:
            raise ValueError(problem)
        self.net = net
        self.prior_id = prior_id.lower()
        self.tokenizer_id = tokenizer_id.lower() if tokenizer_id else None
        self.condition = condition
        self.chunk, self.batch = chunk, batch
        self.num_classes = int(net.num_classes)
        self.progress = False  # a tqdm bar (tokens) for streams of more than 10 s

    @classmethod
    def from_prior(cls, prior, **kw) -> "EntropyCoder":
        """A coder for a loaded `vqcodec.api.TokenPrior` (what `load_prior` returns). A speaker-
        conditioned prior is conditioned on the file's speaker when it knows it, else on its
        first speaker."""
        model = prior.model
        pid = getattr(prior, "prior_id", None) or prior_id(model, _config_dict(prior))
        condition = None
        if getattr(model.cfg, "speaker_conditioned", False):
            index = {name: i for i, name in enumerate(prior.speakers)}

            def condition(tf):
                return index.get(tf.speaker, 0)
        return cls(model.net, pid, tokenizer_id=getattr(prior, "vqvae_model_id", None),
                   condition=condition, **kw)

    # ------------------------------------------------------------------ checks
    def check(self, tf, source: str = "token file") -> None:
        """Refuse a file this coder's prior was not trained for (FormatError)."""
        if self.tokenizer_id and tf.model_id.lower() != self.tokenizer_id:
            raise FormatError(f"{source}: tokens of model {tf.model_id}, but the prior {self.prior_id} "
                              f"was trained on tokens of model {self.tokenizer_id}")
        if tf.codebook_size != self.num_classes:
            raise FormatError(f"{source}: codebook of {tf.codebook_size} codes, but the prior "
                              f"{self.prior_id} predicts {self.num_classes}")
        if self.num_classes > MAX_CLASSES:
            raise FormatError(f"{source}: entropy coding supports at most {MAX_CLASSES} codes, "
                              f"not {self.num_classes}")

    # ------------------------------------------------------------------ coding
    def encode(self, tf) -> bytes:
        """The entropy-coded payload of tf.tokens (little-endian 32-bit words)."""
        self.check(tf)
        c = _constriction()
        encoder = c.stream.queue.RangeEncoder()
        family = c.stream.model.Categorical(perfect=False)
        tokens = tf.tokens

        def code(freq, active, t, rows):
            symbols = tokens[rows[:active] + t].astype(np.int32)
            encoder.encode(symbols, family, freq[:active].astype(np.float64))
            return symbols

        self._run(tf, len(tokens), code)
        return encoder.get_compressed().astype("<u4").tobytes()

    def decode(self, payload: bytes, tf, num_tokens: int, chunk: int, batch: int,
               source: str = "token file") -> np.ndarray:
        """Tokens (int64) from an entropy-coded payload. `tf` carries the header fields (its
        tokens are ignored); chunk and batch are the file's (codes.py has checked them and the
        count against the payload's size). Raises FormatError only.

        Bounded by the payload, not by the count a header claims: nothing is allocated ahead for
        the claimed count, and decoding stops once the tokens decoded so far carry more
        information (-log2 of their table probabilities) than the payload has bits: a range coder
        cannot store more. A garbage payload costs at most what a genuine file of its size does."""
        self.check(tf, source)
        if len(payload) % 4:
            raise FormatError(f"{source}: corrupt payload (entropy-coded length {len(payload)} "
                              "is not a whole number of 32-bit words)")
        if num_tokens == 0 and payload:
            raise FormatError(f"{source}: corrupt payload ({len(payload)} entropy-coded bytes for no tokens)")
        c = _constriction()
        words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
        decoder = c.stream.queue.RangeDecoder(words)
        family = c.stream.model.Categorical(perfect=False)
        out = [np.zeros(0, dtype=np.int64)]  # grown round by round: never sized by the claimed count
        budget = 8 * len(payload) + SLACK_BITS
        spent = [0.0, 0]  # bits of information decoded, tokens decoded

        def code(freq, active, t, rows):
            try:
                symbols = np.asarray(decoder.decode(family, freq[:active].astype(np.float64)))
            except Exception as e:  # constriction's own errors: the payload is garbage
                raise FormatError(f"{source}: corrupt entropy-coded payload ({e})") from None
            if symbols.shape != (active,) or symbols.min() < 0 or symbols.max() >= self.num_classes:
                raise FormatError(f"{source}: corrupt entropy-coded payload")
            spent[0] += float(np.sum(_LOG2_TOTAL - np.log2(freq[np.arange(active), symbols])))
            spent[1] += active
            if spent[0] - spent[1] * self.num_classes / 2 ** 24 * 1.5 > budget:
                raise FormatError(f"{source}: corrupt entropy-coded payload (its {len(payload)} bytes "
                                  f"run out after {spent[1]} of the {num_tokens} tokens the header announces)")
            end = min(num_tokens, int(rows[-1]) + chunk)  # this round's last token + 1
            if len(out[0]) < end:
                out[0] = np.concatenate([out[0], np.zeros(max(end, 2 * len(out[0])) - len(out[0]), np.int64)])
            out[0][rows[:active] + t] = symbols
            return symbols

        saved = self.chunk, self.batch
        self.chunk, self.batch = chunk, batch
        try:
            self._run(tf, num_tokens, code)
        finally:
            self.chunk, self.batch = saved
        if num_tokens and not decoder.maybe_exhausted():
            raise FormatError(f"{source}: corrupt entropy-coded payload (data left after the last token)")
        return out[0][:num_tokens]

    def _run(self, tf, n: int, code) -> None:
        """Step the prior over the chunks of an n-token stream, round by round; at each step,
        code(freq (B, K), active rows, t, chunk starts) codes the tokens at offset t of the first
        `active` chunks of the round and returns them (fed to the prior for the next step)."""
        chunk, batch = self.chunk, self.batch
        cond = None if self.condition is None else self.condition(tf)
        bar = tqdm(total=n, disable=not self.progress or n < 2500, desc="entropy coding", unit="token",
                   unit_scale=True, leave=False)
        with bar, one_thread(), torch.inference_mode():
            device = next(iter(self.net.parameters())).device if hasattr(self.net, "parameters") else "cpu"
            for r in range(0, n, chunk * batch):  # a round's chunk starts, made as it comes
                rows = np.arange(r, min(n, r + chunk * batch), chunk, dtype=np.int64)
                lengths = np.minimum(rows + chunk, n) - rows
                B = len(rows)
                state = self.net.init_state(B, None, _repeat(cond, B, device))
                x = torch.zeros(B, dtype=torch.long, device=device)
                for t in range(int(lengths.max())):
                    freq = frequencies(self.net.step(state).float())
                    active = int((lengths > t).sum())  # the chunks still running: a prefix
                    symbols = code(freq, active, t, rows)
                    x = torch.zeros(B, dtype=torch.long, device=device)
                    x[:active] = torch.from_numpy(np.asarray(symbols, dtype=np.int64))
                    state.feed(x)
                bar.update(int(lengths.sum()))


_LOG2_TOTAL = math.log2(TOTAL)


def _repeat(cond, batch: int, device):
    """One stream's global conditioning (None, an int id or a 1-D vector) for `batch` streams."""
    if cond is None:
        return None
    if isinstance(cond, (int, np.integer)):
        return torch.full((batch,), int(cond), dtype=torch.long, device=device)
    cond = torch.as_tensor(cond, device=device)
    return cond.reshape(1, -1).expand(batch, -1).contiguous()


def _config_dict(prior) -> dict:
    cfg = getattr(prior, "config", None)
    try:
        return cfg.to_dict()["prior"]
    except Exception:
        return {}


def _is_hex(s: str) -> bool:
    try:
        bytes.fromhex(s)
        return True
    except ValueError:
        return False


__all__ = ["EntropyCoder", "frequencies", "one_thread", "prior_id", "TOTAL",
           "CHUNK", "BATCH"]
