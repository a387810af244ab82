"""Encoder, quantizer, WaveNet and VQ-VAE behaviour on tiny sizes."""
import pytest
import torch

from tiny import tiny_config
from vqcodec.config import EncoderConfig, QuantizerConfig, WaveNetConfig
from vqcodec.models.vqvae import VQVAE
from vqcodec.nn.encoder import Encoder
from vqcodec.nn.quantizer import VectorQuantizer
from vqcodec.nn.wavenet import WaveNet


def test_encoder_downsamples_by_64_and_the_factor_is_configurable():
    enc = Encoder(EncoderConfig(channels=8, dim=5, num_residual=1))
    assert enc.hop == 64
    assert enc(torch.randn(2, 64 * 10)).shape == (2, 5, 10)
    enc128 = Encoder(EncoderConfig(channels=8, dim=5, num_strided=7))
    assert enc128.hop == 128 and enc128(torch.randn(1, 128 * 3)).shape == (1, 5, 3)
    with pytest.raises(ValueError):
        enc(torch.randn(1, 100))


def test_encoder_context_bounds_the_receptive_field():
    torch.manual_seed(0)
    enc = Encoder(EncoderConfig(channels=8, dim=4, num_residual=2))
    x = torch.randn(1, 64 * 40)
    y = x.clone()
    y[0, 64 * 20 + enc.context:] += 1.0  # change everything beyond the context of token 20
    with torch.no_grad():
        assert torch.equal(enc(x)[..., :21], enc(y)[..., :21])


def test_straight_through_gradient_reaches_the_encoder():
    cfg = tiny_config()
    model = VQVAE(cfg.model, num_speakers=2)
    wav = torch.randn(2, 64 * 8) * 0.3
    out = model(wav, torch.tensor([0, 1]))
    out["ce"].backward()  # the reconstruction term alone must train the encoder
    assert model.encoder.strided[0].weight.grad is not None
    assert model.encoder.strided[0].weight.grad.abs().sum() > 0


def test_codebook_loss_moves_codes_toward_encoder_outputs():
    torch.manual_seed(0)
    vq = VectorQuantizer(QuantizerConfig(codebook_size=8, ema=False, dead_code_steps=0), dim=4)
    z = torch.randn(2, 4, 50) + 3.0
    opt = torch.optim.SGD([vq.codebook], lr=0.5)
    flat = z.transpose(1, 2).reshape(-1, 4)

    def distance():
        return (flat[:, None] - vq.codebook[None]).pow(2).sum(-1).min(1).values.mean().item()

    before = distance()
    for _ in range(5):
        out = vq(z)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    assert distance() < 0.5 * before
    # commitment is what reaches z_e: its gradient pulls z_e toward the chosen code
    z2 = z.clone().requires_grad_()
    vq(z2).loss.backward()
    assert z2.grad is not None and z2.grad.abs().sum() > 0


def test_ema_moves_used_codes_to_the_mean_of_their_inputs():
    torch.manual_seed(0)
    vq = VectorQuantizer(QuantizerConfig(codebook_size=4, ema=True, decay=0.5, dead_code_steps=0), dim=2)
    assert not vq.codebook.requires_grad
    z = torch.tensor([[5.0, 5.0]]).repeat(64, 1).T.reshape(1, 2, 64)
    vq.train()
    code = vq(z).codes[0, 0].item()
    for _ in range(20):
        vq(z)
    assert torch.allclose(vq.codebook[code], torch.tensor([5.0, 5.0]), atol=1e-2)
    vq.eval()
    before = vq.codebook.clone()
    vq(z)  # no updates outside training
    assert torch.equal(before, vq.codebook)


def test_dead_code_restart_reseeds_unused_codes_from_encoder_outputs():
    torch.manual_seed(0)
    vq = VectorQuantizer(QuantizerConfig(codebook_size=8, ema=True, dead_code_steps=3), dim=2)
    vq.train()
    z = torch.randn(1, 2, 200) * 0.1 + 10.0  # far from every initial code: one code takes all
    for _ in range(4):
        vq(z)
    # every code that was unused 3 steps running now sits among the encoder outputs
    near = (vq.codebook - 10.0).abs().max(1).values < 1.0
    assert near.sum() >= 7
    assert vq.reset_usage().sum() == 4 * 200


def test_perplexity_counts_codes_in_use():
    vq = VectorQuantizer(QuantizerConfig(codebook_size=4, ema=False, dead_code_steps=0), dim=2)
    with torch.no_grad():
        vq.codebook.copy_(torch.tensor([[0.0, 0], [10, 0], [0, 10], [10, 10]]))
    vq.eval()
    z = vq.codebook.data.repeat(5, 1).T.unsqueeze(0)  # each code used equally
    assert abs(vq(z).perplexity.item() - 4.0) < 1e-4


@pytest.mark.parametrize("kernel_size", [2, 3])
def test_incremental_wavenet_equals_teacher_forced(kernel_size):
    torch.manual_seed(0)
    cfg = WaveNetConfig(layers=6, dilation_cycle=3, residual_channels=8, gate_channels=12, skip_channels=10,
                        kernel_size=kernel_size, global_dim=5)
    net = WaveNet(cfg, num_classes=20, local_channels=4, upsample=4, num_global=3).eval()
    x = torch.randint(0, 20, (3, 45))
    local = torch.randn(3, 4, 12)
    g = torch.tensor([0, 2, 1])
    with torch.no_grad():
        ref = net(x, local, g)
    state = net.init_state(3, local, g)
    steps = []
    for t in range(45):
        steps.append(net.step(state))
        state.feed(x[:, t])
    assert torch.allclose(torch.stack(steps, 2), ref, atol=1e-5)


def test_wavenet_is_causal():
    torch.manual_seed(0)
    net = WaveNet(WaveNetConfig(layers=4, dilation_cycle=2, residual_channels=4, gate_channels=8,
                                skip_channels=8, global_dim=0), num_classes=10)
    x = torch.randint(0, 10, (1, 30))
    y = x.clone()
    y[0, 15] = (x[0, 15] + 1) % 10
    with torch.no_grad():
        a, b = net(x), net(y)
    assert torch.equal(a[..., :16], b[..., :16])  # position 15 predicts x[15] from x[<15]
    assert not torch.equal(a[..., 16:], b[..., 16:])


def test_vqvae_loss_is_cross_entropy_over_mulaw_plus_vq_terms():
    torch.manual_seed(0)
    cfg = tiny_config()
    model = VQVAE(cfg.model, num_speakers=3)
    out = model(torch.randn(2, 64 * 4) * 0.2, torch.tensor([0, 2]))
    assert out["codes"].shape == (2, 4)
    assert abs(out["ce"].item() - torch.log(torch.tensor(256.0)).item()) < 1.0  # untrained: near uniform
    assert out["loss"].item() >= out["ce"].item()
    with pytest.raises(IndexError):
        model(torch.randn(1, 64), torch.tensor([3]))
