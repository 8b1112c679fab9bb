"""``physadv photograph``: synthetic photos of printed sheets, with the true page geometry."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from physadv.catalog import CAMERA_PROFILES, DEFAULT_CAMERA_PROFILE, RESOLUTIONS
from physadv.cli.common import add_seed_option, output_dir

ORDER = 40
HELP = "simulate photographing printed sheets: tilted, lit, noisy JPEGs plus the true page homographies"


def register(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "examples:\n"
        "  physadv photograph sheets/sheets.pdf --out photos/ --n 20\n"
        "  physadv photograph sheets/sheets.pdf --out webcam/ --n 50 --profile webcam --seed 1\n"
        "  physadv photograph sheets/sheets.pdf --out mine/ --profile my-phone.toml   # from physadv calibrate\n"
        "writes PHOTOS/photo_NNNN.jpg and PHOTOS/truth.json (per photo: page, page-mm → pixel\n"
        "homography, every drawn parameter). Photo i shows page i mod pages. Re-running the same\n"
        "command keeps the photos already taken.")
    parser.add_argument("pdf", type=Path, metavar="SHEETS_PDF", help="sheets written by `physadv print`")
    parser.add_argument("--out", required=True, type=output_dir, help="output folder")
    parser.add_argument("--n", type=int, default=20, help="number of photos")
    parser.add_argument("--profile", default=DEFAULT_CAMERA_PROFILE, metavar="NAME|FILE.toml",
                        help=f"camera profile: {', '.join(CAMERA_PROFILES)} or a TOML file (physadv calibrate)")
    parser.add_argument("--resolution", choices=tuple(RESOLUTIONS), default=None,
                        help="12mp (4032x3024 phone), 1080p (1920x1080), 720p (1280x720 webcam); default: the profile's")
    parser.add_argument("--manifest", type=Path, default=None,
                        help="the sheets' manifest (default: manifest.json beside the PDF, if there)")
    add_seed_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from physadv.printouts.camera import TRUTH_FILE, photograph
    from physadv.printouts.manifest import read_manifest

    manifest_path = args.manifest or args.pdf.parent / "manifest.json"
    manifest = read_manifest(manifest_path) if args.manifest or manifest_path.is_file() else None
    from physadv.printouts.profiles import load_profile

    profile = load_profile(args.profile)
    photos = photograph(args.pdf, manifest, args.out, args.n, args.resolution, args.seed, profile=profile, progress=True)
    print(f"{len(photos)} photos at {args.resolution or profile.resolution} through profile {profile.name} in "
          f"{args.out}", file=sys.stderr)
    print(args.out / TRUTH_FILE)
    return 0
