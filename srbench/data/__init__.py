"""Image I/O, MATLAB bicubic, degradations, datasets and their protocols, LR cache.

Import submodules directly (``srbench.data.resize``, ``srbench.data.io``…); this package
imports nothing on its own so ``import srbench`` stays cheap.
"""
