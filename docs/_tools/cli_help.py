"""MkDocs hook: the command-line reference shows every verb's own ``--help``, so it cannot drift.

A page holding the line ``<!-- physadv-cli-help -->`` gets, in its place, one section per verb (in
the order of ``physadv --help``) with the text argparse prints.
"""

from __future__ import annotations

import argparse
import os
from unittest import mock

MARKER = "<!-- physadv-cli-help -->"


def _sections() -> str:
    from physadv.cli.main import build_parser

    with mock.patch.dict(os.environ, {"COLUMNS": "80"}):  # argparse wraps at the terminal's width
        parser = build_parser()
        return _render(parser)


def _render(parser: argparse.ArgumentParser) -> str:
    verbs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    parts = [f"## physadv\n\n```text\n{parser.format_help().rstrip()}\n```\n"]
    for name, sub in verbs.choices.items():
        parts.append(f"## physadv {name}\n\n```text\n{sub.format_help().rstrip()}\n```\n")
    return "\n".join(parts)


def on_page_markdown(markdown: str, page, config, files) -> str:
    return markdown.replace(MARKER, _sections()) if MARKER in markdown else markdown
