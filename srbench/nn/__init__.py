"""Building blocks shared by two or more methods (imports nothing heavy; import the submodule you need).

* :mod:`srbench.nn.sd` — Stable Diffusion components via diffusers/transformers: loading from a
  folder / hub id / tiny random configs, cached prompt embeddings, VAE encode/decode helpers.
* :mod:`srbench.nn.tiling` — overlapping-tile inference with Gaussian (InvSR) or linear blending.
* :mod:`srbench.nn.ema` — exponential moving average of parameters (training).
"""
