"""Options and helpers shared by the ``physadv`` verbs (top floor: imports stages, never the reverse)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import torch

from physadv.classifiers import DEFAULT_MODEL, MODELS, Classifier, load_classifier
from physadv.errors import InputError


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the examples in epilogs as written and shows every option's default."""


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME",
                        help=f"classifier: {', '.join(MODELS)} (see `physadv models`)")
    parser.add_argument("--weights", metavar="PATH", default=None,
                        help="weights file for --model (default: the torch cache / the package that ships them)")
    add_device_option(parser)


def add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")


def add_seed_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="seed for everything random (reproducible runs)")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"--device {name!r} is not a device (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
    return device


def classifier_from_args(args: argparse.Namespace) -> Classifier:
    return load_classifier(args.model, weights=args.weights, device=resolve_device(args.device))


def comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def comma_floats(text: str) -> list[float]:
    try:
        return [float(part) for part in comma_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def eot_spec(text: str) -> str:
    """An ``--eot`` value: a built-in distribution or ``profile:NAME|FILE.toml`` (checked when used)."""
    from physadv.eot import DISTRIBUTIONS

    if text in DISTRIBUTIONS or (text.startswith("profile:") and len(text) > len("profile:")):
        return text
    raise argparse.ArgumentTypeError(f"choose {', '.join(sorted(DISTRIBUTIONS))} or profile:NAME|FILE.toml, got {text!r}")


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=1, allow_nan=False)
    sys.stdout.write("\n")
