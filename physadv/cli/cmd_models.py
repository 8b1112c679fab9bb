"""``physadv models``: the built-in classifiers and whether each works offline now."""

from __future__ import annotations

import argparse

from physadv.classifiers import MODELS, availability
from physadv.cli.common import print_json

ORDER = 0
HELP = "list the built-in classifiers and whether each is usable offline right now"


def register(parser: argparse.ArgumentParser) -> None:
    parser.epilog = "example:\n  physadv models --json"
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    rows = []
    for name, spec in MODELS.items():
        usable, where = availability(name)
        rows.append({"name": name, "usable": usable, "description": spec.description, "weights": where})
    if args.json:
        print_json({"models": rows})
        return 0
    for row in rows:
        mark = "yes" if row["usable"] else "NO "
        print(f"{row['name']:<20} {mark}  {row['description']}\n{'':<25}{row['weights']}")
    return 0
