"""``postprocess.colorfix``: the runner's colour fix of each SR batch (srbench.nn.colorfix against up(LR))."""

from __future__ import annotations

import json

import torch
from helpers import bench_config, plugin_env, run_cli

from srbench.metrics.colour_shift import upsample_lr
from srbench.nn import colorfix
from srbench.runners import bench
from srbench.runners.bench import default_run_name, run_bench

BASE = ["method=toy_nearest", "+method.noise=0.05", "dataset.images=[coins,chelsea]", "metrics.lpips_nets=[]",
        "num_workers=0", "batch_size=2"]


def _run(tmp_path, monkeypatch, extra):
    """Run the toy method; return (result, [(raw SR, LR, scored SR)] per batch)."""
    seen, raw = [], []
    real_upscale, real_score = bench.BenchLoop._upscale, bench.score_batch

    def upscale(self, lr, scale, seeds, *names):
        out = real_upscale(self, lr, scale, seeds, *names)
        raw.append((out[0].clone(), lr.clone()))
        return out

    def score(suite, sr, hr, lr, **kw):
        seen.append(sr.clone())
        return real_score(suite, sr, hr, lr, **kw)

    monkeypatch.setattr(bench.BenchLoop, "_upscale", upscale)
    monkeypatch.setattr(bench, "score_batch", score)
    with bench_config(BASE + [f"results_dir={tmp_path}", *extra]) as cfg:
        result = run_bench(cfg)
    return result, [(r, lr, s) for (r, lr), s in zip(raw, seen)]


def test_adain_run_is_its_own_run_and_scores_the_fixed_sr(tmp_path, toy, monkeypatch):
    plain, plain_batches = _run(tmp_path, monkeypatch, [])
    fixed, fixed_batches = _run(tmp_path, monkeypatch, ["postprocess.colorfix=adain"])
    assert plain.status == fixed.status == "complete"
    assert plain.run_dir != fixed.run_dir and plain.run_dir.parent == fixed.run_dir.parent
    for sr_raw, lr, scored in fixed_batches:
        expected = colorfix.adain(sr_raw.float(), upsample_lr(lr, tuple(sr_raw.shape[-2:]))).clamp(0, 1)
        assert torch.equal(scored, expected)
    # without the post-process the scored SR is the method's output, clamped
    for sr_raw, _, scored in plain_batches:
        assert torch.equal(scored, sr_raw.float().clamp(0, 1))
    assert not torch.equal(fixed_batches[0][2], plain_batches[0][2])
    manifest = json.loads((fixed.run_dir / "manifest.json").read_text())
    assert manifest["config"]["postprocess"] == {"colorfix": "adain"}

    from srbench.report.runs import load

    assert load(fixed.run_dir).card()["colour fix (postprocess.colorfix)"] == "adain"
    assert load(plain.run_dir).card()["colour fix (postprocess.colorfix)"] == "none"


def test_no_colour_fix_keeps_the_run_names_of_before():
    cfg = {"dataset": {"name": "samples"}, "metrics": {"profile": "standard"}, "seed": 0}
    args = ({"name": "bicubic"}, 4, torch.device("cpu"), torch.float32)
    before = default_run_name(cfg, *args)
    assert default_run_name({**cfg, "postprocess": {"colorfix": "none"}}, *args) == before
    assert default_run_name({**cfg, "postprocess": {"colorfix": "wavelet"}}, *args) != before


def test_unknown_colour_fix_is_one_line_exit_2(tmp_path, toy):
    out = run_cli(["srbench-bench", "method=toy_nearest", "postprocess.colorfix=histogram", f"results_dir={tmp_path}",
                   "metrics.lpips_nets=[]"], env=plugin_env(toy), cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    err = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(err) == 1 and "postprocess.colorfix" in err[0] and "adain" in err[0], out.stderr


def test_allowed_values_are_the_colour_fix_modes():
    from dataclasses import fields

    from srbench.runners.schemas import PostprocessSettings

    (field,) = fields(PostprocessSettings)
    assert tuple(field.metadata["srbench_check"].choices) == colorfix.COLOR_FIX_MODES
