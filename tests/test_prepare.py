"""``srbench data prepare|verify|list``: check → layout, never a partial dataset, clear errors."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import threading
import zipfile
from pathlib import Path

import pytest
from test_datasets_oracles import save_png, synthetic_image

from srbench.commands import data as data_cli
from srbench.data import catalog
from srbench.data.benchmarks import Div2K, Set5
from srbench.data.catalog import Archive, CatalogEntry, FileGroup
from srbench.data.prepare import MANIFEST_NAME, PrepareError, prepare, verify

TINY = synthetic_image(8, 12, 0)


def write_tiny(path: Path) -> Path:
    return save_png(path, TINY)


@pytest.fixture
def div2k_source(tmp_path) -> Path:
    """A user's copy as the NTIRE zips unpack: DIV2K/DIV2K_valid_HR + DIV2K/DIV2K_valid_LR_bicubic/X4."""
    src = tmp_path / "downloads" / "DIV2K"
    for i in catalog.DIV2K_VALID_IDS:
        write_tiny(src / "DIV2K_valid_HR" / f"{i:04d}.png")
        save_png(src / "DIV2K_valid_LR_bicubic" / "X4" / f"{i:04d}x4.png", TINY[:2, :3])
    return tmp_path / "downloads"


def leftovers(root: Path) -> list[str]:
    return [p.name for p in root.iterdir() if p.name.startswith(".")] if root.exists() else []


def test_prepare_lays_out_checks_and_verifies(div2k_source, tmp_path):
    root = tmp_path / "data"
    report = prepare("div2k", div2k_source, root=root)
    assert report.groups == {"hr": 100, "lr_x4": 100}
    assert set(report.skipped) == {"DIV2K_valid_LR_bicubic/X2", "DIV2K_valid_LR_bicubic/X3", "DIV2K_valid_LR_x8"}
    hr = root / "div2k" / "DIV2K_valid_HR" / "0801.png"
    assert hr.is_symlink() and hr.resolve() == (div2k_source / "DIV2K" / "DIV2K_valid_HR" / "0801.png").resolve()
    assert (root / "div2k" / MANIFEST_NAME).is_file() and leftovers(root) == []
    assert verify("div2k", root=root) == []
    # the dataset class reads exactly this layout
    s = Div2K(root / "div2k", scale=4, cache_dir=None)[0]
    assert s.lr.shape == (3, 2, 3) and s.hr.shape == (3, 8, 12)


def test_missing_file_is_named_and_nothing_is_laid_out(div2k_source, tmp_path):
    (div2k_source / "DIV2K" / "DIV2K_valid_HR" / "0850.png").unlink()
    root = tmp_path / "data"
    with pytest.raises(PrepareError, match=r"1 of 100 files of DIV2K_valid_HR/ missing .*: 0850\.png"):
        prepare("div2k", div2k_source, root=root)
    assert not (root / "div2k").exists() and leftovers(root) == []


def test_incomplete_optional_folder_is_an_error_not_skipped(div2k_source, tmp_path):
    (div2k_source / "DIV2K" / "DIV2K_valid_LR_bicubic" / "X4" / "0900x4.png").unlink()
    with pytest.raises(PrepareError, match=r"0900x4\.png"):
        prepare("div2k", div2k_source, root=tmp_path / "data")


def test_count_only_sets_check_the_count(tmp_path):
    for k in range(99):
        write_tiny(tmp_path / "B100" / "HR" / f"{k:06d}.png")
    with pytest.raises(PrepareError, match="holds 99 image files, expected 100"):
        prepare("bsd100", tmp_path / "B100", root=tmp_path / "data")
    write_tiny(tmp_path / "B100" / "HR" / "extra.png")
    assert prepare("bsd100", tmp_path / "B100", root=tmp_path / "data").groups == {"hr": 100}


