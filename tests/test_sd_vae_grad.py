"""srbench.nn.sd: ``vae_encode`` / ``vae_decode`` record gradients only when asked (``grad=True``).

Training (OSEDiff's VAE-encoder LoRA) needs the graph through the encoder; inference callers keep
the default ``torch.no_grad``. Oracle: the same loss through diffusers' ``vae.encode`` / ``decode``.
"""

import pytest
import torch

from srbench.nn.sd import load_sd_components, vae_decode, vae_encode


@pytest.fixture
def vae():
    return load_sd_components("tiny", components=("vae",)).vae  # frozen: requires_grad False


def _x():
    return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def test_default_records_no_graph_even_with_trainable_params(vae):
    vae.encoder.requires_grad_(True)
    with torch.enable_grad():
        z = vae_encode(vae, _x())
        x = vae_decode(vae, z.requires_grad_(True))
    assert not z.grad_fn and not x.requires_grad


def test_grad_reaches_encoder_params_as_in_diffusers(vae):
    vae.encoder.requires_grad_(True)  # what a LoRA on the encoder makes trainable
    params = [p for p in vae.encoder.parameters()]
    x = _x()
    sample_gen = lambda: [torch.Generator().manual_seed(s) for s in (3, 4)]
    loss = vae_encode(vae, x, sample=True, generator=sample_gen(), grad=True).square().mean()
    ours = torch.autograd.grad(loss, params)
    ref_z = vae.encode(2 * x - 1).latent_dist.sample(generator=sample_gen()) * vae.config.scaling_factor
    ref = torch.autograd.grad(ref_z.square().mean(), params)
    assert all(g.abs().sum() > 0 for g in ours[:4])  # conv_in and the first resnet see the loss
    for g, r in zip(ours, ref, strict=True):
        torch.testing.assert_close(g, r, atol=1e-7, rtol=1e-5)
    assert not any(p.requires_grad for p in vae.decoder.parameters())  # untouched


def test_grad_flows_through_decoder_to_latent(vae):
    z = torch.randn(1, 4, 4, 4, requires_grad=True)
    vae_decode(vae, z, clamp=False, grad=True).mean().backward()
    ref_z = z.detach().clone().requires_grad_(True)
    ((vae.decode(ref_z / vae.config.scaling_factor).sample + 1) / 2).mean().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    torch.testing.assert_close(z.grad, ref_z.grad, atol=1e-8, rtol=1e-5)
