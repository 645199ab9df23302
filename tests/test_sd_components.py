"""srbench.nn.sd: tiny/random SD components, folder round trip, prompt cache, VAE helpers, errors.

Oracles: diffusers' own ``StableDiffusionPipeline`` (folder layout, ``encode_prompt``),
``retrieve_latents`` and ``VaeImageProcessor.postprocess`` (the latent/image conventions its
pipelines use), module names quoted in the InvSR/OSEDiff specs, and the SD-2.x parameter
counts (UNet 865,910,724; VAE 83,653,863; text encoder 340,387,840 — what diffusers and
transformers report for ``stabilityai/stable-diffusion-2-1-base``).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest
import torch

from srbench.nn import sd as S
from srbench.weights import MissingWeightsError


@pytest.fixture(scope="module")
def tiny() -> S.SDComponents:
    return S.load_sd_components("tiny")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return S.save_tiny_sd(tmp_path_factory.mktemp("sd") / "tiny-sd")


def unet_eps(c: S.SDComponents, z: torch.Tensor, prompt: str = "a photo") -> torch.Tensor:
    with torch.no_grad():
        return c.unet(
            z, 999, encoder_hidden_states=S.encode_prompt(c, prompt).expand(z.shape[0], -1, -1)
        ).sample


# --------------------------------------------------------------------------- architecture
def test_tiny_builds_in_seconds_with_sd_classes():
    import diffusers  # noqa: F401 - exclude library import time from the build time
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    t0 = time.perf_counter()
    c = S.load_sd_components("tiny")
    elapsed = time.perf_counter() - t0
    assert elapsed < 30, f"tiny SD build took {elapsed:.1f}s"  # ~0.3 s on an idle 2-core CPU
    assert isinstance(c.unet, UNet2DConditionModel) and isinstance(c.vae, AutoencoderKL)
    assert isinstance(c.text_encoder, CLIPTextModel) and isinstance(c.tokenizer, CLIPTokenizer)
    assert isinstance(c.scheduler, DDPMScheduler)
    assert c.unet.config.cross_attention_dim == c.text_encoder.config.hidden_size
    assert c.tokenizer.model_max_length == 77 and c.tokenizer.pad_token == "!"  # SD-2 tokenizer settings
    assert all(not p.requires_grad for m in c.modules().values() for p in m.parameters())


def _sd2_on_meta():
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    with torch.device("meta"):
        return (
            UNet2DConditionModel(**S.SD2_UNET_CONFIG),
            AutoencoderKL(**S.SD2_VAE_CONFIG),
            CLIPTextModel(CLIPTextConfig(**S.SD2_TEXT_ENCODER_CONFIG)),
        )


def test_sd2_configs_give_the_published_parameter_counts():
    unet, vae, text = _sd2_on_meta()
    counts = [sum(p.numel() for p in m.parameters()) for m in (unet, vae, text)]
    assert counts == [865_910_724, 83_653_863, 340_387_840]


def test_tiny_has_the_module_names_of_sd2(tiny):
    unet, vae, text = _sd2_on_meta()
    assert tiny.unet.state_dict().keys() == unet.state_dict().keys()
    assert tiny.vae.state_dict().keys() == vae.state_dict().keys()

    def layer0(keys):  # the tiny encoder has 2 of the 23 layers; names otherwise identical
        return {re.sub(r"layers\.\d+\.", "layers.N.", k) for k in keys}

    assert layer0(tiny.text_encoder.state_dict()) == layer0(text.state_dict())
    # names the method specs quote (OSEDiff LoRA targets, InvSR/OSEDiff VAE), with linear projections
    sd = tiny.unet.state_dict()
    for key in (
        "conv_in.weight",
        "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight",
        "down_blocks.2.attentions.1.transformer_blocks.0.attn2.to_k.weight",
        "mid_block.attentions.0.proj_in.weight",
        "up_blocks.3.attentions.2.proj_out.weight",
        "up_blocks.1.attentions.0.transformer_blocks.0.ff.net.0.proj.weight",
        "conv_out.weight",
    ):
        assert key in sd
    assert sd["mid_block.attentions.0.proj_in.weight"].ndim == 2  # use_linear_projection (SD-2)
    for key in (
        "encoder.mid_block.attentions.0.to_q.weight",
        "quant_conv.weight",
        "post_quant_conv.weight",
        "encoder.down_blocks.0.resnets.1.conv2.weight",
        "decoder.up_blocks.0.resnets.2.conv1.weight",
    ):
        assert key in tiny.vae.state_dict()
    assert S.vae_scale_factor(tiny.vae) == 8 and tiny.vae.config.scaling_factor == 0.18215


# --------------------------------------------------------------------------- folder round trip
def test_saved_folder_is_a_valid_diffusers_pipeline(tiny_dir, tiny):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(tiny_dir, safety_checker=None, local_files_only=True)
    for name in ("unet", "vae", "text_encoder"):
        ours, theirs = getattr(tiny, name).state_dict(), getattr(pipe, name).state_dict()
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_save_then_load_gives_identical_outputs(tiny_dir, tiny):
    loaded = S.load_sd_components(tiny_dir)
    assert loaded.path == tiny_dir and loaded.source == str(tiny_dir)
    torch.testing.assert_close(
        S.encode_prompt(loaded, "a cat"), S.encode_prompt(tiny, "a cat"), rtol=0, atol=0
    )
    z = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(unet_eps(loaded, z), unet_eps(tiny, z), rtol=0, atol=0)
    x = torch.rand(1, 3, 32, 40, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(S.vae_encode(loaded.vae, x), S.vae_encode(tiny.vae, x), rtol=0, atol=0)
    assert loaded.scheduler.config.beta_schedule == "scaled_linear"
    digests = loaded.describe(hash_files=True)["weights_sha256"]
    assert set(digests) == {
        "unet/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.safetensors",
        "text_encoder/model.safetensors",
    }


def test_hub_id_found_in_hf_cache_offline(tiny_dir, tmp_path, monkeypatch):
    cache = tmp_path / "hf"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    snap = cache / "models--org--tiny-sd" / "snapshots" / ("d" * 40)
    shutil.copytree(tiny_dir, snap)
    (cache / "models--org--tiny-sd" / "refs").mkdir()
    (cache / "models--org--tiny-sd" / "refs" / "main").write_text("d" * 40)
    c = S.load_sd_components("org/tiny-sd", components=("vae",), method="fake")
    assert c.path == snap and c.unet is None and c.vae is not None


def test_components_subset_scheduler_class_and_variant(tiny_dir, tmp_path):
    from diffusers import EulerDiscreteScheduler

    c = S.load_sd_components(tiny_dir, components=("scheduler",), scheduler_cls="EulerDiscreteScheduler")
    assert isinstance(c.scheduler, EulerDiscreteScheduler) and c.unet is None
    assert c.scheduler.config.beta_end == 0.012
    # a folder holding only fp16-variant weights (as some hub repos do) loads without naming the variant
    fp16 = shutil.copytree(tiny_dir, tmp_path / "fp16")
    (fp16 / "unet" / "diffusion_pytorch_model.safetensors").rename(
        fp16 / "unet" / "diffusion_pytorch_model.fp16.safetensors"
    )
    assert S.load_sd_components(fp16, components=("unet",)).unet is not None


def test_dtype_and_channels_last_apply_to_every_module(tiny_dir):
    c = S.load_sd_components(tiny_dir, dtype=torch.bfloat16, channels_last=True)
    for m in c.modules().values():
        assert {p.dtype for p in m.parameters()} == {torch.bfloat16}
    assert c.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert c.vae.encoder.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert S.encode_prompt(c, "x").dtype == torch.bfloat16
    assert unet_eps(c, torch.randn(1, 4, 8, 8, dtype=torch.bfloat16)).shape == (1, 4, 8, 8)


# --------------------------------------------------------------------------- prompts
def test_encode_prompt_runs_the_encoder_once_per_prompt(tiny_dir):
    from diffusers import StableDiffusionPipeline

    c = S.load_sd_components(tiny_dir)
    calls = []
    c.text_encoder.register_forward_hook(lambda mod, args, out: calls.append(args[0].shape[0]))
    a1 = S.encode_prompt(c, "Cinematic, high-contrast, photo-realistic, 8k")
    a2 = S.encode_prompt(c, "Cinematic, high-contrast, photo-realistic, 8k")
    assert calls == [1] and torch.equal(a1, a2) and a1.shape == (1, 77, 32)
    batch = S.encode_prompt(c, ["b", "Cinematic, high-contrast, photo-realistic, 8k", "b"])
    assert calls == [1, 1] and batch.shape == (3, 77, 32)
    assert torch.equal(batch[1], a1[0]) and torch.equal(batch[0], batch[2])
    # oracle: diffusers' own SD prompt encoding (no CFG, one image per prompt)
    pipe = StableDiffusionPipeline(
        vae=c.vae,
        text_encoder=c.text_encoder,
        tokenizer=c.tokenizer,
        unet=c.unet,
        scheduler=c.scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    ref, _ = pipe.encode_prompt("b", torch.device("cpu"), 1, False)
    torch.testing.assert_close(batch[:1], ref, rtol=0, atol=0)


# --------------------------------------------------------------------------- VAE
def test_vae_encode_decode_follow_diffusers_conventions(tiny):
    from diffusers.image_processor import VaeImageProcessor
    from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_img2img import retrieve_latents

    x = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(0))
    z = S.vae_encode(tiny.vae, x)
    assert z.shape == (2, 4, 5, 7)
    with torch.no_grad():
        ref = retrieve_latents(tiny.vae.encode(VaeImageProcessor().preprocess(x)), sample_mode="argmax")
    torch.testing.assert_close(z, ref * 0.18215, rtol=0, atol=0)
    img = S.vae_decode(tiny.vae, z)
    with torch.no_grad():
        ref_img = VaeImageProcessor().postprocess(tiny.vae.decode(z / 0.18215).sample, output_type="pt")
    assert img.shape == (2, 3, 40, 56) and img.min() >= 0 and img.max() <= 1
    torch.testing.assert_close(img, ref_img, rtol=0, atol=1e-7)


def test_vae_posterior_sample_is_per_image_reproducible(tiny):
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))

    def gens(*seeds):
        return [torch.Generator().manual_seed(s) for s in seeds]

    both = S.vae_encode(tiny.vae, x, sample=True, generator=gens(1, 2))
    alone = S.vae_encode(tiny.vae, x[1:], sample=True, generator=gens(2))
    torch.testing.assert_close(both[1:], alone, rtol=0, atol=1e-6)
    assert not torch.allclose(both, S.vae_encode(tiny.vae, x))  # a sample, not the mean


def test_vae_tiling_and_slicing(tiny):
    vae = S.load_sd_components("tiny", components=("vae",)).vae
    x = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    plain = S.vae_encode(vae, x)
    calls = []
    hook = vae.encoder.register_forward_hook(lambda m, a, o: calls.append(tuple(a[0].shape)))
    S.configure_vae(vae, tiling=True, tile_sample_size=32, slicing=True)
    assert vae.tile_latent_min_size == 4
    tiled = S.vae_encode(vae, x)
    assert tiled.shape == plain.shape and len(calls) > 2 and all(s[0] == 1 and s[-1] <= 32 for s in calls)
    assert S.vae_decode(vae, tiled).shape == x.shape
    S.configure_vae(vae, tiling=True, tile_sample_size=128)  # tile larger than the image: no tiling
    torch.testing.assert_close(S.vae_encode(vae, x), plain, rtol=0, atol=1e-6)
    hook.remove()
    S.configure_vae(vae)
    assert not vae.use_tiling and not vae.use_slicing


# --------------------------------------------------------------------------- errors
def one_line(exc: BaseException) -> str:
    msg = str(exc)
    assert "\n" not in msg and "Traceback" not in msg
    return msg


@pytest.mark.parametrize(
    "hub_id,method", [("stabilityai/sd-turbo", "invsr"), ("stabilityai/stable-diffusion-2-1-base", "osediff")]
)
def test_uncached_hub_id_offline_is_one_line(hub_id, method, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(MissingWeightsError) as err:
        S.load_sd_components(hub_id, method=method)
    msg = one_line(err.value)
    name = hub_id.split("/")[1]
    assert hub_id in msg and str(Path(os.environ["SRBENCH_WEIGHTS"]) / method / name) in msg
    assert f"srbench weights download {method}" in msg
    with pytest.raises(MissingWeightsError, match="HF_HUB_OFFLINE") as err:
        S.load_sd_components(hub_id, method=method, download=True)
    one_line(err.value)


def test_missing_folder_is_one_line(tmp_path):
    with pytest.raises(MissingWeightsError, match="does not exist") as err:
        S.load_sd_components(tmp_path / "no-such-sd")
    assert str(tmp_path / "no-such-sd") in one_line(err.value)


def test_incomplete_or_corrupt_folder_is_one_line(tiny_dir, tmp_path):
    broken = shutil.copytree(tiny_dir, tmp_path / "broken")
    (broken / "unet" / "config.json").unlink()
    with pytest.raises(MissingWeightsError, match=r"no unet/config.json") as err:
        S.load_sd_components(broken)
    one_line(err.value)
    S.load_sd_components(broken, components=("vae",))  # the parts present still load
    weights = broken / "vae" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(MissingWeightsError, match=r"cannot load vae from") as err:
        S.load_sd_components(broken, components=("vae",))
    one_line(err.value)


@pytest.mark.slow  # inductor compiles C++ on CPU: ~8 min on 2 cores
def test_compiled_unet_matches_eager(tiny):
    compiled = S.load_sd_components("tiny", compile=True)
    z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(unet_eps(compiled, z), unet_eps(tiny, z), rtol=1e-4, atol=1e-4)
    assert compiled.unet.state_dict().keys() == tiny.unet.state_dict().keys()
