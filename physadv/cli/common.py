"""Options and helpers shared by the ``physadv`` verbs (top floor: imports stages, never the reverse)."""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import contextmanager
from typing import Any, Iterator

import torch

from physadv.classifiers import DEFAULT_MODEL, MODELS, Classifier, load_classifier
from physadv.datasets import default_workers
from physadv.distributed import Shard, process_group
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


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """``--workers`` for the verbs that stream an image set (and may run under ``torchrun``)."""
    parser.add_argument("--workers", type=int, default=default_workers(), metavar="N",
                        help="processes that read and resize images, per physadv process (0: none; the default "
                             "is up to 4, sharing this machine's cores with the other processes torchrun starts)")


@contextmanager
def classifier_and_shard(args: argparse.Namespace) -> Iterator[tuple[Classifier, Shard]]:
    """The classifier of ``--model`` on this process's device and this process's shard: under
    ``torchrun`` each process joins the group and takes ``cuda:LOCAL_RANK`` (or the CPU, with gloo)."""
    if args.workers < 0:
        raise InputError(f"--workers must be 0 or more, got {args.workers}")
    with process_group(resolve_device(args.device)) as (shard, device):
        yield load_classifier(args.model, weights=args.weights, device=device), shard


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


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=1, allow_nan=False)
    sys.stdout.write("\n")
