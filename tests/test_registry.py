"""The method registry: entry points, lazy loading, third-party plugins, clear errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import TOY_PLUGIN_SOURCE, make_plugin, plugin_env, run_cli

from srbench.method import DuplicateMethod, SRMethod, UnknownMethod, get_method, method_entries


def test_builtin_bicubic_is_registered_without_import():
    code = ("import sys; from srbench.method import method_entries; e = method_entries(); "
            "assert 'bicubic' in e, e; assert 'methods.bicubic' not in sys.modules; "
            "assert 'torch' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    cls = get_method("bicubic")
    assert issubclass(cls, SRMethod) and cls.name == "bicubic" and cls.scales is None


def test_unknown_method_lists_valid_names():
    with pytest.raises(UnknownMethod) as err:
        get_method("no_such_method")
    assert "no_such_method" in str(err.value) and "bicubic" in str(err.value)




def test_third_party_plugin_is_found_and_loads(toy):
    entries = method_entries()
    assert entries["toy_nearest"].distribution == "toy-sr-plugin"
    cls = get_method("toy_nearest")
    assert cls.name == "toy_nearest" and cls.supports_scale(4) and not cls.supports_scale(3)


def test_duplicate_names_are_an_error(toy, tmp_path, monkeypatch):
    other = make_plugin(tmp_path / "site2", "other-plugin", "other_plugin",
                        {"toy_nearest": "other_plugin:Something"}, "Something = None\n")
    monkeypatch.syspath_prepend(str(other))
    with pytest.raises(DuplicateMethod, match="toy_nearest"):
        method_entries()


def test_entry_point_name_must_match_class_name(tmp_path, monkeypatch):
    root = make_plugin(tmp_path / "site", "bad-plugin", "bad_plugin", {"alias": "bad_plugin:NearestToy"},
                       TOY_PLUGIN_SOURCE.replace("toy_sr_plugin", "bad_plugin"))
    monkeypatch.syspath_prepend(str(root))
    with pytest.raises(TypeError, match="must agree"):
        get_method("alias")


def test_srbench_list_shows_plugin_scales_and_weights(toy):
    out = run_cli(["srbench", "list"], env=plugin_env(toy))
    assert out.returncode == 0, out.stderr
    lines = {line.split()[0]: line for line in out.stdout.splitlines() if line.startswith("  ")}
    assert "scales=any" in lines["bicubic"] and "none needed" in lines["bicubic"]
    assert "scales=x2,x4" in lines["toy_nearest"] and "toy-sr-plugin" in lines["toy_nearest"]
    assert "missing: toy_weighted_v1.pth" in lines["toy_weighted"]
    assert "samples" in lines and "folder" in lines


def test_plugin_method_runs_through_bench(toy, tmp_path):
    out = run_cli(["srbench-bench", "method=toy_nearest", "dataset=samples", "dataset.images=[coins]",
                   f"results_dir={tmp_path / 'results'}", "metrics.lpips_nets=[]", "num_workers=0"],
                  env=plugin_env(toy), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "toy_nearest" in out.stdout
    runs = list((tmp_path / "results" / "samples" / "toy_nearest").iterdir())
    assert len(runs) == 1 and (runs[0] / "summary.json").exists()


def test_method_config_options_resolve_to_their_registered_method():
    from srbench.runners.compose import method_name_of

    assert method_name_of("bicubic") == "bicubic"
    assert method_name_of("ecdp_tiny") == "ecdp"  # inherits name: from ecdp.yaml through its defaults
    assert method_name_of("not_a_file") == "not_a_file"
