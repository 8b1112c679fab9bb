"""The refactoring changes no result: a small digits experiment's rows against a checked-in golden file.

Regenerate (only when a result is meant to change, and say why in the commit)::

    OMP_NUM_THREADS=1 python tests/test_golden.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden" / "digits_rows.json"
DIGITS_RUN = ["experiment", "--model", "digits", "--images", "digits", "--limit", "8", "--batch-size", "4",
              "--methods", "none,fgsm,bim,ll", "--eps", "16,32", "--iterations", "5", "--alpha", "6", "--eot", "photo",
              "--eot-samples", "4", "--adversariality-samples", "5", "--transforms", "brightness,jpeg,noise,blur",
              "--strengths", "jpeg=50", "--strengths", "brightness=-30,30", "--strengths", "noise=10",
              "--strengths", "blur=1", "--workers", "0", "--seed", "0"]
"""Every path of a row: the clean rows (method none), white-box attacks, EOT with its adversariality
column, each artificial transformation, both cases; two batches per attack."""

DIGITS = 6
"""Decimals kept of a float: rates are counts over 8 images (exact to far more), adversariality a float32 mean."""

ROW_KEY = ("method", "eps", "transform", "strength", "case")


def _rounded(value: object) -> object:
    return round(value, DIGITS) if isinstance(value, float) else value


def digits_rows(out: Path) -> list[dict]:
    """The rows of :data:`DIGITS_RUN` written to ``out``, floats rounded, sorted by their key."""
    from physadv.cli.main import main

    assert main([*DIGITS_RUN, "--out", str(out)]) == 0
    rows = json.loads((out / "results.json").read_text(encoding="utf-8"))["rows"]
    return sorted(({key: _rounded(value) for key, value in row.items()} for row in rows),
                  key=lambda row: tuple(str(row[key]) for key in ROW_KEY))


@pytest.mark.slow
def test_a_digits_experiment_gives_the_golden_rows(tmp_path, digits_classifier):
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    fresh = digits_rows(tmp_path / "run")
    assert [tuple(row[key] for key in ROW_KEY) for row in fresh] == [tuple(row[key] for key in ROW_KEY)
                                                                     for row in golden]
    # Fields added to rows later are allowed; every field of the golden must keep its value.
    differences = [(tuple(want[key] for key in ROW_KEY), field, want[field], got.get(field, "<missing>"))
                   for want, got in zip(golden, fresh) for field in want if got.get(field, "<missing>") != want[field]]
    assert differences == []


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(digits_rows(Path(folder)), indent=1) + "\n", encoding="utf-8")
    print(f"written {GOLDEN}", file=sys.stderr)
