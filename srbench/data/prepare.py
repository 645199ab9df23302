"""``srbench data prepare|verify|list``: check a user's copy of a dataset and lay it out.

``prepare(NAME, source)`` finds each folder of the catalog entry (:mod:`srbench.data.catalog`)
inside ``source`` (under its canonical name, a common alias such as EDSR's ``LR_bicubic/X4``,
or anywhere below ``source``), checks it — every expected file name present, or the expected
count — optionally checks a ``sha256sum``-style manifest, and then lays the files out under
``<data_root>/NAME/<subdir>/`` (symlinks by default; ``copy`` or ``hardlink`` on request) with
``srbench_manifest.json`` (size and sha256 of every file) for ``verify``.

Nothing partial is ever left behind: the layout is built in a temporary folder and renamed
into place only when every check passed; a wrong count is an error naming the missing files.
With ``download=True`` the entry's public archives are fetched (progress bar), checked against
the published checksums and extracted first; offline, the error says what to put where.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from srbench.data.base import DatasetError
from srbench.data.catalog import CATALOG, Archive, CatalogEntry, FileGroup, get_entry
from srbench.data.io import IMAGE_EXTENSIONS

__all__ = [
    "MANIFEST_NAME",
    "PrepareError",
    "PrepareReport",
    "data_root",
    "download_archives",
    "locate_group",
    "prepare",
    "status",
    "verify",
]

MANIFEST_NAME = "srbench_manifest.json"
_SEARCH_DEPTH = 5


class PrepareError(DatasetError):
    """A dataset copy cannot be laid out; ``str(err)`` is one line for the user."""


@dataclass
class PrepareReport:
    name: str
    dest: Path
    groups: dict[str, int] = field(default_factory=dict)  # group key → files laid out
    skipped: list[str] = field(default_factory=list)  # optional groups not found in the source
    ignored: int = 0  # files in the source folders that are not part of the dataset
    seconds: float = 0.0

    @property
    def files(self) -> int:
        return sum(self.groups.values())


def data_root() -> Path:
    """``$SRBENCH_DATA`` or ``./data`` (the same default as ``conf/bench.yaml`` ``paths.data``)."""
    return Path(os.environ.get("SRBENCH_DATA", "data")).expanduser()


def _short_list(names: Sequence[str], n: int = 10) -> str:
    return ", ".join(names[:n]) + (f", … ({len(names) - n} more)" if len(names) > n else "")


# ------------------------------------------------------------------------ finding folders
def locate_group(sources: Sequence[Path], group: FileGroup) -> Path | None:
    """The folder holding ``group`` in one of ``sources``, or ``None``.

    Tried in order: ``source/<subdir or alias>``; a folder anywhere below a source (depth ≤ 5)
    whose path ends with the subdir or an alias; the source itself when it directly holds files
    with the group's expected names. Several different matches are an error (ambiguous).
    """
    wanted = [group.subdir, *group.aliases]
    for src in sources:
        for rel in wanted:
            if (src / rel).is_dir():
                return src / rel
    found: list[Path] = []
    for src in sources:
        base_depth = len(src.parts)
        for dirpath, dirnames, _ in os.walk(src, followlinks=True):
            p = Path(dirpath)
            if len(p.parts) - base_depth >= _SEARCH_DEPTH:
                dirnames[:] = []
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel = p.relative_to(src).as_posix()
            if any(rel == w or rel.endswith("/" + w) for w in wanted):
                found.append(p)
    if len(set(found)) > 1:
        raise PrepareError(f"several folders could be {group.subdir!r}: {_short_list([str(f) for f in found], 4)} — "
                           "pass --source pointing at the one dataset you mean")
    if found:
        return found[0]
    if group.names is not None:
        probe = set(group.names[:50]) | set(group.names[-50:])
        for src in sources:
            if any((src / n).exists() for n in probe):
                return src
    return None


def _collect(folder: Path, recursive: bool) -> dict[str, Path]:
    """File name → path for the image files in ``folder`` (hidden files skipped)."""
    out: dict[str, Path] = {}
    dupes: list[str] = []
    if recursive:
        walker: Iterable[tuple[str, list[str], list[str]]] = os.walk(folder, followlinks=True)
    else:
        walker = [(str(folder), [], sorted(os.listdir(folder)))]
    for dirpath, dirnames, filenames in walker:
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for fn in filenames:
            p = Path(dirpath) / fn
            if fn.startswith(".") or p.suffix.lower() not in IMAGE_EXTENSIONS or not p.is_file():
                continue
            if fn in out:
                dupes.append(fn)
            out[fn] = p
    if dupes:
        raise PrepareError(f"{folder}: the same file name appears in several sub-folders: {_short_list(sorted(dupes), 5)}")
    return out


def _select(entry: CatalogEntry, group: FileGroup, folder: Path, files: dict[str, Path]) -> list[str]:
    """The file names of ``group`` to lay out; a missing name or a wrong count is an error."""
    if group.names is not None:
        missing = [n for n in group.names if n not in files]
        if missing:
            raise PrepareError(f"{entry.name}: {len(missing)} of {len(group.names)} files of {group.subdir}/ missing in "
                               f"{folder}: {_short_list(missing)} — refusing to lay out a partial dataset")
        return list(group.names)
    names = sorted(files)
    if group.count is not None and len(names) != group.count:
        raise PrepareError(f"{entry.name}: {folder} holds {len(names)} image files, expected {group.count} for "
                           f"{group.subdir}/ — refusing to lay out a partial dataset")
    if not names:
        raise PrepareError(f"{entry.name}: no image files in {folder}")
    return names


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _check_sha256_manifest(manifest: Path, sources: Sequence[Path], chosen: dict[str, Path]) -> int:
    """Check a ``sha256sum``-format file (``<hex>  <path>``); paths relative to the source or bare names."""
    by_name = {p.name: p for p in chosen.values()}
    bad, absent, checked = [], [], 0
    for line in manifest.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            digest, rel = line.split(maxsplit=1)
        except ValueError:
            raise PrepareError(f"{manifest}: malformed line {line!r} (expected '<sha256>  <path>')") from None
        rel = rel.lstrip("*")
        path = next((s / rel for s in sources if (s / rel).is_file()), None) or by_name.get(Path(rel).name)
        if path is None:
            absent.append(rel)
            continue
        checked += 1
        if _sha256(path) != digest.lower():
            bad.append(rel)
    if bad or absent:
        raise PrepareError(f"{manifest}: {len(bad)} files differ from their sha256 ({_short_list(bad, 5)}) and "
                           f"{len(absent)} listed files are absent ({_short_list(absent, 5)})")
    return checked


# ------------------------------------------------------------------------------- download
def _verify_archive(path: Path, a: Archive) -> bool:
    if a.sha256 is None and a.md5 is None:
        return True
    h = hashlib.sha256() if a.sha256 else hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest() == (a.sha256 or a.md5)


def _safe_extract(archive: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for m in z.namelist():
                if not (root / m).resolve().is_relative_to(root):
                    raise PrepareError(f"{archive}: member {m!r} would be written outside {dest}; not extracting")
            z.extractall(dest)
    else:
        with tarfile.open(archive) as t:
            t.extractall(dest, filter="data")  # rejects absolute paths, '..' and links out of dest


def download_archives(entry: CatalogEntry, root: Path, progress: bool = True) -> list[Path]:
    """Fetch, check and extract the entry's archives; returns the folders to look for files in."""
    if not entry.archives:
        raise PrepareError(f"{entry.name}: no public download URL — {entry.instructions}, then run "
                           f"`srbench data prepare {entry.name} --source PATH`")
    from torch.hub import download_url_to_file

    downloads = root / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    sources = []
    for a in entry.archives:
        target = downloads / a.filename
        extracted = downloads / f"{a.filename}.d"
        if not (target.is_file() and _verify_archive(target, a)):
            try:
                download_url_to_file(a.url, str(target), progress=progress)
            except (urllib.error.URLError, OSError, TimeoutError) as err:
                target.unlink(missing_ok=True)
                raise PrepareError(f"{entry.name}: cannot download {a.url} ({getattr(err, 'reason', err)}) — offline? "
                                   f"{entry.instructions}, then run `srbench data prepare {entry.name} --source PATH`") from None
            if not _verify_archive(target, a):
                target.unlink(missing_ok=True)
                raise PrepareError(f"{entry.name}: {a.filename} does not match its published "
                                   f"{'sha256' if a.sha256 else 'md5'} ({a.checksum_source}); deleted, try again")
        if not extracted.is_dir():
            tmp = downloads / f".{a.filename}.extracting"
            shutil.rmtree(tmp, ignore_errors=True)
            _safe_extract(target, tmp)
            os.replace(tmp, extracted)
        sources.append(extracted / a.subpath)
    return sources


