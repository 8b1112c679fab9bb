"""``physadv run``: a lab session in a run folder — create it, continue it."""

from __future__ import annotations

import argparse
from pathlib import Path

from physadv.cli.cmd_demo import session_config
from physadv.cli.common import add_device_option, add_seed_option, output_dir, resolve_device
from physadv.errors import InputError

ORDER = 2
HELP = "create or continue a lab session (a run folder with its store)"


def register(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "examples:\n"
        "  physadv run new session1 --config lab.toml  # attack, print (and photograph if virtual)\n"
        "  # print session1/sheets/*/sheets.pdf at 100%, photograph them, copy the photos of each\n"
        "  # attack's sheets into session1/photos/<attack>/, then:\n"
        "  physadv run continue session1               # capture, re-classify, report\n"
        "  physadv status session1")
    parser.add_argument("action", choices=["new", "continue"], help="new: create RUN; continue: resume it")
    parser.add_argument("run_dir", type=output_dir, metavar="RUN", help="run folder")
    parser.add_argument("--config", type=Path, help="TOML session settings (new only; see examples/lab.toml)")
    parser.add_argument("--model", default=None, metavar="NAME",
                        help="classifier (new; with continue only to confirm the run's own FILE.py:FACTORY model, "
                             "which physadv never imports on a file's word)")
    add_seed_option(parser, default=None, help="seed for everything random (new only; default: the config's, else 0)")
    parser.add_argument("--profile", default=None, metavar="NAME|FILE.toml",
                        help="camera profile of the virtual camera (new only; the config key camera_profile)")
    add_device_option(parser, session=True)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from physadv.lab.reporting import build_report, summary
    from physadv.lab.session import CONFIG_FILE, Session, stored_config

    if args.action == "new":
        if (args.run_dir / CONFIG_FILE).exists():
            raise InputError(f"{args.run_dir} already exists; use `physadv run continue {args.run_dir}`")
        config = session_config(args)
    else:
        if args.config or args.seed is not None or args.profile:
            raise InputError("a run keeps the configuration it was created with; --config, --seed and --profile "
                             "only go with `run new`")
        config = stored_config(args.run_dir)
        if args.model is not None and args.model != config.model:
            raise InputError(f"a run keeps the model it was created with ({config.model!r}); --model with `run "
                             "continue` only confirms that model")
    Session(args.run_dir, config, resolve_device(args.device or config.device),
            user_model=args.model).run(f"run {args.action}")
    files = build_report(args.run_dir)
    print(summary(args.run_dir))
    print(f"\nreport: {files.html}")
    return 0
