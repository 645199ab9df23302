"""The parts of the training runner (``srbench-train``, :mod:`srbench.runners.train`), one job each.

* :mod:`.rng` — every RNG stream's state (saved in checkpoints, restored on resume);
* :mod:`.schedule` — the learning-rate schedule (warm-up + step decay);
* :mod:`.optimizers` — the trainer's named optimizers, their schedules, clipping and gradient
  averaging over processes;
* :mod:`.checkpoints` — checkpoint files (write, prune, module state in and out) and the CSV log;
* :mod:`.loop` — one training run: build everything from the config, resume, loop, validate.

The contract a method implements is :mod:`srbench.training` (not in this package: methods never
import the runners).
"""
