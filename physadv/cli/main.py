"""The ``physadv`` command: one verb per stage of attack → print → photograph → capture → evaluate.

Each verb lives in a module ``physadv.cli.cmd_<verb>`` exposing ``ORDER`` (position in ``--help``),
``HELP`` (one line) and ``register(parser)`` which adds its options and sets ``func(args) -> int``.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import importlib.metadata
import pkgutil
import sqlite3
import sys
import warnings

import physadv.cli as cli_package
from physadv.cli.common import HelpFormatter, OneLineErrorParser
from physadv.errors import InputError, PhysadvError, reported_here

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def _version() -> str:
    try:
        return importlib.metadata.version("physadv")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="physadv", formatter_class=HelpFormatter,
        description="Physical-world robustness testing for image classifiers (Kurakin et al. 2017): "
                    "attack images, print them, photograph the sheets, capture and re-classify the crops, "
                    "and measure how much of the attack survives.",
        epilog="examples:\n"
               "  physadv models                              # which classifiers work offline here\n"
               "  physadv experiment --images samples --eps 8,16 --out results/\n"
               "  physadv attack samples --method bim --eps 16 --out adv/\n"
               "run `physadv VERB --help` for each verb's options and examples.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
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

    def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"physadv {args.verb}: warning: {message}", file=sys.stderr)

    warnings.showwarning = show_warning

    def report(error: BaseException, message: str, code: int) -> int:
        # Under torchrun, once: by the first process of each machine, or by the rank whose own error it is
        # (errors.reported_here). A process that leaves the error to another exits 0: a failed one makes
        # torchrun stop the others at once, which could stop the reporting one before it has printed.
        if not reported_here(error):
            return EXIT_OK
        print(message, file=sys.stderr)
        return code

    try:
        return int(args.func(args) or EXIT_OK)
    except InputError as error:
        return report(error, f"physadv {args.verb}: error: {error}", EXIT_USAGE)
    except PhysadvError as error:
        return report(error, f"physadv {args.verb}: error: {error}", EXIT_FAILURE)
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return EXIT_OK
    except OSError as error:  # disk full, permissions, a file that vanished: the system's words, one line
        return report(error, f"physadv {args.verb}: error: {describe_os_error(error)}", EXIT_FAILURE)
    except sqlite3.Error as error:
        return report(error, f"physadv {args.verb}: error: the run store failed: {error}"
                             f"{'; the disk may be full' if 'disk' in str(error) or 'full' in str(error) else ''} "
                             "(what it had recorded is kept: every import is one transaction)", EXIT_FAILURE)
    except KeyboardInterrupt:  # every rank of a torchrun group is interrupted: one says so
        if reported_here():
            print(f"\nphysadv {args.verb}: interrupted; finished outputs are kept, re-run the same command to "
                  "resume", file=sys.stderr)
        return 130


def describe_os_error(error: OSError) -> str:
    where = f"{error.filename}: " if error.filename else ""
    reason = error.strerror or str(error)
    if error.errno == errno.ENOSPC:
        reason += " (free some space and re-run the same command: finished outputs are kept)"
    return where + reason


if __name__ == "__main__":
    sys.exit(main())
