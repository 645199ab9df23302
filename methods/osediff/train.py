"""OSEDiff training (paper §3.3, ``train_osediff.py`` + ``OSEDiff_gen``/``OSEDiff_reg``, cswry/OSEDiff @ fcc4f09).

Two optimizers, stepped in this order each step (``srbench-train`` phases):

* ``generator`` — LoRA of the UNet (+ its ``conv_in`` base weight and bias) and of the VAE encoder:

      L_G = λ_l2 · MSE(x̂_H, x_H) + λ_lpips · LPIPS_vgg(x̂_H, x_H) + λ_vsd · L_VSD(ẑ_H)      (eq. 5-7)

  ``x̂_H, ẑ_H`` from the one-step generator on the LQ resized back to the GT size (``resize_bak``:
  area / bilinear / bicubic at random, rounded to 8 bit, ``realesrgan.py:295-299``); images in [-1, 1].
  L_VSD (``distribution_matching_loss``, ``osediff.py:206-243``): t ~ U{20..979}, z_t = add_noise(ẑ_H, n, t);
  without grad, x0_fake from the "fake" LoRA UNet (prompt only) and x0_real from the frozen "real"
  UNet with CFG ``cfg_vsd`` (7.5) over (negative prompt, prompt); w = mean|ẑ_H − x0_real| per sample;
  L_VSD = MSE(ẑ_H, sg(ẑ_H − (x0_fake − x0_real) / w)), whose gradient w.r.t. ẑ_H is
  2·(x0_fake − x0_real)/(w·N) — it reaches the generator only through ẑ_H.
* ``regulariser`` — the fake UNet's own LoRA (fresh, same three target lists, ``conv_in`` base frozen),
  trained to be the score of the generator's outputs: λ_vsd_lora · MSE(ε_fake(z_t, t, c), n) on
  z_t = add_noise(sg(ẑ_H), n, t), t ~ U{0..999} (``diff_loss``, ``osediff.py:178-194``), with the ẑ_H the
  generator phase of the same step computed (before its update, as the authors).

Prompts: the fixed ``prompt`` of the method config for every image. The authors tag the GT with RAM
(no DAPE) — not implemented here (no RAM weights; said once at start). Differences from the authors:
their generator parameter list holds the ``conv_in`` LoRA tensors twice (AdamW steps them twice per
step, ``train_osediff.py:191-197``); ours holds every parameter once.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from srbench.nn.sd import encode_prompt, load_sd_components
from srbench.training import Trainer

from .lora import add_osediff_adapters, unmerge_lora

__all__ = ["NEG_PROMPT", "OSEDiffTrainer", "TrainOptions", "resize_bak"]

#: ``scripts/train/train_osediff.sh --neg_prompt`` (the VSD classifier-free-guidance negative)
NEG_PROMPT = (
    "painting, oil painting, illustration, drawing, art, sketch, cartoon, CG Style, 3D render, unreal engine, "
    "blurring, dirty, messy, worst quality, low quality, frames, watermark, signature, jpeg artifacts, deformed, "
    "lowres, over-smooth"
)


class TrainOptions:
    """``method.train`` of the config (defaults: ``train_osediff.py`` / ``train_osediff.sh``)."""

    KEYS: ClassVar[dict[str, Any]] = {
        "lambda_l2": 1.0, "lambda_lpips": 2.0, "lambda_vsd": 1.0, "lambda_vsd_lora": 1.0, "cfg_vsd": 7.5,
        "neg_prompt": NEG_PROMPT, "vsd": True, "lpips_weights": None,
        "vsd_t_min": 20, "vsd_t_max": 980,  # torch.randint(20, 980): t ∈ {20, …, 979}
    }  # fmt: skip

    def __init__(self, node: Mapping[str, Any] | None) -> None:
        node = dict(node or {})
        unknown = sorted(set(node) - set(self.KEYS))
        if unknown:
            from srbench.errors import ConfigError

            raise ConfigError(f"method.train: unknown key(s) {', '.join(unknown)} (known: {', '.join(self.KEYS)})")
        for k, v in self.KEYS.items():
            setattr(self, k, node.get(k, v))


def resize_bak(lr: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The authors' ``resize_bak``: LQ back to the GT size, mode drawn from the global python RNG, 8-bit."""
    mode = random.choice(["area", "bilinear", "bicubic"])
    out = F.interpolate(lr, size=size, mode=mode)
    return torch.clamp((out * 255.0).round(), 0, 255) / 255.0


