"""InvSR (Yue et al., CVPR 2025): diffusion inversion over SD-Turbo with a learned start-noise predictor."""
