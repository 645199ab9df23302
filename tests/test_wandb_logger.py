"""logger=wandb: a resumed run (same run folder) continues the same W&B run."""

import sys
import types

from srbench.tracking.wandb_logger import WandbLogger


def _fake_wandb(monkeypatch):
    calls = []

    class Run:
        def __init__(self):
            self.summary = {}

        def log(self, *a, **k):
            pass

        def finish(self):
            pass

    module = types.SimpleNamespace(init=lambda **kw: calls.append(kw) or Run())
    monkeypatch.setitem(sys.modules, "wandb", module)
    return calls


def test_same_run_folder_resumes_the_same_wandb_run(tmp_path, monkeypatch):
    calls = _fake_wandb(monkeypatch)
    for run_dir in (tmp_path / "a", tmp_path / "a", tmp_path / "b"):
        WandbLogger({"mode": "offline"}, run_dir=run_dir, run_name="bicubic-x4", group="samples")
    first, again, other = calls
    assert first["id"] == again["id"] != other["id"]
    assert first["resume"] == "allow" and first["mode"] == "offline" and first["group"] == "samples"
