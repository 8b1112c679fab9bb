"""The ``physadv`` command: one verb per stage of attack → print → photograph → capture → evaluate.

Each verb lives in a module ``physadv.cli.cmd_<verb>`` exposing ``ORDER`` (position in ``--help``),
``HELP`` (one line) and ``register(parser)`` which adds its options and sets ``func(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import physadv.cli as cli_package
from physadv.cli.common import HelpFormatter
from physadv.errors import InputError, PhysadvError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="physadv", formatter_class=HelpFormatter,
        description="Physical-world robustness testing for image classifiers (Kurakin et al. 2017): "
                    "attack images, print them, photograph the sheets, capture and re-classify the crops, "
                    "and measure how much of the attack survives.",
        epilog="examples:\n"
               "  physadv models                              # which classifiers work offline here\n"
               "  physadv experiment --images samples --eps 8,16 --out results/\n"
               "  physadv attack samples --method bim --eps 16 --out adv/\n"
               "run `physadv VERB --help` for each verb's options and examples.")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    modules = [importlib.import_module(f"physadv.cli.{info.name}")
               for info in pkgutil.iter_modules(cli_package.__path__) if info.name.startswith("cmd_")]
    for module in sorted(modules, key=lambda m: m.ORDER):
        verb = module.__name__.rsplit(".cmd_", 1)[1].replace("_", "-")  # cmd_train_defence: train-defence
        sub = verbs.add_parser(verb, help=module.HELP, description=module.HELP, formatter_class=HelpFormatter)
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or EXIT_OK)
    except InputError as error:
        print(f"physadv {args.verb}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except PhysadvError as error:
        print(f"physadv {args.verb}: error: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return EXIT_OK
    except KeyboardInterrupt:
        print(f"\nphysadv {args.verb}: interrupted; finished outputs are kept, re-run the same command to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