def test_edsr_layout_aliases_and_ambiguity(tmp_path):
    bench = tmp_path / "benchmark"
    for name in catalog.SET5_NAMES:
        write_tiny(bench / "Set5" / "HR" / f"{name}.png")
        write_tiny(bench / "Set5" / "LR_bicubic" / "X4" / f"{name}x4.png")
    write_tiny(bench / "Set14" / "HR" / "baboon.png")
    with pytest.raises(PrepareError, match="several folders could be 'HR'"):
        prepare("set5", bench, root=tmp_path / "data")  # Set5/HR or Set14/HR?
    report = prepare("set5", bench / "Set5", root=tmp_path / "data")
    assert report.groups == {"hr": 5, "lr_x4": 5}
    assert (tmp_path / "data" / "set5" / "LRbicx4" / "babyx4.png").exists()


def test_recursive_group_flattens_class_folders(tmp_path):
    names = [f"ILSVRC2012_val_{i:08d}.JPEG" for i in range(1, 7)]
    for k, n in enumerate(names):
        Path(tmp_path / "val" / f"n0{k % 2}").mkdir(parents=True, exist_ok=True)
        from PIL import Image

        Image.fromarray(TINY).save(tmp_path / "val" / f"n0{k % 2}" / n, format="JPEG")
    entry = CatalogEntry(**{**catalog.IMAGENET.__dict__,
                            "groups": (FileGroup("val", "val", names=tuple(names), recursive=True),)})
    prepare("imagenet", tmp_path, root=tmp_path / "data", entry=entry)
    assert sorted(os.listdir(tmp_path / "data" / "imagenet" / "val")) == names


def test_test_split_is_picked_out_of_the_full_folder(tmp_path):
    src = tmp_path / "img_align_celeba"
    for n in ("000001.jpg", "162771.jpg", "182638.jpg", "182639.jpg"):
        write_tiny(src / n)
    test_only = catalog.CELEBA.with_groups([FileGroup("test", "test", names=("182638.jpg", "182639.jpg"),
                                                      aliases=("img_align_celeba",))])
    report = prepare("celeba", tmp_path, root=tmp_path / "data", entry=test_only)
    assert report.groups == {"test": 2} and report.ignored == 2
    assert sorted(os.listdir(tmp_path / "data" / "celeba" / "test")) == ["182638.jpg", "182639.jpg"]


def test_sha256_manifest_is_checked(tmp_path, shared_data):
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  HR/{p.name}" for p in sorted((shared_data / "Set5" / "HR").iterdir())]
    good = tmp_path / "good.sha256"
    good.write_text("\n".join(lines) + "\n")
    prepare("set5", shared_data / "Set5", root=tmp_path / "d1", sha256_manifest=good)
    bad = tmp_path / "bad.sha256"
    bad.write_text("\n".join(lines[:-1] + ["0" * 64 + "  HR/woman.png"]) + "\n")
    with pytest.raises(PrepareError, match=r"1 files differ from their sha256 \(HR/woman\.png\)"):
        prepare("set5", shared_data / "Set5", root=tmp_path / "d2", sha256_manifest=bad)


def test_copy_mode_verify_detects_edits_and_deletions(tmp_path, shared_data):
    root = tmp_path / "data"
    prepare("set5", shared_data / "Set5", root=root, mode="copy")
    baby = root / "set5" / "HR" / "baby.png"
    assert not baby.is_symlink()
    baby.write_bytes(baby.read_bytes()[:-10] + b"0123456789")  # same size, other bytes
    (root / "set5" / "LRbicx2" / "birdx2.png").unlink()
    problems = verify("set5", root=root)
    assert any("HR/baby.png: sha256 differs" in p for p in problems)
    assert any("LRbicx2/birdx2.png: missing" in p for p in problems)
    assert any("birdx2.png" in p and "missing in" in p for p in problems)  # the catalog count check too
    assert verify("set5", root=root, quick=True) != []


def test_existing_layout_needs_force(tmp_path, shared_data):
    root = tmp_path / "data"
    prepare("set5", shared_data / "Set5", root=root)
    with pytest.raises(PrepareError, match="already exists .* --force"):
        prepare("set5", shared_data / "Set5", root=root)
    assert prepare("set5", shared_data / "Set5", root=root, force=True).files == 20
    assert leftovers(root) == []
    assert len(Set5(root / "set5", scale=3, cache_dir=None)) == 5


