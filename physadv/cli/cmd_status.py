"""``physadv status``: what a run has done and what is next."""

from __future__ import annotations

import argparse
from pathlib import Path

from physadv.cli.common import print_json

ORDER = 80
HELP = "say what a run has done and what is next"


def register(parser: argparse.ArgumentParser) -> None:
    parser.epilog = "examples:\n  physadv status physadv-demo\n  physadv status session1 --json"
    parser.add_argument("run_dir", type=Path, metavar="RUN", help="run folder")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from physadv.lab.session import CONFIG_FILE, next_steps, status_counts, stored_config
    from physadv.lab.store import RunStore

    with RunStore(args.run_dir, create=False) as store:
        # A session run plans its attacks in config.json; a run made by `physadv attack` has just its own.
        planned = ([plan.name for plan in stored_config(args.run_dir).attacks]
                   if (args.run_dir / CONFIG_FILE).is_file() else store.attack_names())
        counts = status_counts(store)
        steps = next_steps(args.run_dir, store, planned)
    if args.json:
        print_json({"run": str(args.run_dir), **{k.replace(" ", "_"): v for k, v in counts.items()}, "next": steps})
        return 0
    print(f"{args.run_dir}: {counts['attacks']} of {len(planned)} attacks, "
          f"{counts['images attacked']} images attacked, {counts['pages printed']} pages printed, "
          f"{counts['photos']} photos, {counts['rejected']} rejected, {counts['cells classified']} cells classified")
    print("next: " + ("; ".join(steps) if steps else "nothing — the run is complete"))
    return 0
