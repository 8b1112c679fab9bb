"""``physadv models``: the built-in classifiers and whether each works offline now."""

from __future__ import annotations

import argparse

from physadv.cli.common import print_json

ORDER = 0
HELP = "list the built-in classifiers and whether each is usable offline right now"


def register(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("examples:\n  physadv models --json\n"
                     "  physadv models --train-digits   # (re)train the digits CNN (~25 s on 2 CPU cores) and cache it")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--train-digits", action="store_true",
                        help="train the digits CNN on scikit-learn's digits now, report its held-out accuracy")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from physadv.classifiers import MODELS, availability
    from physadv.classifiers.digits import digits_split, train_digits

    if args.train_digits:
        path, accuracy = train_digits()
        print(f"digits CNN: held-out accuracy {accuracy:.4f} on {len(digits_split('test').labels)} digits; "
              f"saved {path}")
        return 0
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
