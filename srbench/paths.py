"""Where srbench finds its Hydra configuration.

``conf/`` sits next to the packages in a checkout (``pip install -e .``, the supported
install); ``$SRBENCH_CONF`` points elsewhere (a copy of ``conf/`` for a non-editable install,
or a lab's own config tree).
"""

from __future__ import annotations

import os
from pathlib import Path

CONF_DIR = Path(os.environ.get("SRBENCH_CONF", Path(__file__).resolve().parents[1] / "conf"))
