"""``physadv calibrate``: measure your printer + camera from photos of the chart; write a camera profile."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ORDER = 37
HELP = "measure tone curve, colour matrix, blur (MTF50) and noise from chart photos; write a camera profile"


def register(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "examples:\n"
        "  physadv calibrate photos/ --manifest chart/manifest.json --out my-phone.toml\n"
        "  physadv photograph sheets/sheets.pdf --out photos/ --profile my-phone.toml\n"
        "  physadv attack samples --method bim --eps 16 --eot profile:my-phone.toml --out adv/\n"
        "prints one line per photo (chart found or why not, white level, blur σ, MTF50, noise, tone RMS,\n"
        "ΔE00 of the colour fit); photos without this chart, or with another run's chart, are skipped.")
    parser.add_argument("photos", nargs="+", type=Path, metavar="PHOTOS", help="photo files or folders of the chart")
    parser.add_argument("--manifest", required=True, type=Path, help="the chart's manifest.json (physadv chart)")
    parser.add_argument("--out", required=True, type=Path, help="the camera profile to write (.toml)")
    parser.add_argument("--name", default=None, help="the profile's name (default: the file's stem)")
    parser.add_argument("--base", default="lab", metavar="PROFILE",
                        help="profile whose pose (tilt, fill, field of view) ranges the measured profile keeps")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from physadv.capture.calibrate import calibrate
    from physadv.errors import InputError
    from physadv.fileio import atomic_write_text
    from physadv.images import image_files
    from physadv.printouts.manifest import read_manifest
    from physadv.printouts.profiles import profile_to_toml
    from physadv.validation import PLAIN_NAME_RULE, is_safe_name

    if args.out.suffix.lower() != ".toml":
        raise InputError(f"--out {args.out}: a camera profile is a .toml file")
    name = args.name if args.name is not None else args.out.stem
    if not is_safe_name(name):
        # Checked before any photo is read (calibrate() checks it too): the name becomes part of file
        # names, and the default one comes from --out, which the user may not think of as a name.
        raise InputError(f"{'--name' if args.name is not None else '--out ' + str(args.out) + ': the file name'} "
                         f"{name!r} is not a plain profile name ({PLAIN_NAME_RULE})"
                         + ("" if args.name is not None else "; pass --name NAME"))
    manifest = read_manifest(args.manifest)
    photos = image_files(args.photos)
    result = calibrate(photos, manifest, base=args.base, name=name, progress=True)
    lines = [photo.summary() for photo in result.photos]
    for line in lines:
        print(line)
    measured = result.profile.measured
    header = "\n".join([f"physadv calibrate: chart run {manifest.run_id}", *lines])
    atomic_write_text(args.out, profile_to_toml(result.profile, header))
    used = sum(photo.accepted for photo in result.photos)
    print(f"{used} of {len(result.photos)} photos used: blur σ {measured.blur_sigma_mm:.3f} mm, MTF50 "
          f"{measured.mtf50_cycles_per_mm:.2f} cycles/mm, colour fit ΔE00 {measured.delta_e_mean:.2f} → {args.out}",
          file=sys.stderr)
    return 0
