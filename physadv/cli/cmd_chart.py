"""``physadv chart``: the calibration chart (PDF + manifest) for ``physadv calibrate``."""

from __future__ import annotations

import argparse
import sys

from physadv.cli.common import output_dir

ORDER = 36
HELP = "write the calibration chart (grey ramp, colour patches, slanted edges, flat greys) as a PDF"


def register(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "examples:\n"
        "  physadv chart --out chart/\n"
        "  physadv chart --out chart/ --paper letter\n"
        "writes CHART/chart.pdf, CHART/chart.png and CHART/manifest.json. Print chart.pdf at 100%\n"
        "(\"actual size\") on the printer you will print attacks with, photograph it 5-10 times with your\n"
        "camera as you will photograph the sheets, then: physadv calibrate PHOTOS --manifest CHART/manifest.json")
    parser.add_argument("--out", required=True, type=output_dir, help="output folder")
    parser.add_argument("--paper", choices=("a4", "letter"), default="a4", help="paper size")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from physadv.printouts.chart import CHART_FILE, write_chart
    from physadv.printouts.sheets import MANIFEST_FILE

    manifest = write_chart(args.out, paper=args.paper)
    print(f"calibration chart of run {manifest.run_id}: print it at 100% / actual size", file=sys.stderr)
    print(args.out / CHART_FILE)
    print(args.out / MANIFEST_FILE)
    return 0
