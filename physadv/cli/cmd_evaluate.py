"""``physadv evaluate``: a run's Kurakin-style results (photo accuracy, destruction rates) from its store."""

from __future__ import annotations

import argparse
from pathlib import Path

from physadv.cli.common import print_json

ORDER = 65
HELP = "print a run's results: accuracy on photos and destruction rates, with n"


def register(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("examples:\n  physadv evaluate physadv-demo\n"
                     "  physadv evaluate physadv-demo --json --all   # every row, artificial transforms too")
    parser.add_argument("run_dir", type=Path, metavar="RUN", help="run folder")
    parser.add_argument("--all", action="store_true", help="include the artificial-transformation rows")
    parser.add_argument("--json", action="store_true", help="print {photo_clean, channel_severity, rows} as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from physadv.lab.reporting import severity
    from physadv.lab.session import headline
    from physadv.lab.store import RunStore
    from physadv.metrics import severity_lines
    from physadv.results import ResultKind

    with RunStore(args.run_dir, create=False) as store:
        rows = store.rows() if args.all else store.rows(ResultKind.CAPTURE)
        clean = store.photo_clean_accuracy()
        channel = severity(store)
    if args.json:
        print_json({"photo_clean": clean, "channel_severity": channel, "rows": [row.to_json() for row in rows]})
        return 0
    print(headline(rows))
    if clean["n"]:
        print("\n" + "\n".join(severity_lines(channel)))
    return 0
