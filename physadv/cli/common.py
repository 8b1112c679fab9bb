"""Options and helpers shared by the ``physadv`` verbs (top floor: imports stages, never the reverse)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import torch

from physadv.classifiers import DEFAULT_MODEL, MODELS, Classifier, load_classifier
from physadv.classifiers.external import OFFLINE_ENV, RANDOM_WEIGHTS
from physadv.errors import InputError


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the examples in epilogs as written and shows every option's default."""


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME",
                        help=f"classifier: {', '.join(MODELS)}, timm:NAME, torchvision:NAME or FILE.py:FACTORY "
                             "(see `physadv models`)")
    parser.add_argument("--weights", metavar="PATH", default=None,
                        help="weights file for --model (default: the library's cache / the package that ships "
                             f"them; '{RANDOM_WEIGHTS}': random initialisation, for smoke tests)")
    parser.add_argument("--labels", metavar="FILE", default=None,
                        help="class names of --model, one per line in logit order (default: the model's own)")
    parser.add_argument("--offline", action="store_true",
                        help=f"never download weights (also: {OFFLINE_ENV}=1); missing weights are an error "
                             "naming the file and where to put it")
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
    return load_classifier(args.model, weights=args.weights, device=resolve_device(args.device),
                           offline=True if args.offline else None, labels=args.labels)


def sources_from_args(args: argparse.Namespace, target: Classifier) -> list[Classifier]:
    """The models of ``--source-model A[,B,...]`` (with ``--source-weights W[,W2,...]``), on ``target``'s device."""
    if not args.source_model:
        if args.source_weights:
            raise InputError("--source-weights needs --source-model")
        return []
    names = comma_list(args.source_model)
    weights = comma_list(args.source_weights) if args.source_weights else [None] * len(names)
    if len(weights) != len(names):
        raise InputError(f"--source-weights names {len(weights)} file(s) for {len(names)} source model(s)")
    return [load_classifier(name, weights=path, device=target.device, offline=True if args.offline else None)
            for name, path in zip(names, weights)]


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


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=1, allow_nan=False)
    sys.stdout.write("\n")