def _eps_to_x0(alphas_cumprod: torch.Tensor, eps: torch.Tensor, z_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x0 = (z_t − √(1−ᾱ_t) ε) / √ᾱ_t per sample (``eps_to_mu``)."""
    a = alphas_cumprod.to(z_t.device, z_t.dtype)[t].view(-1, 1, 1, 1)
    return (z_t - (1 - a).sqrt() * eps) / a.sqrt()


class OSEDiffTrainer(Trainer):
    """Generator + fake-score regulariser on an :class:`~methods.osediff.method.OSEDiff` instance."""

    PHASES = ("generator", "regulariser")

    def __init__(self, method: Any, opts: TrainOptions) -> None:
        from srbench.metrics.lpips import LPIPS

        self.method, self.opts = method, opts
        self.lpips = LPIPS("vgg", backbone_weights=opts.lpips_weights).model  # frozen, eval; grad reaches inputs
        gen = method.gen
        if method.facts.get("lora") == "merged":  # training runs the unmerged adapters
            unmerge_lora(gen.unet), unmerge_lora(gen.vae)
            method.facts["lora"] = "unmerged"
        gen.unet.requires_grad_(False), gen.vae.requires_grad_(False)
        for n, p in gen.unet.named_parameters():  # set_train: LoRA + the whole conv_in
            p.requires_grad_("lora" in n or n.startswith("conv_in."))
        for n, p in gen.vae.named_parameters():
            p.requires_grad_("lora" in n)
        self.gen = gen
        base = lambda: load_sd_components(method.sd_source, components=("unet",), dtype=torch.float32,
                                          device="cpu", method="osediff", seed=method.sd_seed).unet  # fmt: skip
        self.real_unet = base().requires_grad_(False).eval()  # "unet_fix": the pretrained score, frozen
        self.fake_unet = base()  # "unet_update": fresh LoRA, same target lists (osediff.py initialize_unet)
        add_osediff_adapters(self.fake_unet, None)
        self.fake_unet.requires_grad_(False)
        for n, p in self.fake_unet.named_parameters():
            p.requires_grad_("lora" in n)
        self.alphas_cumprod = method.parts.scheduler.alphas_cumprod.float()
        self.scheduler = method.parts.scheduler
        self._latents: dict[Any, torch.Tensor] = {}
        print(f"[osediff] training prompts: the fixed prompt {method.prompt!r} for every image "
              "(the authors' RAM tags of the GT are not implemented)", file=sys.stderr)  # fmt: skip

    # ------------------------------------------------------------------ contract
    def modules(self) -> dict[str, torch.nn.Module]:
        return {"unet": self.gen.unet, "vae": self.gen.vae, "fake_unet": self.fake_unet}

    def ema_modules(self) -> dict[str, torch.nn.Module]:
        return {"unet": self.gen.unet, "vae": self.gen.vae}

    def phases(self) -> tuple[str, ...]:
        return self.PHASES

    def optimizer_groups(self, base_lrs: Mapping[str, float]) -> dict[str, list[dict[str, Any]]]:
        gen = [p for m in (self.gen.unet, self.gen.vae) for p in m.parameters() if p.requires_grad]
        fake = [p for p in self.fake_unet.parameters() if p.requires_grad]
        return {"generator": [{"params": gen, "lr": base_lrs["generator"]}],
                "regulariser": [{"params": fake, "lr": base_lrs["regulariser"]}]}  # fmt: skip

    def eval_method(self) -> Any:
        return self.method

    # ------------------------------------------------------------------ losses
    def _frozen_to(self, device: torch.device) -> None:
        for m in (self.real_unet, self.lpips, self.method.parts.text_encoder):
            if next(m.parameters()).device != device:
                m.to(device)
        self.method.parts.device = device

    def _text(self, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            pos = encode_prompt(self.method.parts, [self.method.prompt] * n).to(device)
            neg = encode_prompt(self.method.parts, [self.opts.neg_prompt] * n).to(device)
        return pos, neg

    @torch.no_grad()
    def vsd_targets(self, z0: torch.Tensor, text: torch.Tensor, neg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0_fake, x0_real) at one random t ∈ {20..979} and noise (global RNG), without grad."""
        b = z0.shape[0]
        t = torch.randint(self.opts.vsd_t_min, self.opts.vsd_t_max, (b,), device=z0.device).long()
        noise = torch.randn_like(z0)
        z_t = self.scheduler.add_noise(z0.detach(), noise, t)
        eps_fake = self.fake_unet(z_t, t, encoder_hidden_states=text).sample.float()
        both = self.real_unet(torch.cat([z_t] * 2), torch.cat([t] * 2), encoder_hidden_states=torch.cat([neg, text])).sample
        uncond, cond = both.float().chunk(2)  # classifier-free guidance over (negative, prompt)
        eps_real = uncond + self.opts.cfg_vsd * (cond - uncond)
        return _eps_to_x0(self.alphas_cumprod, eps_fake, z_t, t), _eps_to_x0(self.alphas_cumprod, eps_real, z_t, t)

    def vsd_loss(self, z0: torch.Tensor, text: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        """L_VSD of the module docstring; gradient only through ``z0``."""
        x0_fake, x0_real = self.vsd_targets(z0, text, neg)
        w = (z0.detach().float() - x0_real).abs().mean(dim=(1, 2, 3), keepdim=True)
        grad = (x0_fake - x0_real) / w
        return F.mse_loss(z0.float(), (z0.float() - grad).detach())

    def fake_score_loss(self, z0: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """ε-MSE of the fake UNet on the generator's (detached) latents, t ~ U{0..999}."""
        z0 = z0.detach()
        t = torch.randint(0, int(self.scheduler.config.num_train_timesteps), (z0.shape[0],), device=z0.device).long()
        noise = torch.randn_like(z0)
        z_t = self.scheduler.add_noise(z0, noise, t)
        eps = self.fake_unet(z_t, t, encoder_hidden_states=text.detach()).sample
        return F.mse_loss(eps.float(), noise.float())

    def training_step(self, batch: Mapping[str, Any], phase: str = "generator") -> dict[str, torch.Tensor]:
        hr = batch["hr"]
        key = tuple(map(tuple, batch["keys"])) if "keys" in batch else id(batch)
        text, neg = self._text(hr.shape[0], hr.device)
        if phase == "regulariser":
            if key not in self._latents:
                raise RuntimeError("OSEDiff regulariser phase without the generator phase of the same batch")
            z0 = self._latents.pop(key)
            loss_d = self.fake_score_loss(z0, text) * self.opts.lambda_vsd_lora
            return {"loss": loss_d, "loss_d": loss_d.detach()}
        self._frozen_to(hr.device)
        x_lq = resize_bak(batch["lr"], tuple(hr.shape[-2:])) * 2 - 1
        x_gt = hr * 2 - 1
        x_pred, z0 = self.gen(x_lq, text, sample=True)
        self._latents[key] = z0.detach()
        l2 = F.mse_loss(x_pred.float(), x_gt.float()) * self.opts.lambda_l2
        lp = self.lpips(x_pred.float(), x_gt.float(), normalize=False).mean() * self.opts.lambda_lpips
        out = {"loss_l2": l2.detach(), "loss_lpips": lp.detach()}
        loss = l2 + lp
        if self.opts.vsd:
            kl = self.vsd_loss(z0, text, neg) * self.opts.lambda_vsd
            loss = loss + kl
            out["loss_vsd"] = kl.detach()
        out["loss"] = loss
        return out

    def state_dict(self) -> dict[str, Any]:
        return {}
