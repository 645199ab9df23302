"""srbench: a benchmark harness for diffusion-based image super-resolution (docs/architecture.md)."""

import logging as _logging

# peft (imported by diffusers when present) imports bitsandbytes (a pyiqa dependency), which on
# import tries to fetch CPU 4-bit kernels from the Hugging Face Hub and logs two lines about it
# on every command, offline or not. srbench never runs 4-bit layers: keep those loggers to errors,
# so a user error stays one line.
for _name in ("bitsandbytes", "kernels"):
    _logging.getLogger(_name).setLevel(_logging.ERROR)