# -------------------------------------------------------------------------------- prepare
def _place(src: Path, dst: Path, mode: str) -> None:
    if mode == "symlink":
        os.symlink(src.resolve(), dst)
    elif mode == "hardlink":
        os.link(src, dst)
    elif mode == "copy":
        shutil.copy2(src, dst)
    else:
        raise PrepareError(f"unknown layout mode {mode!r}; use symlink, hardlink or copy")


def prepare(name: str, source: str | os.PathLike | None = None, *, root: str | os.PathLike | None = None,
            download: bool = False, mode: str = "symlink", sha256_manifest: str | os.PathLike | None = None,
            force: bool = False, hash_files: bool = True, progress: bool = False,
            entry: CatalogEntry | None = None) -> PrepareReport:
    """Check a copy of dataset ``name`` and lay it out under ``<root>/<name>/`` (see the module docstring).

    ``entry`` overrides the catalog entry (tests use smaller counts). Raises :class:`PrepareError`.
    """
    t0 = time.perf_counter()
    try:
        entry = entry or get_entry(name)
    except KeyError as err:
        raise PrepareError(str(err.args[0])) from None
    root = Path(root).expanduser() if root is not None else data_root()
    dest = root / entry.name
    if dest.exists() and not force:
        raise PrepareError(f"{entry.name}: {dest} already exists — `srbench data verify {entry.name}` checks it; "
                           "pass --force to lay it out again")
    sources: list[Path] = []
    if source is not None:
        src = Path(source).expanduser()
        if not src.is_dir():
            raise PrepareError(f"{entry.name}: --source {src} is not a folder — {entry.instructions}")
        sources.append(src)
    if download:
        sources += download_archives(entry, root, progress=progress)
    if not sources:
        raise PrepareError(f"{entry.name}: no --source given — {entry.instructions}, then run "
                           f"`srbench data prepare {entry.name} --source PATH`"
                           + (" (or --download)" if entry.archives else ""))

    report = PrepareReport(entry.name, dest)
    plan: dict[str, tuple[FileGroup, dict[str, Path]]] = {}
    for group in entry.groups:
        folder = locate_group(sources, group)
        if folder is None:
            if group.optional:
                report.skipped.append(group.subdir)
                continue
            raise PrepareError(f"{entry.name}: no folder {group.subdir}/ ({group.description}) found in "
                               f"{_short_list([str(s) for s in sources], 3)} — {entry.instructions}")
        files = _collect(folder, group.recursive)
        chosen = _select(entry, group, folder, files)
        report.ignored += len(files) - len(chosen)
        plan[group.key] = (group, {n: files[n] for n in chosen})
    for hr_key, lr_key in entry.pairs:
        if hr_key in plan and lr_key in plan:
            hr_names, lr_names = set(plan[hr_key][1]), set(plan[lr_key][1])
            if hr_names != lr_names:
                raise PrepareError(f"{entry.name}: HR and LR file names differ — HR only: "
                                   f"{_short_list(sorted(hr_names - lr_names), 5)}; LR only: "
                                   f"{_short_list(sorted(lr_names - hr_names), 5)}")
    if sha256_manifest is not None:
        chosen_all = {f"{g.subdir}/{n}": p for g, files in plan.values() for n, p in files.items()}
        _check_sha256_manifest(Path(sha256_manifest), sources, chosen_all)

    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{entry.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        records: dict[str, dict[str, object]] = {}
        items = [(g, n, p) for g, files in plan.values() for n, p in files.items()]
        if progress:
            from tqdm import tqdm

            items = tqdm(items, desc=f"prepare {entry.name}", unit="file")
        for group, n, p in items:
            d = tmp / group.subdir
            d.mkdir(parents=True, exist_ok=True)
            _place(p, d / n, mode)
            rec: dict[str, object] = {"size": p.stat().st_size, "source": str(p.resolve())}
            if hash_files:
                rec["sha256"] = _sha256(p)
            records[f"{group.subdir}/{n}"] = rec
        for key, (group, files) in plan.items():
            report.groups[key] = len(files)
        manifest = {"dataset": entry.name, "title": entry.title, "mode": mode, "prepared_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                    "sources": [str(s) for s in sources], "groups": report.groups, "skipped": report.skipped,
                    "files": records}
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        if dest.exists():
            old = root / f".{entry.name}.old-{os.getpid()}"
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report.seconds = time.perf_counter() - t0
    return report


# --------------------------------------------------------------------------------- verify
def verify(name: str, *, root: str | os.PathLike | None = None, quick: bool = False,
           entry: CatalogEntry | None = None) -> list[str]:
    """Problems with a laid-out dataset (empty list: all good).

    Checks every file of its manifest (present, size, and sha256 unless ``quick``) and the
    catalog's names/counts for every group that was laid out.
    """
    entry = entry or get_entry(name)
    root = Path(root).expanduser() if root is not None else data_root()
    dest = root / entry.name
    mpath = dest / MANIFEST_NAME
    if not mpath.is_file():
        return [f"{entry.name}: not prepared ({mpath} missing) — run `srbench data prepare {entry.name} --source PATH`"]
    manifest = json.loads(mpath.read_text())
    problems = []
    for rel, rec in sorted(manifest["files"].items()):
        p = dest / rel
        if not p.exists():
            problems.append(f"{rel}: missing" + (" (broken symlink — was the source moved?)" if p.is_symlink() else ""))
        elif p.stat().st_size != rec["size"]:
            problems.append(f"{rel}: size {p.stat().st_size} ≠ {rec['size']} recorded")
        elif not quick and "sha256" in rec and _sha256(p) != rec["sha256"]:
            problems.append(f"{rel}: sha256 differs from the one recorded at prepare time")
    for group in entry.groups:
        folder = dest / group.subdir
        if group.key not in manifest.get("groups", {}):
            continue
        try:
            _select(entry, group, folder, _collect(folder, False) if folder.is_dir() else {})
        except PrepareError as err:
            problems.append(str(err))
    return problems


def status(root: str | os.PathLike | None = None) -> list[dict[str, object]]:
    """One row per catalog entry: name, title, prepared file count (or None), download available."""
    root = Path(root).expanduser() if root is not None else data_root()
    rows = []
    for e in CATALOG.values():
        m = root / e.name / MANIFEST_NAME
        files = len(json.loads(m.read_text())["files"]) if m.is_file() else None
        rows.append({"name": e.name, "title": e.title, "files": files, "download": bool(e.archives),
                     "path": str(root / e.name), "instructions": e.instructions})
    return rows
