"""method=all includes a baseline preset exactly when its weight file is present."""

import shutil

import pytest

pytest.importorskip("spandrel")

from srbench.runners.bench import all_method_configs, available_for  # noqa: E402
from tests.spandrel_tiny import save_tiny  # noqa: E402


def test_all_mode_includes_presets_whose_file_is_present(tmp_path, monkeypatch):
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(tmp_path))
    assert "swinir_real_x4" not in all_method_configs([])  # nothing there: not part of all mode
    (tmp_path / "spandrel").mkdir()
    src = save_tiny("SwinIR", tmp_path)
    shutil.copy(src, tmp_path / "spandrel" / "003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x4_GAN.pth")
    configs = all_method_configs([])
    assert configs["swinir_real_x4"]["name"] == "spandrel"
    assert available_for("swinir_real_x4", configs["swinir_real_x4"], 4) is None
    assert "realesrgan_x4plus" not in configs
