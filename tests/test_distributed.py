"""Multi-process sharding on torch.distributed (gloo on CPU here; NCCL on GPUs)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ARGS = ["method=bicubic", "dataset=samples", "dataset.images=[coins,chelsea,camera]", "metrics.lpips_nets=[]",
        "num_workers=0", "batch_size=1", "run_name=r"]


def _rows(root: Path) -> list[dict]:
    with open(root / "samples" / "bicubic" / "r" / "per_image.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k not in ("time_ms", "peak_mem_mb")} for row in csv.DictReader(f)]


def test_torchrun_two_ranks_equals_single_process(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = subprocess.run([sys.executable, "-m", "srbench.runners.bench", *ARGS, f"results_dir={tmp_path / 'one'}"],
                            capture_output=True, text=True, check=False, env=env, timeout=600)
    assert single.returncode == 0, single.stderr
    multi = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                            "-m", "srbench.runners.bench", *ARGS, f"results_dir={tmp_path / 'two'}"],
                           capture_output=True, text=True, check=False, env=env, timeout=600)
    assert multi.returncode == 0, multi.stderr
    one, two = _rows(tmp_path / "one"), _rows(tmp_path / "two")
    assert [r["image"] for r in two] == ["coins", "chelsea", "camera"]  # merged in dataset order
    assert one == two
    run = tmp_path / "two" / "samples" / "bicubic" / "r"
    assert not list(run.glob("per_image.rank*.csv"))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["n_images"] == 3
    assert json.loads((run / "manifest.json").read_text())["world_size"] == 2


@pytest.mark.slow
def test_submitit_local_launcher_runs_a_sweep(tmp_path):
    """The Slurm path in miniature: Hydra's submitit launcher (local executor) runs each job."""
    out = subprocess.run([sys.executable, "-m", "srbench.runners.bench", "-m", "hydra/launcher=submitit_local",
                          "method=bicubic", "metrics=standard,matlab", "dataset.images=[coins]",
                          "metrics.lpips_nets=[]", f"results_dir={tmp_path}"],
                         capture_output=True, text=True, check=False, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    runs = sorted(p.parent.name.split("-")[1] for p in (tmp_path / "samples" / "bicubic").glob("*/summary.json"))
    assert runs == ["matlab", "standard"]
