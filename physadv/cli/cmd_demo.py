"""``physadv demo``: the whole lab loop, offline, on the bundled photographs."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from typing import TYPE_CHECKING

from physadv.cli.common import add_device_option, add_seed_option, output_dir, resolve_device

if TYPE_CHECKING:
    from physadv.lab.session import SessionConfig

ORDER = 1
HELP = "run the whole loop offline: attack, print, photograph (virtual camera), capture, report"


def register(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "examples:\n"
        "  physadv demo                               # default model, bundled photos, ~3 min on 2 CPU cores\n"
        "  physadv demo --model digits --out demo-digits\n"
        "  physadv demo --config lab.toml --out my-session\n"
        "attacks the bundled photographs with FGSM, BIM and LL at eps 8 and 16 plus EOT-BIM at 16, prints\n"
        "the sheets to PDF, photographs them with the virtual camera (profile lab, 12 MP), finds, crops and re-classifies\n"
        "every cell and writes OUT/report/report.html and .pdf. Interrupted? Run the same command again.")
    parser.add_argument("--out", type=output_dir, default=Path("physadv-demo"), help="run folder")
    parser.add_argument("--model", default=None, metavar="NAME", help="classifier (default: the config's, "
                        "else efficientnet_lite0)")
    parser.add_argument("--config", type=Path, help="TOML file with session settings (see examples/lab.toml)")
    add_seed_option(parser, default=None, help="seed for everything random (default: the config's, else 0)")
    parser.add_argument("--profile", default=None, metavar="NAME|FILE.toml",
                        help="camera profile of the virtual camera: lab (default), handheld, webcam or a TOML file "
                             "written by physadv calibrate")
    add_device_option(parser, session=True)
    parser.set_defaults(func=run)


def profile_spec(text: str) -> str:
    """A built-in profile's name, or a profile file's absolute path (so that `run continue` finds it
    from any folder)."""
    from physadv.catalog import CAMERA_PROFILES

    return text if text in CAMERA_PROFILES else str(Path(text).resolve())


def session_config(args: argparse.Namespace) -> SessionConfig:
    from physadv.lab.session import AttackPlan, SessionConfig, load_config

    config = load_config(args.config) if args.config else SessionConfig()
    overrides = {}
    if args.model:
        overrides["model"] = args.model
        if args.model == "digits" and not args.config:
            # Digits need a larger ε than photographs to be fooled (they are 64 px with flat regions).
            overrides.update(images=("digits",), limit=12, transforms={"blur": (1.0,), "noise": (10.0, 30.0)},
                             attacks=(AttackPlan("fgsm", 32), AttackPlan("bim", 32), AttackPlan("ll", 32),
                                      AttackPlan("bim", 32, eot="photo")))
    if args.seed is not None:
        overrides["seed"] = args.seed
    if getattr(args, "profile", None):
        overrides["camera_profile"] = profile_spec(args.profile)
    return SessionConfig(**{**config.__dict__, **overrides}) if overrides else config


def run(args: argparse.Namespace) -> int:
    from physadv.lab.reporting import build_report, summary
    from physadv.lab.session import Session

    started = time.perf_counter()
    config = session_config(args)
    Session(args.out, config, resolve_device(args.device or config.device), user_model=args.model).run("demo")
    files = build_report(args.out)
    print(summary(args.out))
    print(f"\nreport: {files.html}\n        {files.pdf}\n({time.perf_counter() - started:.0f} s)")
    return 0
