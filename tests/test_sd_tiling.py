"""srbench.nn.sd_tiling: whole-pipeline (VAE encode / latent / VAE decode) tiling.

Oracles: the untiled calls (``vae_encode`` / ``vae_decode``) and ``torch.nn.GroupNorm``. The
real tiny SD VAE (random weights, GroupNorm + mid-block attention) must match untiled to
≥ 45 dB with whole-image GroupNorm statistics (per-tile statistics gave 14.9 dB — the bug these
tests would have caught). A *local* VAE (GroupNorm and attention removed) checks the tiling
bookkeeping alone. Peak RSS is compared at three sizes.
"""

import math

import pytest
import torch

from srbench.devices import peak_memory_mb, reset_peak_memory
from srbench.nn.group_norm_stats import GroupNormStats, OwnedRows, StopForward
from srbench.nn.sd import load_sd_components, vae_decode, vae_encode
from srbench.nn.sd_tiling import (
    SDTiling,
    _owned_spans,
    tiled_latent_apply,
    tiled_vae_decode,
    tiled_vae_encode,
    tiled_vae_moments,
)
from srbench.nn.tiling import plan_tiles, register_blend, registered_blends, tile_size_for_budget


def _psnr(a, b):
    return 10 * math.log10(1 / ((a - b) ** 2).mean().clamp_min(1e-20).item())


def _latent_psnr(z, zt):
    """PSNR of latents against their peak-to-peak range (latents are not in [0, 1])."""
    return 10 * math.log10(((z.max() - z.min()) ** 2 / ((z - zt) ** 2).mean().clamp_min(1e-30)).item())


def _smooth(h, w):
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return torch.stack(
        [
            0.5 + 0.3 * torch.sin(2 * math.pi * xx),
            0.5 + 0.3 * torch.cos(2 * math.pi * yy),
            0.4 + 0.2 * xx * yy,
        ]
    )[None]


@pytest.fixture(scope="module")
def local_vae():
    vae = load_sd_components("tiny", components=("vae",)).vae
    for name, m in list(vae.named_modules()):
        for child_name, child in list(m.named_children()):
            if isinstance(child, torch.nn.GroupNorm):
                setattr(m, child_name, torch.nn.Identity())
    for block in (vae.encoder.mid_block, vae.decoder.mid_block):
        block.attentions = torch.nn.ModuleList([None])  # diffusers skips a None attention
    return vae


def test_tiled_encode_decode_match_untiled_for_local_vae(local_vae):
    img = _smooth(160, 128)
    t = SDTiling(pixel_tile=96, pixel_overlap=48, latent_tile=12, latent_overlap=6)
    z = vae_encode(local_vae, img)
    zt = tiled_vae_encode(local_vae, img, t)
    x = vae_decode(local_vae, z)
    xt = tiled_vae_decode(local_vae, z, t)
    enc_rel = ((z - zt).norm() / z.norm()).item()
    dec_psnr = _psnr(x, xt)
    print(f"local VAE: encode rel err {enc_rel:.2e}, decode PSNR {dec_psnr:.1f} dB")
    assert enc_rel < 1e-2
    assert dec_psnr >= 45


def test_tiled_posterior_sample_is_the_untiled_draw(local_vae):
    img = _smooth(96, 96).repeat(2, 1, 1, 1)
    t = SDTiling(pixel_tile=64, pixel_overlap=32, latent_tile=8, latent_overlap=4)
    gens = lambda: [torch.Generator().manual_seed(s) for s in (1, 2)]
    mean = tiled_vae_encode(local_vae, img, t)
    a = tiled_vae_encode(local_vae, img, t, sample=True, generator=gens())
    b = tiled_vae_encode(local_vae, img[1:], t, sample=True, generator=gens()[1:])
    torch.testing.assert_close(a[1:], b, atol=1e-6, rtol=0)  # image 2's draw independent of the batch
    assert not torch.allclose(a, mean)


def test_tiled_latent_apply_is_exact_for_pointwise_fn():
    z = torch.randn(2, 4, 40, 24)
    t = SDTiling(latent_tile=16, latent_overlap=8)
    torch.testing.assert_close(tiled_latent_apply(lambda u: u * 2 + 1, z, t), z * 2 + 1, atol=1e-5, rtol=0)


def _decode_rss_growth(vae, norm_stats, tile=8, overlap=2, batch=1):
    """Peak RSS growth (MB) of a tiled decode at 128², 256², 512² outputs (``tile`` in latent px)."""
    dev = torch.device("cpu")
    t = SDTiling(latent_tile=tile, latent_overlap=overlap, tile_batch_size=batch, norm_stats=norm_stats)
    tiled_vae_decode(vae, torch.randn(1, 4, tile + 4, tile + 4) * 0.2, t)  # warm the allocator (tiled)
    peaks = []
    for n in (16, 32, 64):
        z = torch.randn(1, 4, n, n) * 0.2
        if not reset_peak_memory(dev):
            pytest.skip("no resettable peak RSS on this OS")
        base = peak_memory_mb(dev)
        tiled_vae_decode(vae, z, t)
        peaks.append(peak_memory_mb(dev) - base)
    print(
        f"tiled decode ({norm_stats}) peak RSS growth (MB) at 128², 256², 512²:", [round(p, 1) for p in peaks]
    )
    return peaks