def test_no_source_offline_says_what_to_put_where(tmp_path):
    with pytest.raises(PrepareError, match=r"celeba: no --source given — get img_align_celeba\.zip"):
        prepare("celeba", None, root=tmp_path)
    unreachable = CatalogEntry(**{**catalog.SET5.__dict__, "archives": (
        Archive("http://127.0.0.1:9/benchmark.tar", "benchmark.tar", md5="0" * 32),)})
    with pytest.raises(PrepareError, match=r"cannot download http://127\.0\.0\.1:9/benchmark\.tar .* offline\?"):
        prepare("set5", None, root=tmp_path, download=True, entry=unreachable)
    assert not (tmp_path / "downloads" / "benchmark.tar").exists()


@pytest.fixture
def local_server(tmp_path):
    """An HTTP server on localhost serving tmp_path/www (no network needed)."""
    www = tmp_path / "www"
    www.mkdir()
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(www), **k)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.RequestHandlerClass.log_message = lambda *a: None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_checks_the_checksum_and_extracts(local_server, tmp_path):
    www, url = local_server
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in catalog.SET5_NAMES:
            png = io.BytesIO()
            from PIL import Image

            Image.fromarray(TINY).save(png, format="PNG")
            z.writestr(f"benchmark/Set5/HR/{name}.png", png.getvalue())
    (www / "set5.zip").write_bytes(buf.getvalue())
    md5 = hashlib.md5(buf.getvalue()).hexdigest()
    entry = CatalogEntry(**{**catalog.SET5.__dict__, "archives": (
        Archive(f"{url}/set5.zip", "set5.zip", md5=md5, subpath="benchmark/Set5"),)})
    report = prepare("set5", None, root=tmp_path / "data", download=True, entry=entry)
    assert report.groups == {"hr": 5}
    wrong = CatalogEntry(**{**entry.__dict__, "archives": (Archive(f"{url}/set5.zip", "other.zip", md5="0" * 32),)})
    with pytest.raises(PrepareError, match="does not match its published md5"):
        prepare("set5", None, root=tmp_path / "data2", download=True, entry=wrong)
    assert not (tmp_path / "data2" / "downloads" / "other.zip").exists()


def test_cli_prepare_verify_list_and_one_line_errors(tmp_path, shared_data, capsys):
    root = str(tmp_path / "data")
    assert data_cli.main(["--root", root, "prepare", "set5", "--source", str(shared_data / "Set5")]) == 0
    assert "laid out 20 files" in capsys.readouterr().out
    assert data_cli.main(["--root", root, "verify", "set5"]) == 0
    assert data_cli.main(["--root", root, "list"]) == 0
    out = capsys.readouterr().out
    assert "set5" in out and "prepared (20 files)" in out and "div2k" in out and "DIV2K_valid_HR.zip" in out
    assert data_cli.main(["--root", root, "prepare", "realsr", "--source", str(shared_data / "RealSR_subset")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds 10 image files, expected 100" in err
    assert data_cli.main(["--root", root, "verify", "div2k"]) == 1
    assert "not prepared" in capsys.readouterr().err


def test_every_catalog_entry_is_consistent():
    for name, e in catalog.CATALOG.items():
        assert e.name == name and e.instructions and e.groups
        for g in e.groups:
            assert g.names is None or (len(g.names) == g.count == len(set(g.names)))
    assert catalog.get_entry("div2k_realesrgan") is catalog.DIV2K
    assert catalog.CELEBA.group("test").count == 19962 and catalog.IMAGENET.group("val").count == 50000
    lr8 = catalog.DIV2K.group("lr_x8")
    assert (lr8.subdir, lr8.names[0], lr8.names[-1]) == ("DIV2K_valid_LR_x8", "0801x8.png", "0900x8.png")
