"""A small multi-resolution STFT discriminator for a short adversarial fine-tune of the fast
decoder (`model.loss.adversarial_weight`, issue 22). Training-only: its weights live in the state
dict (`fast_discriminator.`, models/vqvae.py TRAINING_ONLY) so training checkpoints resume, but no
decoder uses them and they never enter the model id.

One 2-D conv stack per STFT resolution over the log-magnitude spectrogram (the UnivNet / Vocos
multi-resolution idea, kept small: a full HiFi-GAN discriminator step cost ~10x a generator step
on this kind of machine); least-squares GAN losses and feature matching (L1 between the stacks'
activations on the real and the decoded crop).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .spectral import stft_magnitude

RESOLUTIONS = ((256, 64), (512, 128), (1024, 256))


class _SpectrogramStack(nn.Module):
    def __init__(self, n_fft: int, hop: int, channels: int):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        C = channels
        self.convs = nn.ModuleList([
            nn.Conv2d(1, C, (7, 5), padding=(3, 2)),
            nn.Conv2d(C, C, (5, 3), stride=(2, 1), padding=(2, 1)),
            nn.Conv2d(C, C, (5, 3), stride=(2, 1), padding=(2, 1)),
            nn.Conv2d(C, C, (3, 3), padding=(1, 1))])
        self.out = nn.Conv2d(C, 1, (3, 3), padding=(1, 1))

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = torch.log(stft_magnitude(wav, self.n_fft, self.hop) + 1e-5)[:, None]  # (B, 1, F, frames)
        feats = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.1)
            feats.append(x)
        return self.out(x), feats


class MultiResolutionDiscriminator(nn.Module):
    def __init__(self, resolutions=RESOLUTIONS, channels: int = 16):
        super().__init__()
        self.stacks = nn.ModuleList(_SpectrogramStack(n, h, channels) for n, h in resolutions)

    def discriminator_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """LSGAN: real crops towards 1, decoded ones (detached) towards 0, averaged over resolutions."""
        loss = real.new_zeros(())
        for stack in self.stacks:
            loss = loss + (1 - stack(real)[0]).square().mean() + stack(fake.detach())[0].square().mean()
        return loss / len(self.stacks)

    def generator_loss(self, real: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        """"adv": the decoded crops' LSGAN loss (towards 1); "fm": feature matching, the mean L1 between
        each layer's activations on the real crop (no gradient) and on the decoded one."""
        adv, fm, layers = fake.new_zeros(()), fake.new_zeros(()), 0
        for stack in self.stacks:
            logits, feats = stack(fake)
            with torch.no_grad():
                _, real_feats = stack(real)
            adv = adv + (1 - logits).square().mean()
            for a, b in zip(feats, real_feats):
                fm, layers = fm + F.l1_loss(a, b), layers + 1
        return {"adv": adv / len(self.stacks), "fm": fm / max(layers, 1)}
