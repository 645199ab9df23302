"""method=all includes a baseline preset exactly when its weight file is present."""

import shutil

import pytest

pytest.importorskip("spandrel")

from srbench.runners.bench import all_method_configs, available_for
from tests.spandrel_tiny import save_tiny


def test_all_mode_includes_presets_whose_file_is_present(tmp_path, monkeypatch):
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(tmp_path))
    assert "hat_x4" not in all_method_configs([])  # nothing there: not part of all mode
    (tmp_path / "spandrel").mkdir()
    src = save_tiny("HAT", tmp_path)
    shutil.copy(src, tmp_path / "spandrel" / "HAT_SRx4_ImageNet-pretrain.pth")  # no digest pinned for it
    # a file under a pinned preset's name whose sha256 differs is corrupt, not "present"
    shutil.copy(save_tiny("SwinIR", tmp_path), tmp_path / "spandrel" / "003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x4_GAN.pth")
    configs = all_method_configs([])
    assert configs["hat_x4"]["name"] == "spandrel"
    assert available_for("hat_x4", configs["hat_x4"], 4) is None
    assert "swinir_real_x4" not in configs and "realesrgan_x4plus" not in configs


def test_a_preset_run_is_filed_and_listed_under_the_preset_name(tmp_path, monkeypatch):
    """Several presets share the spandrel implementation: each gets its own results folder and
    leaderboard row (all of them used to land in results/<dataset>/spandrel/ as "spandrel")."""
    import json

    from srbench.runners.bench import run_bench
    from tests.helpers import bench_config

    monkeypatch.setenv("SRBENCH_WEIGHTS", str(tmp_path / "w"))
    (tmp_path / "w" / "spandrel").mkdir(parents=True)
    src = save_tiny("Compact", tmp_path)
    shutil.copy(src, tmp_path / "w" / "spandrel" / "realesr-general-x4v3.pth")
    # a random file under the preset's name: its pinned sha256 is waived for the test
    overrides = ["method=realesr_general_x4v3", "method.sha256=null", f"results_dir={tmp_path / 'results'}", "dataset.images=[coins]",
                 "metrics.lpips_nets=[]", "num_workers=0"]
    with bench_config(overrides) as cfg:
        result = run_bench(cfg)
    assert result.status == "complete"
    assert result.run_dir.parent.name == "realesr_general_x4v3"
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["method"] == "realesr_general_x4v3"
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["method"]["name"] == "spandrel" and manifest["method"]["preset"] == "realesr_general_x4v3"
