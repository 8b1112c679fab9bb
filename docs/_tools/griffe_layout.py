"""Griffe extension for physadv's API reference.

- ``physadv.capture`` and ``physadv.printouts`` keep their folders at the top of the repository and
  install inside the physadv namespace (pyproject's ``package-dir``). Griffe reads ``physadv/`` from
  disk and so does not find them in a source checkout; they are attached here, under their installed
  names, when they are missing.
- The docstrings use reStructuredText roles (``:func:`name```) and ``.. math::`` blocks, as kornia's
  do. Markdown has neither: roles become code spans and math blocks become text blocks.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

import griffe

STAGE_FOLDERS = {"capture": "capture", "printouts": "printouts"}
ROLE = re.compile(r":(?:attr|class|data|exc|func|math|meth|mod|obj):`~?([^`]+)`")
MATH_BLOCK = re.compile(r"^(?P<indent>[ \t]*)\.\. math::[ \t]*\n(?P<body>(?:(?P=indent)[ \t]+\S.*\n|[ \t]*\n)+)", re.MULTILINE)


def markdown_docstring(text: str) -> str:
    """``text`` with reStructuredText roles as code spans and ``.. math::`` blocks as fenced text."""
    def fence(match: re.Match) -> str:
        indent = match["indent"]
        body = textwrap.dedent(match["body"]).strip("\n")
        return f"{indent}```text\n" + textwrap.indent(body, indent) + f"\n{indent}```\n\n"

    return ROLE.sub(r"`\1`", MATH_BLOCK.sub(fence, text))


class InstalledLayout(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if pkg.name != "physadv" or pkg.filepath is None:
            return
        root = pkg.filepath.parent.parent  # physadv/__init__.py → the repository (or site-packages)
        for name, folder in STAGE_FOLDERS.items():
            if name in pkg.members or not (root / folder / "__init__.py").is_file():
                continue
            stage = griffe.GriffeLoader(extensions=loader.extensions, docstring_parser=loader.docstring_parser,
                                        docstring_options=loader.docstring_options).load(root / folder)
            pkg.set_member(name, stage)

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown_docstring(obj.docstring.value)
