"""``physadv report``: HTML and PDF report of a run, from its store."""

from __future__ import annotations

import argparse

from physadv.cli.common import output_dir

ORDER = 70
HELP = "write a run's report (self-contained HTML and PDF with tables, plots and a gallery)"


def register(parser: argparse.ArgumentParser) -> None:
    parser.epilog = "example:\n  physadv report physadv-demo    # writes physadv-demo/report/report.html and .pdf"
    parser.add_argument("run_dir", type=output_dir, metavar="RUN", help="run folder")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from physadv.lab.reporting import build_report

    files = build_report(args.run_dir)
    print(files.html)
    print(files.pdf)
    return 0
