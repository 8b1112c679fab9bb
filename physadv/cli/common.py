"""Options and helpers shared by the ``physadv`` verbs (top floor: imports stages, never the reverse).

The ``cmd_*`` modules import only argparse-level names at their top (this module, :mod:`physadv.catalog`,
:mod:`physadv.errors`) and the stages inside ``run``, so ``physadv --help`` does not load torch, kornia or
OpenCV.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, NoReturn

from physadv.catalog import DEFAULT_MODEL, OFFLINE_ENV, RANDOM_WEIGHTS
from physadv.errors import InputError, reported_here
from physadv.validation import SEED_RULE, is_seed

if TYPE_CHECKING:
    import torch

    from physadv.classifiers import Classifier
    from physadv.distributed import Shard


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the examples in epilogs as written and shows every option's default, except where there is
    none (``None``), the option is a flag, or the help already spells it out."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.nargs == 0 or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


IMAGES_HELP = ("image files, folders (e.g. ImageNet's val/), CSV lists `path,label`, or a built-in set: "
               "samples, digits")


def add_images_argument(parser: argparse.ArgumentParser, default: list[str] | None = None) -> None:
    """The images of a verb, given either way: ``physadv VERB IMAGES...`` or ``physadv VERB --images IMAGES...``
    (read them with :func:`images_from`)."""
    parser.add_argument("images", nargs="*", metavar="IMAGES",
                        help=IMAGES_HELP + (f" (default: {' '.join(default)})" if default else ""))
    parser.add_argument("--images", nargs="+", dest="images_option", metavar="IMAGES", help="the same as IMAGES")
    parser.set_defaults(images_default=default)


def images_from(args: argparse.Namespace) -> list[str]:
    if args.images and args.images_option:
        raise InputError("give the images either as IMAGES or with --images, not both")
    images = args.images or args.images_option or args.images_default
    if not images:
        raise InputError(f"no images given: name {IMAGES_HELP}")
    return images


class OneLineErrorParser(argparse.ArgumentParser):
    """Reports a bad option in one line (and where to read more) instead of the usage block."""

    def error(self, message: str) -> NoReturn:
        # Every rank of a torchrun group parses the same options: one says what is wrong, the others exit
        # 0 (as in cli.main, so that torchrun does not stop that one before it has said it).
        if not reported_here():
            self.exit(0)
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def output_dir(text: str) -> Path:
    """An output folder: an existing, writable folder, or one that can be made where it is named."""
    if not text:  # Path("") is the current folder: an empty --out (an unset shell variable) must not mean it
        raise argparse.ArgumentTypeError("an empty path names no folder (write . for the current folder)")
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: exists and is not a folder")
    existing = next((p for p in (path.absolute(), *path.absolute().parents) if p.exists()), None)
    if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{text}: cannot write there ({existing} is not a writable folder)")
    return path


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME",
                        help="classifier: a built-in name, timm:NAME, torchvision:NAME or FILE.py:FACTORY "
                             "(`physadv models` lists and explains them)")
    parser.add_argument("--weights", metavar="PATH", default=None,
                        help="weights file for --model (default: the library's cache / the package that ships "
                             f"them; '{RANDOM_WEIGHTS}': random initialisation, for smoke tests)")
    parser.add_argument("--labels", metavar="FILE", default=None,
                        help="class names of --model, one per line in logit order (default: the model's own)")
    parser.add_argument("--offline", action="store_true",
                        help=f"never download weights (also: {OFFLINE_ENV}=1); missing weights are an error "
                             "naming the file and where to put it")
    add_device_option(parser)


def add_device_option(parser: argparse.ArgumentParser, session: bool = False) -> None:
    """``--device``; for a session the default is the configuration's ``device`` (itself ``auto``)."""
    if session:
        parser.add_argument("--device", default=None, help="auto (CUDA when present), cpu, cuda or cuda:N "
                            "(default: the configuration's device, auto unless it says otherwise)")
    else:
        parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """``--workers`` for the verbs that stream an image set (and may run under ``torchrun``)."""
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="processes that read and resize images, per physadv process (0: none; default: up "
                             "to 4, sharing this machine's cores with the other processes torchrun starts)")


