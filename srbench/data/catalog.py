"""What each dataset looks like on disk: folders, expected file names/counts, public URLs.

One :class:`CatalogEntry` per dataset name. ``srbench data prepare`` checks a user's copy
against it and lays the files out under ``data/<name>/<group.subdir>/``; the dataset classes
in :mod:`srbench.data.benchmarks` read the same layout, so the two cannot drift apart.

File names are listed exactly where the release fixes them (DIV2K, Set5, Set14, CelebA's
official test partition, ImageNet validation); elsewhere only the count is known and the
entry says so. Checksums are those published with the release or recorded by a maintained
downloader (the source is named next to each one); srbench invents none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["CATALOG", "Archive", "CatalogEntry", "FileGroup", "div2k_lr_group", "get_entry"]


@dataclass(frozen=True)
class FileGroup:
    """One folder of a dataset, as laid out under ``data/<dataset>/``.

    ``names``: the exact expected file names when the release fixes them (then ``count`` is
    ``len(names)``); otherwise ``None`` and only ``count`` (or nothing) is checked.
    ``aliases``: other relative folder names the same files have in common copies
    (e.g. EDSR's ``LR_bicubic/X4`` for ``LRbicx4``). ``recursive``: the files may sit in
    sub-folders of the user's copy (ImageNet validation sorted into class folders).
    """

    key: str
    subdir: str
    names: tuple[str, ...] | None = None
    count: int | None = None
    aliases: tuple[str, ...] = ()
    optional: bool = False
    recursive: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        if self.names is not None and self.count is None:
            object.__setattr__(self, "count", len(self.names))

    def expected_count(self) -> int | None:
        return self.count


@dataclass(frozen=True)
class Archive:
    """A downloadable archive. ``subpath``: where the dataset sits inside it once extracted."""

    url: str
    filename: str
    md5: str | None = None
    sha256: str | None = None
    checksum_source: str = ""
    subpath: str = "."


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    title: str
    groups: tuple[FileGroup, ...]
    instructions: str
    archives: tuple[Archive, ...] = ()
    licence: str = ""
    notes: str = ""
    pairs: tuple[tuple[str, str], ...] = ()  # (hr group, lr group) whose file names must match one-to-one

    def group(self, key: str) -> FileGroup:
        for g in self.groups:
            if g.key == key:
                return g
        raise KeyError(f"dataset {self.name!r} has no file group {key!r}")

    def with_groups(self, groups: Iterable[FileGroup]) -> CatalogEntry:
        """A copy with some groups replaced (by key) — used by tests to shrink counts."""
        repl = {g.key: g for g in groups}
        return CatalogEntry(**{**self.__dict__, "groups": tuple(repl.get(g.key, g) for g in self.groups)})


# ----------------------------------------------------------------------------------- DIV2K
DIV2K_VALID_IDS = tuple(range(801, 901))
DIV2K_URL = "http://data.vision.ee.ethz.ch/cvl/DIV2K"
# md5 sums as recorded by Coloquinte/torchSR torchsr/datasets/div2k.py (the ETH site publishes none).
_DIV2K_MD5 = {
    "DIV2K_valid_HR.zip": "9fcdda83005c5e5997799b69f955ff88",
    "DIV2K_valid_LR_bicubic_X2.zip": "1512c9a3f7bde2a1a21a73044e46b9cb",
    "DIV2K_valid_LR_bicubic_X3.zip": "18b1d310f9f88c13618c287927b29898",
    "DIV2K_valid_LR_bicubic_X4.zip": "21962de700c8d368c6ff83314480eff0",
    "DIV2K_valid_LR_x8.zip": "c5aeea2004e297e9ff3abfbe143576a5",
}


def div2k_lr_group(scale: int) -> FileGroup:
    """Official NTIRE bicubic LR of DIV2K validation (×2/×3/×4 track 1 2017, ×8 track 1 2018)."""
    subdir = "DIV2K_valid_LR_x8" if scale == 8 else f"DIV2K_valid_LR_bicubic/X{scale}"
    return FileGroup(
        key=f"lr_x{scale}",
        subdir=subdir,
        names=tuple(f"{i:04d}x{scale}.png" for i in DIV2K_VALID_IDS),
        optional=True,
        description=f"official MATLAB-bicubic ×{scale} LR ({subdir.split('/')[0]}.zip)",
    )


DIV2K = CatalogEntry(
    name="div2k",
    title="DIV2K validation (0801–0900), HR + official bicubic LR",
    groups=(
        FileGroup("hr", "DIV2K_valid_HR", names=tuple(f"{i:04d}.png" for i in DIV2K_VALID_IDS),
                  description="100 HR PNGs 0801.png … 0900.png"),
        *(div2k_lr_group(s) for s in (2, 3, 4, 8)),
    ),
    archives=tuple(
        Archive(f"{DIV2K_URL}/{fn}", fn, md5=md5, checksum_source="md5 as recorded by Coloquinte/torchSR")
        for fn, md5 in _DIV2K_MD5.items()
    ),
    instructions=(
        f"get DIV2K_valid_HR.zip (and DIV2K_valid_LR_bicubic_X4.zip for the official LR) from "
        f"{DIV2K_URL}/ and unzip them into one folder, so that it holds DIV2K_valid_HR/0801.png … and "
        "DIV2K_valid_LR_bicubic/X4/0801x4.png …"
    ),
    licence="DIV2K: academic research only (see the DIV2K site)",
)

# ------------------------------------------------------------------ classic benchmark sets
SET5_NAMES = ("baby", "bird", "butterfly", "head", "woman")
SET14_NAMES = ("baboon", "barbara", "bridge", "coastguard", "comic", "face", "flowers", "foreman",
               "lenna", "man", "monarch", "pepper", "ppt3", "zebra")
EDSR_BENCHMARK = Archive(
    "https://cv.snu.ac.kr/research/EDSR/benchmark.tar", "benchmark.tar",
    md5="4ace41d33c2384b97e6b320cd0afd6ba", checksum_source="md5 as recorded by Coloquinte/torchSR",
)


def _benchmark_entry(name: str, title: str, folder: str, stems: tuple[str, ...] | None, count: int,
                     scales: tuple[int, ...] = (2, 3, 4), in_edsr_tar: bool = True) -> CatalogEntry:
    def names(suffix: str) -> tuple[str, ...] | None:
        return None if stems is None else tuple(f"{s}{suffix}.png" for s in stems)

    groups = [FileGroup("hr", "HR", names=names(""), count=count, description=f"{count} HR images")]
    groups += [
        FileGroup(f"lr_x{s}", f"LRbicx{s}", names=names(f"x{s}"), count=count, optional=True,
                  aliases=(f"LR_bicubic/X{s}", f"LR_bicubic/x{s}"),
                  description=f"official MATLAB-bicubic ×{s} LR, <name>x{s}.png")
        for s in scales
    ]
    archives = (Archive(**{**EDSR_BENCHMARK.__dict__, "subpath": f"benchmark/{folder}"}),) if in_edsr_tar else ()
    return CatalogEntry(
        name=name, title=title, groups=tuple(groups), archives=archives,
        instructions=(
            f"put the {title} HR images in <source>/HR/ and, if you have them, the official bicubic LR in "
            f"<source>/LRbicx4/<name>x4.png (or EDSR's <source>/LR_bicubic/X4/); the EDSR benchmark.tar "
            f"({EDSR_BENCHMARK.url}) holds benchmark/{folder}/ in this form"
        ),
    )


SET5 = _benchmark_entry("set5", "Set5", "Set5", SET5_NAMES, 5)
SET14 = _benchmark_entry("set14", "Set14", "Set14", SET14_NAMES, 14)
BSD100 = _benchmark_entry("bsd100", "BSD100 (B100)", "B100", None, 100)
URBAN100 = _benchmark_entry("urban100", "Urban100", "Urban100", None, 100)
MANGA109 = _benchmark_entry("manga109", "Manga109", "Manga109", None, 109, in_edsr_tar=False)

# ------------------------------------------------------------------------ real LR–HR pairs
def _pairs_entry(name: str, title: str, count: int | None, instructions: str, notes: str = "") -> CatalogEntry:
    return CatalogEntry(
        name=name, title=title,
        groups=(
            FileGroup("hr", "HR", count=count, aliases=("test_HR", "gt", "GT", "HR_crop"), description="HR images"),
            FileGroup("lr", "LR", count=count, aliases=("test_LR", "lq", "LQ", "LR_crop"),
                      description="LR images with the same file names as the HR"),
        ),
        pairs=(("hr", "lr"),), instructions=instructions, notes=notes,
    )


_STABLESR_TESTSETS = "https://huggingface.co/datasets/Iceclear/StableSR-TestSets"
REALSR = _pairs_entry(
    "realsr", "RealSR (V3) ×4 test pairs, StableSR/OSEDiff centre crops (512 HR / 128 LR)", 100,
    f"download the RealSR test set of StableSR ({_STABLESR_TESTSETS}; OSEDiff's benchmark_realsr is the same) "
    "and pass the folder holding test_HR/ and test_LR/ (or HR/ and LR/) with the same file names",
    notes="counts from cswry/OSEDiff preset/datasets/benchmark_realsr metrics logs",
)
DREALSR = _pairs_entry(
    "drealsr", "DRealSR ×4 test pairs, StableSR/OSEDiff crops (512 HR / 128 LR)", 93,
    f"download the DRealSR test set of StableSR ({_STABLESR_TESTSETS}) and pass the folder holding "
    "test_HR/ and test_LR/ (or HR/ and LR/) with the same file names",
)
DIV2K_VAL_STABLESR = _pairs_entry(
    "div2k_val_stablesr", "DIV2K-Val as released by StableSR (3,000 pairs, 512 HR / 128 LR, Real-ESRGAN degradation)",
    3000,
    f"download the DIV2K-Val set of StableSR ({_STABLESR_TESTSETS}) and pass the folder holding its gt/ and lq/ "
    "(or HR/ and LR/) folders",
)
IMAGENET_TEST_INVSR = _pairs_entry(
    "imagenet_test_invsr", "ImageNet-Test as released by InvSR (512 HR / 128 LR, first-order Real-ESRGAN)", None,
    "download InvSR's ImageNet-Test (Google Drive link in zsyOAOA/InvSR README.md) and pass the folder holding "
    "gt/ and lq/",
    notes="image count not stated in the code (protocols.md §5.4 says 3,000 [verify]); only the pairing is checked",
)

# -------------------------------------------------------------------------------- ImageNet
IMAGENET_VAL_COUNT = 50_000
IMAGENET = CatalogEntry(
    name="imagenet",
    title="ImageNet-1k (ILSVRC2012) validation, 50,000 JPEGs",
    groups=(
        FileGroup("val", "val", names=tuple(f"ILSVRC2012_val_{i:08d}.JPEG" for i in range(1, IMAGENET_VAL_COUNT + 1)),
                  aliases=("ILSVRC2012_img_val", "imagenet/val"), recursive=True,
                  description="ILSVRC2012_val_00000001.JPEG … 00050000.JPEG (flat or in class folders)"),
    ),
    instructions=(
        "get ILSVRC2012_img_val.tar from https://image-net.org (login required), extract it, and pass the "
        "folder holding the 50,000 ILSVRC2012_val_*.JPEG files (flat, or sorted into class folders)"
    ),
    licence="ImageNet terms of access (non-commercial research)",
)

# ---------------------------------------------------------------------------------- CelebA
# Official partition (list_eval_partition.txt): train 000001–162770, val 162771–182637, test 182638–202599.
CELEBA_TEST_IDS = range(182638, 202600)
CELEBA = CatalogEntry(
    name="celeba",
    title="CelebA aligned & cropped (178×218), official test partition (19,962 images)",
    groups=(
        FileGroup("test", "test", names=tuple(f"{i:06d}.jpg" for i in CELEBA_TEST_IDS),
                  aliases=("img_align_celeba", "celeba/test", "Img/img_align_celeba"),
                  description="182638.jpg … 202599.jpg (the official test split of img_align_celeba)"),
    ),
    instructions=(
        "get img_align_celeba.zip from the CelebA site (https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html), "
        "unzip it and pass the img_align_celeba/ folder; the test split 182638.jpg … 202599.jpg is picked out"
    ),
    licence="CelebA: non-commercial research only",
    notes="ECDP's celeba/test folder content is not in its repo; srbench assumes the official partition",
)
CELEBAHQ = CatalogEntry(
    name="celebahq",
    title="CelebA-HQ (30,000 faces; 1024² or the 256² resize)",
    groups=(
        FileGroup("images", "images", count=30_000,
                  aliases=("celebahq_256", "celeba_hq_256", "CelebA-HQ-img", "data1024x1024", "celeba_hq"),
                  description="30,000 face images, any of the common namings (sorted by name)"),
    ),
    instructions=(
        "pass a folder with all 30,000 CelebA-HQ images (the 1024² release or a 256² resize such as "
        "celebahq_256); IDM/SR3 evaluate on the first images in sorted order, so the folder must be complete"
    ),
    licence="CelebA-HQ: non-commercial research only",
)

CATALOG: Mapping[str, CatalogEntry] = {
    e.name: e
    for e in (DIV2K, SET5, SET14, BSD100, URBAN100, MANGA109, REALSR, DREALSR, DIV2K_VAL_STABLESR,
              IMAGENET_TEST_INVSR, IMAGENET, CELEBA, CELEBAHQ)
}

#: dataset config names whose files come from another catalog entry
DATA_OF: Mapping[str, str] = {
    "div2k_realesrgan": "div2k",
    "imagenet_invsr": "imagenet",
    "celebahq_idm": "celebahq",
}


def get_entry(name: str) -> CatalogEntry:
    """The catalog entry for ``name`` (dataset config names such as ``div2k_realesrgan`` map to ``div2k``)."""
    key = DATA_OF.get(name, name)
    if key not in CATALOG:
        raise KeyError(f"no catalog entry {name!r}; known: {', '.join(sorted(CATALOG))}")
    return CATALOG[key]
