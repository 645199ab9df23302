"""Building blocks shared by two or more methods (imports nothing heavy; import the submodule you need).

* :mod:`srbench.nn.sd` — Stable Diffusion components via diffusers/transformers: loading from a
  folder / hub id / tiny random configs, cached prompt embeddings, VAE encode/decode helpers.
* :mod:`srbench.nn.tiling` — overlapping-tile inference with Gaussian (InvSR) or linear blending.
* :mod:`srbench.nn.colorfix` — colour fix of an SR output towards a reference (none/adain/wavelet/ycbcr).
* :mod:`srbench.nn.precision` — fp16 → bf16 → fp32 re-run of images whose output is non-finite.
* :mod:`srbench.nn.ema` — exponential moving average of parameters (training).
"""