@contextmanager
def classifier_and_shard(args: argparse.Namespace, lock: str | None = None) -> Iterator[tuple[Classifier, Shard]]:
    """The classifier of ``--model`` on this process's device and this process's shard: under
    ``torchrun`` each process joins the group and takes ``cuda:LOCAL_RANK`` (or the CPU, with gloo).

    Args:
        lock: the command's name: rank 0 holds the run lock of ``args.out`` while the context lasts. It
            takes it as soon as the group is joined, so a busy run is refused at once, not after loading
            the model, and by every rank (:meth:`Shard.agree`).
    """
    from physadv.classifiers import load_classifier
    from physadv.datasets import default_workers
    from physadv.distributed import process_group

    if args.workers is None:
        args.workers = default_workers()
    if args.workers < 0:
        raise InputError(f"--workers must be 0 or more, got {args.workers}")
    check_worker_count(args.workers)
    with process_group(resolve_device(args.device)) as (shard, device), ExitStack() as held:
        if lock is not None:
            from physadv.lab.store import RunLock

            shard.agree(lambda: held.enter_context(RunLock(args.out, lock)), share=False)
        yield load_classifier(args.model, weights=args.weights, device=device,
                              offline=True if args.offline else None, labels=args.labels), shard


def add_seed_option(parser: argparse.ArgumentParser, default: int | None = 0,
                    help: str = "seed for everything random (reproducible runs)") -> None:
    parser.add_argument("--seed", type=seed_value, default=default, help=help)


def seed_value(text: str) -> int:
    """A ``--seed``: a whole number in 0..2**63 - 1, the rule every record's seed is read back with."""
    try:
        value = int(text)
    except ValueError:  # not a number, or one of thousands of digits
        value = None
    if not is_seed(value):
        raise argparse.ArgumentTypeError(f"must be {SEED_RULE}, got {text[:40]!r}")
    return value


def resolve_device(name: str) -> torch.device:
    import torch

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
    from physadv.classifiers import load_classifier

    return load_classifier(args.model, weights=args.weights, device=resolve_device(args.device),
                           offline=True if args.offline else None, labels=args.labels)


def sources_from_args(args: argparse.Namespace, target: Classifier) -> list[Classifier]:
    """The models of ``--source-model A[,B,...]`` (with ``--source-weights W[,W2,...]``), on ``target``'s
    device; a ``substitute:DIR`` is checked to be a substitute of ``target``."""
    if not args.source_model:
        if args.source_weights:
            raise InputError("--source-weights needs --source-model")
        return []
    from physadv.substitute.loading import load_source

    names = comma_list(args.source_model)
    weights = comma_list(args.source_weights) if args.source_weights else [None] * len(names)
    if len(weights) != len(names):
        raise InputError(f"--source-weights names {len(weights)} file(s) for {len(names)} source model(s)")
    return [load_source(name, path, target, offline=True if args.offline else None)
            for name, path in zip(names, weights)]


def comma_list(text: str, unique: bool = False) -> list[str]:
    """The items of ``a,b,c``; with ``unique``, each once, in order (a repeated method would repeat its rows)."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    return list(dict.fromkeys(parts)) if unique else parts


def comma_floats(text: str) -> list[float]:
    """The numbers of ``8,16``, each once, in order (``16,16`` is one ε, not two copies of its rows)."""
    try:
        return list(dict.fromkeys(float(part) for part in comma_list(text)))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


MAX_WORKERS_PER_CORE = 4
"""Decoding and capture are CPU-bound: past a few workers per core they only compete for the cores
(and each decoding process holds its own copy of the runtime, ~0.5 GB)."""


def check_worker_count(workers: int) -> None:
    most = MAX_WORKERS_PER_CORE * (os.cpu_count() or 1)
    if workers > most:
        raise InputError(f"--workers {workers}: at most {most} on this machine ({MAX_WORKERS_PER_CORE} per core)")


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
    from physadv.catalog import DISTRIBUTION_NAMES

    if text in DISTRIBUTION_NAMES or (text.startswith("profile:") and len(text) > len("profile:")):
        return text
    raise argparse.ArgumentTypeError(f"choose {', '.join(sorted(DISTRIBUTION_NAMES))} or profile:NAME|FILE.toml, "
                                     f"got {text!r}")


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=1, allow_nan=False)
    sys.stdout.write("\n")
