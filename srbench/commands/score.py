"""``srbench score SR_DIR [HR_DIR]``: score images produced by any code with the srbench harness.

Without HR_DIR only the no-reference columns are scored: the no-reference pyiqa metrics of
``--extra`` (clipiqa, musiq, maniqa-pipal, niqe, …) and, with ``--lr-dir``, LR-PSNR and
``--colour-shift`` — as a bench run on an LR-only folder.

Pairs are matched by file stem (an SR file may carry a suffix given by ``--sr-suffix``, e.g.
``_out``); two files with the same stem, unmatched files and size mismatches are errors that
list the files — nothing is cropped silently (``--modcrop-hr`` crops HR to the SR size when it
is larger by less than the scale, and the summary says so). Writes the same ``per_image.csv``
/ ``summary.json`` / ``manifest.json`` as a bench run. Scoring is cheap, so every call scores
every pair afresh and replaces the output files at the end (nothing to resume, nothing stale).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

from srbench.errors import UserError, one_line, report
from srbench.results import leaderboard as lb
from srbench.results.records import (
    build_summary,
    metric_columns,
    per_image_columns,
    score_manifest,
    write_score_record,
)
from srbench.results.store import STATUS_OK
from srbench.runners.scoring import score_batch


def pair_files(sr_dir: Path, hr_dir: Path, sr_suffix: str = "", ref: str = "HR") -> list[tuple[str, Path, Path]]:
    from srbench.data.io import list_images
    from srbench.data.paired import files_by_stem

    sr = files_by_stem(list_images(sr_dir), strip_suffix=sr_suffix, what=f"files in {sr_dir}")
    hr = files_by_stem(list_images(hr_dir), what=f"files in {hr_dir}")
    only_sr, only_hr = sorted(set(sr) - set(hr)), sorted(set(hr) - set(sr))
    if only_sr or only_hr:
        raise UserError(f"unmatched files — SR without {ref}: {only_sr[:20]}; {ref} without SR: {only_hr[:20]} "
                        f"(pairs are matched by file stem{'; SR suffix ' + repr(sr_suffix) if sr_suffix else ''})")
    if not sr:
        raise UserError(f"no images in {sr_dir}")
    return [(k, sr[k], hr[k]) for k in sorted(sr)]


def _sr_files(sr_dir: Path, sr_suffix: str) -> dict[str, Path]:
    from srbench.data.io import list_images
    from srbench.data.paired import files_by_stem

    files = files_by_stem(list_images(sr_dir), strip_suffix=sr_suffix, what=f"files in {sr_dir}")
    if not files:
        raise UserError(f"no images in {sr_dir}")
    return files


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="srbench score", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sr_dir", type=Path)
    parser.add_argument("hr_dir", type=Path, nargs="?", default=None,
                        help="HR images; without them only no-reference metrics are scored")
    parser.add_argument("--profile", default="standard",
                        help="standard | matlab | pyiqa-ycbcr | piq-rgb | basicsr-rgb (default: standard)")
    parser.add_argument("--scale", type=float, default=None,
                        help="SR scale: the crop border of the profiles that crop by it (standard, matlab); "
                             "inferred from --lr-dir")
    parser.add_argument("--lr-dir", type=Path, default=None, help="LR images: adds LR-PSNR (MATLAB-bicubic operator)")
    parser.add_argument("--sr-suffix", default="", help="suffix of SR file stems, e.g. _out")
    parser.add_argument("--modcrop-hr", action="store_true", help="crop HR to the SR size when larger by < scale")
    parser.add_argument("--lpips", default="alex", help="comma list of LPIPS nets (alex,vgg) or 'none'")
    parser.add_argument("--lpips-weights", default=None, help="directory with the torchvision backbone file")
    parser.add_argument("--max-image-pixels", type=int, default=None,
                        help="largest image read (width × height; 0: no limit; default: Pillow's 179 MP)")
    parser.add_argument("--extra", default="", help="comma list of pyiqa metrics, e.g. dists,clipiqa,musiq,niqe")
    parser.add_argument("--colour-shift", action="store_true", help="add colour_shift (ΔE00 vs bicubic-up LR; "
                        "needs --lr-dir)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=None,
                        help="output dir (default results/score/<sr_dir name>-<profile>-<hash of the inputs>)")
    args = parser.parse_args(argv)
    try:
        out = score_folders(args)
    except UserError as exc:
        report("srbench score", exc)
        return 2
    print(f"wrote {out}")
    return 0


def default_out_dir(args: argparse.Namespace) -> Path:
    key = "|".join(str(p.resolve()) if p else "" for p in (args.sr_dir, args.hr_dir, args.lr_dir))
    digest = hashlib.sha256(f"{key}|{args.sr_suffix}|{args.scale}|{args.modcrop_hr}".encode()).hexdigest()[:8]
    return Path("results") / "score" / f"{args.sr_dir.resolve().name}-{args.profile}-{digest}"


def _mismatch(sr_path: Path, sr_shape: tuple, hr_path: Path, hr_shape: tuple, hint_modcrop: bool,
              transposed_exif: bool) -> str:
    hint = ""
    if hint_modcrop:
        hint = " (HR is not modcropped to scale × LR: try --modcrop-hr)"
    elif transposed_exif:
        hint = (" (the sizes are transposed and one file has an EXIF orientation tag: srbench reads pixels as "
                "stored, not rotated; save both the same way)")
    return f"{sr_path.name} {sr_shape} vs {hr_path.name} {hr_shape}{hint}"


def score_folders(args: argparse.Namespace) -> Path:
    from srbench.data.io import read_image, set_max_image_pixels
    from srbench.data.paired import MatlabBicubicLR
    from srbench.data.sources import signature
    from srbench.devices import resolve_device
    from srbench.metrics import build_metrics, get_profile

    for d in (args.sr_dir, args.hr_dir, args.lr_dir):
        if d is not None and not d.is_dir():
            raise UserError(f"{d} is not a directory")
    if args.max_image_pixels is not None:
        if args.max_image_pixels < 0:
            raise UserError(f"--max-image-pixels must be ≥ 0 (0: no limit), got {args.max_image_pixels}")
        set_max_image_pixels(args.max_image_pixels)
    profile = get_profile(args.profile)
    has_hr = args.hr_dir is not None
    if has_hr:
        pairs = pair_files(args.sr_dir, args.hr_dir, args.sr_suffix)
        lr_files = {k: lr for k, lr, _ in pair_files(args.lr_dir, args.hr_dir)} if args.lr_dir else {}
    else:  # no-reference: the SR files alone, or paired with their LR
        pairs = (pair_files(args.sr_dir, args.lr_dir, args.sr_suffix, ref="LR") if args.lr_dir else
                 [(k, p, None) for k, p in sorted(_sr_files(args.sr_dir, args.sr_suffix).items())])
        lr_files = {k: lr for k, _, lr in pairs} if args.lr_dir else {}
        pairs = [(k, sr, None) for k, sr, _ in pairs]
    if args.colour_shift and not args.lr_dir:
        raise UserError("--colour-shift compares the SR with its bicubic-upsampled LR: give --lr-dir")
    device = resolve_device(args.device)
    nets = () if args.lpips == "none" else tuple(n for n in args.lpips.split(",") if n)
    suite = build_metrics(args.profile, lpips_nets=nets, lpips_weights=args.lpips_weights, device=device,
                          extra=tuple(n for n in args.extra.split(",") if n), colour=args.colour_shift)
    columns = metric_columns(suite, has_hr=has_hr, lr_psnr=bool(lr_files))
    if not columns:
        raise UserError("nothing to score without HR_DIR: give --extra with no-reference pyiqa metrics "
                        "(clipiqa, musiq, maniqa-pipal, niqe) or --lr-dir (LR-PSNR)")
    for column, reason in suite.missing.items():
        print(f"[srbench] {column} not computed: {reason}", file=sys.stderr)

    rows, mismatched, modcropped, scales = [], [], [], set()
    started = time.time()
    for name, sr_path, hr_path in pairs:
        sr_img = read_image(sr_path)
        hr_img = read_image(hr_path) if hr_path is not None else None
        sr, hr = sr_img.tensor, None if hr_img is None else hr_img.tensor
        lr = read_image(lr_files[name]).tensor if name in lr_files else None
        scale = args.scale or (sr.shape[-1] / lr.shape[-1] if lr is not None else None)
        if scale is None and profile.crop == "scale" and hr is not None:
            raise UserError(f"give --scale (or --lr-dir to infer it): the {profile.name} profile crops a border of "
                            "`scale` pixels (profiles pyiqa-ycbcr, piq-rgb and basicsr-rgb crop nothing)")
        if scale is not None:
            scales.add(scale)
        if hr is not None and sr.shape != hr.shape:
            dh, dw = hr.shape[-2] - sr.shape[-2], hr.shape[-1] - sr.shape[-1]
            off_by_modcrop = scale is not None and 0 <= dh < scale and 0 <= dw < scale
            if args.modcrop_hr and off_by_modcrop:
                hr = hr[..., : sr.shape[-2], : sr.shape[-1]]
                modcropped.append(name)
            else:
                transposed = tuple(sr.shape[-2:]) == tuple(hr.shape[-2:])[::-1] and \
                    (sr_img.orientation not in (0, 1) or hr_img.orientation not in (0, 1))
                mismatched.append(_mismatch(sr_path, tuple(sr.shape[-2:]), hr_path, tuple(hr.shape[-2:]),
                                            off_by_modcrop, transposed))
                continue
        degrade = MatlabBicubicLR(int(scale)).operator if lr is not None else None
        try:
            values = score_batch(suite, sr[None].to(device), None if hr is None else hr[None].to(device),
                                 None if lr is None else lr[None].to(device), scale=scale, degrade=degrade,
                                 gray=[(hr_img or sr_img).was_gray], names=[name])
        except UserError as exc:
            where = f"×{scale:g}" if scale is not None else f"profile {profile.name}"
            raise UserError(f"{sr_path} / {hr_path or lr_files.get(name)} ({where}): {one_line(exc)}") from None
        srcs = [sr_path, hr_path] if hr_path is not None else [sr_path, *([lr_files[name]] if name in lr_files else [])]
        stat, sha = signature(srcs)
        rows.append({"image": name, "seed": "", "status": STATUS_OK, "error": "", "profile": args.profile,
                     "source_stat": stat, "source_sha256": sha, **{c: v[0] for c, v in values.items() if c in columns}})
    if mismatched:
        raise UserError(f"size mismatch in {len(mismatched)} pair(s): {'; '.join(mismatched[:10])}")

    out = args.out or default_out_dir(args)
    scale_out = (next(iter(scales)) if len(scales) == 1 else sorted(scales)) if scales else None
    ids_scale = min(scales) if scales else None
    header = {"sr_dir": str(args.sr_dir), "hr_dir": str(args.hr_dir) if has_hr else None, "method": str(args.sr_dir.name),
              "profile": args.profile, "scale": scale_out,
              "metric_ids": {c: suite.ids_for(ids_scale).get(c, c) for c in columns},
              "missing_metrics": suite.missing, "hr_modcropped": modcropped}
    summary = build_summary(rows, columns, names=[n for n, _, _ in pairs], status="complete", header=header,
                            started=started)
    write_score_record(out, per_image_columns(columns, timing=False), rows, summary,
                       score_manifest(vars(args), device, {**suite.describe(), "ids": header["metric_ids"]}))
    print(f"{summary['n_images']} images ({summary['profile']})")
    print(lb.console(lb.frame([summary])))
    return out


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))