def test_decode_peak_rss_flat_in_image_size(local_vae):
    peaks = _decode_rss_growth(local_vae, "exact")  # no GroupNorm: plain tiles
    # the output buffers grow (512²·3·8 B ≈ 6 MB) and the whole-latent stage (64²·64·4 B = 1 MB a map);
    # tile activations do not
    assert max(peaks) - min(peaks) < 30


def test_decode_peak_rss_flat_with_estimated_group_norm_stats(tiny_vae):
    peaks = _decode_rss_growth(tiny_vae, "estimate", tile=16, overlap=4)  # ≤ 25 tiles
    assert max(peaks) - min(peaks) < 30


@pytest.mark.slow
def test_decode_peak_rss_flat_with_exact_group_norm_stats(tiny_vae):
    peaks = _decode_rss_growth(tiny_vae, "exact", tile=16, overlap=4)  # 25 tiles × 19 passes at 512²
    assert max(peaks) - min(peaks) < 30


def test_blend_registry_and_budget():
    osediff_like = lambda h, w: torch.ones(h, w) * 2
    register_blend("test_window", osediff_like)
    assert "test_window" in registered_blends()
    register_blend("test_window", osediff_like)  # same function again: fine
    with pytest.raises(ValueError, match="already registered"):
        register_blend("test_window", lambda h, w: torch.ones(h, w))
    with pytest.raises(ValueError, match="built in"):
        register_blend("gaussian", osediff_like)
    z = torch.randn(1, 4, 24, 24)
    out = tiled_latent_apply(lambda u: u, z, SDTiling(latent_tile=16, latent_overlap=8, blend="test_window"))
    torch.testing.assert_close(out, z, atol=1e-6, rtol=0)
    assert tile_size_for_budget(1000, mb_per_pixel=0.01, multiple=64) == 256  # sqrt(1e5)=316 → 256
    assert tile_size_for_budget(None, mb_per_pixel=0.01, max_size=1024) == 1024
    assert tile_size_for_budget("auto", mb_per_pixel=0.01, device="cpu", max_size=2048) == 2048
    assert tile_size_for_budget(1, mb_per_pixel=0.01, min_size=64) == 64
    cfg = SDTiling.from_config({"max_mem_mb": 1000, "overlap": 0.25}, mb_per_pixel=0.01)
    assert (cfg.pixel_tile, cfg.latent_tile, cfg.pixel_overlap, cfg.latent_overlap) == (256, 32, 64, 8)


@pytest.fixture(scope="module")
def tiny_vae():
    return load_sd_components("tiny", components=("vae",)).vae


# 128² image = 16² latent; 2×2 tiles of 96 px / 12 latent px (overlap 64 / 8)
TINY_TILING = SDTiling(pixel_tile=96, pixel_overlap=64, latent_tile=12, latent_overlap=8, tile_batch_size=4)


@pytest.fixture(scope="module")
def tiny_smooth(tiny_vae):
    img = _smooth(128, 128)
    z = vae_encode(tiny_vae, img)
    return img, z, vae_decode(tiny_vae, z)


def test_tiny_sd_vae_tiled_decode_matches_untiled(tiny_vae, tiny_smooth):
    _, z, x = tiny_smooth
    p = _psnr(x, tiled_vae_decode(tiny_vae, z, TINY_TILING))  # default: exact whole-image statistics
    print(f"tiny SD VAE decode, tiled vs untiled: {p:.1f} dB")
    assert p >= 45


def test_tiny_sd_vae_tiled_encode_matches_untiled(tiny_vae, tiny_smooth):
    img, z, x = tiny_smooth
    zt = tiled_vae_encode(tiny_vae, img, TINY_TILING)
    pz, px = _latent_psnr(z, zt), _psnr(x, vae_decode(tiny_vae, zt))
    print(f"tiny SD VAE encode, tiled vs untiled: latent {pz:.1f} dB (peak-to-peak), decoded {px:.1f} dB")
    assert pz >= 45 and px >= 45
    moments = tiled_vae_moments(tiny_vae, img, TINY_TILING)
    torch.testing.assert_close(moments[:, :4] * tiny_vae.config.scaling_factor, zt, atol=1e-6, rtol=0)


