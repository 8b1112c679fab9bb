"""Calling the CLI as a user does, for the tests of hostile input: the exit code and what it printed,
and a tiny lab (two digits attacked, printed, photographed once, captured) built once per session."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from physadv.cli.main import main

DIGITS = ["--model", "digits"]


def run_cli(argv: list[str], capsys=None) -> tuple[int, str]:
    """``physadv ARGV`` in this process: its exit code (argparse's exit included) and, given pytest's
    ``capsys``, its stderr."""
    if capsys is not None:
        capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse: a bad option, or --help
        code = exit_.code if isinstance(exit_.code, int) else 1
    return code, capsys.readouterr().err if capsys is not None else ""


def error_line(verb: str, err: str) -> str:
    """The one line a failed verb printed: no traceback, nothing else but progress bars and warnings."""
    lines = [line for line in err.splitlines() if line.strip() and not is_progress(line) and "warning:" not in line]
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith(f"physadv {verb}: error:"), err
    return lines[0]


def is_progress(line: str) -> bool:
    """A line of a tqdm progress bar (drawn on stderr beside any error), by its clock: ``[00:01<00:02, ...]``."""
    return re.search(r"\[(\d+:)?\d\d:\d\d[<,]", line) is not None


def build_tiny_lab(root: Path) -> dict[str, Path]:
    """Two digits attacked with FGSM at ε 32 (a run of its own), printed on one page, photographed once at
    1080p and captured: the folders of each stage. Tests copy what they change (:func:`copy_of`)."""
    lab = {name: root / name for name in ("adv", "sheets", "photos", "capture")}
    assert main(["attack", "digits", *DIGITS, "--method", "fgsm", "--eps", "32", "--limit", "2",
                 "--out", str(lab["adv"])]) == 0
    assert main(["print", str(lab["adv"]), "--out", str(lab["sheets"])]) == 0
    assert main(["photograph", str(lab["sheets"] / "sheets.pdf"), "--out", str(lab["photos"]), "--n", "1",
                 "--resolution", "1080p"]) == 0
    assert main(["capture", str(lab["photos"]), "--manifest", str(lab["sheets"] / "manifest.json"),
                 "--out", str(lab["capture"])]) == 0
    return lab


def copy_of(lab: dict[str, Path], where: Path) -> dict[str, Path]:
    """A copy of the tiny lab in ``where`` (the manifest's relative attack folder still resolves)."""
    for name, folder in lab.items():
        shutil.copytree(folder, where / name)
    return {name: where / name for name in lab}