def test_per_tile_and_estimated_statistics_are_reported(tiny_vae, tiny_smooth):
    """Per-tile GroupNorm statistics (the old behaviour) are far off; the downsampled estimate is between."""
    img, z, x = tiny_smooth
    found = {}
    for mode in ("tile", "estimate"):
        found[mode] = (
            _latent_psnr(z, tiled_vae_encode(tiny_vae, img, TINY_TILING, norm_stats=mode)),
            _psnr(x, tiled_vae_decode(tiny_vae, z, TINY_TILING, norm_stats=mode)),
        )
        print(f"norm_stats={mode}: encode {found[mode][0]:.1f} dB (latent), decode {found[mode][1]:.1f} dB")
    assert found["tile"][1] < 30  # the ≥ 45 dB tests above detect this
    assert found["estimate"][0] > found["tile"][0] and found["estimate"][1] > found["tile"][1]


def test_tiled_vae_is_per_image_in_a_batch(tiny_vae):
    """Frozen statistics are per image: a batch of two gives each image's own result (tile rows mixed)."""
    img = torch.cat([_smooth(128, 128), _smooth(128, 128).flip(-1) * 0.8])
    t = SDTiling(pixel_tile=96, pixel_overlap=64, latent_tile=12, latent_overlap=8, tile_batch_size=3)
    zb = tiled_vae_encode(tiny_vae, img, t, norm_stats="estimate")
    z1 = tiled_vae_encode(tiny_vae, img[1:], t, norm_stats="estimate")
    torch.testing.assert_close(zb[1:], z1, atol=1e-5, rtol=0)
    xb = tiled_vae_decode(tiny_vae, zb, t, norm_stats="estimate")
    x1 = tiled_vae_decode(tiny_vae, z1, t, norm_stats="estimate")
    torch.testing.assert_close(xb[1:], x1, atol=1e-4, rtol=0)  # batched-conv float order: 1.4e-5 seen
    with pytest.raises(ValueError, match="multiples of the VAE factor 8"):
        tiled_vae_encode(tiny_vae, img, SDTiling(pixel_tile=100, pixel_overlap=52))


def test_owned_spans_partition_each_axis():
    for length, tile, overlap, q in ((16, 12, 8, 1), (128, 96, 64, 8), (200, 64, 24, 8), (37, 10, 3, 1)):
        grid = plan_tiles(length, length, tile, overlap=overlap)
        spans = _owned_spans(grid.tops, tile, length, q)
        covered = []
        for top in grid.tops:
            a, b = spans[top]
            assert 0 <= a <= b <= tile
            covered += range(top + a, top + b)
            if top + a not in (0, length):
                assert (top + a) % q == 0
        assert covered == list(range(length))  # every pixel once, in order


def test_group_norm_stats_from_owned_tiles_equal_whole_image_statistics():
    """Owned-region sums over the tiles of a strided net = the whole image's GroupNorm statistics."""
    torch.manual_seed(0)
    norm = torch.nn.GroupNorm(4, 8)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2)
        norm.bias.normal_()
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 2, stride=2), norm)  # stats at ½ resolution
    x = torch.randn(2, 3, 40, 56)
    grid = plan_tiles(40, 56, 16, overlap=8)
    sy, sx = _owned_spans(grid.tops, 16, 40, 2), _owned_spans(grid.lefts, 16, 56, 2)
    stats = GroupNormStats([net])
    with torch.no_grad(), stats.active():
        stats.record = True
        for t, l in grid:
            stats.rows = OwnedRows((0, 1), (sy[t] + sx[l],) * 2, 16, 16)
            net(x[:, :, t : t + 16, l : l + 16])
        stats.freeze()
        stats.record, stats.rows = False, None
        frozen_out = net(x)
    h = net[0](x).detach().reshape(2, 4, -1).double()
    mean, var = stats.frozen[id(norm)]
    torch.testing.assert_close(mean, h.mean(-1), atol=1e-10, rtol=0)
    torch.testing.assert_close(var, h.var(-1, unbiased=False), atol=1e-10, rtol=0)
    torch.testing.assert_close(frozen_out, net(x).detach(), atol=1e-5, rtol=0)  # frozen = GroupNorm here
    assert not hasattr(norm, "forward") or "forward" not in vars(norm)  # restored on exit


def test_stop_after_skips_the_rest():
    a, b = torch.nn.GroupNorm(2, 4), torch.nn.GroupNorm(2, 4)
    net = torch.nn.Sequential(a, torch.nn.ReLU(), b)
    stats = GroupNormStats([net])
    with torch.no_grad(), stats.active():
        net(torch.randn(1, 4, 6, 6))
        assert stats.order == [a, b]
        stats.record, stats.only, stats.stop_after = True, a, a
        with pytest.raises(StopForward):
            net(torch.randn(1, 4, 6, 6))
        stats.freeze()
    assert set(stats.frozen) == {id(a)}


def test_bad_norm_stats_mode():
    with pytest.raises(ValueError, match="norm_stats"):
        SDTiling(norm_stats="bogus")
    assert SDTiling.from_config({"size": 256, "norm_stats": "estimate"}).norm_stats == "estimate"
